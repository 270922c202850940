/**
 * What the update server sends for a task (SPEC.md §4.5), encoded once and kept in memory: the file list, both
 * OFFERs and the CHUNK messages. A task's files never change after it is created, so an entry stays valid for
 * the task's life; the cache is bounded by bytes and drops the least recently used task first. A task too big
 * for it is streamed from the store's content slices (SPEC.md §4.1), one slice at a time.
 */
import { NoiseCfgError } from '../errors.js';
import { encodeMessage, MAX_CHUNK_BYTES, type Offer } from './messages.js';
import { MAX_RECORD_BODY_BYTES } from '../transport/index.js';
import type { FileEntry } from './digests.js';
import { CONTENT_SLICE_BYTES, type TaskRecord } from './store.js';

/**
 * Content bytes per CHUNK: one CHUNK message is one channel record, so a receiver never reassembles fragments.
 * SPEC.md §4.5 lets CHUNKs cut the content stream anywhere.
 */
export const CHUNK_CONTENT_BYTES = Math.min(MAX_CHUNK_BYTES, MAX_RECORD_BODY_BYTES - 1);

/** The default bound on cached CHUNK bytes, in bytes. */
export const DEFAULT_CONTENT_CACHE_BYTES = 64 * 1024 * 1024;
/** Tasks held at most, whatever their size (a file list alone can be large). */
const MAX_CACHED_TASKS = 256;

/** A task's messages, ready to send. */
export interface TaskContent {
  files: FileEntry[];
  /** The OFFER of a pull (hasContent true), encoded. */
  offer: Buffer;
  /** The OFFER of a dry run (hasContent false), encoded. */
  dryRunOffer: Buffer;
  /** The CHUNK messages, encoded, in order; null when the task is too big to cache (stream them, encodeChunks). */
  chunks: Buffer[] | null;
}

/** Where the content comes from: the store, in file order, each file in slices of CONTENT_SLICE_BYTES. */
export interface ContentSource {
  getFiles(taskId: string): FileEntry[];
  /** Slice `slice` of file `position`: CONTENT_SLICE_BYTES, the last one of a file shorter. */
  getFileSlice(taskId: string, position: number, slice: number): Buffer;
}

/**
 * Cuts `contents` (in order) into encoded CHUNK messages of CHUNK_CONTENT_BYTES, the last one shorter. Lazy: each
 * content is taken from the iterable only when the CHUNKs before it have been taken.
 */
export function* encodeChunks(contents: Iterable<Buffer>): Generator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const cut = (): Buffer => {
    const chunk = encodeMessage({ type: 'CHUNK', body: pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes) });
    pending = [];
    pendingBytes = 0;
    return chunk;
  };
  for (const content of contents) {
    for (let offset = 0; offset < content.byteLength;) {
      const take = Math.min(CHUNK_CONTENT_BYTES - pendingBytes, content.byteLength - offset);
      pending.push(content.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === CHUNK_CONTENT_BYTES) yield cut();
    }
  }
  if (pendingBytes > 0) yield cut();
}

/**
 * The contents of a task's files (`files`, its file list), in order, as slices each read from `source` only when
 * the one before it has been taken: whatever the task's size, a reader holds one slice. Throws STORE_CORRUPT
 * when a slice is missing or has the wrong size.
 */
export function* taskContents(task: TaskRecord, files: readonly FileEntry[], source: ContentSource): Generator<Buffer> {
  for (let position = 0; position < files.length; position++) {
    const size = files[position]!.size;
    for (let slice = 0, offset = 0; offset < size; slice++, offset += CONTENT_SLICE_BYTES) {
      const content = source.getFileSlice(task.id, position, slice);
      const expected = Math.min(CONTENT_SLICE_BYTES, size - offset);
      if (content.byteLength !== expected) {
        throw new NoiseCfgError('STORE_CORRUPT', `slice ${slice} of file ${position} of task ${task.id} has ${content.byteLength} bytes, expected ${expected}`);
      }
      yield content;
    }
  }
}

/** A bounded, least-recently-used cache of TaskContent. */
export class TaskContentCache {
  readonly #maxBytes: number;
  readonly #entries = new Map<string, { content: TaskContent; bytes: number }>();
  #bytes = 0;

  constructor(maxBytes = DEFAULT_CONTENT_CACHE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes of CHUNK messages held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The content of `task`, from the cache or built from `source`. Throws what the source throws. */
  get(task: TaskRecord, source: ContentSource): TaskContent {
    const cached = this.#entries.get(task.id);
    if (cached) {
      // Map order is insertion order: re-inserting marks the entry most recently used.
      this.#entries.delete(task.id);
      this.#entries.set(task.id, cached);
      return cached.content;
    }
    const files = source.getFiles(task.id);
    const offerBody: Offer = { digest: task.digest, totalBytes: task.totalBytes, files, hasContent: true };
    const isCacheable = task.totalBytes <= this.#maxBytes;
    const content: TaskContent = {
      files,
      offer: encodeMessage({ type: 'OFFER', body: offerBody }),
      dryRunOffer: encodeMessage({ type: 'OFFER', body: { ...offerBody, hasContent: false } }),
      chunks: isCacheable ? [...encodeChunks(taskContents(task, files, source))] : null,
    };
    const bytes = isCacheable ? task.totalBytes : 0;
    this.#entries.set(task.id, { content, bytes });
    this.#bytes += bytes;
    for (const [id, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes && this.#entries.size <= MAX_CACHED_TASKS) break;
      this.#entries.delete(id);
      this.#bytes -= entry.bytes;
    }
    return content;
  }
}

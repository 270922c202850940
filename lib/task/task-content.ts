/**
 * What the update server sends for a task (SPEC.md §4.5): the file list, both OFFERs and the CHUNK messages,
 * encoded once for the content cache (caches.ts), or, for a task too big for it, CHUNKs streamed from the store's
 * content slices (SPEC.md §4.1), one slice at a time.
 */
import { NoiseCfgError } from '../errors.js';
import { encodeMessage, MAX_CHUNK_BYTES, type Offer } from './messages.js';
import { MAX_RECORD_BODY_BYTES } from '../transport/index.js';
import type { FileEntry } from './digests.js';
import type { Awaitable } from './operator.js';
import { CONTENT_SLICE_BYTES, type TaskRecord } from './store.js';

/**
 * Content bytes per CHUNK: one CHUNK message is one channel record, so a receiver never reassembles fragments.
 * SPEC.md §4.5 lets CHUNKs cut the content stream anywhere.
 */
export const CHUNK_CONTENT_BYTES = Math.min(MAX_CHUNK_BYTES, MAX_RECORD_BODY_BYTES - 1);

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
  getFiles(taskId: string): Awaitable<FileEntry[]>;
  /** Slice `slice` of file `position`: CONTENT_SLICE_BYTES, the last one of a file shorter. */
  getFileSlice(taskId: string, position: number, slice: number): Awaitable<Buffer>;
}

/**
 * Cuts `contents` (in order) into encoded CHUNK messages of CHUNK_CONTENT_BYTES, the last one shorter. Lazy: each
 * content is taken from the iterable (the store's slices arrive asynchronously) only when the CHUNKs before it have
 * been taken.
 */
export async function* encodeChunks(contents: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const cut = (): Buffer => {
    const chunk = encodeMessage({ type: 'CHUNK', body: pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes) });
    pending = [];
    pendingBytes = 0;
    return chunk;
  };
  for await (const content of contents) {
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
export async function* taskContents(task: TaskRecord, files: readonly FileEntry[], source: ContentSource): AsyncGenerator<Buffer> {
  for (let position = 0; position < files.length; position++) {
    const size = files[position]!.size;
    for (let slice = 0, offset = 0; offset < size; slice++, offset += CONTENT_SLICE_BYTES) {
      const content = await source.getFileSlice(task.id, position, slice);
      const expected = Math.min(CONTENT_SLICE_BYTES, size - offset);
      if (content.byteLength !== expected) {
        throw new NoiseCfgError('STORE_CORRUPT', `slice ${slice} of file ${position} of task ${task.id} has ${content.byteLength} bytes, expected ${expected}`);
      }
      yield content;
    }
  }
}

/**
 * The messages of `task`, encoded from `source`: the file list, both OFFERs, and, when `withChunks`, every CHUNK
 * (else null: the caller streams them with encodeChunks). Throws what the source throws.
 */
export async function buildTaskContent(task: TaskRecord, source: ContentSource, withChunks: boolean): Promise<TaskContent> {
  const files = await source.getFiles(task.id);
  const chunks: Buffer[] = [];
  if (withChunks) for await (const chunk of encodeChunks(taskContents(task, files, source))) chunks.push(chunk);
  const offerBody: Offer = { digest: task.digest, totalBytes: task.totalBytes, files, hasContent: true };
  return {
    files,
    offer: encodeMessage({ type: 'OFFER', body: offerBody }),
    dryRunOffer: encodeMessage({ type: 'OFFER', body: { ...offerBody, hasContent: false } }),
    chunks: withChunks ? chunks : null,
  };
}

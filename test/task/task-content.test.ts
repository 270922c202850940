// The server's encoded task content (lib/task/task-content.ts): CHUNKs cut the content stream at
// CHUNK_CONTENT_BYTES whatever the file boundaries (SPEC.md §4.5), each fits one channel record, and a task too
// big for the cache is streamed one slice at a time. The cache itself is tested in caches.test.ts.
import t from 'tap';
import { decodeMessage, MESSAGE_TYPES } from '../../lib/task/messages.js';
import type { FileEntry } from '../../lib/task/digests.js';
import { CONTENT_SLICE_BYTES, type TaskRecord } from '../../lib/task/store.js';
import { buildTaskContent, CHUNK_CONTENT_BYTES, encodeChunks, taskContents, type ContentSource } from '../../lib/task/task-content.js';
import { MAX_RECORD_BODY_BYTES } from '../../lib/transport/records.js';
import { seededRandom } from './support.js';

function chunkBodies(chunks: Buffer[]): Buffer[] {
  return chunks.map((chunk) => {
    const message = decodeMessage(chunk);
    if (message.type !== 'CHUNK') throw new Error(`expected CHUNK, got ${message.type}`);
    return message.body;
  });
}

/** Every item of `items`, awaited in order (Node 20 has no Array.fromAsync). */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

t.test('encodeChunks cuts the concatenated contents into full CHUNKs and one shorter last CHUNK', async (t) => {
  t.equal(CHUNK_CONTENT_BYTES + 1, MAX_RECORD_BODY_BYTES, 'a CHUNK message (type byte + content) is exactly one record body');
  const random = seededRandom(6);
  const cases: [string, number[]][] = [
    ['no files', []],
    ['empty files only', [0, 0]],
    ['one byte', [1]],
    ['exactly one CHUNK', [CHUNK_CONTENT_BYTES]],
    ['one CHUNK and one byte', [CHUNK_CONTENT_BYTES + 1]],
    ['64 KiB', [65536]],
    ['files straddling CHUNK boundaries', [10, CHUNK_CONTENT_BYTES - 5, 7, 0, 2 * CHUNK_CONTENT_BYTES + 3]],
    ['many small files', Array.from({ length: 300 }, () => 500)],
  ];
  for (const [name, sizes] of cases) {
    const contents = sizes.map((size) => Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256))));
    const whole = Buffer.concat(contents);
    const bodies = chunkBodies(await collect(encodeChunks(contents)));
    t.same(Buffer.concat(bodies), whole, `${name}: the CHUNKs hold the content stream, in order`);
    t.equal(bodies.length, Math.ceil(whole.byteLength / CHUNK_CONTENT_BYTES), `${name}: ${bodies.length} CHUNK(s)`);
    t.ok(bodies.slice(0, -1).every((body) => body.byteLength === CHUNK_CONTENT_BYTES), `${name}: every CHUNK but the last is full`);
    t.ok(bodies.every((body) => body.byteLength > 0), `${name}: no empty CHUNK`);
  }
});

function task(id: string, totalBytes: number): TaskRecord {
  return { id, name: id, mode: 'xxpsk3', createdAt: 0, expiresAt: 1, maxClients: null, state: 'active', endedAt: null, digest: 'a'.repeat(64), totalBytes, fileCount: 1 };
}

/** A store stand-in with one file per task, counting its reads. */
function countingSource(sizes: Record<string, number>): ContentSource & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    getFiles(taskId: string): FileEntry[] {
      return [{ path: 'f', mode: 0o644, size: sizes[taskId]!, digest: 'b'.repeat(64) }];
    },
    getFileSlice(taskId: string, _position: number, slice: number): Buffer {
      reads.push(taskId);
      return Buffer.alloc(Math.min(CONTENT_SLICE_BYTES, sizes[taskId]! - slice * CONTENT_SLICE_BYTES), taskId.charCodeAt(0));
    },
  };
}

t.test('buildTaskContent encodes both OFFERs and, only when asked, the CHUNKs', async (t) => {
  const source = countingSource({ a: 400 });
  const whole = await buildTaskContent(task('a', 400), source, true);
  t.equal(whole.offer[0], MESSAGE_TYPES.OFFER, 'the OFFER is encoded');
  const offer = decodeMessage(whole.offer);
  const dryRun = decodeMessage(whole.dryRunOffer);
  t.ok(offer.type === 'OFFER' && offer.body.hasContent, 'the pull OFFER announces content');
  t.ok(dryRun.type === 'OFFER' && !dryRun.body.hasContent, 'the dry-run OFFER does not');
  t.same(Buffer.concat(chunkBodies(whole.chunks!)), Buffer.alloc(400, 'a'.charCodeAt(0)), 'the CHUNKs hold the content');
  t.same(source.reads, ['a'], 'the content was read to build them');
  const streamed = await buildTaskContent(task('a', 400), source, false);
  t.equal(streamed.chunks, null, 'without CHUNKs: streamed from the store at each pull');
  t.same(source.reads, ['a'], 'and no content was read');
});

t.test('a task streamed from the store is read one slice at a time as its CHUNKs are taken, whatever its size', async (t) => {
  const size = 5 * CONTENT_SLICE_BYTES + 123;
  const files: FileEntry[] = [{ path: 'small', mode: 0o644, size: 10, digest: 'b'.repeat(64) }, { path: 'big', mode: 0o644, size, digest: 'b'.repeat(64) }];
  const reads: string[] = [];
  const source: ContentSource = {
    getFiles: () => files,
    getFileSlice(_taskId, position, slice) {
      reads.push(`${position}/${slice}`);
      const fileSize = files[position]!.size;
      return Buffer.alloc(Math.min(CONTENT_SLICE_BYTES, fileSize - slice * CONTENT_SLICE_BYTES), position + 1);
    },
  };
  const big = task('big', 10 + size);
  const chunks = encodeChunks(taskContents(big, files, source));
  let taken = 0;
  let most = 0;
  for await (const chunk of chunks) {
    taken += chunk.byteLength - 1;
    // Slices read so far, minus those the CHUNKs taken have used up: what a pull holds at this point.
    const held = reads.length - 1 - Math.floor(Math.max(0, taken - 10) / CONTENT_SLICE_BYTES);
    most = Math.max(most, held);
  }
  t.equal(taken, 10 + size, 'every byte was streamed');
  t.same(reads, ['0/0', '1/0', '1/1', '1/2', '1/3', '1/4', '1/5'], 'each slice read once, in order');
  t.ok(most <= 1, `at most one slice ahead of the CHUNKs taken (${most})`);
});

t.test('a missing or short slice is STORE_CORRUPT, not short content', async (t) => {
  const files: FileEntry[] = [{ path: 'f', mode: 0o644, size: CONTENT_SLICE_BYTES + 5, digest: 'b'.repeat(64) }];
  const short: ContentSource = { getFiles: () => files, getFileSlice: (_id, _position, slice) => Buffer.alloc(slice === 0 ? CONTENT_SLICE_BYTES : 4) };
  await t.rejects(collect(taskContents(task('f', CONTENT_SLICE_BYTES + 5), files, short)), { code: 'STORE_CORRUPT', message: /slice 1 of file 0 .* 4 bytes, expected 5/ });
});

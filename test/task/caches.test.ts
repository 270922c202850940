// The update server's caches (lib/task/caches.ts): each bound drops the least recently used entry, and each
// invalidation rule written there holds — a reload after eviction sees the claimed slots, slots survive a revoke,
// another process's holders only lower the count, prune forgets a task, and cancel, revoke and
// delete made through another store handle (as `task cancel` from another process) hold though the task's PSK and
// content were cached.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LruCache, TASK_KEY_TTL_MS, TaskCaches, type CacheBounds, type CacheSource } from '../../lib/task/caches.js';
import type { FileEntry } from '../../lib/task/digests.js';
import { TaskAdmin } from '../../lib/task/admin.js';
import { CONTENT_SLICE_BYTES, TaskStore, type ClientRecord, type TaskRecord } from '../../lib/task/store.js';
import { clientSetup, textFiles } from './client-support.js';

function task(id: string, options: { totalBytes?: number; maxClients?: number | null } = {}): TaskRecord {
  return {
    id, name: id, mode: 'xxpsk3', createdAt: 0, expiresAt: Date.now() + 3_600_000, maxClients: options.maxClients ?? null, state: 'active',
    endedAt: null, digest: 'a'.repeat(64), totalBytes: options.totalBytes ?? 0, fileCount: options.totalBytes ? 1 : 0,
  };
}

function client(taskId: string, identity: string, state: ClientRecord['state']): ClientRecord {
  return {
    taskId, identity, name: identity, remoteAddress: '127.0.0.1', state, firstSeenAt: 1, updatedAt: 1, exitCode: null, message: null,
    appliedDigest: state === 'applied' ? 'a'.repeat(64) : null, hasSlot: true,
  };
}

/** A store stand-in with one file per task and no clients, counting its content reads. */
function countingSource(sizes: Record<string, number>): CacheSource & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    getFiles: (taskId): FileEntry[] => [{ path: 'f', mode: 0o644, size: sizes[taskId]!, digest: 'b'.repeat(64) }],
    getFileSlice(taskId, _position, slice) {
      reads.push(taskId);
      return Buffer.alloc(Math.min(CONTENT_SLICE_BYTES, sizes[taskId]! - slice * CONTENT_SLICE_BYTES), taskId.charCodeAt(0));
    },
    listClients: () => [],
    flush: () => undefined,
    getTask: (taskId) => (taskId in sizes ? task(taskId, { totalBytes: sizes[taskId]! }) : null),
  };
}

/** Caches over a real store in a test directory, deriving PSKs from a counter so that each derivation shows. */
function cachesOnStore(t: Test, bounds: Partial<CacheBounds> = {}): { store: TaskStore; caches: TaskCaches; path: string } {
  const path = join(t.testdir(), 'noise-cfg.db');
  const store = TaskStore.open(path);
  t.teardown(() => store.close());
  let derived = 0;
  const caches = new TaskCaches({ source: store, derivePsk: () => Buffer.alloc(32, ++derived), bounds });
  return { store, caches, path };
}

t.test('LruCache drops the least recently used entry at its entry bound and at its byte bound', async (t) => {
  const cache = new LruCache<string, number>(2, 100);
  cache.set('a', 1, 10);
  cache.set('b', 2, 10);
  t.equal(cache.get('a'), 1, 'a is used, so b is now the oldest');
  cache.set('c', 3, 10);
  t.same([cache.has('a'), cache.has('b'), cache.has('c')], [true, false, true], 'at two entries the third pushed out b, the least recently used');
  t.equal(cache.bytes, 20, 'the dropped entry gave its bytes back');
  cache.set('d', 4, 95);
  t.same([cache.has('a'), cache.has('c'), cache.has('d')], [false, false, true], 'over 100 bytes the oldest go until the rest fit');
  t.equal(cache.bytes, 95);
  t.ok(cache.delete('d'), 'delete says it held the key');
  t.same([cache.size, cache.bytes], [0, 0], 'and gives the entry and its bytes back');
  t.notOk(cache.delete('d'), 'a second delete finds nothing');
});

t.test('PSKs: derived once per task; at the bound the least recently used is dropped and derived again', async (t) => {
  const derivations: string[] = [];
  const caches = new TaskCaches({ source: countingSource({}), derivePsk: (id) => (derivations.push(id), Buffer.alloc(32, id.charCodeAt(0))), bounds: { psks: 2 } });
  t.same(caches.psk('a'), Buffer.alloc(32, 'a'.charCodeAt(0)), 'the derived PSK');
  caches.psk('a');
  caches.psk('b');
  t.same(derivations, ['a', 'b'], 'a second use of a task derives nothing');
  caches.psk('a');
  caches.psk('c');
  caches.psk('a');
  t.same(derivations, ['a', 'b', 'c'], 'a, used most recently, stayed');
  caches.psk('b');
  t.same(derivations, ['a', 'b', 'c', 'b'], 'b, used least recently, was dropped and is derived again');
});

t.test('content: read once per task, held within its byte and task bounds, least recently used out first', async (t) => {
  const source = countingSource({ a: 400, b: 400, c: 400, huge: 2000 });
  const caches = new TaskCaches({ source, derivePsk: () => Buffer.alloc(32), bounds: { contentBytes: 1000 } });
  const first = await caches.content(task('a', { totalBytes: 400 }));
  t.equal(await caches.content(task('a', { totalBytes: 400 })), first, 'a second get returns the same entry');
  t.same(source.reads, ['a'], 'the content was read once');
  await caches.content(task('b', { totalBytes: 400 }));
  await caches.content(task('a', { totalBytes: 400 }));
  t.equal(caches.contentBytes, 800, 'two tasks held');
  await caches.content(task('c', { totalBytes: 400 }));
  t.equal(caches.contentBytes, 800, 'the third pushed one out');
  await caches.content(task('a', { totalBytes: 400 }));
  t.same(source.reads, ['a', 'b', 'c'], 'a, used most recently, stayed');
  await caches.content(task('b', { totalBytes: 400 }));
  t.same(source.reads, ['a', 'b', 'c', 'b'], 'b, used least recently, was dropped and is read again');
  const huge = await caches.content(task('huge', { totalBytes: 2000 }));
  t.equal(huge.chunks, null, 'a task over the byte bound is not cached: its content is streamed from the store');
  t.equal(caches.contentBytes, 800, 'and it takes none of the budget');
  t.notOk(source.reads.includes('huge'), 'its content was not read to build the entry');

  const few = countingSource({ x: 1, y: 1, z: 1 });
  const small = new TaskCaches({ source: few, derivePsk: () => Buffer.alloc(32), bounds: { contents: 2 } });
  for (const id of ['x', 'y', 'z', 'x']) await small.content(task(id, { totalBytes: 1 }));
  t.same(few.reads, ['x', 'y', 'z', 'x'], 'at two tasks, whatever their bytes, the oldest goes');
});

t.test('sessions that ask at once for a task not cached share one load: its content is read once, its slot set built once', async (t) => {
  const source = countingSource({ a: 400 });
  let listings = 0;
  // A store that answers later, as PostgreSQL does: every read waits a turn of the event loop.
  const later = <T>(value: T): Promise<T> => new Promise((resolve) => setImmediate(() => resolve(value)));
  const caches = new TaskCaches({
    source: {
      getFiles: (taskId) => later(source.getFiles(taskId) as FileEntry[]),
      getFileSlice: (taskId, position, slice) => later(source.getFileSlice(taskId, position, slice) as Buffer),
      listClients: () => {
        listings++;
        return later([client('a', 'x', 'offered')]);
      },
      flush: () => later(undefined),
      getTask: (taskId) => later(source.getTask(taskId) as TaskRecord | null),
    },
    derivePsk: () => Buffer.alloc(32),
  });
  const a = task('a', { totalBytes: 400 });
  const contents = await Promise.all(Array.from({ length: 20 }, () => caches.content(a)));
  t.ok(contents.every((content) => content === contents[0]), 'twenty sessions got the same entry');
  t.same(source.reads, ['a'], 'and the content was read once, not twenty times');
  const holders = await Promise.all([caches.slotHolders('a'), caches.addSlotHolder('a', 'y'), caches.slotHolders('a')]);
  t.equal(listings, 1, 'the clients were listed once');
  t.same([...holders[0]!].sort(), ['x', 'y'], 'one set: the holder added while it loaded was not lost to a second load');
});

t.test('slots: an entry dropped at the bound is read back with the claimed slots, and a revoke keeps the slot', async (t) => {
  const { store, caches } = cachesOnStore(t, { slotCounts: 1 });
  store.createTask(task('a', { maxClients: 2 }), []);
  store.createTask(task('b'), []);
  t.same([...await caches.slotHolders('a')], [], 'a new task: no holder');
  // As the server does: the slot is claimed in the store, then the identity is counted here.
  t.ok(await store.claimSlot(client('a', 'x', 'offered'), 2));
  await caches.addSlotHolder('a', 'x');
  await caches.slotHolders('b');
  t.same([...await caches.slotHolders('a')], ['x'], 'read back after b pushed a out');
  t.equal(store.getClient('a', 'x')?.state, 'offered');
  store.revokeClient('a', 'x', 2);
  await caches.slotHolders('b');
  t.same([...await caches.slotHolders('a')], ['x'], 'a revoked client keeps its slot (SPEC.md §4.4), read back or not');
});

t.test("slots: another handle's holders (another process) are missing until a reload, so the count is never above the store's", async (t) => {
  const { store, caches, path } = cachesOnStore(t);
  store.createTask(task('a', { maxClients: 5 }), []);
  t.same([...await caches.slotHolders('a')], [], 'loaded: no holder');
  const other = TaskStore.open(path);
  t.ok(await other.claimSlot(client('a', 'y', 'offered'), 5), 'another process takes a slot');
  other.close();
  t.same([...await caches.slotHolders('a')], [], 'not seen here: a lower count, never a higher one');
  t.equal(store.getClient('a', 'y')?.hasSlot, true, "negotiate() reads the client's own record, which says it holds one");
});

t.test('task keys: a found task is read once per TASK_KEY_TTL_MS and answered at once between; a missing one is read every time', async (t) => {
  const tasks = new Map<string, TaskRecord>([['a', { ...task('a'), mode: 'nnpsk0' }]]);
  const reads: string[] = [];
  let clock = 0;
  const caches = new TaskCaches({
    source: { ...countingSource({}), getTask: (id) => (reads.push(id), tasks.get(id) ?? null) },
    derivePsk: (id) => Buffer.alloc(32, id.charCodeAt(0)),
    monotonicMs: () => clock,
  });
  t.same(await caches.keyFor('a'), { mode: 'nnpsk0', psk: Buffer.alloc(32, 'a'.charCodeAt(0)) }, 'the mode and the PSK');
  clock = TASK_KEY_TTL_MS - 1;
  const held = caches.keyFor('a');
  t.notOk(held instanceof Promise, 'within the TTL: answered without waiting');
  t.same(reads, ['a'], 'and without a read');
  tasks.delete('a');
  t.same(caches.keyFor('a'), { mode: 'nnpsk0', psk: Buffer.alloc(32, 'a'.charCodeAt(0)) }, 'a delete by another process is not seen within the TTL (HELLO refuses it)');
  clock = TASK_KEY_TTL_MS;
  t.equal(await caches.keyFor('a'), null, 'at the TTL the task is read again, and is gone');
  t.same(reads, ['a', 'a']);
  t.equal(await caches.keyFor('b'), null);
  t.equal(await caches.keyFor('b'), null);
  t.same(reads, ['a', 'a', 'b', 'b'], 'a missing task is not kept: read at each handshake');
  tasks.set('b', task('b'));
  t.same(await caches.keyFor('b'), { mode: 'xxpsk3', psk: Buffer.alloc(32, 'b'.charCodeAt(0)) }, 'so a task created since is found at once');
  const burst = await Promise.all([caches.keyFor('c'), caches.keyFor('c'), caches.keyFor('c')]);
  t.same([burst, reads.filter((id) => id === 'c').length], [[null, null, null], 1], 'handshakes that ask at once share one read');
  caches.forgetTask('b');
  await caches.keyFor('b');
  t.equal(reads.filter((id) => id === 'b').length, 4, 'forgetTask drops the key: the next handshake reads');
});

t.test('task keys: at the bound the least recently used is dropped and read again', async (t) => {
  const reads: string[] = [];
  const caches = new TaskCaches({
    source: { ...countingSource({}), getTask: (id) => (reads.push(id), task(id)) },
    derivePsk: () => Buffer.alloc(32),
    bounds: { taskKeys: 2 },
    monotonicMs: () => 0,
  });
  for (const id of ['a', 'b', 'a', 'c', 'a', 'b']) await caches.keyFor(id);
  t.same(reads, ['a', 'b', 'c', 'b'], 'a, used most recently, stayed; b was dropped for c');
});

t.test('forgetTask drops every cache of the task', async (t) => {
  const source = countingSource({ a: 10 });
  const listed: string[] = [];
  const derivations: string[] = [];
  const caches = new TaskCaches({
    source: { ...source, listClients: (id) => (listed.push(id), []) },
    derivePsk: (id) => (derivations.push(id), Buffer.alloc(32)),
  });
  const a = task('a', { totalBytes: 10, maxClients: 5 });
  const fill = async (): Promise<void> => {
    caches.psk('a');
    await caches.content(a);
    await caches.slotHolders('a');
  };
  await fill();
  await fill();
  t.same([derivations.length, source.reads.length, listed.length], [1, 1, 1], 'held: derived, read and listed once each');
  caches.forgetTask('a');
  await fill();
  t.same([derivations.length, source.reads.length, listed.length], [2, 2, 2], 'after forgetTask, all of it is built again');
});

t.test('a server with the task cached: cancel, revoke and delete through another handle hold at the next HELLO', async (t) => {
  const s = await clientSetup(t);
  const other = await TaskAdmin.open(s.dataDir);
  t.teardown(() => other.close());

  const cancelled = await s.create(textFiles({ 'a.conf': 'a\n' }));
  t.equal((await s.pullInto(cancelled.token)).status, 'applied', 'pulled once: PSK, content and slots are cached');
  await other.cancelTask(cancelled.id);
  await t.rejects(s.pullInto(cancelled.token, { outDir: join(s.dir, 'out-cancelled') }), { code: 'REJECTED', message: /cancelled/ }, 'the cancel holds');

  const revoked = await s.create(textFiles({ 'b.conf': 'b\n' }));
  t.equal((await s.pullInto(revoked.token, { outDir: join(s.dir, 'out-b') })).status, 'applied');
  const [identity] = (await other.showTask(revoked.id)).clients.map((each) => each.identity);
  await other.revokeClient(revoked.id, identity!);
  await t.rejects(s.pullInto(revoked.token, { outDir: join(s.dir, 'out-b2') }), { code: 'REJECTED', message: /revoked/ }, 'the revoke holds');

  const deleted = await s.create(textFiles({ 'c.conf': 'c\n' }));
  t.equal((await s.pullInto(deleted.token, { outDir: join(s.dir, 'out-c') })).status, 'applied');
  await other.deleteTask(deleted.id);
  await t.rejects(s.pullInto(deleted.token, { outDir: join(s.dir, 'out-c2') }), { code: 'REJECTED', message: /no longer exists/ },
    'within TASK_KEY_TTL_MS of the read, the handshake still finds the task, and HELLO refuses it: nothing is offered');
  await new Promise((resolve) => setTimeout(resolve, TASK_KEY_TTL_MS + 50));
  await t.rejects(s.pullInto(deleted.token, { outDir: join(s.dir, 'out-c3') }), { code: 'AUTHENTICATION_FAILED' }, 'after it, a deleted task fails the handshake though its key was cached');
  t.notOk(existsSync(join(s.dir, 'out-c2')) || existsSync(join(s.dir, 'out-c3')), 'nothing was applied');
});

t.test("a delete through the server's own admin (the REST API) fails the next handshake at once", async (t) => {
  const s = await clientSetup(t);
  const purged = await s.create(textFiles({ 'd.conf': 'd\n' }));
  t.equal((await s.pullInto(purged.token)).status, 'applied', 'pulled once: the key is cached');
  await s.running.server.admin().deleteTask(purged.id);
  await t.rejects(s.pullInto(purged.token, { outDir: join(s.dir, 'out-d2') }), { code: 'AUTHENTICATION_FAILED' }, 'the server forgot the key when it deleted the task');
});

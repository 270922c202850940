/**
 * The rules every task store keeps (lib/task/store-contract.ts, SPEC.md §4.1, §4.9), written once and run against
 * the SQLite store (sqlite-conformance.test.ts) and the PostgreSQL store (postgres-conformance.test.ts). Every call
 * is awaited, so that one suite holds a store that answers at once and one that answers later. What only one store
 * has (SQLite's files and migrations, PostgreSQL's schema and connection errors) is tested beside it.
 */
import type { Test } from 'tap';
import { fileDigest, taskDigest } from '../../lib/task/digests.js';
import type { TaskStoreContract } from '../../lib/task/store-contract.js';
import { CONTENT_SLICE_BYTES, type ClientRecord, type NewTaskFile, type TaskRecord } from '../../lib/task/store.js';

/**
 * Opens handles on one fresh, empty database. Each handle stands for one server process or node: its own
 * connection and its own group commit. Handles are closed in the test's teardown (closing one twice is harmless).
 */
export type OpenHandle = (options?: { servedBy?: string }) => Promise<TaskStoreContract>;
export type FreshDatabase = (t: Test) => Promise<OpenHandle>;

export const TASK_ID = 'kw3dg76w18whjmr0';

export function file(path: string, content: Buffer | string, mode = 0o644): NewTaskFile {
  const bytes = Buffer.from(content);
  return { path, mode, size: bytes.byteLength, digest: fileDigest(bytes), content: bytes };
}

export function taskRecord(id: string, files: readonly NewTaskFile[], overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id, name: 'test task', mode: 'xxpsk3', createdAt: 1_700_000_000_000, expiresAt: 1_700_003_600_000, maxClients: null,
    state: 'active', endedAt: null, digest: taskDigest(files), totalBytes: files.reduce((sum, entry) => sum + entry.size, 0),
    fileCount: files.length, ...overrides,
  };
}

export function clientRecord(identity: string, overrides: Partial<ClientRecord> = {}): ClientRecord {
  return {
    taskId: TASK_ID, identity, name: `client ${identity}`, remoteAddress: '127.0.0.1:40000', state: 'connected',
    firstSeenAt: 1_700_000_001_000, updatedAt: 1_700_000_001_000, exitCode: null, message: null, appliedDigest: null,
    hasSlot: false, ...overrides,
  };
}

/** Three small files and one of more than one slice, so that slicing is exercised. */
export const FILES = [
  file('etc/app.conf', 'listen = 8080\n'),
  file('etc/conf.d/a.conf', 'a = 1\n'),
  file('bin/run.sh', '#!/bin/sh\nexec app\n', 0o755),
  file('data/blob.bin', Buffer.from(Array.from({ length: CONTENT_SLICE_BYTES + 4_465 }, (_, index) => index % 251))),
];

const offer = (identity: string): ClientRecord => clientRecord(identity, { state: 'offered', hasSlot: true });
const applied = (identity: string, at: number): ClientRecord => clientRecord(identity, { state: 'applied', hasSlot: true, appliedDigest: taskDigest(FILES), updatedAt: at });

/** Runs the whole suite against the store `fresh` makes. */
export function storeConformance(t: Test, fresh: FreshDatabase): void {
  t.test('createTask stores the task and its files in one transaction; every read gives them back, numbers as numbers', async (t) => {
    const store = await (await fresh(t))();
    const commits = store.commitCount;
    const task = taskRecord(TASK_ID, FILES, { maxClients: 3 });
    await store.createTask(task, FILES);
    t.equal(store.commitCount, commits + 1, 'one transaction');
    t.strictSame(await store.getTask(TASK_ID), task, 'times, sizes and counts come back as numbers');
    t.equal(await store.getTask('0000000000000000'), null);
    t.strictSame(await store.getFiles(TASK_ID), FILES.map(({ path, mode, size, digest }) => ({ path, mode, size, digest })));
    for (const [position, entry] of FILES.entries()) t.ok((await store.getFileContent(TASK_ID, position)).equals(entry.content), `content of ${entry.path}`);
    const blob = FILES[3]!.content;
    t.ok((await store.getFileSlice(TASK_ID, 3, 0)).equals(blob.subarray(0, CONTENT_SLICE_BYTES)), 'the first slice is CONTENT_SLICE_BYTES');
    t.ok((await store.getFileSlice(TASK_ID, 3, 1)).equals(blob.subarray(CONTENT_SLICE_BYTES)), 'the last slice is the rest');
    await t.rejects(Promise.resolve().then(() => store.getFileSlice(TASK_ID, 3, 2)), { code: 'STORE_CORRUPT', message: /slice 2 of file 3/ });
    await t.rejects(Promise.resolve().then(() => store.getFileContent(TASK_ID, FILES.length)), { code: 'STORE_CORRUPT' }, 'a missing position is an error, not undefined');
    t.same((await store.listTasks()).map((entry) => entry.id), [TASK_ID]);
    t.same((await store.listEvents(TASK_ID)).map((event) => event.state), ['created']);
    await t.rejects(Promise.resolve().then(() => store.createTask(task, FILES)), { code: 'STORE_CORRUPT' }, 'a duplicate id is refused');
    t.equal((await store.getFiles(TASK_ID)).length, FILES.length, 'the failed duplicate added no files');
    t.equal(store.commitCount, commits + 1, 'and committed nothing');
  });

  t.test('an empty file and a task without files round-trip', async (t) => {
    const store = await (await fresh(t))();
    const empty = [file('etc/empty.conf', '')];
    await store.createTask(taskRecord(TASK_ID, empty), empty);
    t.equal((await store.getFileContent(TASK_ID, 0)).byteLength, 0);
    await store.createTask(taskRecord('kw3dg76w18whjmr9', []), []);
    t.same(await store.getFiles('kw3dg76w18whjmr9'), []);
    t.same((await store.listTasks()).map((entry) => entry.id).sort(), [TASK_ID, 'kw3dg76w18whjmr9']);
  });

  t.test('listTasks is newest first, then by id', async (t) => {
    const store = await (await fresh(t))();
    const ids = ['kw3dg76w18whjmr3', 'kw3dg76w18whjmr1', 'kw3dg76w18whjmr2'];
    await store.createTask(taskRecord(ids[0]!, FILES, { createdAt: 1_700_000_000_000 }), FILES);
    await store.createTask(taskRecord(ids[1]!, FILES, { createdAt: 1_700_000_005_000 }), FILES);
    await store.createTask(taskRecord(ids[2]!, FILES, { createdAt: 1_700_000_005_000 }), FILES);
    t.same((await store.listTasks()).map((entry) => entry.id), ['kw3dg76w18whjmr1', 'kw3dg76w18whjmr2', 'kw3dg76w18whjmr3']);
  });

  t.test('saveClient inserts, then updates; revoked and hasSlot never go back', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await store.saveClient(clientRecord('alice'));
    t.strictSame(await store.getClient(TASK_ID, 'alice'), clientRecord('alice'));

    await store.saveClient(clientRecord('alice', { state: 'offered', hasSlot: true, updatedAt: 1_700_000_002_000, name: 'renamed' }));
    let alice = (await store.getClient(TASK_ID, 'alice'))!;
    t.same([alice.state, alice.hasSlot, alice.name, alice.firstSeenAt], ['offered', true, 'renamed', 1_700_000_001_000], 'first seen is kept from the insert');

    await store.saveClient(clientRecord('alice', { state: 'failed', hasSlot: false, exitCode: 3, message: 'exit 3', updatedAt: 1_700_000_003_000 }));
    alice = (await store.getClient(TASK_ID, 'alice'))!;
    t.same([alice.state, alice.hasSlot, alice.exitCode, alice.updatedAt], ['failed', true, 3, 1_700_000_003_000], 'a slot once taken stays taken');

    t.equal(await store.revokeClient(TASK_ID, 'alice', 1_700_000_004_000), true);
    t.equal((await store.getClient(TASK_ID, 'alice'))!.state, 'revoked');
    await store.saveClient(applied('alice', 1_700_000_005_000));
    t.equal((await store.getClient(TASK_ID, 'alice'))!.state, 'revoked', 'revoked is final: a later save does not undo it');

    t.equal(await store.revokeClient(TASK_ID, 'nobody', 1_700_000_004_000), false, 'revoking an unknown identity returns false');
    t.equal(await store.getClient(TASK_ID, 'nobody'), null, 'and creates no record');
    t.equal(await store.revokeClient('0000000000000000', 'alice', 1_700_000_004_000), false, 'revoking in an unknown task returns false');
    t.same((await store.listClients(TASK_ID)).map((client) => client.identity), ['alice']);
  });

  t.test('getTaskAndClient reads the task and one client record together, as getTask and getClient give them', async (t) => {
    const store = await (await fresh(t))();
    const task = taskRecord(TASK_ID, FILES, { maxClients: 4 });
    await store.createTask(task, FILES);
    t.strictSame(await store.getTaskAndClient('0000000000000000', 'alice'), { task: null, client: null }, 'no task: neither');
    t.strictSame(await store.getTaskAndClient(TASK_ID, 'alice'), { task, client: null }, 'a task without that client');
    const alice = clientRecord('alice', { state: 'failed', hasSlot: true, exitCode: 3, message: 'exit 3', updatedAt: 1_700_000_002_000 });
    await store.saveClient(alice);
    t.strictSame(await store.getTaskAndClient(TASK_ID, 'alice'), { task, client: alice }, 'both, every field as its own read gives it');
    t.strictSame((await store.getTaskAndClient(TASK_ID, 'alice')).client, await store.getClient(TASK_ID, 'alice'));
  });

  t.test('listClients is by first seen, then identity', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await Promise.all([
      store.saveClient(clientRecord('zed', { firstSeenAt: 1_700_000_000_500 })),
      store.saveClient(clientRecord('bob', { firstSeenAt: 1_700_000_002_000 })),
      store.saveClient(clientRecord('amy', { firstSeenAt: 1_700_000_002_000 })),
    ]);
    t.same((await store.listClients(TASK_ID)).map((client) => client.identity), ['zed', 'amy', 'bob']);
  });

  t.test('a write for an unknown task rejects with STORE_CORRUPT, and its batch records nothing', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    const ghost = store.saveClient({ ...clientRecord('ghost'), taskId: '0000000000000000' });
    const neighbour = store.saveClient(clientRecord('neighbour'));
    await t.rejects(ghost, { code: 'STORE_CORRUPT' });
    await t.rejects(neighbour, { code: 'STORE_CORRUPT' }, 'the batch it shared fails whole: its writes are not acknowledged');
    t.same(await store.listClients('0000000000000000'), []);
    t.same(await store.listClients(TASK_ID), [], 'nothing of the failed batch was committed');
    await store.saveClient(clientRecord('later'));
    t.same((await store.listClients(TASK_ID)).map((client) => client.identity), ['later'], 'the next batch commits');
  });

  t.test('text from a peer that PostgreSQL text cannot hold (NUL, a lone surrogate) is kept with U+FFFD in its place, by every store, and harms no other write of its batch', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    const hostile = 'a\u0000b\ud800c\udfffd "quoted" \\ \u{1F600}';
    const kept = 'a\ufffdb\ufffdc\ufffdd "quoted" \\ \u{1F600}';
    const writes = [
      store.saveClient(clientRecord('named', { name: 'web\ud83d' })),
      store.saveResult(clientRecord('result', { state: 'failed', hasSlot: true, exitCode: 1, message: hostile }), hostile),
      store.saveClient(clientRecord('neighbour')),
    ];
    const settled = await Promise.allSettled(writes);
    t.same(settled.map((result) => result.status), ['fulfilled', 'fulfilled', 'fulfilled'], 'every write of the batch commits');
    t.equal((await store.getClient(TASK_ID, 'named'))!.name, 'web\ufffd');
    t.equal((await store.getClient(TASK_ID, 'result'))!.message, kept);
    t.equal((await store.listEvents(TASK_ID)).find((event) => event.identity === 'result')!.detail, kept, 'and so is the event detail');
    t.ok(await store.getClient(TASK_ID, 'neighbour'));
  });

  t.test('group commit: writes queued in one turn share one transaction, and all resolve', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES, { maxClients: 1 }), FILES);
    const before = store.commitCount;
    const count = 50;
    const saves: Promise<unknown>[] = Array.from({ length: count }, (_, index) => store.saveClient(offer(`client-${index}`)));
    saves.push(store.saveTransferProgress(TASK_ID, 'client-1', 4096, 1_700_000_001_500));
    // The RESULT of the one client maxClients waits for: it completes the task in the same batch.
    saves.push(store.saveResult(applied('client-0', 1_700_000_009_000), null));
    t.equal(store.commitCount, before, 'nothing is committed synchronously');
    const settled = await Promise.allSettled(saves);
    t.equal(settled.filter((result) => result.status === 'fulfilled').length, count + 2, 'every write resolves');
    t.equal(store.commitCount, before + 1, `${count + 2} writes, one commit`);
    t.equal((await store.listClients(TASK_ID)).length, count);
    t.equal((await store.getTask(TASK_ID))!.state, 'completed');
    await Promise.all([store.saveClient(clientRecord('late-1')), store.saveClient(clientRecord('late-2'))]);
    t.equal(store.commitCount, before + 2, 'the next turn is the next batch');
  });

  t.test('claimSlot takes a slot only while fewer than the limit hold one, counted in the database across handles; an identity takes one slot however often it claims', async (t) => {
    const open = await fresh(t);
    const first = await open();
    const second = await open();
    await first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 3 }), FILES);
    // Claims queued on both handles before either commits, as two workers answering HELLOs at once.
    const claims = await Promise.all([
      first.claimSlot(offer('a'), 3), second.claimSlot(offer('b'), 3), first.claimSlot(offer('a'), 3),
      second.claimSlot(offer('c'), 3), first.claimSlot(offer('d'), 3), second.claimSlot(offer('e'), 3),
    ]);
    const holders = (await first.listClients(TASK_ID)).filter((client) => client.hasSlot).map((client) => client.identity).sort();
    t.equal(holders.length, 3, `exactly maxClients identities hold a slot: ${holders.join(', ')}`);
    // Which handle commits first is not fixed (it is, on SQLite; not across PostgreSQL pools): a may have lost.
    const aHolds = holders.includes('a');
    t.equal(claims[0], aHolds, "a's first claim was granted exactly when a holds a slot");
    t.equal(claims[2], aHolds, 'and its second claim, in the same batch, the same: one slot however often it claims');
    t.equal(claims.filter(Boolean).length, aHolds ? 4 : 3, 'one grant per slot, and a second one for a');
    const refused = ['a', 'b', 'c', 'd', 'e'].filter((identity) => !holders.includes(identity));
    t.equal(refused.length, 2, `two identities were refused: ${refused.join(', ')}`);
    t.same(await Promise.all(refused.map((identity) => first.getClient(TASK_ID, identity))), [null, null], 'and nothing was recorded for them');
    t.notOk(await first.claimSlot(offer('f'), 3), 'the task stays full');
    await first.revokeClient(TASK_ID, holders[0]!, 1_700_000_002_000);
    t.notOk(await second.claimSlot(offer('f'), 3), 'a revoked client keeps its slot (SPEC.md §4.4): still full');
    t.ok(await second.claimSlot(offer('f'), 4), 'a higher limit (a server cap) makes room');
  });

  t.test('claimSlot under load: 3 handles, 120 identities claiming at once, 40 slots: exactly 40 holders', async (t) => {
    const open = await fresh(t);
    const handles = await Promise.all([open(), open(), open()]);
    await handles[0]!.createTask(taskRecord(TASK_ID, FILES, { maxClients: 40 }), FILES);
    const claims: Promise<boolean>[] = [];
    // Spread over several turns, so that each handle commits several batches that interleave with the others'.
    for (let round = 0; round < 6; round++) {
      for (let index = 0; index < 20; index++) claims.push(handles[index % 3]!.claimSlot(offer(`id-${round}-${index}`), 40));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const granted = (await Promise.all(claims)).filter(Boolean).length;
    const clients = await handles[1]!.listClients(TASK_ID);
    t.equal(granted, 40, 'forty claims granted');
    t.equal(clients.length, 40, 'forty records');
    t.ok(clients.every((client) => client.hasSlot && client.state === 'offered'), 'each an offer holding its slot');
  });

  t.test('saveResult completes a task with maxClients in the transaction of the result that brings the applied count to it, counting every handle and no revoked client', async (t) => {
    const open = await fresh(t);
    const first = await open();
    const second = await open();
    await first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 2 }), FILES);
    t.notOk((await first.saveResult(applied('x', 1_700_000_002_000), null)).completed, 'one of two');
    t.notOk((await second.saveResult(clientRecord('y', { state: 'failed', hasSlot: true, updatedAt: 1_700_000_003_000 }), 'exit 1')).completed, 'a failure counts for nothing');
    t.notOk((await second.saveResult(clientRecord('z', { state: 'applied', hasSlot: true, appliedDigest: 'f'.repeat(64), updatedAt: 1_700_000_003_000 }), null)).completed, 'nor does another digest');
    await first.revokeClient(TASK_ID, 'x', 1_700_000_004_000);
    t.notOk((await second.saveResult(applied('w', 1_700_000_005_000), null)).completed, 'x was revoked: w makes one of two');
    t.equal((await first.getTask(TASK_ID))!.state, 'active');
    t.ok((await second.saveResult(applied('v', 1_700_000_006_000), null)).completed, 'v makes two, through the other handle');
    const task = (await first.getTask(TASK_ID))!;
    t.same([task.state, task.endedAt], ['completed', 1_700_000_006_000]);
    t.notOk((await first.saveResult(applied('u', 1_700_000_007_000), null)).completed, 'a further result completes nothing more');
    t.equal((await first.listEvents(TASK_ID)).filter((event) => event.state === 'completed').length, 1, 'one completed event');
    const plainId = 'kw3dg76w18whjmr1';
    await first.createTask(taskRecord(plainId, FILES), FILES);
    t.notOk((await first.saveResult({ ...applied('x', 1_700_000_008_000), taskId: plainId }, null)).completed, 'a task without maxClients never completes by count');
  });

  t.test('saveResult records nothing for a task gone or cancelled, or a client revoked, since the offer, and says which', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES, { maxClients: 1 }), FILES);
    await Promise.all([store.saveClient(offer('kept')), store.saveClient(offer('gone'))]);
    await store.revokeClient(TASK_ID, 'gone', 1_700_000_002_000);
    const events = (await store.listEvents(TASK_ID)).length;
    t.strictSame(await store.saveResult(applied('gone', 1_700_000_003_000), null), { refused: 'revoked', completed: false }, 'a revoked client');
    t.equal((await store.getClient(TASK_ID, 'gone'))!.state, 'revoked');
    t.equal((await store.listEvents(TASK_ID)).length, events, 'no event was written');
    // A result for a task deleted meanwhile is refused, and fails no other write of its batch.
    const [ghost, neighbour] = await Promise.all([
      store.saveResult({ ...applied('kept', 1_700_000_004_000), taskId: '0000000000000000' }, null),
      store.saveClient(clientRecord('neighbour')),
    ]);
    t.strictSame(ghost, { refused: 'cancelled', completed: false }, 'a task that is gone');
    t.equal(neighbour, undefined, 'its batch committed');
    await store.endTask(TASK_ID, 'cancelled', 1_700_000_005_000);
    t.strictSame(await store.saveResult(applied('kept', 1_700_000_006_000), null), { refused: 'cancelled', completed: false }, 'a cancelled task');
    t.equal((await store.getClient(TASK_ID, 'kept'))!.state, 'offered', 'the result was not recorded');
    t.equal((await store.getTask(TASK_ID))!.state, 'cancelled', 'and did not complete the cancelled task');
  });

  t.test('markInterrupted changes only a client still offered, with its reason in the event', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await Promise.all([store.saveClient(offer('o')), store.saveClient(applied('p', 1_700_000_001_000))]);
    await Promise.all([
      store.markInterrupted(TASK_ID, 'o', 1_700_000_002_000, 'the connection closed'),
      store.markInterrupted(TASK_ID, 'p', 1_700_000_002_000, 'the connection closed'),
      store.markInterrupted(TASK_ID, 'nobody', 1_700_000_002_000, 'the connection closed'),
    ]);
    t.same((await store.listClients(TASK_ID)).map((client) => `${client.identity}:${client.state}`), ['o:interrupted', 'p:applied']);
    const last = (await store.listEvents(TASK_ID)).at(-1)!;
    t.same([last.identity, last.name, last.state, last.detail], ['o', 'client o', 'interrupted', 'the connection closed']);
    t.equal((await store.getClient(TASK_ID, 'nobody')), null, 'an unknown identity gets no record');
  });

  t.test('interruptLostSessions marks the sessions of one server process, of one node, or all', async (t) => {
    const open = await fresh(t);
    const setup = await open();
    await setup.createTask(taskRecord(TASK_ID, FILES), FILES);
    // Two processes of node a…a, one of node b…b (served-by.ts: the node's 16 hex, then the process's).
    const [deadA, aliveA, nodeB] = ['aaaaaaaaaaaaaaaa0000000000000001', 'aaaaaaaaaaaaaaaa0000000000000002', 'bbbbbbbbbbbbbbbb0000000000000001'];
    const dead = await open({ servedBy: deadA });
    const alive = await open({ servedBy: aliveA });
    const other = await open({ servedBy: nodeB });
    await Promise.all([
      dead.saveClient(offer('d1')), dead.saveClient(applied('d2', 1_700_000_001_000)), dead.saveClient(clientRecord('d3')),
      alive.saveClient(offer('a1')), other.saveClient(offer('b1')), other.saveClient(offer('b2')),
    ]);
    const states = async (): Promise<string[]> => (await setup.listClients(TASK_ID)).map((client) => `${client.identity}:${client.state}`).sort();
    t.equal(await setup.interruptLostSessions(1_700_000_002_000, 'its worker died', { servedBy: deadA }), 2, 'd1 offered and d3 connected');
    t.same(await states(), ['a1:offered', 'b1:offered', 'b2:offered', 'd1:interrupted', 'd2:applied', 'd3:interrupted']);
    t.equal((await setup.listEvents(TASK_ID)).at(-1)?.detail, 'its worker died');
    t.equal(await setup.interruptLostSessions(1_700_000_003_000, 'node b restarted', { node: 'bbbbbbbbbbbbbbbb' }), 2, 'node b: its two, none of node a');
    t.same(await states(), ['a1:offered', 'b1:interrupted', 'b2:interrupted', 'd1:interrupted', 'd2:applied', 'd3:interrupted']);
    t.equal(await setup.interruptLostSessions(1_700_000_004_000, 'restart', 'all'), 1, 'all: every session left (a1)');
    t.equal(await setup.interruptLostSessions(1_700_000_005_000, 'restart', 'all'), 0, 'and then none');
  });

  t.test('endTask and revokeClient return whether they changed something, each with its event', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await store.saveClient(clientRecord('bob'));
    t.equal(await store.endTask(TASK_ID, 'cancelled', 1_700_000_010_000), true);
    const task = (await store.getTask(TASK_ID))!;
    t.same([task.state, task.endedAt], ['cancelled', 1_700_000_010_000]);
    t.equal(await store.endTask(TASK_ID, 'completed', 1_700_000_011_000), false, 'an ended task does not end again');
    t.equal((await store.getTask(TASK_ID))!.state, 'cancelled', 'and keeps its state');
    t.equal(await store.endTask('0000000000000000', 'cancelled', 1), false, 'an unknown task');
    t.equal(await store.revokeClient(TASK_ID, 'bob', 1_700_000_012_000), true);
    t.equal(await store.revokeClient(TASK_ID, 'bob', 1_700_000_013_000), true, 'revoking twice still names an existing client');
    t.same((await store.listEvents(TASK_ID)).map((event) => event.state), ['created', 'connected', 'cancelled', 'revoked', 'revoked']);
  });

  t.test('listEvents pages by id and lastEventId follows it; events of other tasks stay out', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await store.createTask(taskRecord('kw3dg76w18whjmr1', FILES), FILES);
    await Promise.all(['c1', 'c2', 'c3', 'c4'].map((identity) => store.saveClient(clientRecord(identity))));
    const all = await store.listEvents(TASK_ID);
    t.same(all.map((event) => event.identity), [null, 'c1', 'c2', 'c3', 'c4']);
    t.ok(all.every((event, index) => typeof event.id === 'number' && (index === 0 || event.id > all[index - 1]!.id)), 'ids are numbers, increasing');
    t.strictSame(all[1], { id: all[1]!.id, taskId: TASK_ID, identity: 'c1', name: 'client c1', state: 'connected', at: 1_700_000_001_000, detail: null });
    t.same((await store.listEvents(TASK_ID, all[1]!.id, 2)).map((event) => event.identity), ['c2', 'c3'], 'after an id, at most limit');
    t.same(await store.listEvents(TASK_ID, all.at(-1)!.id), [], 'nothing after the last');
    t.equal(await store.lastEventId(TASK_ID), all.at(-1)!.id);
    t.equal(await store.lastEventId('0000000000000000'), 0, 'a task without events');
    t.same((await store.listEvents('kw3dg76w18whjmr1')).map((event) => event.state), ['created']);
  });

  t.test('transfer progress is listed for clients still offered, from this offer only', async (t) => {
    const store = await (await fresh(t))();
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await Promise.all([
      store.saveClient(clientRecord('now', { state: 'offered', hasSlot: true, updatedAt: 1_700_000_002_000 })),
      store.saveClient(clientRecord('stale', { state: 'offered', hasSlot: true, updatedAt: 1_700_000_005_000 })),
      store.saveClient(applied('done', 1_700_000_002_000)),
    ]);
    await Promise.all([
      store.saveTransferProgress(TASK_ID, 'now', 1000, 1_700_000_003_000),
      store.saveTransferProgress(TASK_ID, 'stale', 2000, 1_700_000_004_000),
      store.saveTransferProgress(TASK_ID, 'done', 3000, 1_700_000_003_000),
    ]);
    await store.saveTransferProgress(TASK_ID, 'now', 70_000, 1_700_000_003_500);
    t.strictSame(await store.listTransfers(TASK_ID), [{ identity: 'now', name: 'client now', bytesSent: 70_000, at: 1_700_000_003_500 }],
      'the latest progress of the one offer in progress; an older attempt\'s row and a finished client are left out');
  });

  t.test('deleteTask removes a task with everything it has and returns its content bytes; listEndedBefore finds what retention deletes', async (t) => {
    const store = await (await fresh(t))();
    const ended = 'kw3dg76w18whjmr1';
    const expired = 'kw3dg76w18whjmr2';
    await store.createTask(taskRecord(TASK_ID, FILES), FILES);
    await store.createTask(taskRecord(ended, FILES), FILES);
    await store.createTask(taskRecord(expired, FILES, { expiresAt: 1_700_000_050_000 }), FILES);
    await store.endTask(ended, 'cancelled', 1_700_000_040_000);
    await store.saveClient({ ...clientRecord('c1'), taskId: ended });
    await store.saveTransferProgress(ended, 'c1', 10, 1_700_000_001_000);
    t.same((await store.listEndedBefore(1_700_000_100_000)).map((task) => task.id), [ended, expired], 'oldest end first; the active task that expired counts');
    t.same((await store.listEndedBefore(1_700_000_045_000)).map((task) => task.id), [ended]);
    t.same(await store.listEndedBefore(1_700_000_040_000), [], 'the cutoff is exclusive');
    t.equal(await store.deleteTask(ended), FILES.reduce((sum, entry) => sum + entry.size, 0));
    t.equal(await store.getTask(ended), null);
    t.same([await store.getFiles(ended), await store.listClients(ended), await store.listEvents(ended), await store.listTransfers(ended)], [[], [], [], []]);
    await t.rejects(Promise.resolve().then(() => store.getFileSlice(ended, 0, 0)), { code: 'STORE_CORRUPT' }, 'its slices are gone');
    t.equal(await store.deleteTask(ended), null, 'deleting again: no such task');
    t.ok((await store.getFileContent(TASK_ID, 3)).equals(FILES[3]!.content), 'other tasks keep their content');
  });

  t.test('what was committed survives close and reopen, including writes queued at close', async (t) => {
    const open = await fresh(t);
    const first = await open();
    await first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 2 }), FILES);
    await first.saveClient(clientRecord('carol', { state: 'applied', hasSlot: true, exitCode: 0, message: 'applied', appliedDigest: taskDigest(FILES) }));
    const queued = first.saveClient(offer('dave'));
    await first.close();
    await queued;
    const second = await open();
    t.strictSame(await second.getTask(TASK_ID), taskRecord(TASK_ID, FILES, { maxClients: 2 }));
    const carol = (await second.getClient(TASK_ID, 'carol'))!;
    t.same([carol.state, carol.appliedDigest], ['applied', taskDigest(FILES)]);
    t.equal((await second.getClient(TASK_ID, 'dave'))!.state, 'offered', 'close() committed the queued write');
    t.ok((await second.getFileContent(TASK_ID, 3)).equals(FILES[3]!.content), 'file contents survive');
  });

  t.test('two handles (a server and a task command, or two nodes) see each other\'s commits at once', async (t) => {
    const open = await fresh(t);
    const server = await open();
    const admin = await open();
    await admin.createTask(taskRecord(TASK_ID, FILES), FILES);
    t.equal((await server.getTask(TASK_ID))!.state, 'active');
    t.equal(await admin.endTask(TASK_ID, 'cancelled', 1_700_000_020_000), true);
    t.equal((await server.getTask(TASK_ID))!.state, 'cancelled', 'the other handle sees the cancel at once');
    await server.saveClient(clientRecord('seen'));
    t.same((await admin.listEvents(TASK_ID)).map((event) => event.state), ['created', 'cancelled', 'connected'], 'and the events of both, in commit order');
  });
}

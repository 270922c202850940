// The task database (SPEC.md §4.1): schema version and migration (contents moved into slices), tasks with their
// files, the client upsert, group commit, durability across close and open, file modes, and damaged or newer
// databases refused and left untouched.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileDigest, taskDigest } from '../../lib/task/digests.js';
import { CONTENT_SLICE_BYTES, SCHEMA_VERSION, TaskStore, type ClientRecord, type NewTaskFile, type TaskRecord } from '../../lib/task/store.js';
import { seededRandom } from './support.js';

const TASK_ID = 'kw3dg76w18whjmr0';

function file(path: string, content: Buffer | string, mode = 0o644): NewTaskFile {
  const bytes = Buffer.from(content);
  return { path, mode, size: bytes.byteLength, digest: fileDigest(bytes), content: bytes };
}

function taskRecord(id: string, files: readonly NewTaskFile[], overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id, name: 'test task', mode: 'xxpsk3', createdAt: 1_700_000_000_000, expiresAt: 1_700_003_600_000, maxClients: null,
    state: 'active', endedAt: null, digest: taskDigest(files), totalBytes: files.reduce((sum, entry) => sum + entry.size, 0),
    fileCount: files.length, ...overrides,
  };
}

function clientRecord(identity: string, overrides: Partial<ClientRecord> = {}): ClientRecord {
  return {
    taskId: TASK_ID, identity, name: `client ${identity}`, remoteAddress: '127.0.0.1:40000', state: 'connected',
    firstSeenAt: 1_700_000_001_000, updatedAt: 1_700_000_001_000, exitCode: null, message: null, appliedDigest: null,
    hasSlot: false, ...overrides,
  };
}

function openStore(t: Test, path: string, options: { check?: boolean } = {}): TaskStore {
  const store = TaskStore.open(path, options);
  let isClosed = false;
  const close = store.close.bind(store);
  store.close = () => {
    if (isClosed) return;
    isClosed = true;
    close();
  };
  t.teardown(() => store.close());
  return store;
}

const FILES = [
  file('etc/app.conf', 'listen = 8080\n'),
  file('etc/conf.d/a.conf', 'a = 1\n'),
  file('bin/run.sh', '#!/bin/sh\nexec app\n', 0o755),
  file('data/blob.bin', Buffer.from(Array.from({ length: 70_000 }, (_, index) => index % 251))),
];

t.test('a new database is created at schema version 5 with its tables', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  t.equal(SCHEMA_VERSION, 5);
  const store = openStore(t, path, { check: true });
  store.close();
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('user_version', { simple: true }), 5);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((row) => row.name);
  t.same(tables.filter((name) => !name.startsWith('sqlite_')), ['clients', 'events', 'file_slices', 'task_files', 'tasks', 'transfers']);
  const columns = (db.prepare('PRAGMA table_info(task_files)').all() as { name: string }[]).map((row) => row.name);
  t.notOk(columns.includes('content'), 'task_files holds no content: it is in file_slices');
});

t.test('a database of schema version 0 (empty) is migrated forward; reopening does not migrate again', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  t.equal(db.pragma('user_version', { simple: true }), 0);
  db.close();
  openStore(t, path).close();
  const store = openStore(t, path);
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  store.close();
  const check = new Database(path, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  t.equal((check.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n, 1);
});

// The schema as version 1 of noise-cfg wrote it: file contents whole in task_files.content.
const VERSION_1_SCHEMA = `CREATE TABLE tasks (
     id TEXT PRIMARY KEY, name TEXT NOT NULL, mode TEXT NOT NULL CHECK (mode IN ('xxpsk3', 'nnpsk0')),
     created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, max_clients INTEGER,
     state TEXT NOT NULL CHECK (state IN ('active', 'cancelled', 'completed')), ended_at INTEGER,
     digest TEXT NOT NULL, total_bytes INTEGER NOT NULL, file_count INTEGER NOT NULL);
   CREATE TABLE task_files (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE, position INTEGER NOT NULL, path TEXT NOT NULL,
     mode INTEGER NOT NULL, size INTEGER NOT NULL, digest TEXT NOT NULL, content BLOB NOT NULL, PRIMARY KEY (task_id, position));
   CREATE TABLE clients (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE, identity TEXT NOT NULL, name TEXT NOT NULL,
     remote_address TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('connected', 'offered', 'applied', 'failed', 'revoked')),
     first_seen_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, exit_code INTEGER, message TEXT, applied_digest TEXT,
     has_slot INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (task_id, identity));
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, identity TEXT, name TEXT, state TEXT NOT NULL,
     at INTEGER NOT NULL, detail TEXT);
   CREATE INDEX events_by_task ON events (task_id, id);`;

/** A database as version 1 made it, holding `files` for TASK_ID; `extraSql` runs after (to plant a conflict). */
function makeVersion1Database(path: string, files: readonly NewTaskFile[], extraSql = ''): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(VERSION_1_SCHEMA);
  const task = taskRecord(TASK_ID, files, { maxClients: 5 });
  db.prepare(`INSERT INTO tasks (id, name, mode, created_at, expires_at, max_clients, state, ended_at, digest, total_bytes, file_count)
    VALUES (@id, @name, @mode, @createdAt, @expiresAt, @maxClients, @state, @endedAt, @digest, @totalBytes, @fileCount)`).run(task);
  const insert = db.prepare('INSERT INTO task_files (task_id, position, path, mode, size, digest, content) VALUES (?, ?, ?, ?, ?, ?, ?)');
  files.forEach((entry, position) => insert.run(TASK_ID, position, entry.path, entry.mode, entry.size, entry.digest, entry.content));
  db.prepare("INSERT INTO clients (task_id, identity, name, remote_address, state, first_seen_at, updated_at, has_slot) VALUES (?, 'alice', 'alice', '127.0.0.1:1', 'applied', 1, 2, 1)").run(TASK_ID);
  db.prepare("INSERT INTO events (task_id, state, at) VALUES (?, 'created', 1)").run(TASK_ID);
  if (extraSql !== '') db.exec(extraSql);
  db.pragma('user_version = 1');
  db.close();
}

const MIGRATED_FILES = [
  file('a/empty', ''),
  file('b/small.conf', 'x = 1\n'),
  // Two and a half slices: the migration cuts it at CONTENT_SLICE_BYTES.
  file('c/big.bin', Buffer.from(Array.from({ length: Math.floor(2.5 * CONTENT_SLICE_BYTES) }, (_, index) => (index * 7 + (index >> 12)) & 0xff))),
  file('d/exact.bin', Buffer.alloc(CONTENT_SLICE_BYTES, 0x5a)),
];

t.test('a version-1 database is migrated to the current version: every file content moves into slices, byte for byte, in one transaction', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  makeVersion1Database(path, MIGRATED_FILES);
  const store = openStore(t, path, { check: true });
  t.same(store.getTask(TASK_ID), taskRecord(TASK_ID, MIGRATED_FILES, { maxClients: 5 }), 'the task row is kept');
  t.same(store.getFiles(TASK_ID), MIGRATED_FILES.map(({ path: name, mode, size, digest }) => ({ path: name, mode, size, digest })), 'the file list is kept');
  MIGRATED_FILES.forEach((entry, position) => {
    t.ok(store.getFileContent(TASK_ID, position).equals(entry.content), `${entry.path}: the whole content is kept`);
    const slices: Buffer[] = [];
    for (let slice = 0; slice * CONTENT_SLICE_BYTES < entry.size; slice++) slices.push(store.getFileSlice(TASK_ID, position, slice));
    t.ok(Buffer.concat(slices).equals(entry.content), `${entry.path}: its ${slices.length} slice(s) hold it in order`);
    t.ok(slices.every((slice) => slice.byteLength <= CONTENT_SLICE_BYTES), `${entry.path}: no slice is over ${CONTENT_SLICE_BYTES} bytes`);
    t.throws(() => store.getFileSlice(TASK_ID, position, slices.length), { code: 'STORE_CORRUPT' }, `${entry.path}: there is no slice after the last`);
  });
  t.equal(store.getClient(TASK_ID, 'alice')?.state, 'applied', 'clients are kept');
  t.same(store.listEvents(TASK_ID).map((event) => event.state), ['created'], 'events are kept');
  store.close();
  const check = new Database(path, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  t.equal((check.prepare('SELECT count(*) AS n FROM file_slices').get() as { n: number }).n, 0 + 1 + 3 + 1, 'slices: none for the empty file, 1, 3 and 1');
  t.notOk((check.prepare('PRAGMA table_info(task_files)').all() as { name: string }[]).some((column) => column.name === 'content'), 'the content column is gone');
});

t.test('a version-1 migration that fails is rolled back whole: the database stays at version 1 with its contents', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  // A table in the way of the migration's first statement.
  makeVersion1Database(path, MIGRATED_FILES, 'CREATE TABLE file_slices (anything TEXT);');
  t.throws(() => TaskStore.open(path), { code: 'STORE_CORRUPT' });
  const check = new Database(path, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), 1, 'still version 1');
  const rows = check.prepare('SELECT content FROM task_files ORDER BY position').all() as { content: Buffer }[];
  t.equal(rows.length, MIGRATED_FILES.length);
  t.ok(rows.every((row, index) => row.content.equals(MIGRATED_FILES[index]!.content)), 'every content is still in task_files');
});

t.test('a fresh store\'s database, -wal and -shm files are 0600; an existing 0644 database of ours is narrowed to 0600', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'noise-cfg.db');
  const store = openStore(t, path);
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  for (const suffix of ['', '-wal', '-shm']) {
    t.ok(existsSync(`${path}${suffix}`), `noise-cfg.db${suffix} exists while the store is open`);
    t.equal(statSync(`${path}${suffix}`).mode & 0o777, 0o600, `noise-cfg.db${suffix} is 0600`);
  }
  store.close();

  const old = join(dir, 'old.db');
  const made = openStore(t, old);
  made.close();
  for (const suffix of ['', '-wal', '-shm']) if (existsSync(`${old}${suffix}`)) chmodSync(`${old}${suffix}`, 0o644);
  t.equal(statSync(old).mode & 0o777, 0o644, 'made readable by others, as older versions left it');
  const reopened = openStore(t, old);
  t.equal(reopened.listTasks().length, 0);
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(`${old}${suffix}`)) t.equal(statSync(`${old}${suffix}`).mode & 0o777, 0o600, `old.db${suffix} is 0600 after reopening`);
  }
});

t.test('createTask stores the task and its files; getFiles and getFileContent give them back in order', async (t) => {
  const store = openStore(t, join(t.testdir(), 'noise-cfg.db'));
  const commits = store.commitCount;
  const task = taskRecord(TASK_ID, FILES, { maxClients: 3 });
  store.createTask(task, FILES);
  t.equal(store.commitCount, commits + 1, 'one transaction');
  t.same(store.getTask(TASK_ID), task);
  t.equal(store.getTask('0000000000000000'), null);
  t.same(store.getFiles(TASK_ID), FILES.map(({ path, mode, size, digest }) => ({ path, mode, size, digest })));
  FILES.forEach((entry, position) => t.ok(store.getFileContent(TASK_ID, position).equals(entry.content), `content of ${entry.path}`));
  t.throws(() => store.getFileContent(TASK_ID, FILES.length), { code: 'STORE_CORRUPT' }, 'a missing position is an error, not undefined');
  t.same(store.listTasks().map((entry) => entry.id), [TASK_ID]);
  t.same(store.listEvents(TASK_ID).map((event) => event.state), ['created']);
  t.throws(() => store.createTask(task, FILES), { code: 'STORE_CORRUPT' }, 'a duplicate id is refused');
  t.same(store.getFiles(TASK_ID).length, FILES.length, 'the failed duplicate added no files');
});

t.test('saveClient inserts, then updates; revoked and hasSlot never go back', async (t) => {
  const store = openStore(t, join(t.testdir(), 'noise-cfg.db'));
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  await store.saveClient(clientRecord('alice'));
  t.same(store.getClient(TASK_ID, 'alice'), clientRecord('alice'));

  await store.saveClient(clientRecord('alice', { state: 'offered', hasSlot: true, updatedAt: 1_700_000_002_000, name: 'renamed' }));
  let alice = store.getClient(TASK_ID, 'alice')!;
  t.equal(alice.state, 'offered');
  t.equal(alice.hasSlot, true);
  t.equal(alice.name, 'renamed');
  t.equal(alice.firstSeenAt, 1_700_000_001_000, 'first seen is kept from the insert');

  await store.saveClient(clientRecord('alice', { state: 'failed', hasSlot: false, exitCode: 3, message: 'exit 3', updatedAt: 1_700_000_003_000 }));
  alice = store.getClient(TASK_ID, 'alice')!;
  t.equal(alice.state, 'failed');
  t.equal(alice.hasSlot, true, 'a slot once taken stays taken');
  t.equal(alice.exitCode, 3);
  t.equal(alice.updatedAt, 1_700_000_003_000);

  t.equal(store.revokeClient(TASK_ID, 'alice', 1_700_000_004_000), true);
  t.equal(store.getClient(TASK_ID, 'alice')!.state, 'revoked');
  await store.saveClient(clientRecord('alice', { state: 'applied', hasSlot: true, appliedDigest: taskDigest(FILES), updatedAt: 1_700_000_005_000 }));
  t.equal(store.getClient(TASK_ID, 'alice')!.state, 'revoked', 'revoked is final: a later save does not undo it');

  t.equal(store.revokeClient(TASK_ID, 'nobody', 1_700_000_004_000), false, 'revoking an unknown identity returns false');
  t.equal(store.getClient(TASK_ID, 'nobody'), null, 'and creates no record');
  t.equal(store.revokeClient('0000000000000000', 'alice', 1_700_000_004_000), false, 'revoking in an unknown task returns false');
  t.same(store.listClients(TASK_ID).map((client) => client.identity), ['alice']);
});

t.test('saveClient for an unknown task rejects with STORE_CORRUPT (foreign key) and the batch resolves nothing', async (t) => {
  const store = openStore(t, join(t.testdir(), 'noise-cfg.db'));
  await t.rejects(store.saveClient({ ...clientRecord('ghost'), taskId: '0000000000000000' }), { code: 'STORE_CORRUPT' });
  t.same(store.listClients('0000000000000000'), []);
});

t.test('group commit: writes queued before the event loop turns share one transaction, and all resolve', async (t) => {
  const store = openStore(t, join(t.testdir(), 'noise-cfg.db'));
  store.createTask(taskRecord(TASK_ID, FILES, { maxClients: 1 }), FILES);
  const before = store.commitCount;
  const count = 50;
  const saves: Promise<unknown>[] = Array.from({ length: count }, (_, index) => store.saveClient(clientRecord(`client-${index}`, { state: 'offered', hasSlot: true })));
  // The RESULT of the one client maxClients waits for: it completes the task in the same batch.
  saves.push(store.saveResult(clientRecord('client-0', { state: 'applied', hasSlot: true, appliedDigest: taskDigest(FILES), updatedAt: 1_700_000_009_000 }), null));
  t.equal(store.commitCount, before, 'nothing is committed synchronously');
  t.same(store.listClients(TASK_ID), [], 'nor visible before the commit');
  const settled = await Promise.allSettled(saves);
  t.equal(settled.filter((result) => result.status === 'fulfilled').length, count + 1, 'every write resolves');
  t.equal(store.commitCount, before + 1, `${count + 1} writes, one commit`);
  t.equal(store.listClients(TASK_ID).length, count);
  t.equal(store.getTask(TASK_ID)!.state, 'completed');

  const second = [store.saveClient(clientRecord('late-1')), store.saveClient(clientRecord('late-2'))];
  await Promise.all(second);
  t.equal(store.commitCount, before + 2, 'the next turn is the next batch');
});

t.test('claimSlot takes a slot only while fewer than the limit hold one, counted in the database across handles; an identity takes one slot however often it claims', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const first = openStore(t, path);
  // A second handle on the same file stands for another process: its own connection and its own group commit.
  const second = openStore(t, path);
  first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 3 }), FILES);
  const offer = (identity: string): ClientRecord => clientRecord(identity, { state: 'offered', hasSlot: true });
  // Claims queued on both handles before either commits, as two workers answering HELLOs at once.
  const claims = await Promise.all([
    first.claimSlot(offer('a'), 3), second.claimSlot(offer('b'), 3), first.claimSlot(offer('a'), 3),
    second.claimSlot(offer('c'), 3), first.claimSlot(offer('d'), 3), second.claimSlot(offer('e'), 3),
  ]);
  t.equal(claims.filter(Boolean).length, 4, 'a twice, and two more identities: three slots, four claims granted');
  t.ok(claims[0] && claims[2], "a's second claim finds its slot");
  const holders = first.listClients(TASK_ID).filter((client) => client.hasSlot).map((client) => client.identity).sort();
  t.equal(holders.length, 3, `exactly maxClients identities hold a slot: ${holders.join(', ')}`);
  t.ok(holders.includes('a'));
  const refused = ['b', 'c', 'd', 'e'].filter((identity) => !holders.includes(identity));
  t.equal(refused.length, 2, 'two identities were refused');
  t.same(refused.map((identity) => first.getClient(TASK_ID, identity)), [null, null], 'and nothing was recorded for them');
  t.notOk(await first.claimSlot(offer('f'), 3), 'the task stays full');
  first.revokeClient(TASK_ID, 'a', 1_700_000_002_000);
  t.notOk(await second.claimSlot(offer('f'), 3), 'a revoked client keeps its slot (SPEC.md §4.4): still full');
  t.ok(await second.claimSlot(offer('f'), 4), 'a higher limit (a server cap) makes room');
});

t.test('saveResult completes a task with maxClients in the same batch as the result that brings the applied count to it, counting every handle and no revoked client', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const first = openStore(t, path);
  const second = openStore(t, path);
  first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 2 }), FILES);
  const applied = (identity: string, at: number): ClientRecord => clientRecord(identity, { state: 'applied', hasSlot: true, appliedDigest: taskDigest(FILES), updatedAt: at });
  t.notOk(await first.saveResult(applied('x', 1_700_000_002_000), null), 'one of two');
  t.notOk(await second.saveResult(clientRecord('y', { state: 'failed', hasSlot: true, updatedAt: 1_700_000_003_000 }), 'exit 1'), 'a failure counts for nothing');
  t.notOk(await second.saveResult(clientRecord('z', { state: 'applied', hasSlot: true, appliedDigest: 'f'.repeat(64), updatedAt: 1_700_000_003_000 }), null), 'nor does another digest');
  first.revokeClient(TASK_ID, 'x', 1_700_000_004_000);
  t.notOk(await second.saveResult(applied('w', 1_700_000_005_000), null), 'x was revoked: w makes one of two');
  t.equal(first.getTask(TASK_ID)!.state, 'active');
  t.ok(await second.saveResult(applied('v', 1_700_000_006_000), null), 'v makes two, through the other handle');
  t.same([first.getTask(TASK_ID)!.state, first.getTask(TASK_ID)!.endedAt], ['completed', 1_700_000_006_000]);
  t.notOk(await first.saveResult(applied('u', 1_700_000_007_000), null), 'a further result completes nothing more');
  t.equal(first.listEvents(TASK_ID).filter((event) => event.state === 'completed').length, 1, 'one completed event');
  const plainId = 'kw3dg76w18whjmr1';
  first.createTask(taskRecord(plainId, FILES), FILES);
  t.notOk(await first.saveResult({ ...applied('x', 1_700_000_008_000), taskId: plainId }, null), 'a task without maxClients never completes by count');
});

t.test('interruptLostSessions with servedBy marks only the offers that one server process recorded', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const setup = openStore(t, path);
  setup.createTask(taskRecord(TASK_ID, FILES), FILES);
  const dead = TaskStore.open(path, { servedBy: '00000000000000aa' });
  const alive = TaskStore.open(path, { servedBy: '00000000000000bb' });
  t.teardown(() => {
    dead.close();
    alive.close();
  });
  await Promise.all([
    dead.saveClient(clientRecord('d1', { state: 'offered', hasSlot: true })), dead.saveClient(clientRecord('d2', { state: 'applied', hasSlot: true })),
    alive.saveClient(clientRecord('a1', { state: 'offered', hasSlot: true })),
  ]);
  t.equal(setup.interruptLostSessions(1_700_000_002_000, 'its worker died', '00000000000000aa'), 1);
  t.same(setup.listClients(TASK_ID).map((client) => `${client.identity}:${client.state}`).sort(), ['a1:offered', 'd1:interrupted', 'd2:applied']);
  t.equal(setup.listEvents(TASK_ID).at(-1)?.detail, 'its worker died');
  t.equal(setup.interruptLostSessions(1_700_000_003_000, 'restart'), 1, 'without servedBy: every offer left (a1)');
});

t.test('endTask and revokeClient return whether they changed something', async (t) => {
  const store = openStore(t, join(t.testdir(), 'noise-cfg.db'));
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  await store.saveClient(clientRecord('bob'));
  t.equal(store.endTask(TASK_ID, 'cancelled', 1_700_000_010_000), true);
  t.equal(store.getTask(TASK_ID)!.state, 'cancelled');
  t.equal(store.getTask(TASK_ID)!.endedAt, 1_700_000_010_000);
  t.equal(store.endTask(TASK_ID, 'completed', 1_700_000_011_000), false, 'an ended task does not end again');
  t.equal(store.getTask(TASK_ID)!.state, 'cancelled', 'and keeps its state');
  t.equal(store.endTask('0000000000000000', 'cancelled', 1), false, 'an unknown task');
  t.equal(store.revokeClient(TASK_ID, 'bob', 1_700_000_012_000), true);
  t.equal(store.revokeClient(TASK_ID, 'bob', 1_700_000_013_000), true, 'revoking twice still names an existing client');
  t.same(store.listEvents(TASK_ID).map((event) => event.state), ['created', 'connected', 'cancelled', 'revoked', 'revoked']);
});

t.test('what was committed survives close and reopen, including writes queued at close', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const first = openStore(t, path);
  first.createTask(taskRecord(TASK_ID, FILES, { maxClients: 2 }), FILES);
  await first.saveClient(clientRecord('carol', { state: 'applied', hasSlot: true, exitCode: 0, message: 'applied', appliedDigest: taskDigest(FILES) }));
  const queued = first.saveClient(clientRecord('dave', { state: 'offered', hasSlot: true }));
  first.close();
  await queued;

  const second = openStore(t, path, { check: true });
  t.same(second.getTask(TASK_ID), taskRecord(TASK_ID, FILES, { maxClients: 2 }));
  t.equal(second.getClient(TASK_ID, 'carol')!.state, 'applied');
  t.equal(second.getClient(TASK_ID, 'carol')!.appliedDigest, taskDigest(FILES));
  t.equal(second.getClient(TASK_ID, 'dave')!.state, 'offered', 'close() committed the queued write');
  t.ok(second.getFileContent(TASK_ID, 3).equals(FILES[3]!.content), 'file contents survive');
});

t.test('two handles on one file (serve and task --data) see each other\'s commits', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const server = openStore(t, path);
  const admin = openStore(t, path);
  admin.createTask(taskRecord(TASK_ID, FILES), FILES);
  t.equal(server.getTask(TASK_ID)!.state, 'active');
  t.equal(admin.endTask(TASK_ID, 'cancelled', 1_700_000_020_000), true);
  t.equal(server.getTask(TASK_ID)!.state, 'cancelled', 'the other handle sees the cancel at once');
});

t.test('a truncated database is STORE_CORRUPT and is not modified', async (t) => {
  const dir = t.testdir();
  const source = join(dir, 'source.db');
  const store = openStore(t, source);
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  store.close();
  const full = readFileSync(source);
  t.ok(full.byteLength >= 8 * 4096, `the source database has ${full.byteLength} bytes`);
  for (const length of [50, 100, 4096, 8192, Math.floor(full.byteLength / 2), full.byteLength - 4096]) {
    const path = join(dir, `truncated-${length}.db`);
    const bytes = full.subarray(0, length);
    writeFileSync(path, bytes);
    t.throws(() => TaskStore.open(path, { check: true }), { code: 'STORE_CORRUPT' }, `truncated to ${length} bytes`);
    t.ok(readFileSync(path).equals(bytes), `truncated to ${length} bytes: the file is byte for byte as it was`);
    t.notOk(existsSync(`${path}-wal`) && readFileSync(`${path}-wal`).byteLength > 0, 'no WAL content was written beside it');
  }
});

t.test('a garbage file is STORE_CORRUPT and is not modified', async (t) => {
  const dir = t.testdir();
  const random = seededRandom(7);
  const samples: [string, Buffer][] = [
    ['text', Buffer.from('this is not a database\n'.repeat(500))],
    ['random bytes', Buffer.from(Array.from({ length: 12_288 }, () => Math.floor(random() * 256)))],
    ['a SQLite header then random bytes', Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.from(Array.from({ length: 8_176 }, () => Math.floor(random() * 256)))])],
  ];
  for (const [what, bytes] of samples) {
    const path = join(dir, `${what.replace(/\W+/g, '-')}.db`);
    writeFileSync(path, bytes);
    t.throws(() => TaskStore.open(path, { check: true }), { code: 'STORE_CORRUPT' }, what);
    t.ok(readFileSync(path).equals(bytes), `${what}: unchanged`);
  }
});

t.test('a database of a newer schema (user_version 99) is STORE_CORRUPT and left as it was', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const store = openStore(t, path);
  store.createTask(taskRecord(TASK_ID, FILES), FILES);
  store.close();
  const db = new Database(path);
  db.pragma('user_version = 99');
  db.close();
  const before = readFileSync(path);
  t.throws(() => TaskStore.open(path), { code: 'STORE_CORRUPT', message: /schema version 99/ });
  t.throws(() => TaskStore.open(path, { check: true }), { code: 'STORE_CORRUPT' });
  t.ok(readFileSync(path).equals(before), 'unchanged');
  const check = new Database(path, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), 99, 'not migrated down or reset');
  t.equal((check.prepare('SELECT count(*) AS n FROM task_files').get() as { n: number }).n, FILES.length);
});

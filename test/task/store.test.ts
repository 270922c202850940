// What only the SQLite store has (SPEC.md §4.1): schema version and migration (contents moved into slices), file
// modes, and damaged or newer databases refused and left untouched. The rules both stores keep (the client upsert,
// group commit, slot claims, completion, durability) are in test/store/store-conformance.ts.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTENT_SLICE_BYTES, SCHEMA_VERSION, TaskStore, type NewTaskFile } from '../../lib/task/store.js';
import { FILES, TASK_ID, file, taskRecord } from '../store/store-conformance.js';
import { seededRandom } from './support.js';

function openStore(t: Test, path: string, options: { check?: boolean } = {}): TaskStore {
  const store = TaskStore.open(path, options);
  t.teardown(() => store.close());
  return store;
}

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

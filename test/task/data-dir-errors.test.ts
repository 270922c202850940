// File-system errors in the data directory (issue 12 item 7, SPEC.md §4.1, §6): each is a NoiseCfgError with its
// own code and exit 5, naming the path and the fix, never "unexpected error" and exit 1; a read-only or busy
// database is STORE_UNAVAILABLE, not STORE_CORRUPT. Tests run as root, so permission problems are made by running
// the CLI as nobody (setpriv), and the rest by putting a directory or a file where the other belongs.
import t from 'tap';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { storeFailure, TaskStore } from '../../lib/task/store.js';
import { runCli } from './run-cli.js';
import { AS_NOBODY, NOBODY, nobodySkipReason } from '../support/as-nobody.js';

const needsNobody = nobodySkipReason() ?? false;

// A directory nobody can reach: t.testdir() lives under the worktree, whose parents nobody may not traverse.
function scratch(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'noise-cfg-errors-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function makeDataDir(path: string, owner?: number): Promise<void> {
  await (await TaskAdmin.open(path, { create: true })).close();
  if (owner !== undefined) {
    for (const name of ['', ...readdirSync(path)]) chownSync(join(path, name), owner, owner);
  }
}

t.test('a database that is a directory is STORE_UNAVAILABLE, exit 5, naming it', async (t) => {
  const data = join(t.testdir(), 'data');
  await makeDataDir(data);
  for (const suffix of ['', '-wal', '-shm']) rmSync(join(data, `noise-cfg.db${suffix}`), { force: true });
  mkdirSync(join(data, 'noise-cfg.db'));
  await t.rejects(() => TaskAdmin.open(data), { code: 'STORE_UNAVAILABLE', message: new RegExp(`${join(data, 'noise-cfg.db')} is a directory`) });
  const list = await runCli(t.testdir(), ['task', 'list', '--data', data]);
  t.equal(list.code, 5, 'exit 5');
  t.match(list.stderr, /STORE_UNAVAILABLE/);
  t.notMatch(list.stderr, /unexpected error/);
});

t.test('a data directory under a regular file is DATA_DIR_UNAVAILABLE for serve, exit 5, with the fix', async (t) => {
  const dir = t.testdir({ plain: 'not a directory\n' });
  const serve = await runCli(dir, ['serve', '--data', join(dir, 'plain', 'data'), '--listen', '127.0.0.1:0', '--api', 'off']);
  t.equal(serve.code, 5);
  t.match(serve.stderr, new RegExp(`${join(dir, 'plain', 'data')} \\(ENOTDIR\\): a part of the path is not a directory; choose another --data`));
  t.match(serve.stderr, /DATA_DIR_UNAVAILABLE/);
  const asFile = await runCli(dir, ['task', 'list', '--data', join(dir, 'plain')]);
  t.equal(asFile.code, 5, 'a --data that is a file');
  t.match(asFile.stderr, new RegExp(`${join(dir, 'plain')} is not a directory`));
});

t.test('serve as a user who may not create the data directory: EACCES is DATA_DIR_UNAVAILABLE, exit 5', { skip: needsNobody }, async (t) => {
  const dir = scratch(t);
  const parent = join(dir, 'root-owned');
  mkdirSync(parent, { mode: 0o755 });
  const serve = await runCli(dir, ['serve', '--data', join(parent, 'data'), '--listen', '127.0.0.1:0', '--api', 'off'], {}, { command: AS_NOBODY });
  t.equal(serve.code, 5, serve.stderr);
  t.match(serve.stderr, new RegExp(`${join(parent, 'data')} \\(EACCES\\): permission denied; run noise-cfg as the user that owns it, or choose another --data`));
  t.notMatch(serve.stderr, /unexpected error/);
});

t.test('a key file the user may not read is DATA_DIR_UNAVAILABLE naming the file, exit 5', { skip: needsNobody }, async (t) => {
  const data = join(scratch(t), 'data');
  await makeDataDir(data, NOBODY);
  chownSync(join(data, 'master.key'), 0, 0);
  const list = await runCli(tmpdir(), ['task', 'list', '--data', data], {}, { command: AS_NOBODY });
  t.equal(list.code, 5, list.stderr);
  t.match(list.stderr, new RegExp(`cannot read or create ${join(data, 'master.key')} \\(EACCES\\)`));
});

t.test('a read-only database is STORE_UNAVAILABLE, not STORE_CORRUPT, exit 5, and is left as it was', { skip: needsNobody }, async (t) => {
  const data = join(scratch(t), 'data');
  await makeDataDir(data, NOBODY);
  chmodSync(join(data, 'noise-cfg.db'), 0o400);
  writeFileSync(join(data, 'app.conf'), 'a = 1\n');
  chownSync(join(data, 'app.conf'), NOBODY, NOBODY);
  const create = await runCli(tmpdir(), ['task', 'create', '--data', data, '--file', join(data, 'app.conf')], {}, { command: AS_NOBODY });
  t.equal(create.code, 5, create.stderr);
  t.match(create.stderr, /STORE_UNAVAILABLE/);
  t.match(create.stderr, new RegExp(`the database ${join(data, 'noise-cfg.db')} cannot be used \\(SQLITE_(READONLY|CANTOPEN)[A-Z_]*\\)`));
  t.notMatch(create.stderr, /STORE_CORRUPT|unexpected error/);
  t.notMatch(create.stdout, /ncfg1/, 'no token');
});

t.test('SQLite results are sorted: damaged is STORE_CORRUPT, read-only, busy, locked, full and I/O are STORE_UNAVAILABLE', async (t) => {
  const sqlite = (code: string): Error => Object.assign(new Error(`sqlite says ${code}`), { code });
  const cases: [string, string, RegExp][] = [
    ['SQLITE_CORRUPT', 'STORE_CORRUPT', /damaged/],
    ['SQLITE_NOTADB', 'STORE_CORRUPT', /damaged/],
    ['SQLITE_READONLY', 'STORE_UNAVAILABLE', /read-only .*run noise-cfg as the owner/],
    ['SQLITE_READONLY_DBMOVED', 'STORE_UNAVAILABLE', /read-only/],
    ['SQLITE_BUSY', 'STORE_UNAVAILABLE', /another process holds it locked; retry/],
    ['SQLITE_BUSY_SNAPSHOT', 'STORE_UNAVAILABLE', /locked/],
    ['SQLITE_LOCKED', 'STORE_UNAVAILABLE', /locked/],
    ['SQLITE_CANTOPEN', 'STORE_UNAVAILABLE', /cannot be opened/],
    ['SQLITE_FULL', 'STORE_UNAVAILABLE', /disk is full/],
    ['SQLITE_IOERR_WRITE', 'STORE_UNAVAILABLE', /I\/O error/],
    ['EACCES', 'STORE_UNAVAILABLE', /EACCES/],
  ];
  for (const [sqliteCode, code, message] of cases) {
    const failure = storeFailure(sqlite(sqliteCode), '/srv/data/noise-cfg.db');
    t.equal(failure.code, code, sqliteCode);
    t.match(failure.message, message, `${sqliteCode}: the fix`);
    t.match(failure.message, '/srv/data/noise-cfg.db', `${sqliteCode}: the path`);
  }
});

t.test('a database locked by another connection past busy_timeout is STORE_UNAVAILABLE', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  TaskStore.open(path).close();
  const { default: Database } = await import('better-sqlite3');
  const holder = new Database(path);
  t.teardown(() => holder.close());
  // An exclusive lock in rollback-journal terms: the other handle cannot even read the schema.
  holder.pragma('journal_mode = DELETE');
  holder.pragma('locking_mode = EXCLUSIVE');
  holder.exec('BEGIN EXCLUSIVE');
  t.throws(() => TaskStore.open(path, { busyTimeoutMs: 0 }), { code: 'STORE_UNAVAILABLE', message: /SQLITE_BUSY.*another process holds it locked/ });
});

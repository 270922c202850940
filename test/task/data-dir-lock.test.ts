// Two servers on one data directory (issue 12 item 4, SPEC.md §4.1): `serve` holds serve.lock while it serves; a
// second `serve --data D` fails at once with exit 5 naming the holder's pid and address, before it touches
// server.json or the database; the lock goes with SIGTERM, and a lock left by kill -9 is stale. `task` commands
// keep working while a server holds the lock.
import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { DATA_DIR_LOCK_FILE, DataDirLock } from '../../lib/task/data-dir-lock.js';
import { runCli, startServe, startServer } from './support.js';

const stamp = (path: string): string => {
  const stats = statSync(path);
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
};

t.test('a second serve on a locked data directory exits 5 with the holder pid and address, touching nothing', async (t) => {
  const data = join(t.testdir(), 'data');
  const first = await startServe(t, data);
  const lock = JSON.parse(readFileSync(join(data, DATA_DIR_LOCK_FILE), 'utf8')) as { pid: number; address: string };
  t.equal(lock.pid, first.child.pid, 'the lock names the serving process');
  t.equal(lock.address, `127.0.0.1:${first.port}`, 'and the address it bound');
  const serverJson = readFileSync(join(data, 'server.json'), 'utf8');
  const before = { serverJson: stamp(join(data, 'server.json')), database: stamp(join(data, 'noise-cfg.db')) };

  const second = await runCli(t, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--api', 'off']);
  t.equal(second.code, 5, 'exit 5');
  t.match(second.stderr, `in use by another noise-cfg serve (pid ${first.child.pid}, listening on 127.0.0.1:${first.port}`);
  t.match(second.stderr, /DATA_DIR_LOCKED/);
  t.notMatch(second.stderr, /noise-cfg serve: listening/, 'it never listened');
  t.equal(readFileSync(join(data, 'server.json'), 'utf8'), serverJson, 'server.json still points at the first server');
  t.same({ serverJson: stamp(join(data, 'server.json')), database: stamp(join(data, 'noise-cfg.db')) }, before, 'server.json and the database untouched');

  // The task commands use the database directly, lock or not.
  const created = await runCli(t, ['task', 'create', '--data', data, '--file', join(data, 'server.json'), '--json']);
  t.equal(created.code, 0, created.stderr);
  const listed = await runCli(t, ['task', 'list', '--data', data, '--json']);
  t.equal(listed.code, 0, listed.stderr);
  t.equal((JSON.parse(listed.stdout) as unknown[]).length, 1, 'task list works while the server holds the lock');

  first.child.kill('SIGTERM');
  t.equal((await first.exited).code, 0, 'the first server stops cleanly');
  t.notOk(existsSync(join(data, DATA_DIR_LOCK_FILE)), 'SIGTERM released the lock');
  const third = await startServe(t, data);
  t.ok(third.port > 0, 'a new server starts once the first stopped');
});

t.test('after kill -9 the lock is stale and the next serve takes it', async (t) => {
  const data = join(t.testdir(), 'data');
  const first = await startServe(t, data);
  first.child.kill('SIGKILL');
  await first.exited;
  t.ok(existsSync(join(data, DATA_DIR_LOCK_FILE)), 'a killed server leaves its lock file');
  const second = await startServe(t, data);
  const lock = JSON.parse(readFileSync(join(data, DATA_DIR_LOCK_FILE), 'utf8')) as { pid: number; address: string };
  t.equal(lock.pid, second.child.pid, 'the new server holds the lock');
  t.equal(lock.address, `127.0.0.1:${second.port}`);
});

t.test('two TaskServers in one process on one data directory: the second fails DATA_DIR_LOCKED, and its failure keeps the first lock', async (t) => {
  const data = join(t.testdir(), 'data');
  const running = await startServer(t, data);
  const { TaskServer } = await import('../../lib/task/server.js');
  const other = new TaskServer({ dataDir: data, listen: { host: '127.0.0.1', port: 0 } });
  await t.rejects(other.start(), { code: 'DATA_DIR_LOCKED', message: new RegExp(`pid ${process.pid}, listening on 127\\.0\\.0\\.1:${running.port}`) });
  t.ok(existsSync(join(data, DATA_DIR_LOCK_FILE)), 'the first server still holds its lock');
  await running.server.stop(0);
  t.notOk(existsSync(join(data, DATA_DIR_LOCK_FILE)), 'stop() released it');
  await other.start();
  await other.stop(0);
});

t.test('a lock whose pid was reused, or that is our pid from an earlier process, is stale; a live holder is not', async (t) => {
  const data = join(t.testdir(), 'data');
  (await TaskAdmin.open(data, { create: true })).close();
  const path = join(data, DATA_DIR_LOCK_FILE);
  const ticksOf = (pid: number): number => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  };
  const record = (fields: Record<string, unknown>): void => writeFileSync(path, `${JSON.stringify({ host: hostname(), address: '127.0.0.1:1', startedAt: '2026-01-01T00:00:00.000Z', nonce: 'ab'.repeat(16), ...fields })}\n`);

  // The parent of this test process is alive and started when /proc says: it holds.
  record({ pid: process.ppid, startTicks: ticksOf(process.ppid) });
  t.throws(() => DataDirLock.acquire(data, '127.0.0.1:0'), { code: 'DATA_DIR_LOCKED', message: new RegExp(`pid ${process.ppid}, listening on 127\\.0\\.0\\.1:1`) });
  // The same pid with another start time is another process: the pid was reused after the holder died.
  record({ pid: process.ppid, startTicks: ticksOf(process.ppid) + 1 });
  DataDirLock.acquire(data, '127.0.0.1:0').release();
  // Our own pid, but not a lock of ours: a container restarted on a kept volume.
  record({ pid: process.pid, startTicks: null });
  DataDirLock.acquire(data, '127.0.0.1:0').release();
  // A damaged lock file is stale too.
  writeFileSync(path, 'not json');
  const lock = DataDirLock.acquire(data, '127.0.0.1:0');
  t.equal(JSON.parse(readFileSync(path, 'utf8')).nonce, lock.holder.nonce, 'the lock is ours now');
  lock.release();
  t.notOk(existsSync(path));
});

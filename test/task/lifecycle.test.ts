// Task lifecycle (issue 12 item 11, SPEC.md §4.1, §8): `task delete ID` cancels an active task and removes it with
// its files, clients and events (also through DELETE /v1/tasks/{id}?purge=true), a second delete is exit 3;
// `task prune --ended-before D` removes every task ended longer ago (with --dry-run, only lists them); serve's
// retention sweep does the same after --retain (default 7d, 0/off keeps forever); and the database gives the
// space back.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createApiApp, startApiServer } from '../../lib/api/server.js';
import { TaskAdmin } from '../../lib/task/admin.js';
import { DEFAULT_RETAIN_MS } from '../../lib/task/server.js';
import { TaskStore } from '../../lib/task/store.js';
import { runCli } from './run-cli.js';
import { startServer } from './support.js';

const DAY_MS = 86_400_000;
const ADVERTISE = { host: '127.0.0.1', port: 7447 };
const file = (text: string): { path: string; content: Buffer }[] => [{ path: 'app.conf', content: Buffer.from(text) }];

// An admin whose clock reads `offsetMs` from now: tasks made through it ended that long ago.
async function adminAt(data: string, offsetMs: number): Promise<TaskAdmin> {
  return await TaskAdmin.open(data, { create: true, now: () => Date.now() + offsetMs });
}

t.test('task delete cancels an active task, removes it with its records, and a second delete exits 3', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const admin = await adminAt(data, 0);
  const created = await admin.createTask({ files: file('a = 1\n'), advertise: ADVERTISE });
  const kept = await admin.createTask({ files: file('b = 2\n'), advertise: ADVERTISE });
  admin.close();

  const first = await runCli(root, ['task', 'delete', created.id, '--data', data, '--json']);
  t.equal(first.code, 0, first.stderr);
  const deleted = JSON.parse(first.stdout) as { tasks: { id: string; state: string }[]; freedBytes: number };
  t.same(deleted.tasks.map((task) => [task.id, task.state]), [[created.id, 'cancelled']], 'the active task was cancelled, then deleted');
  t.equal(deleted.freedBytes, 6);

  const again = await runCli(root, ['task', 'delete', created.id, '--data', data]);
  t.equal(again.code, 3, 'deleting twice: exit 3 (not found)');
  t.match(again.stderr, /TASK_NOT_FOUND/);
  t.equal((await runCli(root, ['task', 'show', created.id, '--data', data])).code, 3, 'task show: gone');

  const check = await TaskAdmin.open(data);
  t.teardown(() => check.close());
  t.same((await check.listTasks()).map((task) => task.id), [kept.id], 'the other task is untouched');
  const store = TaskStore.open(join(data, 'noise-cfg.db'));
  t.teardown(() => store.close());
  t.same(store.listEvents(created.id), [], 'its events went too');
  t.same(store.getFiles(created.id), [], 'and its files');
});

t.test('DELETE /v1/tasks/{id}?purge=true deletes, twice is 404 TASK_NOT_FOUND, and DELETE without purge still cancels', async (t) => {
  const data = join(t.testdir(), 'data');
  const running = await startServer(t, data);
  const admin = running.server.admin();
  const token = running.server.dataDir.adminToken;
  const app = createApiApp({ admin, adminToken: token });
  t.teardown(() => app.close());
  const headers = { authorization: `Bearer ${token}` };
  const doomed = await admin.createTask({ files: file('x\n') });
  const cancelled = await admin.createTask({ files: file('y\n') });

  const purge = await app.inject({ method: 'DELETE', url: `/v1/tasks/${doomed.id}?purge=true`, headers });
  t.equal(purge.statusCode, 200, purge.body);
  t.equal((purge.json() as { tasks: { id: string }[] }).tasks[0]?.id, doomed.id);
  const twice = await app.inject({ method: 'DELETE', url: `/v1/tasks/${doomed.id}?purge=true`, headers });
  t.equal(twice.statusCode, 404);
  t.equal((twice.json() as { error: { code: string } }).error.code, 'TASK_NOT_FOUND');

  const cancel = await app.inject({ method: 'DELETE', url: `/v1/tasks/${cancelled.id}`, headers });
  t.equal(cancel.statusCode, 200);
  t.equal((cancel.json() as { state: string }).state, 'cancelled', 'DELETE without purge is a cancel, as CONTRACT.md says');
  t.ok(await admin.showTask(cancelled.id), 'and keeps the task');
  const bad = await app.inject({ method: 'DELETE', url: `/v1/tasks/${cancelled.id}?purge=yes`, headers });
  t.equal(bad.statusCode, 400, 'purge takes true or false');
});

t.test('task delete --api deletes through the REST API, and a second delete exits 3', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const api = await startApiServer({ admin: running.server.admin(), adminToken: running.server.dataDir.adminToken }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => api.app.close());
  const created = await running.server.admin().createTask({ files: file('z\n') });
  const url = `http://127.0.0.1:${api.port}`;
  const first = await runCli(root, ['task', 'delete', created.id, '--api', url, '--data', data]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, `deleted task ${created.id} (cancelled): 2 bytes of content freed`);
  const second = await runCli(root, ['task', 'delete', created.id, '--api', url, '--data', data]);
  t.equal(second.code, 3, 'the second delete through the API: exit 3');
});

t.test('task prune --ended-before removes only tasks that ended longer ago; --dry-run removes nothing', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const old = await adminAt(data, -3 * DAY_MS);
  const expired = await old.createTask({ name: 'expired', files: file('e\n'), ttlSeconds: 60, advertise: ADVERTISE });
  const cancelledOld = await old.createTask({ name: 'cancelled', files: file('c\n'), advertise: ADVERTISE });
  await old.cancelTask(cancelledOld.id);
  const stillActive = await old.createTask({ name: 'long', files: file('l\n'), ttlSeconds: 10 * 86_400, advertise: ADVERTISE });
  old.close();
  const recent = await adminAt(data, 0);
  const cancelledNow = await recent.createTask({ name: 'recent', files: file('r\n'), advertise: ADVERTISE });
  await recent.cancelTask(cancelledNow.id);
  recent.close();

  const dry = await runCli(root, ['task', 'prune', '--ended-before', '2d', '--dry-run', '--data', data, '--json']);
  t.equal(dry.code, 0, dry.stderr);
  const listed = JSON.parse(dry.stdout) as { dryRun: boolean; tasks: { id: string }[]; freedBytes: number };
  t.equal(listed.dryRun, true);
  t.same(listed.tasks.map((task) => task.id).sort(), [expired.id, cancelledOld.id].sort(), 'the expired and the old cancelled task');
  t.equal(listed.freedBytes, 4);
  const after = await TaskAdmin.open(data);
  t.equal((await after.listTasks()).length, 4, '--dry-run deleted nothing');
  after.close();

  const real = await runCli(root, ['task', 'prune', '--ended-before', '2d', '--data', data]);
  t.equal(real.code, 0, real.stderr);
  t.match(real.stdout, /^deleted 2 task\(s\) that ended more than 2d ago: 4 bytes of content freed/);
  const left = await TaskAdmin.open(data);
  t.teardown(() => left.close());
  t.same((await left.listTasks()).map((task) => task.id).sort(), [stillActive.id, cancelledNow.id].sort(), 'the active and the recently ended tasks stay');

  const bad = await runCli(root, ['task', 'prune', '--ended-before', 'soon', '--data', data]);
  t.equal(bad.code, 2, 'a malformed duration is a usage error');
  t.match(bad.stderr, /--ended-before must look like/);
});

t.test('the retention sweep removes tasks ended longer than retainMs ago; null keeps them', async (t) => {
  const data = join(t.testdir(), 'data');
  const old = await adminAt(data, -8 * DAY_MS);
  const ended = await old.createTask({ files: file('old\n'), ttlSeconds: 60, advertise: ADVERTISE });
  old.close();
  const young = await adminAt(data, -1 * DAY_MS);
  const endedRecently = await young.createTask({ files: file('young\n'), ttlSeconds: 60, advertise: ADVERTISE });
  young.close();
  t.equal(DEFAULT_RETAIN_MS, 7 * DAY_MS, 'the default retention is 7 days');

  const keeping = await startServer(t, data, { retainMs: null });
  t.equal((await keeping.server.admin().listTasks()).length, 2, 'retainMs null keeps every task');
  t.equal(await keeping.server.sweep(), 0);
  await keeping.server.stop(0);

  const running = await startServer(t, data);
  const line = await running.waitForLog((record) => record.event === 'retention');
  t.equal(line.count, 1);
  t.match(line.message, /removed 1 task\(s\) that ended more than 604800 s ago/);
  t.same((await running.server.admin().listTasks()).map((task) => task.id), [endedRecently.id], 'the sweep at start removed the task ended 8 days ago');
  await t.rejects(running.server.admin().showTask(ended.id), { code: 'TASK_NOT_FOUND' });
});

t.test('serve --retain takes a duration, 0 or off, and refuses anything else (exit 2)', async (t) => {
  const root = t.testdir();
  const bad = await runCli(root, ['serve', '--retain', '7 days', '--data', join(root, 'data'), '--listen', '127.0.0.1:0', '--api', 'off']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--retain must look like 12h, 7d or 30d, or be 0 or off/);
});

t.test('three 50 MB tasks created then deleted: the database gives the space back', { timeout: 120_000 }, async (t) => {
  const data = join(t.testdir(), 'data');
  const admin = await TaskAdmin.open(data, { create: true });
  t.teardown(() => admin.close());
  const databaseBytes = (): number => ['', '-wal'].reduce((sum, suffix) => {
    try {
      return sum + statSync(join(data, `noise-cfg.db${suffix}`)).size;
    } catch {
      return sum;
    }
  }, 0);
  const empty = databaseBytes();
  const ids: string[] = [];
  for (let index = 0; index < 3; index++) ids.push((await admin.createTask({ files: [{ path: 'big.bin', content: randomBytes(50 * 1024 * 1024) }], advertise: ADVERTISE })).id);
  const full = databaseBytes();
  let freed = 0;
  for (const id of ids) freed += (await admin.deleteTask(id)).freedBytes;
  const after = databaseBytes();
  t.comment(`database and WAL: empty ${empty} bytes, with three 50 MiB tasks ${full} bytes, after deleting them ${after} bytes`);
  t.equal(freed, 3 * 50 * 1024 * 1024, 'the content bytes of the three tasks');
  t.ok(full > 150 * 1024 * 1024, 'the tasks were stored');
  t.ok(after < 2 * 1024 * 1024, `after deleting, the database is back under 2 MiB (${after} bytes)`);
});

t.test('an older database without incremental auto-vacuum is converted by a VACUUM when it is small', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const { default: Database } = await import('better-sqlite3');
  // A database as earlier builds made it: auto_vacuum NONE, fixed once its first table exists.
  const early = new Database(path);
  early.exec('CREATE TABLE earlier (x)');
  early.close();
  const store = TaskStore.open(path);
  t.teardown(() => store.close());
  const check = new Database(path, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('auto_vacuum', { simple: true }), 0, 'made without auto-vacuum');
  const task = { id: '0000000000000000', name: '', mode: 'xxpsk3' as const, createdAt: 1, expiresAt: 2, maxClients: null, state: 'active' as const, endedAt: null, digest: 'd', totalBytes: 4 * 1024 * 1024, fileCount: 1 };
  store.createTask(task, [{ path: 'a', mode: 0o644, size: 4 * 1024 * 1024, digest: 'x', content: randomBytes(4 * 1024 * 1024) }]);
  store.reclaimSpace();
  const before = store.fileBytes();
  store.deleteTask(task.id);
  const { afterBytes } = store.reclaimSpace();
  t.ok(afterBytes < before / 4, `converted and vacuumed: ${before} -> ${afterBytes} bytes`);
  const later = new Database(path, { readonly: true });
  t.teardown(() => later.close());
  t.equal(later.pragma('auto_vacuum', { simple: true }), 2, 'now incremental');
});

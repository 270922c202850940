// `serve --workers 2` on SQLite (SPEC.md §4.10): two worker processes share the port and the database. 300 clients
// pull a task of maxClients 100 through both: exactly 100 apply, every other is refused `full`, and both workers
// served. A worker killed with SIGKILL during pulls is restarted with a log line, loses no acknowledged result,
// and leaves no client `offered`; a cancel holds on every worker; SIGTERM drains them all and frees the lock.
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { pull, type PullOptions, type PullResult } from '../../lib/task/client.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { KillWhenBusy, pullAll as pullCrowd, tally, type Outcome } from '../support/pull-crowd.js';
import { runCli, startServe } from './support.js';

const CLIENTS = 300;
const SLOTS = 100;
const CONCURRENCY = 50;

const pullAll = (count: number, start: (index: number) => Promise<PullResult>, onAcknowledged?: (acknowledged: number) => void): Promise<Outcome[]> =>
  pullCrowd(count, start, { concurrency: CONCURRENCY, ...(onAcknowledged ? { onAcknowledged } : {}) });

function workerPids(primaryPid: number): number[] {
  const listed = spawnSync('pgrep', ['-P', String(primaryPid)], { encoding: 'utf8' });
  return listed.stdout.split('\n').filter(Boolean).map(Number);
}

t.test('serve --workers 2 on SQLite', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg') };
  const serve = await startServe(t, data, { env, extra: ['--workers', '2'] });
  t.match(serve.stderr(), /listening on 127\.0\.0\.1:\d+, data in .* \(2 worker processes\)/, 'the primary says how many processes serve');
  const pids = workerPids(serve.child.pid!);
  t.equal(pids.length, 2, `two worker processes: ${pids.join(', ')}`);
  const admin = await TaskAdmin.open(data);
  t.teardown(() => admin.close());
  const files = [{ path: 'etc/app.conf', content: Buffer.from('listen = 8080\n') }];
  mkdirSync(join(dir, 'out'));
  const clientPull = (token: string, label: string, index: number, options: Partial<PullOptions> = {}): Promise<PullResult> => pull({
    token, outDir: join(dir, 'out', `${label}-${index}`), identityDir: join(dir, 'identities', `${label}-${index}`), name: `${label}-${index}`, ...options,
  });

  await t.test(`${CLIENTS} clients, maxClients ${SLOTS}: exactly ${SLOTS} apply, through both workers`, async (t) => {
    const task = await admin.createTask({ files, maxClients: SLOTS, advertise: { host: '127.0.0.1', port: serve.port } });
    const outcomes = await pullAll(CLIENTS, (index) => clientPull(task.token, 'slots', index));
    t.comment(tally(outcomes));
    const applied = outcomes.filter((outcome) => 'result' in outcome && outcome.result.status === 'applied' && outcome.result.isAcknowledged);
    const full = outcomes.filter((outcome) => 'error' in outcome && outcome.error.code === 'REJECTED' && /full|complete/.test(outcome.error.message));
    t.equal(applied.length, SLOTS, `${SLOTS} pulls applied and were acknowledged`);
    t.equal(full.length, CLIENTS - SLOTS, `the other ${CLIENTS - SLOTS} were refused: full (or completed, once the ${SLOTS}th applied)`);
    const view = await admin.showTask(task.id);
    t.equal(view.clients.length, SLOTS, 'the store records exactly maxClients clients');
    t.ok(view.clients.every((client) => client.state === 'applied'), 'every one applied');
    t.equal(view.state, 'completed', 'and the task completed');
    const db = new Database(join(data, 'noise-cfg.db'), { readonly: true });
    t.teardown(() => db.close());
    const servers = db.prepare('SELECT served_by AS servedBy, count(*) AS n FROM clients WHERE task_id = ? GROUP BY served_by').all(task.id) as { servedBy: string; n: number }[];
    t.equal(servers.length, 2, `both workers served clients: ${servers.map((row) => row.n).join(' + ')}`);
    t.equal((db.prepare('SELECT slots_taken AS n FROM tasks WHERE id = ?').get(task.id) as { n: number }).n, SLOTS, 'slots_taken is maxClients');
  });

  await t.test('a worker killed with SIGKILL during pulls is restarted and loses no acknowledged result', async (t) => {
    // Half a megabyte, so that a transfer lasts long enough for the kill to find sessions in flight.
    const big = [...files, { path: 'var/blob.bin', content: Buffer.alloc(512 * 1024, 7) }];
    const task = await admin.createTask({ files: big, advertise: { host: '127.0.0.1', port: serve.port } });
    const [victim] = workerPids(serve.child.pid!);
    // When 20 clients are receiving, after 20 acknowledgements, one worker is killed with sessions in flight.
    const trigger = new KillWhenBusy(20, () => process.kill(victim!, 'SIGKILL'));
    const outcomes = await pullAll(200, (index) => clientPull(task.token, 'kill', index, { retryForMs: 0, onTransferProgress: trigger.progressOf(index) }), trigger.acknowledged);
    t.ok(trigger.isKilled, 'one worker was killed while 20 clients were receiving');
    t.comment(tally(outcomes));
    const restarted = await serve.waitFor(/worker-exited message="server worker \d \(pid (\d+)\) ended \(killed by SIGKILL\); (\d+) session\(s\) it served are now interrupted; restarting it/, 'stdout');
    t.equal(Number(restarted[1]), victim, 'the primary logged the death of the worker we killed');
    t.ok(Number(restarted[2]) >= 1, `the killed worker was serving: ${restarted[2]} of its sessions were offered and not yet acknowledged`);
    // The restarted worker says it listens: three `listening` lines in all.
    await serve.waitFor(/(?:[^]*?listening address=){3}/, 'stdout');
    t.equal(workerPids(serve.child.pid!).length, 2, 'two workers again');

    const view = await admin.showTask(task.id);
    const byName = new Map(view.clients.map((client) => [client.name, client]));
    const acked = outcomes.filter((outcome): outcome is { index: number; result: PullResult } => 'result' in outcome && outcome.result.isAcknowledged === true);
    t.ok(acked.length >= 20 && acked.length < 200, `${acked.length} pulls were acknowledged, not all`);
    const lost = acked.filter((outcome) => {
      const record = byName.get(`kill-${outcome.index}`);
      return record?.state !== 'applied' || record.identity !== loadClientKeyPair(join(dir, 'identities', `kill-${outcome.index}`)).publicKey.toString('hex');
    });
    t.same(lost.map((outcome) => outcome.index), [], 'every acknowledged result is recorded applied');
    t.same(view.clients.filter((client) => client.state === 'offered' || client.state === 'connected').map((client) => client.name), [],
      "no client is left offered: the dead worker's became interrupted");
    // A pull that threw must not have made files current.
    const thrownAfterApply = outcomes.filter((outcome) => 'error' in outcome && existsSync(join(dir, 'out', `kill-${outcome.index}`, 'etc')));
    t.same(thrownAfterApply.map((outcome) => outcome.index), [], 'no pull threw after making its files current');

    const again = await pullAll(200, (index) => clientPull(task.token, 'kill', index));
    t.equal(again.filter((outcome) => 'result' in outcome).length, 200, `afterwards every client's pull succeeds through the restarted pool: ${tally(again)}`);
    t.equal((await admin.showTask(task.id)).clients.filter((client) => client.state === 'applied').length, 200, 'and all 200 are recorded applied');
  });

  await t.test('a cancel holds on every worker from the next HELLO', async (t) => {
    const task = await admin.createTask({ files, advertise: { host: '127.0.0.1', port: serve.port } });
    t.equal((await clientPull(task.token, 'cancel', 0)).status, 'applied');
    const cancelled = await runCli(t, ['task', 'cancel', task.id, '--data', data], { env });
    t.equal(cancelled.code, 0, cancelled.stderr);
    const outcomes = await pullAll(20, (index) => clientPull(task.token, 'cancel', index + 1));
    t.equal(outcomes.filter((outcome) => 'error' in outcome && outcome.error.code === 'REJECTED' && /cancelled/.test(outcome.error.message)).length, 20,
      `20 pulls after the cancel, whichever worker took each, are all refused: ${tally(outcomes)}`);
  });

  await t.test('SIGTERM stops every worker and the primary, and frees the lock', async (t) => {
    const pidsBefore = workerPids(serve.child.pid!);
    serve.child.kill('SIGTERM');
    const exit = await serve.exited;
    t.same(exit, { code: 0, signal: null }, 'the primary exits 0');
    t.equal(serve.stdout().match(/ stopped/g)?.length, 2, 'both workers logged stopped');
    t.ok(pidsBefore.every((pid) => spawnSync('kill', ['-0', String(pid)]).status !== 0), 'no worker is left running');
    t.notOk(existsSync(join(data, 'serve.lock')), 'the lock is released');
  });
});

t.test('--workers takes 1 to 256 or auto; anything else is a usage error before the data directory is made', async (t) => {
  const dir = t.testdir();
  for (const value of ['0', '257', 'two', '1.5', '-1']) {
    const run = await runCli(t, ['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--api', 'off', '--workers', value]);
    t.equal(run.code, 2, `--workers ${value}: exit 2`);
    t.match(run.stderr, /--workers must be a whole number from 1 to 256, or auto/);
    t.notOk(existsSync(join(dir, 'data')), 'no data directory was made');
  }
});

t.test('a worker that cannot start makes serve --workers fail with its error and exit code, and free the lock', async (t) => {
  const dir = t.testdir();
  const first = await startServe(t, join(dir, 'first'));
  const run = await runCli(t, ['serve', '--data', join(dir, 'second'), '--listen', `127.0.0.1:${first.port}`, '--api', 'off', '--workers', '2']);
  t.equal(run.code, 11, 'exit 11, as a single server that cannot listen');
  t.match(run.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: EADDRINUSE \\(CONNECTION_FAILED\\)`));
  t.equal(run.stdout, '', 'the workers logged nothing');
  t.notOk(existsSync(join(dir, 'second', 'serve.lock')), 'the lock is released');
});

t.test('SIGTERM to the primary and its workers at once, as systemd and a terminal send it, stops the pool without a restart', async (t) => {
  const dir = t.testdir();
  const serve = await startServe(t, join(dir, 'data'), { extra: ['--workers', '2'] });
  const pids = workerPids(serve.child.pid!);
  t.equal(pids.length, 2);
  for (const pid of [serve.child.pid!, ...pids]) process.kill(pid, 'SIGTERM');
  t.same(await serve.exited, { code: 0, signal: null }, 'the primary exits 0');
  t.equal(serve.stdout().match(/ stopped/g)?.length, 2, 'both workers drained and logged stopped');
  t.notMatch(serve.stdout(), /worker-exited/, 'no worker was taken for dead, and none was restarted');
  t.notOk(existsSync(join(dir, 'data', 'serve.lock')), 'the lock is released');
});

t.test('the primary killed with SIGKILL during pulls takes its workers with it; the next start breaks the stale lock and interrupts their sessions, losing nothing acknowledged', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const serve = await startServe(t, data, { extra: ['--workers', '2'] });
  const pids = workerPids(serve.child.pid!);
  t.equal(pids.length, 2);
  const admin = await TaskAdmin.open(data);
  t.teardown(() => admin.close());
  const files = [{ path: 'etc/app.conf', content: Buffer.from('a = 1\n') }, { path: 'var/blob.bin', content: Buffer.alloc(512 * 1024, 9) }];
  const task = await admin.createTask({ files, advertise: { host: '127.0.0.1', port: serve.port } });
  mkdirSync(join(dir, 'out'));
  const clientPull = (index: number, options: Partial<PullOptions> = {}): Promise<PullResult> => pull({
    token: task.token, outDir: join(dir, 'out', `p-${index}`), identityDir: join(dir, 'identities', `p-${index}`), name: `p-${index}`, retryForMs: 0, ...options,
  });
  const trigger = new KillWhenBusy(10, () => serve.child.kill('SIGKILL'));
  const outcomes = await pullAll(100, (index) => clientPull(index, { onTransferProgress: trigger.progressOf(index) }), trigger.acknowledged);
  t.ok(trigger.isKilled, 'the primary was killed while 10 clients were receiving');
  t.comment(tally(outcomes));
  t.equal((await serve.exited).signal, 'SIGKILL');
  // A worker finds its IPC channel closed and exits; give them a moment.
  for (let waited = 0; waited < 5000 && pids.some((pid) => spawnSync('kill', ['-0', String(pid)]).status === 0); waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  t.ok(pids.every((pid) => spawnSync('kill', ['-0', String(pid)]).status !== 0), 'both workers exited with their primary');
  t.ok(existsSync(join(data, 'serve.lock')), 'the lock file is left behind, stale');
  const leftOffered = (await admin.showTask(task.id)).clients.filter((client) => client.state === 'offered' || client.state === 'connected').length;
  t.ok(leftOffered >= 1, `${leftOffered} client(s) were left offered by the dead workers`);

  const restarted = await startServe(t, data, { port: serve.port, extra: ['--workers', '2'] });
  const listening = await restarted.waitFor(/(\d+) session\(s\) a previous run left open are now interrupted/, 'stdout');
  t.equal(Number(listening[1]), leftOffered, 'the restart breaks the stale lock and interrupts exactly those');
  const view = await admin.showTask(task.id);
  const byName = new Map(view.clients.map((client) => [client.name, client.state]));
  const acked = outcomes.filter((outcome) => 'result' in outcome && outcome.result.isAcknowledged === true).map((outcome) => `p-${outcome.index}`);
  t.same(acked.filter((name) => byName.get(name) !== 'applied'), [], `all ${acked.length} acknowledged results are recorded applied`);
  const again = await pullAll(100, (index) => clientPull(index));
  t.equal(again.filter((outcome) => 'result' in outcome).length, 100, `every client pulls through the restarted pool: ${tally(again)}`);
});

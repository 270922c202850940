// Three `serve` processes on one PostgreSQL database act as one server (SPEC.md §4.9): each has its own data
// directory holding the same three key files, and `--store` (or NOISE_CFG_STORE) naming the database, the password
// from NOISE_CFG_STORE_PASSWORD_FILE. A task created through one node is pulled through all three; 300 clients of a
// task with maxClients 100 give exactly 100 applied; a cancel made through node A's CLI refuses on node B, and `task
// watch` through node C sees every node's results; a node killed with SIGKILL during pulls loses no acknowledged
// result, and its restart marks the sessions it lost interrupted (which sessions a node's restart may touch, its
// own only, is in the store conformance suite). Node C runs `--workers 2`.
import t from 'tap';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { FLEET_KEY_FILES } from '../../lib/task/data-dir.js';
import { pull, type PullOptions, type PullResult } from '../../lib/task/client.js';
import { parseStoreLocation } from '../../lib/task/store-location.js';
import { postgresSkipReason, startPostgres } from '../support/postgres.js';
import { isAcknowledgedApply, KillWhenBusy, pullAll as pullCrowd, tally, type Outcome } from '../support/pull-crowd.js';
import { runCli, spawnCli, startServe, type CliProcess } from '../task/support.js';

const skip = postgresSkipReason() ?? false;
const CLIENTS = 300;
const SLOTS = 100;
const CONCURRENCY = 45;

const pullAll = (count: number, start: (index: number) => Promise<PullResult>, onAcknowledged?: (acknowledged: number) => void): Promise<Outcome[]> =>
  pullCrowd(count, start, { concurrency: CONCURRENCY, ...(onAcknowledged ? { onAcknowledged } : {}) });

t.test('three serve nodes on one PostgreSQL database', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  cluster.psql('CREATE DATABASE fleet');
  // Over TCP with the password from a file, as a node on another machine would connect.
  const fleetSql = (sql: string): string => cluster.psql(sql, 'fleet');
  const storeUrl = `postgres://${cluster.user}@127.0.0.1:${cluster.port}/fleet`;
  const store = parseStoreLocation(storeUrl);
  const dir = t.testdir();
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg'), NOISE_CFG_STORE_PASSWORD_FILE: cluster.passwordFile };
  const dataOf = (name: string): string => join(dir, `node-${name}`);
  const nodes = new Map<string, CliProcess & { port: number }>();
  // Node c takes the store from NOISE_CFG_STORE instead of --store, and runs two worker processes.
  // A restarted node listens where it did, as behind a load balancer.
  const startNode = async (name: string, port = 0): Promise<CliProcess & { port: number }> => {
    const node = name === 'c'
      ? await startServe(t, dataOf(name), { port, env: { ...env, NOISE_CFG_STORE: storeUrl }, extra: ['--workers', '2'] })
      : await startServe(t, dataOf(name), { port, env, extra: ['--store', storeUrl] });
    nodes.set(name, node);
    return node;
  };
  const first = await startNode('a');
  t.match(first.stderr(), /listening on 127\.0\.0\.1:\d+, data in .*node-a, tasks in postgres noisecfg@127\.0\.0\.1:\d+\/fleet/, 'the node says where its tasks are, without the password');
  t.notMatch(first.stderr() + first.stdout(), new RegExp(cluster.password), 'the password is in no output');
  for (const name of ['b', 'c']) {
    mkdirSync(dataOf(name), { mode: 0o700 });
    for (const file of FLEET_KEY_FILES) copyFileSync(join(dataOf('a'), file), join(dataOf(name), file));
    await startNode(name);
  }
  const admin = await TaskAdmin.open(dataOf('b'), { store, env });
  t.teardown(() => admin.close());
  const files = [{ path: 'etc/app.conf', content: Buffer.from('listen = 8080\n') }];
  mkdirSync(join(dir, 'out'));
  const clientPull = (token: string, label: string, index: number, options: Partial<PullOptions> = {}): Promise<PullResult> => pull({
    token, outDir: join(dir, 'out', `${label}-${index}`), identityDir: join(dir, 'identities', `${label}-${index}`), name: `${label}-${index}`, retryForMs: 0, ...options,
  });
  // One token per node, each advertising that node: the same task, PSK and pin (every node has the same key).
  const tokensFor = async (taskId: string): Promise<string[]> => {
    const tokens: string[] = [];
    for (const name of ['a', 'b', 'c']) tokens.push((await admin.taskToken(taskId, { host: '127.0.0.1', port: nodes.get(name)!.port })).token);
    return tokens;
  };
  const servedByNode = (taskId: string): Map<string, number> => {
    const rows = fleetSql(`SELECT left(served_by, 16), count(*) FROM clients WHERE task_id = '${taskId}' GROUP BY 1`).split('\n').filter(Boolean);
    return new Map(rows.map((row) => [row.split('|')[0]!, Number(row.split('|')[1])]));
  };

  await t.test(`${CLIENTS} clients through three nodes, maxClients ${SLOTS}: exactly ${SLOTS} apply`, async (t) => {
    const task = await admin.createTask({ files, maxClients: SLOTS });
    const tokens = await tokensFor(task.id);
    const outcomes = await pullAll(CLIENTS, (index) => clientPull(tokens[index % 3]!, 'slots', index));
    t.comment(tally(outcomes));
    const full = outcomes.filter((outcome) => 'error' in outcome && outcome.error.code === 'REJECTED' && /full|complete/.test(outcome.error.message));
    t.equal(outcomes.filter(isAcknowledgedApply).length, SLOTS, `${SLOTS} pulls applied and were acknowledged`);
    t.equal(full.length, CLIENTS - SLOTS, `the other ${CLIENTS - SLOTS} were refused: full, or completed`);
    const view = await admin.showTask(task.id);
    t.equal(view.clients.length, SLOTS, 'the database records exactly maxClients clients');
    t.ok(view.clients.every((client) => client.state === 'applied'), 'every one applied');
    t.equal(view.state, 'completed');
    t.equal(fleetSql(`SELECT slots_taken FROM tasks WHERE id = '${task.id}'`), String(SLOTS), 'slots_taken is maxClients');
    const perNode = servedByNode(task.id);
    t.equal(perNode.size, 3, `all three nodes recorded clients: ${[...perNode.values()].join(' + ')}`);
  });

  await t.test('a cancel through node A\'s CLI refuses on node B; task show and task watch on node C see every node\'s clients', async (t) => {
    const task = await admin.createTask({ files });
    const tokens = await tokensFor(task.id);
    // Following through node C's data directory (another process, its own store handle) from before the pulls.
    const watch = spawnCli(t, ['task', 'watch', task.id, '--json', '--data', dataOf('c')], { env: { ...env, NOISE_CFG_STORE: storeUrl } });
    await watch.waitFor(/"type":"task"/, 'stdout');
    const before = await Promise.all([0, 1, 2].map((index) => clientPull(tokens[index]!, 'cancel', index)));
    t.same(before.map((result) => result.status), ['applied', 'applied', 'applied'], 'one client through each node');
    const shown = await runCli(t, ['task', 'show', task.id, '--json', '--data', dataOf('c')], { env: { ...env, NOISE_CFG_STORE: storeUrl } });
    t.equal(shown.code, 0, shown.stderr);
    t.equal((JSON.parse(shown.stdout) as { clients: unknown[] }).clients.length, 3, 'node C shows the three clients, served by three nodes');
    const cancelled = await runCli(t, ['task', 'cancel', task.id, '--data', dataOf('a'), '--store', storeUrl], { env });
    t.equal(cancelled.code, 0, cancelled.stderr);
    await t.rejects(clientPull(tokens[1]!, 'cancel', 3), { code: 'REJECTED', message: /cancelled/ }, 'node B refuses the cancelled task at the next HELLO');
    await t.rejects(clientPull(tokens[2]!, 'cancel', 4), { code: 'REJECTED', message: /cancelled/ }, 'and so does node C');
    const watched = await watch.exited;
    t.equal(watched.code, 6, 'the watch ends when the task does: exit 6, cancelled');
    const events = watch.stdout().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { type: string; change?: { name: string | null; state: string }; task?: { state: string } });
    const appliedNames = events.filter((event) => event.type === 'change' && event.change!.state === 'applied').map((event) => event.change!.name).sort();
    t.same(appliedNames, ['cancel-0', 'cancel-1', 'cancel-2'], 'the watch on node C saw the results recorded by all three nodes');
    t.equal(events.at(-1)?.type, 'end', 'and the end');
    t.equal(events.at(-1)?.task?.state, 'cancelled');
  });

  await t.test('node B killed with SIGKILL during pulls loses no acknowledged result; its restart marks the sessions it lost interrupted', async (t) => {
    const big = [...files, { path: 'var/blob.bin', content: Buffer.alloc(512 * 1024, 7) }];
    const task = await admin.createTask({ files: big });
    const tokens = await tokensFor(task.id);
    const victim = nodes.get('b')!;
    const trigger = new KillWhenBusy(15, () => victim.child.kill('SIGKILL'));
    const outcomes = await pullAll(150, (index) => clientPull(tokens[index % 3]!, 'kill', index, { onTransferProgress: trigger.progressOf(index) }), trigger.acknowledged);
    t.ok(trigger.isKilled, 'node B was killed while 15 clients were receiving');
    t.comment(tally(outcomes));
    t.equal((await victim.exited).signal, 'SIGKILL');
    // Every acknowledged result is in the database as applied, whichever node acknowledged it.
    const recorded = new Map((await admin.showTask(task.id)).clients.map((client) => [client.name, client.state]));
    const acknowledgedNames = outcomes.filter(isAcknowledgedApply).map((outcome) => `kill-${outcome.index}`);
    t.ok(acknowledgedNames.length >= 15, `${acknowledgedNames.length} results were acknowledged`);
    t.same(acknowledgedNames.filter((name) => recorded.get(name) !== 'applied'), [], 'every acknowledged result is recorded applied');
    const offeredBefore = fleetSql(`SELECT count(*) FROM clients WHERE task_id = '${task.id}' AND state IN ('connected', 'offered')`);
    t.comment(`${offeredBefore} client(s) left offered by the killed node`);

    const restarted = await startNode('b', victim.port);
    t.match(restarted.stderr(), /listening on/);
    const left = fleetSql(`SELECT count(*) FROM clients WHERE task_id = '${task.id}' AND state IN ('connected', 'offered')`);
    t.equal(left, '0', 'after node B restarted, no client of the task is left offered');
    t.equal(Number(fleetSql(`SELECT count(*) FROM clients WHERE task_id = '${task.id}' AND state = 'interrupted'`)), Number(offeredBefore), 'those it left are interrupted');

    // The clients that did not finish pull again, through every node including the restarted one.
    const again = await pullAll(150, (index) => clientPull(tokens[index % 3]!, 'kill', index));
    t.comment(tally(again));
    t.equal(again.filter((outcome) => 'result' in outcome && (outcome.result.status === 'up-to-date' || isAcknowledgedApply(outcome))).length, 150, 'all 150 are applied or up to date afterwards');
    t.equal(fleetSql(`SELECT count(*) FROM clients WHERE task_id = '${task.id}' AND state = 'applied'`), '150', 'and recorded applied');
  });

  await t.test('a node whose store password is wrong fails to start with a clear error, and keeps the password out of it', async (t) => {
    const wrong = await runCli(t, ['serve', '--data', dataOf('a2'), '--listen', '127.0.0.1:0', '--api', 'off', '--store', storeUrl], { env: { ...env, NOISE_CFG_STORE_PASSWORD: 'not-the-password', NOISE_CFG_STORE_PASSWORD_FILE: '' } });
    t.not(wrong.code, 0);
    t.match(wrong.stderr, /password authentication failed/);
    t.notMatch(wrong.stderr, /not-the-password/);
    t.notMatch(wrong.stderr, /at .*\.js:\d+/, 'no stack trace');
  });
});

// A process on a shared PostgreSQL store that dies with no process of its own machine left to notice (SPEC.md
// §4.9): every server process says it is alive (server_processes, by the database's clock), and any other marks
// the sessions of one silent for silentProcessMs interrupted, and only those. A clean stop leaves no row behind; a
// heartbeat the database cannot take is logged, and does not keep the server from stopping.
import t from 'tap';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { FLEET_KEY_FILES } from '../../lib/task/data-dir.js';
import { pull } from '../../lib/task/client.js';
import { PostgresTaskStore } from '../../lib/task/postgres-store.js';
import { LOST_SILENT_PROCESS } from '../../lib/task/server.js';
import { parseStoreLocation, type PostgresLocation } from '../../lib/task/store-location.js';
import { postgresSkipReason, startPostgres } from '../support/postgres.js';
import { startServe, startServer } from '../task/support.js';
import { clientRecord, FILES, TASK_ID, taskRecord } from './store-conformance.js';

const skip = postgresSkipReason() ?? false;

t.test('process liveness on PostgreSQL', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  const socketLocation = parseStoreLocation(cluster.socketUrl) as PostgresLocation;

  await t.test('the store: a silent process loses its sessions, a live one keeps them, and both are timed by the database', async (t) => {
    cluster.psql('CREATE DATABASE liveness_store');
    const location = { ...socketLocation, database: 'liveness_store' };
    const silentId = 'aaaaaaaaaaaaaaaa0000000000000001';
    const aliveId = 'bbbbbbbbbbbbbbbb0000000000000001';
    const silent = await PostgresTaskStore.open(location, { servedBy: silentId, env: {} });
    const alive = await PostgresTaskStore.open(location, { servedBy: aliveId, env: {} });
    t.teardown(() => Promise.all([silent.close(), alive.close()]));
    await silent.createTask(taskRecord(TASK_ID, FILES), FILES);
    await Promise.all([
      silent.saveClient(clientRecord('s1', { state: 'offered', hasSlot: true })), silent.saveClient(clientRecord('s2', { state: 'applied', hasSlot: true, appliedDigest: 'd' })),
      alive.saveClient(clientRecord('a1', { state: 'offered', hasSlot: true })),
    ]);
    await Promise.all([silent.markAlive(), alive.markAlive()]);
    t.same(await alive.interruptSilentProcesses(60_000, 1_700_000_002_000, 'gone'), { processes: 0, sessions: 0 }, 'both seen within the minute');
    cluster.psql(`UPDATE server_processes SET last_seen_at = last_seen_at - 120000 WHERE served_by = '${silentId}'`, 'liveness_store');
    t.same(await alive.interruptSilentProcesses(60_000, 1_700_000_002_000, 'gone'), { processes: 1, sessions: 1 }, 'the one silent for two minutes, and its one session still offered');
    const states = (await alive.listClients(TASK_ID)).map((client) => `${client.identity}:${client.state}`).sort();
    t.same(states, ['a1:offered', 's1:interrupted', 's2:applied'], 'the live process keeps its session; an applied client stays applied');
    t.equal((await alive.listEvents(TASK_ID)).at(-1)?.detail, 'gone');
    t.equal(cluster.psql('SELECT string_agg(served_by, \',\') FROM server_processes', 'liveness_store'), aliveId, 'the silent process is forgotten');
    await alive.forgetProcess();
    t.equal(cluster.psql('SELECT count(*) FROM server_processes', 'liveness_store'), '0', 'forgetProcess removes the row');
  });

  await t.test('a node killed with SIGKILL and not restarted: another node marks its session interrupted within silentProcessMs', async (t) => {
    cluster.psql('CREATE DATABASE liveness_nodes');
    const storeUrl = `postgres://${cluster.user}@/liveness_nodes?host=${encodeURIComponent(cluster.socketDir)}&port=${cluster.port}`;
    const store = parseStoreLocation(storeUrl);
    const dir = t.testdir();
    const victimData = join(dir, 'victim');
    const observerData = join(dir, 'observer');
    const victim = await startServe(t, victimData, { env: { HOME: join(dir, 'home') }, extra: ['--store', storeUrl] });
    mkdirSync(observerData, { mode: 0o700 });
    for (const file of FLEET_KEY_FILES) copyFileSync(join(victimData, file), join(observerData, file));
    // The victim beats every 2 s (the default); the observer takes 6 s of silence for death.
    const observer = await startServer(t, observerData, { store, heartbeatMs: 200, silentProcessMs: 6000 });
    const admin = await TaskAdmin.open(observerData, { store });
    t.teardown(() => admin.close());
    const task = await admin.createTask({ files: [{ path: 'big.bin', content: Buffer.alloc(8 * 1024 * 1024, 1) }] });
    const { token } = await admin.taskToken(task.id, { host: '127.0.0.1', port: victim.port });
    let killedAt = 0;
    const pulling = pull({
      token, outDir: join(dir, 'out'), identityDir: join(dir, 'identity'), name: 'stranded', retryForMs: 0,
      onTransferProgress: (received) => {
        if (received > 0 && killedAt === 0) {
          killedAt = Date.now();
          victim.child.kill('SIGKILL');
        }
      },
    });
    await t.rejects(pulling, 'the pull fails when its server dies mid-transfer');
    t.ok(killedAt > 0, 'the victim was killed during the transfer');
    t.equal((await admin.showTask(task.id)).clients[0]?.state, 'offered', 'the stranded client is left offered');
    const lost = await observer.waitForLog((record) => record.event === 'process-lost' && record.count === 1);
    const waitedMs = Date.now() - killedAt;
    t.comment(`the observer noticed after ${waitedMs} ms: ${lost.message}`);
    // At the earliest: 6 s of silence less the 2 s since the victim's last beat, less 500 ms for a beat that ran late.
    t.ok(waitedMs >= 4000 - 500 && waitedMs < 15_000, `noticed after the silence, not before (${waitedMs} ms)`);
    const view = await admin.showTask(task.id);
    t.equal(view.clients[0]?.state, 'interrupted', 'the client is interrupted, not offered forever');
    t.ok((await admin.events(task.id)).some((event) => event.state === 'interrupted' && event.detail === LOST_SILENT_PROCESS), 'an event says why');
    await observer.server.stop(0);
    t.equal(cluster.psql('SELECT count(*) FROM server_processes', 'liveness_nodes'), '0', 'the observer\'s clean stop left no row');
  });

  // Last: it stops the cluster.
  await t.test('the database going away: each failed heartbeat is one clear log line, and the server still stops', async (t) => {
    cluster.psql('CREATE DATABASE liveness_down');
    const store = parseStoreLocation(`postgres://${cluster.user}@/liveness_down?host=${encodeURIComponent(cluster.socketDir)}&port=${cluster.port}`);
    const running = await startServer(t, join(t.testdir(), 'data'), { store, heartbeatMs: 100, silentProcessMs: 1000 });
    cluster.stop();
    const failed = await running.waitForLog((record) => record.event === 'process-lost' && record.code !== undefined);
    t.equal(failed.code, 'STORE_UNAVAILABLE');
    t.match(failed.message, /^the heartbeat failed: /);
    t.notMatch(failed.message, /\n|at .*\.js:\d+/, 'one line, no stack');
    t.notMatch(failed.message, new RegExp(cluster.password), 'no password');
    await running.server.stop(0);
    t.pass('stop() resolved with the database gone');
  });
});

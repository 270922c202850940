// Durability of results (SPEC.md §4.1, §4.6): `serve` is killed with SIGKILL while 100 clients are in flight and
// started again on the same data directory and port. Every result the server acknowledged must be recorded, no
// record may be half-written, and the same token must still serve new and unacknowledged clients.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { constants, existsSync, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { pull, type PullResult } from '../../lib/task/client.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { readTree, startServe } from './support.js';

const CLIENTS = 100;
const KILL_AFTER_ACKS = 30;
const STATES = new Set(['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted']);

type Outcome = { index: number; result: PullResult } | { index: number; error: Error };

t.test(`serve killed with ${CLIENTS} clients in flight loses no acknowledged result`, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg') };
  const first = await startServe(t, data, { env });
  const port = first.port;

  const files = [
    { path: 'etc/app.conf', content: Buffer.from('listen = 8080\n') },
    { path: 'etc/conf.d/a.conf', content: Buffer.from('a = 1\n') },
  ];
  const setupAdmin = await TaskAdmin.open(data, { create: true });
  const created = await setupAdmin.createTask({ files, advertise: { host: '127.0.0.1', port } });
  setupAdmin.close();

  const name = (index: number): string => `client-${String(index).padStart(3, '0')}`;
  const identityDir = (index: number): string => join(dir, 'identities', name(index));
  const outDir = (index: number): string => join(dir, 'out', name(index));
  // The parent of --out must exist (noise-cfg makes no parent directories, SPEC.md §4.7).
  mkdirSync(join(dir, 'out'));

  // Each client's --exec blocks on its own FIFO until the test releases it, so that all 100 sessions are open (files
  // streamed and applied, RESULT not yet sent) when the kill lands. Clients are released ten at a time; the 30th
  // acknowledged pull triggers SIGKILL, with up to ten results between RESULT and ACK and the rest not yet sent.
  mkdirSync(join(dir, 'fifos'));
  // A command still blocked on its FIFO when the test ends would outlive it and hold the runner's output open.
  t.teardown(() => {
    spawnSync('pkill', ['-f', join(dir, 'fifos')]);
  });
  const fifo = (index: number): string => join(dir, 'fifos', name(index));
  const mkfifo = spawnSync('mkfifo', Array.from({ length: CLIENTS }, (_, index) => fifo(index)));
  t.equal(mkfifo.status, 0, 'mkfifo');
  const waiting: Promise<void>[] = [];
  const markWaiting: (() => void)[] = [];
  for (let index = 0; index < CLIENTS; index++) waiting.push(new Promise((resolve) => markWaiting.push(resolve)));
  let released = 0;
  // A blocking open of a FIFO for writing would hold one of libuv's four threads until the reader comes; if the
  // reader's own pull is queued behind it on that pool, nothing moves. So open without blocking, and retry.
  const writeGo = async (path: string): Promise<void> => {
    for (let attempt = 0; attempt < 3000; attempt++) {
      try {
        const handle = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
        await handle.write('go\n');
        await handle.close();
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const release = (): void => {
    if (released >= CLIENTS) return;
    void writeGo(fifo(released++)).catch(() => undefined);
  };

  let inExec = 0;
  let acknowledged = 0;
  let isKilled = false;
  const killed = first.exited;
  const pulls = Array.from({ length: CLIENTS }, async (_, index): Promise<Outcome> => {
    try {
      const result = await pull({
        token: created.token, outDir: outDir(index), identityDir: identityDir(index), name: name(index),
        exec: `read go < '${fifo(index)}'`,
        onProgress: (line) => {
          if (line.startsWith('running: ')) {
            inExec++;
            markWaiting[index]!();
          }
        },
      });
      if (result.isAcknowledged === true) {
        acknowledged++;
        if (acknowledged >= KILL_AFTER_ACKS && !isKilled) {
          isKilled = true;
          first.child.kill('SIGKILL');
          await killed;
          // The server is gone: let every client still waiting go on and report to nobody.
          while (released < CLIENTS) release();
        }
      }
      return { index, result };
    } catch (error) {
      return { index, error: error as Error };
    } finally {
      // A pull that ends before its command (it should not) must not leave the test waiting for it.
      markWaiting[index]!();
      if (!isKilled) release();
    }
  });
  await Promise.all(waiting);
  t.equal(inExec, CLIENTS, `all ${CLIENTS} clients applied their files and wait in --exec with their sessions open`);
  for (let window = 0; window < 10; window++) release();
  const outcomes: Outcome[] = await Promise.all(pulls);
  t.ok(isKilled, `the server was killed after ${KILL_AFTER_ACKS} acknowledgements`);
  const firstExit = await killed;
  t.equal(firstExit.signal, 'SIGKILL', 'the server died of our SIGKILL', { exit: firstExit, stdout: first.stdout().slice(-2000), stderr: first.stderr().slice(-2000) });

  const acked = outcomes.filter((outcome): outcome is { index: number; result: PullResult } => 'result' in outcome && outcome.result.isAcknowledged === true);
  const unacked = outcomes.filter((outcome) => !('result' in outcome && outcome.result.isAcknowledged === true));
  t.ok(acked.length >= KILL_AFTER_ACKS, `${acked.length} pulls were acknowledged`);
  t.ok(acked.every((outcome) => outcome.result.status === 'applied'), 'every acknowledged pull applied');
  const kinds = new Map<string, number>();
  for (const outcome of unacked) {
    const kind = 'error' in outcome ? `threw ${(outcome.error as { code?: string }).code ?? outcome.error.message}` : `returned ${outcome.result.status} unacknowledged`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  t.comment(`unacknowledged: ${[...kinds].map(([kind, count]) => `${count} ${kind}`).join(', ') || 'none'}`);
  // A pull that throws must not have made new files current: once the files are applied, the outcome is a result
  // (status applied, isAcknowledged false when the ACK is missing), so that the caller knows what is on disk.
  const thrownAfterApply = outcomes.filter((outcome) => 'error' in outcome && existsSync(outDir(outcome.index)));
  t.same(thrownAfterApply.map((outcome) => `${name(outcome.index)}: ${(outcome as { error: { code?: string } }).error.code}`), [],
    'no pull threw after making its files current');

  // Restart on the same data directory and port: the store passes quick_check or serve would refuse to start.
  const second = await startServe(t, data, { env, port });
  t.equal(second.port, port, 'the same port');
  const admin = await TaskAdmin.open(data);
  t.teardown(() => admin.close());
  const view = await admin.showTask(created.id);

  const byName = new Map(view.clients.map((client) => [client.name, client]));
  let lost = 0;
  for (const outcome of acked) {
    const record = byName.get(name(outcome.index));
    const identity = loadClientKeyPair(identityDir(outcome.index)).publicKey.toString('hex');
    if (record?.state !== 'applied' || record.identity !== identity) {
      lost++;
      t.fail(`${name(outcome.index)} was acknowledged but is recorded as ${record?.state ?? 'nothing'}`);
    }
  }
  t.equal(lost, 0, 'no acknowledged result is lost');
  const recordedApplied = view.clients.filter((client) => client.state === 'applied').length;
  t.ok(recordedApplied >= acked.length, `${recordedApplied} recorded applied >= ${acked.length} acknowledged`);

  for (const client of view.clients) {
    const isWhole = STATES.has(client.state)
      && /^[0-9a-f]{64}$/.test(client.identity)
      && /^client-\d{3}$/.test(client.name)
      && client.remoteAddress.startsWith('127.0.0.1:')
      && Date.parse(client.firstSeenAt) <= Date.parse(client.updatedAt)
      && (client.state !== 'applied' || (client.result !== null && (client.result.exitCode === 0 || client.result.exitCode === null) && typeof client.result.message === 'string'));
    if (!isWhole) t.fail(`a half-written record: ${JSON.stringify(client)}`);
  }
  t.pass(`${view.clients.length} client records, each whole`);
  t.equal(new Set(view.clients.map((client) => client.identity)).size, view.clients.length, 'one record per identity');

  // The same token serves the clients that got no ACK, and a new identity.
  const repulls = await Promise.all(unacked.map(async (outcome) => {
    const result = await pull({ token: created.token, outDir: outDir(outcome.index), identityDir: identityDir(outcome.index), name: name(outcome.index) });
    return { index: outcome.index, result };
  }));
  const statuses = repulls.map((repull) => repull.result.status);
  t.ok(statuses.every((status) => status === 'applied' || status === 'up-to-date'), `re-pulls: ${statuses.filter((s) => s === 'applied').length} applied, ${statuses.filter((s) => s === 'up-to-date').length} up to date`);
  for (const repull of repulls) {
    const tree = readTree(outDir(repull.index));
    if (tree['etc/app.conf']?.content !== 'listen = 8080\n' || tree['etc/conf.d/a.conf']?.content !== 'a = 1\n') t.fail(`${name(repull.index)}: files missing after the re-pull`);
  }
  const newcomer = await pull({ token: created.token, outDir: join(dir, 'out', 'newcomer'), identityDir: join(dir, 'identities', 'newcomer'), name: 'client-new' });
  t.equal(newcomer.status, 'applied', 'a new identity applies with the same token');
  t.equal(newcomer.isAcknowledged, true);

  const after = await admin.showTask(created.id);
  t.equal(after.counts.applied, CLIENTS + 1, 'every client, and the newcomer, is recorded applied');
  t.equal(after.state, 'active');
  t.comment(`acked ${acked.length}, recorded applied after the crash ${recordedApplied}, re-pulled ${repulls.length} (${statuses.filter((s) => s === 'up-to-date').length} up to date), records ${view.clients.length}`);

  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the restarted server stops cleanly');
});

// Overload (SPEC.md §2.4, §2.6): a slowloris stranger in another process holds 1024 idle connections to a TaskServer
// with the default limits and reconnects as it is dropped, first from one source address (the per-source cap stops
// it) and then spread over 32 (only eviction of the oldest stranger lets real clients in). Real pulls must all
// succeed while it does, an established connection must keep working, and the log must stay bounded. A pull that
// meets a busy server for longer than its retry window fails as busy (exit 11), not as a wrong token.
import t, { type Test } from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_CODE_BY_ERROR } from '../../cli/exit-codes.js';
import { isNoiseCfgError } from '../../lib/errors.js';
import { pull, type PullResult } from '../../lib/task/client.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { encodeMessage, expectMessage } from '../../lib/task/messages.js';
import { TaskServer, type LogRecord } from '../../lib/task/server.js';
import { decodeToken } from '../../lib/token/token.js';
import { DEFAULT_LIMITS } from '../../lib/transport/limits.js';
import { connectSecure } from '../../lib/transport/secure-socket.js';
import { HOST, withTimeout } from './support.js';

const STRANGER_SOCKETS = DEFAULT_LIMITS.maxUnauthenticatedConnections;
const LEGITIMATE_PULLS = 20;
/**
 * The pulls start this far apart, in ms, so that the attack lasts about 12 s: past the first-flight deadline (5 s)
 * and the handshake deadline (10 s), when the server drops the stranger's sockets and it reconnects.
 */
const PULL_SPACING_MS = 600;
/** A stranger slot refused or evicted at once waits this long (to twice it) before it connects again, in ms. */
const STRANGER_PAUSE_MS = 200;
/** The stranger stops by itself after this long, whatever the test does. */
const STRANGER_MAX_MS = 120_000;
const STRANGER_SCRIPT = fileURLToPath(new URL('./stranger-process.mjs', import.meta.url));

interface StrangerStats {
  connects: number;
  connected: number;
  open: number;
  peakOpen: number;
  closedQuickly: number;
  busyFrames: number;
  errors: number;
}

/** The stranger child: started, ready once every slot connected once; stop() ends it and returns its counters. */
async function startStranger(t: Test, port: number, sources: string[]): Promise<{ child: ChildProcess; stats: () => Promise<StrangerStats>; stop: () => Promise<StrangerStats> }> {
  const child = fork(STRANGER_SCRIPT, [String(port), String(STRANGER_SOCKETS), sources.join(','), String(STRANGER_PAUSE_MS), String(STRANGER_MAX_MS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const nextMessage = (type: string): Promise<StrangerStats> => new Promise((resolve, reject) => {
    const onMessage = (message: { type: string; stats: StrangerStats }): void => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(message.stats);
    };
    const onExit = (): void => reject(new Error(`the stranger exited before "${type}"`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
  await withTimeout(nextMessage('ready'), 30_000, 'the stranger to open its connections');
  return {
    child,
    stats: () => {
      const reply = nextMessage('stats');
      child.send('stats');
      return reply;
    },
    stop: async () => {
      const reply = nextMessage('stopped');
      child.send('stop');
      const stats = await withTimeout(reply, 10_000, 'the stranger to stop');
      await exited;
      return stats;
    },
  };
}

async function slowloris(t: Test, sources: string[]): Promise<void> {
  const dir = t.testdir();
  const logs: LogRecord[] = [];
  // The established connection below says HELLO only after the attack: its HELLO deadline must outlast it.
  const server = new TaskServer({ dataDir: join(dir, 'data'), listen: { host: HOST, port: 0 }, helloTimeoutMs: 120_000, log: (record) => logs.push(record) });
  const { port } = await server.start();
  t.teardown(() => server.stop(0));
  const admin = server.admin();
  const created = await admin.createTask({ files: [{ path: 'app.conf', content: Buffer.from('listen = 8080\n') }], advertise: { host: HOST, port }, maxClients: 100 });
  const token = decodeToken(created.token);

  // An established connection, opened before the stranger: it must keep working throughout.
  const established = await connectSecure(HOST, port, {
    mode: 'xxpsk3', taskId: created.id, psk: token.psk, staticKeyPair: loadClientKeyPair(join(dir, 'established')), serverPublicKey: token.serverPublicKey!,
  });
  t.teardown(() => established.destroy());

  const attackStarted = performance.now();
  const logsBefore = logs.length;
  const stranger = await startStranger(t, port, sources);
  const rampMs = performance.now() - attackStarted;
  const atReady = await stranger.stats();
  t.comment(`the stranger connected all ${STRANGER_SOCKETS} slots from ${sources.length} source address(es) in ${Math.round(rampMs)} ms (${atReady.connects} connects so far)`);

  const pullTimes: number[] = [];
  const retryLines: string[] = [];
  const failures: string[] = [];
  const results: (PullResult | null)[] = [];
  const pullsStarted = performance.now();
  await Promise.all(Array.from({ length: LEGITIMATE_PULLS }, async (_, index) => {
    await new Promise((resolve) => setTimeout(resolve, index * PULL_SPACING_MS));
    const started = performance.now();
    try {
      results[index] = await pull({
        token: created.token, outDir: join(dir, `out-${index}`), identityDir: join(dir, `identity-${index}`), name: `legit-${index}`,
        onProgress: (line) => {
          if (/retrying/.test(line)) retryLines.push(line);
        },
      });
    } catch (error) {
      results[index] = null;
      failures.push(isNoiseCfgError(error) ? `${error.code}: ${error.message}` : String(error));
    }
    pullTimes.push(performance.now() - started);
  }));
  const pullsMs = performance.now() - pullsStarted;

  // The established connection still works while the stranger holds its sockets.
  await established.send(encodeMessage({ type: 'HELLO', body: { protocol: 1, software: 'overload-test', name: 'established', clientId: null, have: null, intent: 'check' } }));
  const checked = expectMessage(await withTimeout(established.receive(), 10_000, 'CHECKED'), ['CHECKED']);
  const during = await stranger.stats();
  const attackMs = performance.now() - attackStarted;
  const attackLogs = logs.slice(logsBefore).filter((record) => record.event === 'handshake-failed' || record.event === 'refused');
  const strangerStats = await stranger.stop();

  const succeeded = results.filter((result) => result?.status === 'applied' && result.isAcknowledged === true).length;
  const sorted = [...pullTimes].sort((a, b) => a - b);
  const byKind = new Map<string, number>();
  for (const record of attackLogs) byKind.set(`${record.event}:${record.code ?? '-'}`, (byKind.get(`${record.event}:${record.code ?? '-'}`) ?? 0) + 1);
  t.comment(`legitimate pulls: ${succeeded} of ${LEGITIMATE_PULLS} succeeded, started ${PULL_SPACING_MS} ms apart, all done in ${Math.round(pullsMs)} ms (each ${Math.round(sorted[0] ?? 0)} to ${Math.round(sorted.at(-1) ?? 0)} ms, median ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms); ${retryLines.length} retry line(s)${retryLines.length > 0 ? `, e.g. "${retryLines[0]}"` : ''}`);
  t.comment(`the stranger made ${strangerStats.connects} connects in ${Math.round(attackMs)} ms (${Math.round(strangerStats.connects / (attackMs / 1000))}/s), ${strangerStats.busyFrames} answered with the busy frame, ${strangerStats.closedQuickly} closed within 100 ms, at most ${during.peakOpen} open at once`);
  t.comment(`log lines written during the attack: ${attackLogs.length} (${(attackLogs.length / (attackMs / 1000)).toFixed(1)}/s) ${JSON.stringify(Object.fromEntries(byKind))}`);

  t.same(failures, [], 'no legitimate pull failed');
  t.equal(succeeded, LEGITIMATE_PULLS, `${LEGITIMATE_PULLS} of ${LEGITIMATE_PULLS} legitimate pulls succeeded`);
  t.equal(checked.body.state, 'active', 'an established connection keeps working during the attack');
  t.ok(strangerStats.connects > STRANGER_SOCKETS, 'the stranger kept reconnecting as it was dropped');
  t.ok(strangerStats.busyFrames > 0, 'and was told the server is busy');
  // At most 10 lines per kind per second pass one by one, plus one summary per kind per second (RateLimitedLog).
  const kinds = Math.max(1, byKind.size);
  t.ok(attackLogs.length <= (Math.ceil(attackMs / 1000) + 1) * 11 * kinds, `the log stayed within its rate (${attackLogs.length} lines in ${(attackMs / 1000).toFixed(1)} s, ${kinds} kind(s))`);
  await established.close();
  const view = await admin.showTask(created.id);
  t.equal(view.clients.filter((client) => client.state === 'applied').length, LEGITIMATE_PULLS, 'the server recorded every legitimate client as applied');
}

t.test(`a slowloris stranger holding ${STRANGER_SOCKETS} idle sockets from one source address does not block real pulls`, async (t) => {
  await slowloris(t, ['127.0.0.2']);
});

t.test(`the same stranger spread over 32 source addresses: eviction lets real pulls in`, async (t) => {
  await slowloris(t, Array.from({ length: 32 }, (_, index) => `127.0.0.${index + 2}`));
});

t.test('a pull that meets a busy server for longer than its retry window fails with TOO_MANY_CONNECTIONS (exit 11), not as a wrong token', async (t) => {
  const dir = t.testdir();
  const server = new TaskServer({ dataDir: join(dir, 'data'), listen: { host: HOST, port: 0 }, limits: { maxEstablishedConnections: 1 } });
  const { port } = await server.start();
  t.teardown(() => server.stop(0));
  const created = await server.admin().createTask({ files: [{ path: 'a.conf', content: Buffer.from('a') }], advertise: { host: HOST, port } });
  const token = decodeToken(created.token);
  // The one established place, held.
  const holder = await connectSecure(HOST, port, {
    mode: 'xxpsk3', taskId: created.id, psk: token.psk, staticKeyPair: loadClientKeyPair(join(dir, 'holder')), serverPublicKey: token.serverPublicKey!,
  });
  t.teardown(() => holder.destroy());
  const lines: string[] = [];
  const pulling = pull({ token: created.token, outDir: join(dir, 'out'), identityDir: join(dir, 'identity'), retryForMs: 1000, onProgress: (line) => lines.push(line) });
  await t.rejects(pulling, { code: 'TOO_MANY_CONNECTIONS', message: /server busy.*gave up after \d+ attempts/ }, 'busy for the whole window: TOO_MANY_CONNECTIONS');
  t.equal(EXIT_CODE_BY_ERROR.TOO_MANY_CONNECTIONS, 11, 'which the CLI maps to exit 11 ("cannot reach the peer"), not 12');
  const retries = lines.filter((line) => /^server busy, retrying in \d+\.\d s$/.test(line));
  t.ok(retries.length >= 2, `the pull said it was retrying (${retries.length} lines, e.g. "${retries[0]}")`);

  // With the place free again, the same pull goes through at once.
  await holder.close();
  const result = await pull({ token: created.token, outDir: join(dir, 'out'), identityDir: join(dir, 'identity'), retryForMs: 5000 });
  t.equal(result.status, 'applied', 'and succeeds once there is room');
});

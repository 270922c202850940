// Overload (SPEC.md §2.4 cost argument, §2.6 limits): strangers by the thousand against one TaskServer with the
// default cap of 1024 unauthenticated connections. Past the cap a new stranger is destroyed at accept and the
// refusals are logged with a count; an established connection keeps working; legitimate pulls get through.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { join } from 'node:path';
import { pull, type PullResult } from '../../lib/task/client.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { encodeMessage, expectMessage } from '../../lib/task/messages.js';
import { TaskServer, type LogRecord } from '../../lib/task/server.js';
import { decodeToken } from '../../lib/token/token.js';
import { DEFAULT_LIMITS } from '../../lib/transport/limits.js';
import { encodePreamble } from '../../lib/transport/preamble.js';
import { connectSecure } from '../../lib/transport/secure-socket.js';
import { isNoiseCfgError } from '../../lib/errors.js';
import { HOST, randomBytesFrom, randomInt, SEED, seededRandom, withTimeout } from './support.js';

const HANDSHAKE_TIMEOUT_MS = 2000;
const MAX_UNAUTHENTICATED = DEFAULT_LIMITS.maxUnauthenticatedConnections;
const STRANGERS = 5000;
const PROBES = 200;
const LEGITIMATE_PULLS = 10;
/** Attempts each legitimate client may make while the flood is on, with a short pause after a refusal. */
const MAX_PULL_ATTEMPTS = 200;
const RETRY_PAUSE_MS = 100;
/** The sustained flood ends when the legitimate pulls are done, or after this long. */
const FLOOD_MAX_MS = 40_000;

/** One stranger socket: connected, what it sent, when it closed and whether the test had to close it. */
interface StrangerSocket {
  socket: Socket;
  connected: Promise<number>;
  closed: Promise<{ openMs: number; receivedBytes: number }>;
}

const openSockets = new Set<Socket>();

/** File descriptors this process holds now (client and server ends of every socket are in this one process). */
const openFds = (): number => readdirSync('/proc/self/fd').length;

function openStranger(port: number, behaviour: 'idle' | 'junk' | 'slow-preamble', random: () => number, taskId: string): StrangerSocket {
  const socket = net.connect({ host: HOST, port });
  openSockets.add(socket);
  let connectedAt = 0;
  let receivedBytes = 0;
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    receivedBytes += chunk.byteLength;
  });
  const connected = new Promise<number>((resolve, reject) => {
    socket.once('connect', () => {
      connectedAt = performance.now();
      if (behaviour === 'junk') socket.write(randomBytesFrom(random, randomInt(random, 1, 512)));
      // A preamble that never completes: it holds a slot until the handshake deadline.
      if (behaviour === 'slow-preamble') socket.write(encodePreamble('xxpsk3', taskId).subarray(0, randomInt(random, 1, 20)));
      resolve(connectedAt);
    });
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
  connected.catch(() => undefined);
  const closed = new Promise<{ openMs: number; receivedBytes: number }>((resolve) => socket.once('close', () => {
    openSockets.delete(socket);
    resolve({ openMs: connectedAt === 0 ? -1 : performance.now() - connectedAt, receivedBytes });
  }));
  return { socket, connected, closed };
}

/** The soft limit on open files of this process. */
function openFilesLimit(): string {
  return /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '?';
}

const percentile = (values: number[], fraction: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
};

t.test(`${STRANGERS} strangers against the cap of ${MAX_UNAUTHENTICATED}: refused cheaply, while real clients get through`, async (t) => {
  const dir = t.testdir();
  const logs: LogRecord[] = [];
  const refusedWaiters: (() => void)[] = [];
  const server = new TaskServer({
    dataDir: join(dir, 'data'),
    listen: { host: HOST, port: 0 },
    limits: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
    log: (record) => {
      logs.push(record);
      if (record.event === 'refused') for (const wake of refusedWaiters.splice(0)) wake();
    },
  });
  const { port } = await server.start();
  t.teardown(async () => {
    for (const socket of openSockets) socket.destroy();
    await server.stop(0);
  });
  const admin = server.admin();
  const created = admin.createTask({ files: [{ path: 'app.conf', content: Buffer.from('listen = 8080\n') }], advertise: { host: HOST, port } });
  const token = decodeToken(created.token);
  const random = seededRandom(SEED);
  const refusedCount = (from: number): number => logs.slice(from).filter((record) => record.event === 'refused').reduce((sum, record) => sum + Number(/refused (\d+) connection/.exec(record.message ?? '')?.[1] ?? 0), 0);
  const nextRefusalReport = (): Promise<void> => new Promise((resolve) => refusedWaiters.push(resolve));

  // An established connection, opened before any stranger: it must keep working throughout.
  const established = await connectSecure(HOST, port, {
    mode: 'xxpsk3', taskId: created.id, psk: token.psk, staticKeyPair: loadClientKeyPair(join(dir, 'established')), serverPublicKey: token.serverPublicKey!,
  });
  t.teardown(() => established.destroy());

  // 1. Saturate: exactly the cap of idle strangers, then probes past it. Node accepts one connection per turn of
  // the event loop and the listen backlog is 511, so the holders go in batches, each followed by enough turns for
  // the server to accept the whole batch; otherwise the kernel drops handshakes and clients retry a second later.
  const holdersStarted = performance.now();
  const holders: StrangerSocket[] = [];
  const BATCH = 128;
  for (let batch = 0; batch < MAX_UNAUTHENTICATED; batch += BATCH) {
    const opened = Array.from({ length: Math.min(BATCH, MAX_UNAUTHENTICATED - batch) }, () => openStranger(port, 'idle', random, created.id));
    holders.push(...opened);
    await Promise.all(opened.map((stranger) => stranger.connected));
    for (let turn = 0; turn < 2 * BATCH; turn++) await new Promise((resolve) => setImmediate(resolve));
  }
  t.comment(`${MAX_UNAUTHENTICATED} holders connected in ${Math.round(performance.now() - holdersStarted)} ms`);
  const attempts: number[] = [];
  const refusedAttempts = [0, 0];
  const errorCodes = new Map<string, number>();
  const legitimatePull = async (index: number, round: number): Promise<PullResult | null> => {
    for (let attempt = 1; attempt <= MAX_PULL_ATTEMPTS; attempt++) {
      try {
        const result = await pull({ token: created.token, outDir: join(dir, `out-${index}`), identityDir: join(dir, `identity-${index}`), name: `legit-${index}` });
        attempts[index] = attempt;
        return result;
      } catch (error) {
        const code = isNoiseCfgError(error) ? error.code : (error as Error).message;
        errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
        refusedAttempts[round]!++;
        // A refused connection looks like a closed handshake to the client; try again shortly.
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
    attempts[index] = MAX_PULL_ATTEMPTS;
    return null;
  };
  // The first legitimate clients start as soon as the cap is full: their first attempts meet a full cap for certain,
  // as long as the first holders are still within their deadline (on a very loaded machine they may not be).
  const saturatedAt = performance.now();
  const pullStarted = performance.now();
  const isCapSurelyFull = pullStarted - holdersStarted < HANDSHAKE_TIMEOUT_MS - 300;
  t.comment(`the first legitimate clients start ${Math.round(pullStarted - holdersStarted)} ms after the first holder connected (holders are dropped at ${HANDSHAKE_TIMEOUT_MS} ms)`);
  const firstRound = Promise.all(Array.from({ length: LEGITIMATE_PULLS / 2 }, (_, index) => legitimatePull(index, 0)));
  const logsBeforeProbes = logs.length;
  const probes = Array.from({ length: PROBES }, () => openStranger(port, 'idle', random, created.id));
  const probeResults = await withTimeout(Promise.all(probes.map((probe) => probe.closed)), HANDSHAKE_TIMEOUT_MS * 3, 'the probes to close');
  const probeMs = probeResults.map((result) => result.openMs);
  const probingTookMs = performance.now() - saturatedAt;
  // An accepted idle stranger would be held until the handshake deadline; a refused one is closed at once. That
  // holds while every holder is within its deadline, which a very loaded machine may not leave time for.
  const isProbeWindowValid = performance.now() - holdersStarted < HANDSHAKE_TIMEOUT_MS - 100;
  t.comment(`the probes took ${Math.round(probingTookMs)} ms, ending ${Math.round(performance.now() - holdersStarted)} ms after the first holder connected`);
  if (isProbeWindowValid) {
    t.ok(probeMs.every((ms) => ms >= 0 && ms < HANDSHAKE_TIMEOUT_MS / 2), `all ${PROBES} strangers past the cap were closed at once, not at the deadline`, { slowest: Math.max(...probeMs) });
  } else {
    t.comment(`the machine was too loaded to probe within the holders' deadline; ${probeMs.filter((ms) => ms < HANDSHAKE_TIMEOUT_MS / 2).length} of ${PROBES} probes were closed at once`);
  }
  t.ok(probeResults.every((result) => result.receivedBytes === 0), 'and were sent nothing');
  t.comment(`refusal latency past the cap: median ${percentile(probeMs, 0.5).toFixed(1)} ms, p99 ${percentile(probeMs, 0.99).toFixed(1)} ms, max ${Math.max(...probeMs).toFixed(1)} ms`);
  const holdersOpen = holders.filter((holder) => !holder.socket.destroyed).length;
  t.comment(`${holdersOpen} of ${MAX_UNAUTHENTICATED} holders still open after the probes`);

  // 2. The sustained flood: 5000 stranger slots, half idle, half garbage (junk that is dropped at once, or a
  // preamble that never completes). They connect in batches the server can accept (as above), so that each one
  // really reaches it; past the cap the server refuses them. A slot whose socket closes opens a new one; after a
  // quick close it pauses first, so that the flood stays at the cap without spinning both cores on connect/refuse.
  const floodLogStart = logs.length;
  const floodEnd = { at: performance.now() + FLOOD_MAX_MS, isOver: false };
  const floodStats = { connections: 0, connected: 0, closedFast: 0, heldToDeadline: 0, open: 0, peakOpen: 0, peakFds: openFds() };
  const track = (stranger: StrangerSocket): StrangerSocket => {
    floodStats.connections++;
    stranger.connected.then(() => {
      floodStats.connected++;
      floodStats.open++;
      if (floodStats.open > floodStats.peakOpen) {
        floodStats.peakOpen = floodStats.open;
        if (floodStats.peakOpen % 250 === 0) floodStats.peakFds = Math.max(floodStats.peakFds, openFds());
      }
      void stranger.closed.then(() => floodStats.open--);
    }, () => undefined);
    return stranger;
  };
  const behaviourOf = (index: number): 'idle' | 'junk' | 'slow-preamble' => (index % 2 === 0 ? 'idle' : index % 4 === 1 ? 'junk' : 'slow-preamble');
  const slot = async (index: number, first: StrangerSocket): Promise<void> => {
    let stranger = first;
    for (let round = 0; round < 100; round++) {
      const { openMs } = await stranger.closed;
      if (openMs >= HANDSHAKE_TIMEOUT_MS * 0.9) floodStats.heldToDeadline++;
      else floodStats.closedFast++;
      if (floodEnd.isOver || performance.now() >= floodEnd.at) return;
      if (openMs < HANDSHAKE_TIMEOUT_MS * 0.9) await new Promise((resolve) => setTimeout(resolve, 1000 + Math.floor(random() * 1000)));
      if (floodEnd.isOver) return;
      stranger = track(openStranger(port, behaviourOf(index), random, created.id));
    }
  };
  // The flood starts now, with the first round of legitimate clients under way; the second round competes with it
  // for the slots that free up.
  const slots: Promise<void>[] = [];
  const floodStarted = performance.now();
  let firstWaveMs = 0;
  const firstWave = (async () => {
    const FLOOD_BATCH = 256;
    for (let batch = 0; batch < STRANGERS; batch += FLOOD_BATCH) {
      const opened = Array.from({ length: Math.min(FLOOD_BATCH, STRANGERS - batch) }, (_, offset) => {
        const stranger = track(openStranger(port, behaviourOf(batch + offset), random, created.id));
        slots.push(slot(batch + offset, stranger));
        return stranger;
      });
      await Promise.all(opened.map((stranger) => stranger.connected.catch(() => undefined)));
      for (let turn = 0; turn < FLOOD_BATCH; turn++) await new Promise((resolve) => setImmediate(resolve));
    }
    firstWaveMs = performance.now() - floodStarted;
  })();

  if (refusedCount(logsBeforeProbes) < PROBES) await withTimeout(nextRefusalReport(), 3000, 'the refusal report');
  const refusals = logs.slice(logsBeforeProbes).filter((record) => record.event === 'refused');
  t.ok(refusals.length > 0 && refusals.every((record) => record.code === 'TOO_MANY_CONNECTIONS' && /refused \d+ connection\(s\): 1024 unauthenticated/.test(record.message ?? '')), 'the server logs refused TOO_MANY_CONNECTIONS with a count', { refusals });
  t.ok(refusedCount(logsBeforeProbes) >= PROBES, `the counts cover the ${PROBES} probes (${refusedCount(logsBeforeProbes)} so far)`);

  // The established connection still works while the cap is full (the holders and the flood fill it).
  await established.send(encodeMessage({ type: 'HELLO', body: { protocol: 1, software: 'overload-test', name: 'established', clientId: null, have: null, intent: 'check' } }));
  const checked = expectMessage(await withTimeout(established.receive(), 5000, 'CHECKED'), ['CHECKED']);
  t.equal(checked.body.state, 'active', 'an established connection keeps working while the cap is full');
  await established.close();

  const firstRoundResults = await firstRound;
  await withTimeout(firstWave, FLOOD_MAX_MS, `the first ${STRANGERS} strangers to connect`);
  t.comment(`the first ${STRANGERS} strangers connected in ${Math.round(firstWaveMs)} ms`);
  const secondRound = await Promise.all(Array.from({ length: LEGITIMATE_PULLS / 2 }, (_, index) => legitimatePull(LEGITIMATE_PULLS / 2 + index, 1)));
  const results = [...firstRoundResults, ...secondRound];
  const pullMs = performance.now() - pullStarted;
  const floodStillOn = performance.now() < floodEnd.at;
  floodEnd.isOver = true;
  for (const socket of openSockets) socket.destroy();
  await withTimeout(Promise.all(slots), 10_000, 'the flood to wind down');

  const floodRefused = refusedCount(floodLogStart);
  t.comment(`flood: ${floodStats.connections} stranger connections from ${STRANGERS} slots (${floodStats.connected} connected, at most ${floodStats.peakOpen} open at once on the client side), ${floodRefused} refused by the server (TOO_MANY_CONNECTIONS), ${floodStats.heldToDeadline} held to the deadline, ${floodStats.closedFast} closed early (refused, or junk dropped)`);
  t.comment(`legitimate pulls: ${results.filter((result) => result?.status === 'applied').length} of ${LEGITIMATE_PULLS} applied in ${Math.round(pullMs)} ms; attempts per client ${JSON.stringify(attempts)} (the first ${LEGITIMATE_PULLS / 2} while the cap was surely full, the rest during the sustained flood); errors seen by refused attempts ${JSON.stringify(Object.fromEntries(errorCodes))}`);
  t.comment(`file descriptors: at most ${floodStats.peakFds} sampled during the flood (limit ${openFilesLimit()}), ${openFds()} after it`);
  t.ok(floodStats.connected >= STRANGERS, `all ${STRANGERS} strangers of the first wave reached the server`);
  if (isCapSurelyFull) t.ok(refusedAttempts[0]! > 0, `the first round met the full cap (${refusedAttempts[0]} of its attempts were refused)`);
  else t.comment(`the machine was too loaded to be sure the first round met a full cap; it had ${refusedAttempts[0]} refused attempts`);
  t.comment(`the second round, during the sustained flood: ${refusedAttempts[1]} attempts refused`);
  t.ok(floodRefused >= STRANGERS / 2, `most strangers past the cap were refused (${floodRefused})`);
  t.ok(floodStillOn, 'the legitimate pulls finished while the flood was still on');
  t.ok(results.every((result) => result?.status === 'applied' && result.isAcknowledged === true), `all ${LEGITIMATE_PULLS} legitimate pulls succeeded within ${MAX_PULL_ATTEMPTS} attempts each`);

  const reportTimes = logs.filter((record) => record.event === 'refused').map((record) => Date.parse(record.time));
  const gaps = reportTimes.slice(1).map((time, index) => time - reportTimes[index]!);
  t.ok(gaps.every((gap) => gap >= 990), `refusals are reported at most once a second (${reportTimes.length} reports, shortest gap ${Math.min(...gaps)} ms)`);

  // Once the strangers are gone, a client gets in at the first attempt.
  const after = await pull({ token: created.token, outDir: join(dir, 'out-after'), identityDir: join(dir, 'identity-after'), name: 'after' });
  t.equal(after.status, 'applied', 'after the flood a pull succeeds at once');
  const view = admin.showTask(created.id);
  t.equal(view.clients.length, LEGITIMATE_PULLS + 1, 'only the legitimate clients have records');
});

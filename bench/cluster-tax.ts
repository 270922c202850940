/**
 * Section 6's peer of the `--workers 2` comparison: what a second process costs on this machine whatever it serves.
 * A bare handshake server (Node's TLS 1.3-PSK, or noise-cfg's XXpsk3 channel with no task layer and no store) runs
 * in one and in two node:cluster workers, scheduled as the pool is, in alternating runs; and one X25519 is timed
 * back to back and right after a 1 ms sleep, which is what each wake of an idle process costs here. Two workers
 * split the load, so each is idle, and wakes, more often than one process would be.
 */
import sodium from 'sodium-native';
import { generateKeyPair } from '../lib/index.js';
import type { ServerKind } from './fixtures.js';
import { figure, type Figure } from './stats.js';
import { BenchServer, handshakeRun } from './tcp.js';

/** One server kind in one and in two workers: server CPU per handshake (all processes) and handshakes per second. */
export interface ClusterComparison {
  singleMicros: Figure;
  poolMicros: Figure;
  /** Paired: two workers' server CPU per handshake over one worker's. */
  cpuRatio: Figure;
  /** Paired: two workers' handshakes per second over one worker's. */
  throughputRatio: Figure;
}

async function clusterRun(workers: number, kind: ServerKind, concurrency: number, durationMs: number): Promise<{ micros: number; perSecond: number }> {
  const server = await BenchServer.startCluster(workers, kind);
  try {
    await handshakeRun(server, kind, concurrency, Math.min(500, durationMs));
    const measured = await handshakeRun(server, kind, concurrency, durationMs);
    return { micros: measured.serverMicrosPerHandshake, perSecond: measured.perSecond };
  } finally {
    await server.stop();
  }
}

/** `runs` alternating pairs of one worker and two, each `durationMs` of handshakes at `concurrency`. */
export async function clusterComparison(kind: ServerKind, runs: number, concurrency: number, durationMs: number): Promise<ClusterComparison> {
  const single: number[] = [];
  const pool: number[] = [];
  const cpuRatios: number[] = [];
  const throughputRatios: number[] = [];
  for (let run = 0; run < runs; run++) {
    const one = await clusterRun(1, kind, concurrency, durationMs);
    const two = await clusterRun(2, kind, concurrency, durationMs);
    single.push(one.micros);
    pool.push(two.micros);
    cpuRatios.push(two.micros / one.micros);
    throughputRatios.push(two.perSecond / one.perSecond);
  }
  return { singleMicros: figure(single), poolMicros: figure(pool), cpuRatio: figure(cpuRatios), throughputRatio: figure(throughputRatios) };
}

/** CPU per X25519, back to back and each after a 1 ms sleep, in µs; the difference is the CPU of one wake. */
export interface WakeCost {
  backToBackMicros: Figure;
  afterSleepMicros: Figure;
}

async function cpuPerOperation(budgetMs: number, operation: () => void, pause: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < budgetMs) {
    operation();
    count++;
    await pause();
  }
  const cpu = process.cpuUsage(before);
  return (cpu.user + cpu.system) / count;
}

/** `runs` alternating measurements of about `budgetMs` each. */
export async function measureWakeCost(runs: number, budgetMs: number): Promise<WakeCost> {
  const keys = generateKeyPair();
  const other = generateKeyPair();
  const shared = Buffer.alloc(32);
  const exchange = (): void => sodium.crypto_scalarmult(shared, keys.secretKey, other.publicKey);
  const backToBack: number[] = [];
  const afterSleep: number[] = [];
  for (let run = 0; run < runs; run++) {
    // setImmediate keeps the event loop's turn between operations without letting the process sleep.
    backToBack.push(await cpuPerOperation(budgetMs, exchange, () => new Promise((resolve) => setImmediate(resolve))));
    afterSleep.push(await cpuPerOperation(budgetMs, exchange, () => new Promise((resolve) => setTimeout(resolve, 1))));
  }
  return { backToBackMicros: figure(backToBack), afterSleepMicros: figure(afterSleep) };
}

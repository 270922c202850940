/**
 * Section 6: whole pulls through the library against the task server in processes of its own: one process on
 * SQLite, a `serve --workers` pool, or a fleet of nodes on one PostgreSQL database.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLEET_KEY_FILES, parseStoreLocation, pull, TaskAdmin } from '../lib/index.js';
import type { PostgresCluster } from '../tools/postgres-cluster.js';
import { protocolPull } from './protocol-client.js';
import { figure, type Figure } from './stats.js';
import { BenchServer } from './tcp.js';

/** What a run pulls from: one token per server (clients take them in turn), and the costs of all of them. */
interface PullTarget {
  tokens: readonly string[];
  /** CPU of the noise-cfg processes and their commits; `storeCpuMicros`, of the PostgreSQL server (0 for SQLite, which runs inside them). */
  stats(): Promise<{ cpuMicros: number; commits: number; storeCpuMicros: number }>;
  stop(): Promise<void>;
}

function serverTarget(server: BenchServer): PullTarget {
  return {
    tokens: [server.token],
    stats: async () => ({ ...(await server.stats()), storeCpuMicros: 0 }),
    stop: () => server.stop(),
  };
}

let fleets = 0;

/**
 * Where the load generator's clients write their output and identity directories: a memory file system when one
 * has room for `pulls` clients of a task of `taskBytes`, else the temporary directory. Each pull is durable on
 * the client (about 9 fsyncs: the staging, the version and state.json), and on this machine's disk that cost the
 * load generator 5.3–6.5 ms of system time per pull against the server's 1.1–1.3 ms, on the same two cores: the
 * clients, not the server, were the bound on pulls per second (147–172 a second; 302–310 with the clients in
 * memory). Every run of a comparison puts its clients in the same place, so the ratios compare servers alike.
 */
export function clientWorkRoot(pulls: number, taskBytes: number): string {
  // Each client holds its version and, while it applies, a staged copy: twice the task, with room to spare.
  const bytes = pulls * (taskBytes * 3 + 64 * 1024);
  try {
    const memory = statfsSync('/dev/shm');
    if (memory.bavail * memory.bsize > bytes) return '/dev/shm';
  } catch {
    // No /dev/shm (not Linux): the temporary directory.
  }
  return tmpdir();
}

/**
 * `nodes` task servers on a new database of `cluster`, each with its own data directory holding the first's keys,
 * and a task of `taskBytes` created through the first; the database is dropped at stop.
 */
async function startFleet(cluster: PostgresCluster, nodes: number, taskBytes: number): Promise<PullTarget> {
  const database = `bench_fleet_${process.pid}_${++fleets}`;
  cluster.psql(`CREATE DATABASE ${database}`);
  const store = `postgres://${cluster.user}@/${database}?host=${encodeURIComponent(cluster.socketDir)}&port=${cluster.port}`;
  const dirs = Array.from({ length: nodes }, () => mkdtempSync(join(tmpdir(), 'noise-cfg-bench-node-')));
  const admin = await TaskAdmin.open(dirs[0]!, { create: true, store: parseStoreLocation(store) });
  const servers: BenchServer[] = [];
  const tokens: string[] = [];
  try {
    const created = await admin.createTask({ files: [{ path: 'bench/payload.bin', content: Buffer.alloc(taskBytes, 0x42) }], ttlSeconds: 3600 });
    for (const dir of dirs.slice(1)) for (const file of FLEET_KEY_FILES) copyFileSync(join(dirs[0]!, file), join(dir, file));
    for (const dir of dirs) servers.push(await BenchServer.startNode(dir, store));
    for (const server of servers) tokens.push((await admin.taskToken(created.id, { host: '127.0.0.1', port: server.port })).token);
  } finally {
    await admin.close();
  }
  return {
    tokens,
    stats: async () => {
      const each = await Promise.all(servers.map((server) => server.stats()));
      return { cpuMicros: each.reduce((sum, stats) => sum + stats.cpuMicros, 0), commits: each.reduce((sum, stats) => sum + stats.commits, 0), storeCpuMicros: cluster.cpuMicros() };
    },
    stop: async () => {
      await Promise.all(servers.map((server) => server.stop()));
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      cluster.psql(`DROP DATABASE ${database}`);
    },
  };
}

export interface PullFigures {
  pulls: number;
  concurrency: number;
  taskBytes: number;
  pullsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  serverMicrosPerPull: number;
  /** CPU of the PostgreSQL server per pull; 0 on SQLite. */
  storeMicrosPerPull: number;
  /** CPU of the load generator (this process: the clients' handshakes, files and fsyncs) per pull. */
  clientMicrosPerPull: number;
  fsyncsPerPull: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

/**
 * What makes the pulls: `pull()` itself, as `noise-cfg pull` runs it (files, identity, fsyncs), or the protocol-level
 * client of protocol-client.ts, which does the server the same work and writes nothing.
 */
export type LoadGenerator = 'pull' | 'protocol';

/** What serves a run: one process on SQLite, a pool of `workers` on SQLite, or `nodes` on PostgreSQL. */
export type PullServer = { workers: number } | { nodes: number; cluster: PostgresCluster };

function startTarget(server: PullServer, taskBytes: number): Promise<PullTarget> {
  if ('nodes' in server) return startFleet(server.cluster, server.nodes, taskBytes);
  return (server.workers === 1 ? BenchServer.start('pull', 'handshake', 0, taskBytes) : BenchServer.startPool(server.workers, taskBytes)).then(serverTarget);
}

/**
 * Untimed pulls before each measured run (or the run's own count, when smaller: the 4 MiB pulls), spread over
 * the run's servers: a server process's first pulls pay for its JIT compilation, its database connections and
 * prepared statements and its content cache, once per process, so without them a fleet of two nodes paid twice
 * what one process paid on the same count.
 */
const WARM_UP_PULLS = 200;

/**
 * `count` pulls of a task of `taskBytes`, `concurrency` at a time, each by a new client identity, from `serving`
 * (by default one server process); server CPU and commits are of every noise-cfg process, and the PostgreSQL
 * server's CPU is counted apart.
 */
export async function pullRun(count: number, concurrency: number, taskBytes: number, serving: PullServer = { workers: 1 }, loadGenerator: LoadGenerator = 'pull'): Promise<PullFigures> {
  const server = await startTarget(serving, taskBytes);
  const warmUpPulls = Math.min(WARM_UP_PULLS, count);
  const work = loadGenerator === 'pull' ? mkdtempSync(join(clientWorkRoot(count + warmUpPulls, taskBytes), 'noise-cfg-bench-clients-')) : null;
  try {
    // Pulls numbered from `first`, `concurrency` at a time: how many did not apply, and each one's latency.
    const pullMany = async (first: number, pulls: number): Promise<{ failures: number; latencies: number[] }> => {
      const latencies: number[] = [];
      let next = first;
      let failures = 0;
      await Promise.all(Array.from({ length: Math.min(concurrency, pulls) }, async () => {
        while (next < first + pulls) {
          const index = next++;
          const token = server.tokens[index % server.tokens.length]!;
          const begun = performance.now();
          if (work === null) {
            if (await protocolPull(token, `bench-${index}`) !== 'applied') failures++;
          } else {
            mkdirSync(join(work, `c${index}`));
            const result = await pull({ token, outDir: join(work, `c${index}`, 'out'), identityDir: join(work, `c${index}`, 'id'), name: `bench-${index}` });
            if (result.status !== 'applied') failures++;
          }
          latencies.push(performance.now() - begun);
        }
      }));
      return { failures, latencies };
    };
    const warmUp = await pullMany(count, warmUpPulls);
    if (warmUp.failures > 0) throw new Error(`${warmUp.failures} warm-up pulls did not apply`);
    const before = await server.stats();
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    const { failures, latencies } = await pullMany(0, count);
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = process.cpuUsage(clientBefore);
    const after = await server.stats();
    if (failures > 0) throw new Error(`${failures} pulls did not apply`);
    latencies.sort((a, b) => a - b);
    return {
      pulls: count, concurrency, taskBytes,
      pullsPerSecond: count / seconds,
      latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) },
      serverMicrosPerPull: (after.cpuMicros - before.cpuMicros) / count,
      storeMicrosPerPull: (after.storeCpuMicros - before.storeCpuMicros) / count,
      clientMicrosPerPull: (clientCpu.user + clientCpu.system) / count,
      fsyncsPerPull: (after.commits - before.commits) / count,
    };
  } finally {
    await server.stop();
    if (work !== null) rmSync(work, { recursive: true, force: true });
  }
}

type PullFigureSet = Record<'pullsPerSecond' | 'p50Ms' | 'p99Ms' | 'serverMicrosPerPull' | 'storeMicrosPerPull' | 'clientMicrosPerPull' | 'fsyncsPerPull', Figure>;

function figures(results: readonly PullFigures[]): PullFigureSet {
  return {
    pullsPerSecond: figure(results.map((result) => result.pullsPerSecond)),
    p50Ms: figure(results.map((result) => result.latencyMs.p50)),
    p99Ms: figure(results.map((result) => result.latencyMs.p99)),
    serverMicrosPerPull: figure(results.map((result) => result.serverMicrosPerPull)),
    storeMicrosPerPull: figure(results.map((result) => result.storeMicrosPerPull)),
    clientMicrosPerPull: figure(results.map((result) => result.clientMicrosPerPull)),
    fsyncsPerPull: figure(results.map((result) => result.fsyncsPerPull)),
  };
}

/** Several pull runs as figures. */
export async function pullFigures(runs: number, count: number, concurrency: number, taskBytes: number): Promise<PullFigureSet> {
  const results: PullFigures[] = [];
  for (let run = 0; run < runs; run++) results.push(await pullRun(count, concurrency, taskBytes));
  return figures(results);
}

/**
 * One process against a pool of `workers`, in alternating runs: the figures of each, and the paired ratios of
 * server CPU per pull and of pulls per second (pool / one process).
 */
export async function pullPoolComparison(runs: number, count: number, concurrency: number, taskBytes: number, workers: number, loadGenerator: LoadGenerator = 'pull'): Promise<{
  single: PullFigureSet; pool: PullFigureSet; cpuRatio: Figure; throughputRatio: Figure;
}> {
  const single: PullFigures[] = [];
  const pool: PullFigures[] = [];
  for (let run = 0; run < runs; run++) {
    single.push(await pullRun(count, concurrency, taskBytes, { workers: 1 }, loadGenerator));
    pool.push(await pullRun(count, concurrency, taskBytes, { workers }, loadGenerator));
  }
  return {
    single: figures(single),
    pool: figures(pool),
    cpuRatio: figure(pool.map((result, run) => result.serverMicrosPerPull / single[run]!.serverMicrosPerPull)),
    throughputRatio: figure(pool.map((result, run) => result.pullsPerSecond / single[run]!.pullsPerSecond)),
  };
}

/**
 * One process on SQLite against one and two nodes on PostgreSQL, in alternating runs: the figures of each, and
 * paired ratios (fleet / one process) of server CPU per pull, the noise-cfg processes alone and with the
 * PostgreSQL server's CPU added (SQLite's work is inside the one process), and of pulls per second.
 */
export async function pullPostgresComparison(runs: number, count: number, concurrency: number, taskBytes: number, cluster: PostgresCluster): Promise<{
  single: PullFigureSet; fleets: { nodes: number; pulls: PullFigureSet; cpuRatio: Figure; cpuWithStoreRatio: Figure; throughputRatio: Figure }[];
}> {
  const single: PullFigures[] = [];
  const byNodes = new Map<number, PullFigures[]>([[1, []], [2, []]]);
  for (let run = 0; run < runs; run++) {
    single.push(await pullRun(count, concurrency, taskBytes));
    for (const [nodes, results] of byNodes) results.push(await pullRun(count, concurrency, taskBytes, { nodes, cluster }));
  }
  return {
    single: figures(single),
    fleets: [...byNodes].map(([nodes, results]) => ({
      nodes,
      pulls: figures(results),
      cpuRatio: figure(results.map((result, run) => result.serverMicrosPerPull / single[run]!.serverMicrosPerPull)),
      cpuWithStoreRatio: figure(results.map((result, run) => (result.serverMicrosPerPull + result.storeMicrosPerPull) / single[run]!.serverMicrosPerPull)),
      throughputRatio: figure(results.map((result, run) => result.pullsPerSecond / single[run]!.pullsPerSecond)),
    })),
  };
}

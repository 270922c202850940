/** Section 6: whole pulls through the library against the task server in its own process. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pull } from '../lib/index.js';
import { figure, type Figure } from './stats.js';
import { BenchServer } from './tcp.js';

export interface PullFigures {
  pulls: number;
  concurrency: number;
  taskBytes: number;
  pullsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  serverMicrosPerPull: number;
  fsyncsPerPull: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

/**
 * `count` pulls of a task of `taskBytes`, `concurrency` at a time, each by a new client identity, from one server
 * process (`workers` 1) or a pool of `workers` (serve --workers); server CPU and commits are of every process.
 */
export async function pullRun(count: number, concurrency: number, taskBytes: number, workers = 1): Promise<PullFigures> {
  const server = workers === 1 ? await BenchServer.start('pull', 'handshake', 0, taskBytes) : await BenchServer.startPool(workers, taskBytes);
  const work = mkdtempSync(join(tmpdir(), 'noise-cfg-bench-clients-'));
  const latencies: number[] = [];
  try {
    for (let i = 0; i < count; i++) mkdirSync(join(work, `c${i}`));
    const before = await server.stats();
    const started = performance.now();
    let next = 0;
    let failures = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const index = next++;
        const begun = performance.now();
        const result = await pull({ token: server.token, outDir: join(work, `c${index}`, 'out'), identityDir: join(work, `c${index}`, 'id'), name: `bench-${index}` });
        if (result.status !== 'applied') failures++;
        latencies.push(performance.now() - begun);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    const after = await server.stats();
    if (failures > 0) throw new Error(`${failures} pulls did not apply`);
    latencies.sort((a, b) => a - b);
    return {
      pulls: count, concurrency, taskBytes,
      pullsPerSecond: count / seconds,
      latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) },
      serverMicrosPerPull: (after.cpuMicros - before.cpuMicros) / count,
      fsyncsPerPull: (after.commits - before.commits) / count,
    };
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

type PullFigureSet = Record<'pullsPerSecond' | 'p50Ms' | 'p99Ms' | 'serverMicrosPerPull' | 'fsyncsPerPull', Figure>;

function figures(results: readonly PullFigures[]): PullFigureSet {
  return {
    pullsPerSecond: figure(results.map((result) => result.pullsPerSecond)),
    p50Ms: figure(results.map((result) => result.latencyMs.p50)),
    p99Ms: figure(results.map((result) => result.latencyMs.p99)),
    serverMicrosPerPull: figure(results.map((result) => result.serverMicrosPerPull)),
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
export async function pullPoolComparison(runs: number, count: number, concurrency: number, taskBytes: number, workers: number): Promise<{
  single: PullFigureSet; pool: PullFigureSet; cpuRatio: Figure; throughputRatio: Figure;
}> {
  const single: PullFigures[] = [];
  const pool: PullFigures[] = [];
  for (let run = 0; run < runs; run++) {
    single.push(await pullRun(count, concurrency, taskBytes));
    pool.push(await pullRun(count, concurrency, taskBytes, workers));
  }
  return {
    single: figures(single),
    pool: figures(pool),
    cpuRatio: figure(pool.map((result, run) => result.serverMicrosPerPull / single[run]!.serverMicrosPerPull)),
    throughputRatio: figure(pool.map((result, run) => result.pullsPerSecond / single[run]!.pullsPerSecond)),
  };
}

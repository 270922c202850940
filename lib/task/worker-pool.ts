/**
 * `serve --workers N` (SPEC.md §4.10): N update-server processes, node:cluster workers, share the listen and API
 * ports and one data directory with its store (SQLite in WAL mode or PostgreSQL; each worker has its own handle
 * and group commit).
 * This module is both ends. The primary holds the directory's lock, makes the keys, checks the store and
 * interrupts what an earlier run left, starts the workers and supervises them: a worker that dies is restarted,
 * with one log line, and the sessions it was serving become `interrupted`; stop() drains every worker under the
 * same grace as a single server. A worker learns its role from workerRole() and reports with reportWorkerReady()
 * or reportWorkerFailed().
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { isNoiseCfgError, NoiseCfgError, type ErrorCode } from '../errors.js';
import { openDataDir, prepareDataDir, type DataDir } from './data-dir.js';
import { DataDirLock } from './data-dir-lock.js';
import { LOST_AT_RESTART } from './server.js';
import type { LogRecord } from './server-options.js';
import { openTaskStore } from './open-store.js';
import { newServedBy, nodeId, restartScope, SERVED_BY_LENGTH } from './served-by.js';
import type { TaskStoreContract } from './store-contract.js';
import type { StoreLocation } from './store-location.js';

/** The most workers `--workers` takes: far more than any machine this runs on has cores. */
export const MAX_WORKERS = 256;
/** A worker that dies sooner than this after it started is restarted only after RESTART_DELAY_MS. */
export const RESTART_BACKOFF_WINDOW_MS = 5000;
/** How long a restart waits after a worker that died young, in milliseconds: a crash loop costs one start a second. */
export const RESTART_DELAY_MS = 1000;
/** What stop() adds to the grace before it kills a worker that has not drained, in milliseconds. */
export const STOP_MARGIN_MS = 5000;

const WORKER_ID_ENV = 'NOISE_CFG_WORKER_ID';
const WORKER_SWEEPS_ENV = 'NOISE_CFG_WORKER_SWEEPS';
const LOST_AT_WORKER_EXIT = 'the server process serving this client ended';

/** An address a worker listens on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** What a worker tells the primary once it serves. */
export interface WorkerReady {
  address: ListenAddress;
  api: ListenAddress | null;
}

/** `code` is null for an error the worker did not foresee. */
type WorkerMessage = ({ type: 'noise-cfg:ready' } & WorkerReady) | { type: 'noise-cfg:failed'; code: ErrorCode | null; message: string };

/** `--workers`: a whole number from 1 to MAX_WORKERS, or `auto` (the CPUs this process may use). Null when malformed. */
export function parseWorkerCount(text: string): number | null {
  if (text === 'auto') return Math.min(availableParallelism(), MAX_WORKERS);
  if (!/^[0-9]+$/.test(text)) return null;
  const count = Number(text);
  return count >= 1 && count <= MAX_WORKERS ? count : null;
}

/** In a worker of a pool: its name in client records and whether it sweeps; null in any other process. */
export function workerRole(): { servedBy: string; sweeps: boolean } | null {
  const servedBy = process.env[WORKER_ID_ENV];
  if (!cluster.isWorker || servedBy === undefined || !new RegExp(`^[0-9a-f]{${SERVED_BY_LENGTH}}$`).test(servedBy)) return null;
  return { servedBy, sweeps: process.env[WORKER_SWEEPS_ENV] === '1' };
}

/** In a worker: tells the primary it serves. */
export function reportWorkerReady(ready: WorkerReady): void {
  const message: WorkerMessage = { type: 'noise-cfg:ready', ...ready };
  process.send?.(message);
}

/** In a worker: tells the primary why it could not start (the primary reports it; the worker then exits). */
export function reportWorkerFailed(error: unknown): Promise<void> {
  const message: WorkerMessage = isNoiseCfgError(error)
    ? { type: 'noise-cfg:failed', code: error.code, message: error.message }
    : { type: 'noise-cfg:failed', code: null, message: (error as Error).message };
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, undefined, {}, () => resolve());
  });
}

/** What a pool needs. */
export interface WorkerPoolOptions {
  dataDir: string;
  /** Where the tasks are (TaskServerOptions.store); default the data directory's SQLite file. */
  store?: StoreLocation;
  /** Where a PostgreSQL password may come from; default process.env. */
  env?: NodeJS.ProcessEnv;
  workers: number;
  /** The address the workers are asked to listen on (HOST:PORT), written into the lock until they bound. */
  listen: string;
  log: (record: LogRecord) => void;
  now?: () => number;
}

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  servedBy: string;
  startedAt: number;
  /** Whether this slot's worker said it serves. */
  isReady: boolean;
}

/** The primary of `serve --workers`. */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #now: () => number;
  readonly #slots: WorkerSlot[] = [];
  readonly #exits = new Map<Worker, Promise<void>>();
  // Exit handlers still marking a dead worker's sessions: stop() waits for them before it lets the lock go.
  readonly #exitHandlers = new Set<Promise<void>>();
  #lock: DataDirLock | null = null;
  #dataDir: DataDir | null = null;
  #node = '';
  #isStopping = false;
  #isStarted = false;

  constructor(options: WorkerPoolOptions) {
    if (!Number.isSafeInteger(options.workers) || options.workers < 1 || options.workers > MAX_WORKERS) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `workers must be a whole number from 1 to ${MAX_WORKERS}, got ${String(options.workers)}`);
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Locks and prepares the data directory as a single server would, then starts every worker and resolves once all
   * of them serve, with what the first reported. Throws what a single server's start throws; a worker that fails
   * to start makes every worker stop and the lock go, and its error is thrown here.
   */
  async start(): Promise<WorkerReady> {
    prepareDataDir(this.#options.dataDir, { create: true });
    const lock = DataDirLock.acquire(this.#options.dataDir, this.#options.listen);
    this.#lock = lock;
    try {
      this.#dataDir = openDataDir(this.#options.dataDir, { create: true });
      this.#node = nodeId(this.#options.dataDir);
      const store = await this.#openStore(true);
      let lostSessions: number;
      try {
        lostSessions = await store.interruptLostSessions(this.#now(), LOST_AT_RESTART, restartScope(this.#options.store, this.#node));
      } finally {
        await store.close();
      }
      // The kernel hands each connection to a worker that is waiting in accept, instead of the primary accepting
      // every connection and passing it on over IPC (node:cluster's default elsewhere): measured at 64 KiB pulls,
      // c=100, two workers, the round-robin primary cost about 0.3 ms of CPU per pull on top of the workers', and
      // the whole server's CPU per pull was 1.45-1.5x one process's against 1.1-1.2x this way. A busy worker is
      // not in accept, so the idle one gets the next connection. NODE_CLUSTER_SCHED_POLICY=rr brings back round
      // robin.
      if (process.env['NODE_CLUSTER_SCHED_POLICY'] === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
      cluster.on('exit', (worker, code, signal) => {
        const handled = this.#onExit(worker, code, signal);
        this.#exitHandlers.add(handled);
        void handled.finally(() => this.#exitHandlers.delete(handled));
      });
      for (let index = 0; index < this.#options.workers; index++) this.#slots.push({ index, worker: null, servedBy: '', startedAt: 0, isReady: false });
      const readies = await Promise.all(this.#slots.map((slot) => this.#fork(slot)));
      const first = readies[0]!;
      lock.updateAddress(`${first.address.host}:${first.address.port}`);
      this.#isStarted = true;
      // Said once, by the primary: the workers' own listening lines cannot know what it found.
      if (lostSessions > 0) {
        this.#options.log({ time: new Date(this.#now()).toISOString(), event: 'listening', message: `${this.#options.workers} workers serve; ${lostSessions} session(s) a previous run left open are now interrupted` });
      }
      return first;
    } catch (error) {
      this.#isStopping = true;
      for (const slot of this.#slots) slot.worker?.process.kill('SIGKILL');
      await Promise.all(this.#exits.values());
      lock.release();
      this.#lock = null;
      throw error;
    }
  }

  /** The workers' process ids now (a slot being restarted has none). */
  get workerPids(): number[] {
    return this.#slots.flatMap((slot) => (slot.worker?.process.pid === undefined ? [] : [slot.worker.process.pid]));
  }

  /**
   * Sends every worker SIGTERM, so that each stops accepting and lets its pulls finish for up to `graceMs`; kills
   * one that is still running STOP_MARGIN_MS after that; then releases the lock.
   */
  async stop(graceMs: number): Promise<void> {
    this.#isStopping = true;
    const workers = this.#slots.flatMap((slot) => (slot.worker ? [slot] : []));
    for (const slot of workers) slot.worker!.process.kill('SIGTERM');
    const deadline = setTimeout(() => {
      for (const slot of workers) slot.worker?.process.kill('SIGKILL');
    }, graceMs + STOP_MARGIN_MS);
    await Promise.all(this.#exits.values());
    clearTimeout(deadline);
    await Promise.all(this.#exitHandlers);
    this.#lock?.release();
    this.#lock = null;
  }

  // Starts the worker of `slot`; resolves once it serves, rejects with its error if it fails or exits first.
  #fork(slot: WorkerSlot): Promise<WorkerReady> {
    slot.servedBy = newServedBy(this.#node);
    slot.startedAt = this.#now();
    slot.isReady = false;
    const worker = cluster.fork({ [WORKER_ID_ENV]: slot.servedBy, [WORKER_SWEEPS_ENV]: slot.index === 0 ? '1' : '0' });
    slot.worker = worker;
    this.#exits.set(worker, new Promise((resolve) => worker.once('exit', () => resolve())));
    return new Promise((resolve, reject) => {
      let failure: Error | null = null;
      const onMessage = (message: WorkerMessage): void => {
        if (message?.type === 'noise-cfg:ready') {
          slot.isReady = true;
          worker.off('exit', onEarlyExit);
          worker.off('message', onMessage);
          resolve({ address: message.address, api: message.api });
        } else if (message?.type === 'noise-cfg:failed') {
          failure = message.code === null ? new Error(message.message) : new NoiseCfgError(message.code, message.message);
        }
      };
      const onEarlyExit = (code: number | null, signal: string | null): void => {
        worker.off('message', onMessage);
        reject(failure ?? new Error(`server worker ${slot.index + 1} ended (${describeExit(code, signal)}) before it listened`));
      };
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
    });
  }

  async #onExit(worker: Worker, code: number | null, signal: string | null): Promise<void> {
    this.#exits.delete(worker);
    const slot = this.#slots.find((each) => each.worker === worker);
    if (!slot) return;
    slot.worker = null;
    const interrupted = await this.#interruptSessionsOf(slot.servedBy);
    // Until every worker first served, a failure is start()'s to report.
    if (this.#isStopping || !this.#isStarted) return;
    const served = slot.isReady ? `; ${interrupted} session(s) it served are now interrupted` : ' before it listened';
    const ended = `server worker ${slot.index + 1} (pid ${worker.process.pid ?? '?'}) ended (${describeExit(code, signal)})${served}`;
    const restart = (): void => {
      if (this.#isStopping) return;
      // A restart that fails is logged by the exit it ends in, and tried again.
      this.#fork(slot).catch(() => undefined);
    };
    if (code === 0 && signal === null) {
      // A worker exits 0 only after it drained on a signal. systemd (KillMode=control-group) and a terminal's
      // Ctrl-C signal every process of the group at once, so the primary's own signal may not have been handled
      // yet: the restart waits, and is logged only if the pool is not stopping by then.
      setTimeout(() => {
        if (this.#isStopping) return;
        this.#log(`${ended}; restarting it`);
        restart();
      }, RESTART_DELAY_MS);
      return;
    }
    const isYoung = this.#now() - slot.startedAt < RESTART_BACKOFF_WINDOW_MS;
    this.#log(`${ended}; restarting it${isYoung ? ` in ${RESTART_DELAY_MS} ms` : ''}`);
    if (isYoung) setTimeout(restart, RESTART_DELAY_MS);
    else restart();
  }

  // The dead worker's clients still `offered` lost their sessions. A failure here is logged, not thrown: the next
  // start of a single server interrupts every such client anyway.
  async #interruptSessionsOf(servedBy: string): Promise<number | string> {
    try {
      const store = await this.#openStore(false);
      try {
        return await store.interruptLostSessions(this.#now(), LOST_AT_WORKER_EXIT, { servedBy });
      } finally {
        await store.close();
      }
    } catch (error) {
      return `? (${(error as Error).message})`;
    }
  }

  #openStore(check: boolean): Promise<TaskStoreContract> {
    return openTaskStore(this.#options.store, this.#dataDir!, { check, ...(this.#options.env ? { env: this.#options.env } : {}) });
  }

  #log(message: string): void {
    this.#options.log({ time: new Date(this.#now()).toISOString(), event: 'worker-exited', message });
  }
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `killed by ${signal}` : `exit code ${code ?? '?'}`;
}

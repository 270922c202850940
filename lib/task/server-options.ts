/**
 * The update server's options with their defaults (SPEC.md §4.8), the shape of its log lines, and the check that
 * turns the options into the settings a running server uses.
 */
import { NoiseCfgError, type ErrorCode } from '../errors.js';
import type { ChannelLimits } from '../transport/index.js';
import type { AdvertisedAddress } from './operator.js';
import type { StoreLocation } from './store-location.js';

/** Where to listen and what to do. */
export interface TaskServerOptions {
  dataDir: string;
  /**
   * Where the tasks are (SPEC.md §4.9): the data directory's SQLite file (the default), or a PostgreSQL database
   * that several servers, each with its own data directory holding the same keys, share.
   */
  store?: StoreLocation;
  /** Where a PostgreSQL password may come from (NOISE_CFG_STORE_PASSWORD, _FILE); default process.env. */
  env?: NodeJS.ProcessEnv;
  listen: { host: string; port: number };
  /** The address put in tokens; default: the listen address, or this machine's first IPv4 address for 0.0.0.0. */
  advertise?: AdvertisedAddress;
  /**
   * Channel limits. By default the server accepts client messages of at most MAX_CLIENT_MESSAGE_BYTES
   * (`maxReceiveMessageBytes`) and closes a connection idle for `resultTimeoutMs` (`idleTimeoutMs`).
   */
  limits?: Partial<ChannelLimits>;
  /** Receives one record per connection outcome; never holds a secret. */
  log?: (record: LogRecord) => void;
  now?: () => number;
  /** The software string sent nowhere but logged. */
  software?: string;
  /** Bytes of encoded task content kept in memory (default 64 MiB); a bigger task is read from the store per pull, one slice at a time. */
  contentCacheBytes?: number;
  /** HELLO must arrive within this many milliseconds of the session's start (READY), whatever else arrives (default 10 000). */
  helloTimeoutMs?: number;
  /** RESULT must arrive within this many milliseconds after the last CHUNK went out (default 600 000: the client applies and runs its command). */
  resultTimeoutMs?: number;
  /** A session ends this many milliseconds after it started, whatever happens (default 3 600 000). */
  maxSessionMs?: number;
  /** Sessions of one task open at once (default 1024); one more gets REJECT `busy`. */
  maxSessionsPerTask?: number;
  /** Sessions of one identity in one task open at once (default 4); one more gets REJECT `busy`. */
  maxSessionsPerIdentity?: number;
  /**
   * Identities a task without maxClients records, at most (default 10 000); a new one past it gets REJECT `full`.
   * A task with maxClients records at most that many.
   */
  maxClientsPerTask?: number;
  /**
   * How long a task is kept after it ended, in milliseconds (default 7 days, DEFAULT_RETAIN_MS); null keeps every
   * task forever. A sweep at start and every `sweepIntervalMs` deletes the tasks ended longer ago, records and
   * content, as `task prune` does.
   */
  retainMs?: number | null;
  /** How often the retention sweep runs, in milliseconds (default 1 hour). */
  sweepIntervalMs?: number;
  /**
   * On a store several machines share (PostgreSQL): how often this process says it is alive (default 2 s,
   * DEFAULT_HEARTBEAT_MS), and how long another process may stay silent before its sessions are marked
   * interrupted (default 15 s, DEFAULT_SILENT_PROCESS_MS; more than the heartbeat, by the database's clock).
   */
  heartbeatMs?: number;
  silentProcessMs?: number;
  /**
   * Set when this server is one worker of several on one data directory (`serve --workers`, worker-pool.ts,
   * SPEC.md §4.10). The primary holds the directory's lock, made the keys, checked the store and interrupted the
   * sessions an earlier run left, and marks this worker's own sessions interrupted if it dies; so the worker takes
   * no lock and leaves every other session alone. `servedBy` names this worker in the client records it writes;
   * `sweeps` says whether it runs the retention sweep (one worker does).
   */
  worker?: { servedBy: string; sweeps: boolean };
}

/** One log line's fields. */
export interface LogRecord {
  time: string;
  event: 'listening' | 'pull' | 'handshake-failed' | 'refused' | 'retention' | 'stopping' | 'stopped' | 'worker-exited' | 'process-lost';
  remote?: string;
  task?: string;
  client?: string;
  identity?: string;
  outcome?: string;
  code?: ErrorCode;
  bytes?: number;
  ms?: number;
  message?: string;
  address?: string;
  /** For a summary of refusals logged at a bounded rate: how many refusals this line stands for. */
  count?: number;
}

/** How long a server waits for HELLO after READY, in milliseconds. */
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/**
 * How often a transfer's progress is saved for `task watch`, in milliseconds: a transfer shorter than this writes
 * none, a long one one small row a second.
 */
export const TRANSFER_PROGRESS_INTERVAL_MS = 1000;
/** How long a server waits for RESULT after the last CHUNK while a client applies and runs its command, in milliseconds. */
export const DEFAULT_RESULT_TIMEOUT_MS = 10 * 60 * 1000;
/** The longest a session may last, in milliseconds. */
export const DEFAULT_MAX_SESSION_MS = 60 * 60 * 1000;
/** Sessions of one task open at once, by default. */
export const DEFAULT_MAX_SESSIONS_PER_TASK = 1024;
/** Sessions of one identity in one task open at once, by default. */
export const DEFAULT_MAX_SESSIONS_PER_IDENTITY = 4;
/** How long a server keeps a task after it ended, by default: 7 days, in milliseconds. */
export const DEFAULT_RETAIN_MS = 7 * 24 * 60 * 60 * 1000;
/** How often the retention sweep runs by default, in milliseconds. */
export const DEFAULT_SWEEP_INTERVAL_MS = 60 * 60 * 1000;
/** How often a server process on PostgreSQL says it is alive, by default, in milliseconds. */
export const DEFAULT_HEARTBEAT_MS = 2000;
/**
 * How long a server process on PostgreSQL may be silent before another marks its sessions interrupted, by
 * default, in milliseconds: seven missed heartbeats, so a garbage-collection pause or a slow commit is not a death.
 */
export const DEFAULT_SILENT_PROCESS_MS = 15_000;
/** Identities recorded for a task without maxClients, by default. */
export const DEFAULT_MAX_CLIENTS_PER_TASK = 10_000;
/**
 * After the server's END, how long the peer has to close its side before the socket is destroyed, in
 * milliseconds: a peer that never answers must not keep a descriptor and a session count.
 */
export const END_WAIT_MS = 10_000;

/** The deadlines and caps of a running server, every one checked. */
export interface ServerSettings {
  helloTimeoutMs: number;
  resultTimeoutMs: number;
  maxSessionMs: number;
  maxSessionsPerTask: number;
  maxSessionsPerIdentity: number;
  maxClientsPerTask: number;
  /** null: tasks are kept forever. */
  retainMs: number | null;
  sweepIntervalMs: number;
  heartbeatMs: number;
  silentProcessMs: number;
}

function checkPositive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${name} must be a whole number >= 1, got ${String(value)}`);
  return value;
}

/** The settings `options` ask for, defaults filled in. Throws INVALID_ARGUMENT naming an option out of range. */
export function serverSettings(options: TaskServerOptions): ServerSettings {
  const helloTimeoutMs = checkPositive('helloTimeoutMs', options.helloTimeoutMs, DEFAULT_HELLO_TIMEOUT_MS);
  const resultTimeoutMs = checkPositive('resultTimeoutMs', options.resultTimeoutMs, DEFAULT_RESULT_TIMEOUT_MS);
  const maxSessionMs = checkPositive('maxSessionMs', options.maxSessionMs, DEFAULT_MAX_SESSION_MS);
  const maxSessionsPerTask = checkPositive('maxSessionsPerTask', options.maxSessionsPerTask, DEFAULT_MAX_SESSIONS_PER_TASK);
  const maxSessionsPerIdentity = checkPositive('maxSessionsPerIdentity', options.maxSessionsPerIdentity, DEFAULT_MAX_SESSIONS_PER_IDENTITY);
  const maxClientsPerTask = checkPositive('maxClientsPerTask', options.maxClientsPerTask, DEFAULT_MAX_CLIENTS_PER_TASK);
  const heartbeatMs = checkPositive('heartbeatMs', options.heartbeatMs, DEFAULT_HEARTBEAT_MS);
  const silentProcessMs = checkPositive('silentProcessMs', options.silentProcessMs, DEFAULT_SILENT_PROCESS_MS);
  if (silentProcessMs <= heartbeatMs) throw new NoiseCfgError('INVALID_ARGUMENT', `silentProcessMs (${silentProcessMs}) must be more than heartbeatMs (${heartbeatMs})`);
  const { retainMs, contentCacheBytes } = options;
  // 0 is allowed: nothing is kept, every task is streamed from the store slice by slice.
  if (contentCacheBytes !== undefined && (!Number.isSafeInteger(contentCacheBytes) || contentCacheBytes < 0)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `contentCacheBytes must be a whole number of bytes >= 0, got ${String(contentCacheBytes)}`);
  }
  if (retainMs !== undefined && retainMs !== null && (!Number.isSafeInteger(retainMs) || retainMs < 0)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `retainMs must be a whole number of milliseconds >= 0 or null, got ${String(retainMs)}`);
  }
  return {
    helloTimeoutMs, resultTimeoutMs, maxSessionMs, maxSessionsPerTask, maxSessionsPerIdentity, maxClientsPerTask,
    retainMs: retainMs === undefined ? DEFAULT_RETAIN_MS : retainMs,
    sweepIntervalMs: checkPositive('sweepIntervalMs', options.sweepIntervalMs, DEFAULT_SWEEP_INTERVAL_MS),
    heartbeatMs,
    silentProcessMs,
  };
}

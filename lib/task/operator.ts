/**
 * What an operator does to tasks (CONTRACT.md `task …`): create, list, show, cancel, revoke, and the token of a
 * task. Works on a data directory directly, so the CLI can act whether or not `serve` is running; a running
 * server sees the change at its next connection because it reads the store each time.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { encodeToken, generateTaskId, isTaskId } from '../token/index.js';
import { deriveTaskPsk, type DataDir } from './data-dir.js';
import { taskDigest } from './digests.js';
import { prepareTaskFiles, type TaskFileInput } from './file-set.js';
import { escapeUnprintable } from './printable.js';
import type { ClientRecord, TaskStore, TaskRecord } from './store.js';
import { DEFAULT_TTL_SECONDS, taskState, taskView, type TaskView } from './task.js';
import { DEFAULT_TASK_MODE, isTaskMode, TASK_MODES, type TaskMode } from './task-mode.js';

/** The default port of the Noise listener. */
export const DEFAULT_PORT = 7447;
/** The largest time to live, in seconds (tokens carry a 32-bit expiry; this keeps well inside it). */
export const MAX_TTL_SECONDS = 365 * 86400;
const SERVER_INFO_FILE = 'server.json';

/** A HOST:PORT the clients can reach. */
export interface AdvertisedAddress {
  host: string;
  port: number;
}

/** What a new task needs. */
export interface CreateTaskOptions {
  files: readonly TaskFileInput[];
  ttlSeconds?: number;
  maxClients?: number | null;
  mode?: TaskMode;
  name?: string;
  /** Where clients connect; default: what the server last advertised (server.json), else a local address. */
  advertise?: AdvertisedAddress;
  nowMs?: number;
}

/** A created task: its token is shown once and is the only place its PSK appears. */
export interface CreatedTask {
  id: string;
  token: string;
  expiresAt: string;
  task: TaskView;
}

/** Records the address a running server advertises, for `task create --data` (written atomically). */
export function saveAdvertisedAddress(dataDir: DataDir, address: AdvertisedAddress): void {
  const path = join(dataDir.path, SERVER_INFO_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ advertise: address })}\n`, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

/** The first non-internal IPv4 address of this machine, else 127.0.0.1. */
export function defaultAdvertiseHost(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}

function advertisedAddress(dataDir: DataDir, given?: AdvertisedAddress): AdvertisedAddress {
  if (given) return given;
  const path = join(dataDir.path, SERVER_INFO_FILE);
  if (existsSync(path)) {
    try {
      const saved = (JSON.parse(readFileSync(path, 'utf8')) as { advertise?: AdvertisedAddress }).advertise;
      if (saved && typeof saved.host === 'string' && Number.isInteger(saved.port)) return saved;
    } catch {
      // A damaged server.json only loses the remembered address; the default below still works.
    }
  }
  return { host: defaultAdvertiseHost(), port: DEFAULT_PORT };
}

/** The token of a task (derivable at any time from the master secret; shown only to the operator). */
export function taskToken(dataDir: DataDir, task: TaskRecord, advertise?: AdvertisedAddress): string {
  const address = advertisedAddress(dataDir, advertise);
  return encodeToken({
    mode: task.mode,
    host: address.host,
    port: address.port,
    taskId: task.id,
    expiresAtSeconds: Math.floor(task.expiresAt / 1000),
    psk: deriveTaskPsk(dataDir.masterKey, task.id),
    serverPublicKey: task.mode === 'xxpsk3' ? dataDir.serverKeyPair.publicKey : null,
  });
}

/** Creates a task. Throws INVALID_ARGUMENT (ttl, max clients, mode, name), PATH_UNSAFE, FILE_UNREADABLE. */
export function createTask(dataDir: DataDir, store: TaskStore, options: CreateTaskOptions): CreatedTask {
  const nowMs = options.nowMs ?? Date.now();
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `ttl must be 1 second to ${MAX_TTL_SECONDS / 86400} days, got ${ttlSeconds} seconds`);
  }
  const maxClients = options.maxClients ?? null;
  if (maxClients !== null && (!Number.isInteger(maxClients) || maxClients < 1 || maxClients > 1_000_000)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `max clients must be a whole number from 1 to 1000000, got ${maxClients}`);
  }
  const mode = options.mode ?? DEFAULT_TASK_MODE;
  if (!isTaskMode(mode)) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be ${TASK_MODES.join(' or ')}, got ${String(mode)}`);
  const name = options.name ?? '';
  if (typeof name !== 'string' || name.length > 200) throw new NoiseCfgError('INVALID_ARGUMENT', 'name must be a string of at most 200 characters');
  const files = prepareTaskFiles(options.files);
  const id = generateTaskId();
  // Whole seconds, so the token's expiry and the server's are the same instant.
  const expiresAt = (Math.floor(nowMs / 1000) + ttlSeconds) * 1000;
  const task: TaskRecord = {
    id, name, mode, createdAt: nowMs, expiresAt, maxClients, state: 'active', endedAt: null,
    digest: taskDigest(files), totalBytes: files.reduce((sum, file) => sum + file.size, 0), fileCount: files.length,
  };
  store.createTask(task, files);
  return {
    id,
    token: taskToken(dataDir, task, options.advertise),
    expiresAt: new Date(expiresAt).toISOString(),
    task: taskView(task, files, [], nowMs),
  };
}

/** The task's row. Throws TASK_NOT_FOUND (a malformed id too). */
export function requireTask(store: TaskStore, id: string): TaskRecord {
  const task = isTaskId(id) ? store.getTask(id) : null;
  if (!task) throw new NoiseCfgError('TASK_NOT_FOUND', `no task with id ${JSON.stringify(id)}`);
  return task;
}

/** One task with its files and clients. Throws TASK_NOT_FOUND. */
export function showTask(store: TaskStore, id: string, nowMs = Date.now()): TaskView {
  const task = requireTask(store, id);
  return taskView(task, store.getFiles(id), store.listClients(id), nowMs);
}

/** Every task, newest first. */
export function listTasks(store: TaskStore, nowMs = Date.now()): TaskView[] {
  return store.listTasks().map((task) => taskView(task, store.getFiles(task.id), store.listClients(task.id), nowMs));
}

/** Cancels an active task. Throws TASK_NOT_FOUND, or TASK_ENDED naming its state. */
export function cancelTask(store: TaskStore, id: string, nowMs = Date.now()): TaskView {
  const task = requireTask(store, id);
  const state = taskState(task, nowMs);
  if (state !== 'active' || !store.endTask(id, 'cancelled', nowMs)) {
    throw new NoiseCfgError('TASK_ENDED', `task ${id} has already ended (${state === 'active' ? store.getTask(id)?.state : state})`);
  }
  return showTask(store, id, nowMs);
}

/** The fewest hex characters of an identity `task revoke` accepts as a prefix (logs and watch show 16). */
export const MIN_IDENTITY_PREFIX_LENGTH = 8;

// How the operator names a client: what logs and watch show (16 hex characters) or its name, not 64 characters.
function resolveClient(clients: readonly ClientRecord[], taskId: string, given: string): ClientRecord {
  const exact = clients.find((client) => client.identity === given);
  if (exact) return exact;
  const describe = (matches: readonly ClientRecord[]): string => matches.slice(0, 5).map((client) => `${client.identity.slice(0, 16)} (${escapeUnprintable(client.name) || 'no name'})`).join(', ');
  if (/^[0-9a-f]+$/i.test(given)) {
    const matches = clients.filter((client) => client.identity.startsWith(given.toLowerCase()));
    if (matches.length > 0 && given.length < MIN_IDENTITY_PREFIX_LENGTH) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `give at least ${MIN_IDENTITY_PREFIX_LENGTH} hex characters of the identity (got ${given.length})`);
    }
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${given} is the start of ${matches.length} identities in task ${taskId}: ${describe(matches)}; give more characters`);
  }
  const named = clients.filter((client) => client.name === given);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${named.length} clients of task ${taskId} are named ${JSON.stringify(given)}: ${describe(named)}; give the identity`);
  throw new NoiseCfgError('CLIENT_NOT_FOUND', `task ${taskId} has no client with identity, identity prefix or name ${JSON.stringify(given)}`);
}

/**
 * Refuses one client from now on. The client is named by its identity, a unique prefix of it of at least
 * MIN_IDENTITY_PREFIX_LENGTH hex characters, or its name when no other client has it. Throws TASK_NOT_FOUND,
 * CLIENT_NOT_FOUND, INVALID_ARGUMENT (ambiguous or too short), TASK_ENDED, or CLIENT_ALREADY_REVOKED.
 */
export function revokeClient(store: TaskStore, id: string, identity: string, nowMs = Date.now()): TaskView {
  const task = requireTask(store, id);
  const state = taskState(task, nowMs);
  if (state !== 'active') throw new NoiseCfgError('TASK_ENDED', `task ${id} has already ended (${state}): no client of it is served any more`);
  const client = resolveClient(store.listClients(id), id, identity);
  if (client.state === 'revoked') throw new NoiseCfgError('CLIENT_ALREADY_REVOKED', `client ${client.identity.slice(0, 16)} of task ${id} is already revoked`);
  if (!store.revokeClient(id, client.identity, nowMs)) {
    throw new NoiseCfgError('CLIENT_NOT_FOUND', `task ${id} has no client with identity ${JSON.stringify(client.identity)}`);
  }
  return showTask(store, id, nowMs);
}

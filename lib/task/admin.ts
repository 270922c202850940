/**
 * TaskAdmin: the operator's handle on a data directory (SPEC.md §4.1, §8), the Operator of the CLI's `task`
 * commands with --data, of the REST API (which shares the running server's store) and of library users. It opens
 * the same store a running server uses; the server sees a change at its next connection, as it reads the store
 * each time.
 */
import { NoiseCfgError } from '../errors.js';
import { encodeToken, generateTaskId, isTaskId } from '../token/index.js';
import { advertisedAddress, type AdvertisedAddress } from './advertised-address.js';
import { resolveClient } from './client-names.js';
import { deriveTaskPsk, openDataDir, type DataDir } from './data-dir.js';
import { taskDigest } from './digests.js';
import { prepareTaskFiles } from './file-set.js';
import {
  MAX_CLIENTS_LIMIT, MAX_TASK_NAME_LENGTH, MAX_TTL_SECONDS,
  type CreatedTask, type CreateTaskOptions, type DeletedTasks, type Operator, type PruneOptions, type TaskToken, type WatchOptions,
} from './operator.js';
import type { TaskEvent, TaskRecord } from './store.js';
import type { TaskStoreContract } from './store-contract.js';
import type { StoreLocation } from './store-location.js';
import { openTaskStore } from './open-store.js';
import { DEFAULT_TTL_SECONDS, taskState, taskView, type TaskStreamEvent, type TaskView } from './task.js';
import { DEFAULT_TASK_MODE, isTaskMode, TASK_MODES } from './task-mode.js';

export type { DeletedTasks, WatchOptions } from './operator.js';

/** How often watch() looks for changes by default, in milliseconds. */
export const DEFAULT_WATCH_POLL_MS = 250;
/** Events read from the store at once while following a task: a burst of changes is read in batches of this many. */
const EVENTS_PER_READ = 1000;

// Resolves after `ms`, or at once when `signal` aborts.
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });
}

/** Operator access to one data directory. Close it when done. */
export class TaskAdmin implements Operator {
  readonly #dataDir: DataDir;
  readonly #store: TaskStoreContract;
  readonly #now: () => number;
  readonly #ownsStore: boolean;
  readonly #onDeleted: (taskId: string) => void;

  private constructor(dataDir: DataDir, store: TaskStoreContract, now: () => number, ownsStore: boolean, onDeleted: (taskId: string) => void = () => undefined) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#now = now;
    this.#ownsStore = ownsStore;
    this.#onDeleted = onDeleted;
  }

  /**
   * An admin sharing a store that someone else (the running server) opened and closes. `onDeleted` hears of each
   * task it deletes, so that the server forgets what it held for it at once (caches.ts, TASK_KEY_TTL_MS).
   */
  static attach(dataDir: DataDir, store: TaskStoreContract, now: () => number = Date.now, onDeleted?: (taskId: string) => void): TaskAdmin {
    return new TaskAdmin(dataDir, store, now, false, onDeleted);
  }

  /**
   * Opens an existing data directory. Only a server creates one: a missing directory (or one without any of the
   * data directory's files) is DATA_DIR_MISSING, naming the absolute path, unless `create` is set (library users
   * and tests that set one up without a server). `store` is where the tasks are (default: SQLite in the data
   * directory; a PostgreSQL database the data directory's servers share, SPEC.md §4.9), `env` where a PostgreSQL
   * password may come from. Rejects with DATA_DIR_INSECURE, DATA_DIR_UNAVAILABLE, STORE_CORRUPT or STORE_UNAVAILABLE.
   */
  static async open(dataDirPath: string, options: { now?: () => number; create?: boolean; store?: StoreLocation; env?: NodeJS.ProcessEnv } = {}): Promise<TaskAdmin> {
    const dataDir = openDataDir(dataDirPath, { create: options.create === true });
    const store = await openTaskStore(options.store, dataDir, options.env ? { env: options.env } : {});
    return new TaskAdmin(dataDir, store, options.now ?? Date.now, true);
  }

  /** The server's static public key (the pin in xxpsk3 tokens). */
  get serverPublicKey(): Buffer {
    return Buffer.from(this.#dataDir.serverKeyPair.publicKey);
  }

  async createTask(options: CreateTaskOptions): Promise<CreatedTask> {
    const nowMs = options.nowMs ?? this.#now();
    const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `ttl must be 1 second to ${MAX_TTL_SECONDS / 86400} days, got ${ttlSeconds} seconds`);
    }
    const maxClients = options.maxClients ?? null;
    if (maxClients !== null && (!Number.isInteger(maxClients) || maxClients < 1 || maxClients > MAX_CLIENTS_LIMIT)) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `max clients must be a whole number from 1 to ${MAX_CLIENTS_LIMIT}, got ${maxClients}`);
    }
    const mode = options.mode ?? DEFAULT_TASK_MODE;
    if (!isTaskMode(mode)) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be ${TASK_MODES.join(' or ')}, got ${String(mode)}`);
    const name = options.name ?? '';
    if (typeof name !== 'string' || name.length > MAX_TASK_NAME_LENGTH) throw new NoiseCfgError('INVALID_ARGUMENT', `name must be a string of at most ${MAX_TASK_NAME_LENGTH} characters`);
    const files = prepareTaskFiles(options.files);
    const id = generateTaskId();
    // Whole seconds, so the token's expiry and the server's are the same instant.
    const expiresAt = (Math.floor(nowMs / 1000) + ttlSeconds) * 1000;
    const task: TaskRecord = {
      id, name, mode, createdAt: nowMs, expiresAt, maxClients, state: 'active', endedAt: null,
      digest: taskDigest(files), totalBytes: files.reduce((sum, file) => sum + file.size, 0), fileCount: files.length,
    };
    await this.#store.createTask(task, files);
    return { id, token: this.#mintToken(task, options.advertise), expiresAt: new Date(expiresAt).toISOString(), task: taskView(task, files, [], nowMs) };
  }

  async listTasks(): Promise<TaskView[]> {
    const nowMs = this.#now();
    const views: TaskView[] = [];
    for (const task of await this.#store.listTasks()) views.push(taskView(task, await this.#store.getFiles(task.id), await this.#store.listClients(task.id), nowMs));
    return views;
  }

  async showTask(id: string): Promise<TaskView> {
    const task = await this.#requireTask(id);
    return taskView(task, await this.#store.getFiles(id), await this.#store.listClients(id), this.#now());
  }

  async cancelTask(id: string): Promise<TaskView> {
    const task = await this.#requireTask(id);
    const nowMs = this.#now();
    const state = taskState(task, nowMs);
    if (state !== 'active' || !await this.#store.endTask(id, 'cancelled', nowMs)) {
      throw new NoiseCfgError('TASK_ENDED', `task ${id} has already ended (${state === 'active' ? (await this.#store.getTask(id))?.state : state})`);
    }
    return this.showTask(id);
  }

  async revokeClient(id: string, identity: string): Promise<TaskView> {
    const nowMs = this.#now();
    const state = taskState(await this.#requireTask(id), nowMs);
    if (state !== 'active') throw new NoiseCfgError('TASK_ENDED', `task ${id} has already ended (${state}): no client of it is served any more`);
    const client = resolveClient(await this.#store.listClients(id), id, identity);
    if (client.state === 'revoked') throw new NoiseCfgError('CLIENT_ALREADY_REVOKED', `client ${client.identity.slice(0, 16)} of task ${id} is already revoked`);
    if (!await this.#store.revokeClient(id, client.identity, nowMs)) {
      throw new NoiseCfgError('CLIENT_NOT_FOUND', `task ${id} has no client with identity ${JSON.stringify(client.identity)}`);
    }
    return this.showTask(id);
  }

  // Any string may be given as an id; one that is not a task id names no task (SPEC.md §6), as through the API.
  async #requireTask(id: string): Promise<TaskRecord> {
    const task = isTaskId(id) ? await this.#store.getTask(id) : null;
    if (!task) throw new NoiseCfgError('TASK_NOT_FOUND', `no task with id ${JSON.stringify(id)}`);
    return task;
  }

  // The token is derived again from the master secret each time: nothing secret is stored.
  #mintToken(task: TaskRecord, advertise?: AdvertisedAddress): string {
    const address = advertisedAddress(this.#dataDir, advertise);
    return encodeToken({
      mode: task.mode,
      host: address.host,
      port: address.port,
      taskId: task.id,
      expiresAtSeconds: Math.floor(task.expiresAt / 1000),
      psk: deriveTaskPsk(this.#dataDir.masterKey, task.id),
      serverPublicKey: task.mode === 'xxpsk3' ? this.#dataDir.serverKeyPair.publicKey : null,
    });
  }

  /**
   * Deletes a task: cancels it first when it is active (a running server refuses its clients from the next
   * connection on), then removes its files, contents, clients and events, and gives the space back (SPEC.md
   * §4.1). Throws TASK_NOT_FOUND (also when deleted already).
   */
  async deleteTask(id: string): Promise<DeletedTasks> {
    const task = await this.#requireTask(id);
    const nowMs = this.#now();
    const state = taskState(task, nowMs);
    if (state === 'active') await this.#store.endTask(id, 'cancelled', nowMs);
    return this.#delete([{ ...task, state: state === 'active' ? 'cancelled' : task.state, endedAt: task.endedAt ?? nowMs }], false);
  }

  /**
   * Deletes every task that ended more than `endedBeforeMs` milliseconds ago (cancelled, completed or expired
   * then), as deleteTask does; with `dryRun`, only lists them. Throws INVALID_ARGUMENT for a negative age.
   */
  async pruneTasks(options: PruneOptions): Promise<DeletedTasks> {
    if (!Number.isFinite(options.endedBeforeMs) || options.endedBeforeMs < 0) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `endedBeforeMs must be a number of milliseconds >= 0, got ${String(options.endedBeforeMs)}`);
    }
    return this.#delete(await this.#store.listEndedBefore(this.#now() - options.endedBeforeMs), options.dryRun === true);
  }

  async #delete(tasks: readonly TaskRecord[], isDryRun: boolean): Promise<DeletedTasks> {
    const nowMs = this.#now();
    const deleted: DeletedTasks['tasks'] = [];
    let freedBytes = 0;
    const before = await this.#store.fileBytes();
    for (const task of tasks) {
      const bytes = isDryRun ? task.totalBytes : await this.#store.deleteTask(task.id);
      if (bytes === null) continue;
      this.#onDeleted(task.id);
      freedBytes += bytes;
      const endedAtMs = task.endedAt ?? (task.state === 'active' ? task.expiresAt : null);
      deleted.push({ id: task.id, name: task.name, state: taskState(task, nowMs), endedAt: endedAtMs === null ? null : new Date(endedAtMs).toISOString(), totalBytes: task.totalBytes });
    }
    const after = isDryRun || deleted.length === 0 ? before : (await this.#store.reclaimSpace()).afterBytes;
    return { tasks: deleted, freedBytes, databaseBytes: { before, after } };
  }

  /** Events of a task after `afterId`. Throws TASK_NOT_FOUND. */
  async events(id: string, afterId = 0): Promise<TaskEvent[]> {
    await this.#requireTask(id);
    return this.#store.listEvents(id, afterId);
  }

  /**
   * The token of an active task (its PSK is derived again; nothing secret is stored). An ended task's token would
   * only be refused, so none is made. Throws TASK_NOT_FOUND or TASK_ENDED.
   */
  async token(id: string, advertise?: AdvertisedAddress): Promise<string> {
    const task = await this.#requireTask(id);
    const state = taskState(task, this.#now());
    if (state !== 'active') throw new NoiseCfgError('TASK_ENDED', `task ${id} has ended (${state}): its token would be refused`);
    return this.#mintToken(task, advertise);
  }

  async taskToken(id: string, advertise?: AdvertisedAddress): Promise<TaskToken> {
    return { id, token: await this.token(id, advertise), expiresAt: (await this.showTask(id)).expiresAt };
  }

  /**
   * Follows a task through the store (another process may be serving it): the task now, every change after, and
   * the task as it ended. The whole view is read only at the start and at the end; each poll in between reads the
   * task's row and the events after the last one sent, so its cost does not grow with the task's clients. Throws
   * TASK_NOT_FOUND (at the first step).
   */
  async *watch(id: string, options: WatchOptions = {}): AsyncGenerator<TaskStreamEvent> {
    const pollMs = options.pollMs ?? DEFAULT_WATCH_POLL_MS;
    await this.#requireTask(id);
    // The position is taken before the view: a change made between the two is then sent (again) rather than lost.
    let after = options.afterEventId ?? await this.#store.lastEventId(id);
    yield { type: 'task', task: await this.showTask(id) };
    // Progress is sent when it differs from what was sent last; none at first (no transfer is in progress).
    let lastProgressSeen = '';
    for (;;) {
      // The state is read before the events, so changes committed between the two reads are still sent before end.
      const task = await this.#requireTask(id);
      for (;;) {
        const events = await this.#store.listEvents(id, after, EVENTS_PER_READ);
        for (const event of events) {
          after = event.id;
          yield { type: 'change', change: { ...event, at: new Date(event.at).toISOString() } };
        }
        if (events.length < EVENTS_PER_READ) break;
      }
      const transfers = await this.#store.listTransfers(id);
      const progressSeen = transfers.map((transfer) => `${transfer.identity}:${transfer.bytesSent}`).join(' ');
      if (progressSeen !== lastProgressSeen) {
        lastProgressSeen = progressSeen;
        yield { type: 'progress', progress: { taskId: id, totalBytes: task.totalBytes, transfers: transfers.map((transfer) => ({ ...transfer, at: new Date(transfer.at).toISOString() })) } };
      }
      if (taskState(task, this.#now()) !== 'active') {
        yield { type: 'end', task: await this.showTask(id) };
        return;
      }
      if (options.signal?.aborted) return;
      await pause(pollMs, options.signal);
      if (options.signal?.aborted) return;
    }
  }

  async close(): Promise<void> {
    if (this.#ownsStore) await this.#store.close();
  }
}

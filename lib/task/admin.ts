/**
 * TaskAdmin: the operator's handle on a data directory (create, list, show, cancel, revoke), for the CLI's
 * `task` commands with --data and for library users. It opens the same store a running server uses.
 */
import { NoiseCfgError } from '../errors.js';
import { openDataDir, type DataDir } from './data-dir.js';
import { cancelTask, createTask, listTasks, requireTask, revokeClient, showTask, taskToken, type AdvertisedAddress, type CreatedTask, type CreateTaskOptions } from './operator.js';
import { TaskStore, type TaskEvent, type TaskRecord } from './store.js';
import { taskState, type TaskState, type TaskStreamEvent, type TaskView } from './task.js';

/** How often watch() looks for changes by default, in milliseconds. */
export const DEFAULT_WATCH_POLL_MS = 250;
/** Events read from the store at once while following a task: a burst of changes is read in batches of this many. */
const EVENTS_PER_READ = 1000;

/** What deleting tasks freed. */
export interface DeletedTasks {
  /** The tasks deleted (or, for a dry run, that would be), oldest ended first. */
  tasks: { id: string; name: string; state: TaskState; endedAt: string | null; totalBytes: number }[];
  /** The content bytes of those tasks. */
  freedBytes: number;
  /** The database file and its WAL on disk before and after, in bytes (equal for a dry run). */
  databaseBytes: { before: number; after: number };
}

/** Options of TaskAdmin.watch. */
export interface WatchOptions {
  /** How often to look for changes, in milliseconds (default 250). */
  pollMs?: number;
  /** Stops following (the generator returns) as soon as it aborts, even in the middle of a wait. */
  signal?: AbortSignal;
  /** Send the changes after this event id (an event stream's Last-Event-ID); default: only changes from now on. */
  afterEventId?: number;
}

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
export class TaskAdmin {
  readonly #dataDir: DataDir;
  readonly #store: TaskStore;
  readonly #now: () => number;
  readonly #ownsStore: boolean;

  private constructor(dataDir: DataDir, store: TaskStore, now: () => number, ownsStore: boolean) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#now = now;
    this.#ownsStore = ownsStore;
  }

  /** An admin sharing a store that someone else (the running server) opened and closes. */
  static attach(dataDir: DataDir, store: TaskStore, now: () => number = Date.now): TaskAdmin {
    return new TaskAdmin(dataDir, store, now, false);
  }

  /**
   * Opens an existing data directory. Only a server creates one: a missing directory (or one without any of the
   * data directory's files) is DATA_DIR_MISSING, naming the absolute path, unless `create` is set (library users
   * and tests that set one up without a server). Throws DATA_DIR_INSECURE, DATA_DIR_UNAVAILABLE, STORE_CORRUPT or
   * STORE_UNAVAILABLE.
   */
  static open(dataDirPath: string, options: { now?: () => number; create?: boolean } = {}): TaskAdmin {
    const dataDir = openDataDir(dataDirPath, { create: options.create === true });
    return new TaskAdmin(dataDir, TaskStore.open(dataDir.databasePath), options.now ?? Date.now, true);
  }

  /** The server's static public key (the pin in xxpsk3 tokens). */
  get serverPublicKey(): Buffer {
    return Buffer.from(this.#dataDir.serverKeyPair.publicKey);
  }

  createTask(options: CreateTaskOptions): CreatedTask {
    return createTask(this.#dataDir, this.#store, { nowMs: this.#now(), ...options });
  }

  listTasks(): TaskView[] {
    return listTasks(this.#store, this.#now());
  }

  showTask(id: string): TaskView {
    return showTask(this.#store, id, this.#now());
  }

  cancelTask(id: string): TaskView {
    return cancelTask(this.#store, id, this.#now());
  }

  revokeClient(id: string, identity: string): TaskView {
    return revokeClient(this.#store, id, identity, this.#now());
  }

  /**
   * Deletes a task: cancels it first when it is active (a running server refuses its clients from the next
   * connection on), then removes its files, contents, clients and events, and gives the space back (SPEC.md
   * §4.1). Throws TASK_NOT_FOUND (also when deleted already).
   */
  deleteTask(id: string): DeletedTasks {
    const task = requireTask(this.#store, id);
    const nowMs = this.#now();
    const state = taskState(task, nowMs);
    if (state === 'active') this.#store.endTask(id, 'cancelled', nowMs);
    return this.#delete([{ ...task, state: state === 'active' ? 'cancelled' : task.state, endedAt: task.endedAt ?? nowMs }], false);
  }

  /**
   * Deletes every task that ended more than `endedBeforeMs` milliseconds ago (cancelled, completed or expired
   * then), as deleteTask does; with `dryRun`, only lists them. Throws INVALID_ARGUMENT for a negative age.
   */
  pruneTasks(options: { endedBeforeMs: number; dryRun?: boolean }): DeletedTasks {
    if (!Number.isFinite(options.endedBeforeMs) || options.endedBeforeMs < 0) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `endedBeforeMs must be a number of milliseconds >= 0, got ${String(options.endedBeforeMs)}`);
    }
    return this.#delete(this.#store.listEndedBefore(this.#now() - options.endedBeforeMs), options.dryRun === true);
  }

  #delete(tasks: readonly TaskRecord[], isDryRun: boolean): DeletedTasks {
    const nowMs = this.#now();
    const deleted: DeletedTasks['tasks'] = [];
    let freedBytes = 0;
    const before = this.#store.fileBytes();
    for (const task of tasks) {
      const bytes = isDryRun ? task.totalBytes : this.#store.deleteTask(task.id);
      if (bytes === null) continue;
      freedBytes += bytes;
      const endedAtMs = task.endedAt ?? (task.state === 'active' ? task.expiresAt : null);
      deleted.push({ id: task.id, name: task.name, state: taskState(task, nowMs), endedAt: endedAtMs === null ? null : new Date(endedAtMs).toISOString(), totalBytes: task.totalBytes });
    }
    const after = isDryRun || deleted.length === 0 ? before : this.#store.reclaimSpace().afterBytes;
    return { tasks: deleted, freedBytes, databaseBytes: { before, after } };
  }

  /** Events of a task after `afterId`. Throws TASK_NOT_FOUND. */
  events(id: string, afterId = 0): TaskEvent[] {
    requireTask(this.#store, id);
    return this.#store.listEvents(id, afterId);
  }

  /**
   * The token of an active task (its PSK is derived again; nothing secret is stored). An ended task's token would
   * only be refused, so none is made. Throws TASK_NOT_FOUND or TASK_ENDED.
   */
  token(id: string, advertise?: AdvertisedAddress): string {
    const task = requireTask(this.#store, id);
    const state = taskState(task, this.#now());
    if (state !== 'active') throw new NoiseCfgError('TASK_ENDED', `task ${id} has ended (${state}): its token would be refused`);
    return taskToken(this.#dataDir, task, advertise);
  }

  /**
   * Follows a task through the store (another process may be serving it): the task now, every change after, and
   * the task as it ended. The whole view is read only at the start and at the end; each poll in between reads the
   * task's row and the events after the last one sent, so its cost does not grow with the task's clients. Throws
   * TASK_NOT_FOUND (at the first step).
   */
  async *watch(id: string, options: WatchOptions = {}): AsyncGenerator<TaskStreamEvent> {
    const pollMs = options.pollMs ?? DEFAULT_WATCH_POLL_MS;
    requireTask(this.#store, id);
    // The position is taken before the view: a change made between the two is then sent (again) rather than lost.
    let after = options.afterEventId ?? this.#store.lastEventId(id);
    yield { type: 'task', task: this.showTask(id) };
    // Progress is sent when it differs from what was sent last; none at first (no transfer is in progress).
    let lastProgressSeen = '';
    for (;;) {
      // The state is read before the events, so changes committed between the two reads are still sent before end.
      const task = requireTask(this.#store, id);
      for (;;) {
        const events = this.#store.listEvents(id, after, EVENTS_PER_READ);
        for (const event of events) {
          after = event.id;
          yield { type: 'change', change: { ...event, at: new Date(event.at).toISOString() } };
        }
        if (events.length < EVENTS_PER_READ) break;
      }
      const transfers = this.#store.listTransfers(id);
      const progressSeen = transfers.map((transfer) => `${transfer.identity}:${transfer.bytesSent}`).join(' ');
      if (progressSeen !== lastProgressSeen) {
        lastProgressSeen = progressSeen;
        yield { type: 'progress', progress: { taskId: id, totalBytes: task.totalBytes, transfers: transfers.map((transfer) => ({ ...transfer, at: new Date(transfer.at).toISOString() })) } };
      }
      if (taskState(task, this.#now()) !== 'active') {
        yield { type: 'end', task: this.showTask(id) };
        return;
      }
      if (options.signal?.aborted) return;
      await pause(pollMs, options.signal);
      if (options.signal?.aborted) return;
    }
  }

  close(): void {
    if (this.#ownsStore) this.#store.close();
  }
}

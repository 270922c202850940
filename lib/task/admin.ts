/**
 * TaskAdmin: the operator's handle on a data directory (create, list, show, cancel, revoke), for the CLI's
 * `task` commands with --data and for library users. It opens the same store a running server uses.
 */
import { NoiseCfgError } from '../errors.js';
import { openDataDir, type DataDir } from './data-dir.js';
import { cancelTask, createTask, listTasks, revokeClient, showTask, taskToken, type AdvertisedAddress, type CreatedTask, type CreateTaskOptions } from './operator.js';
import { TaskStore, type TaskEvent } from './store.js';
import type { TaskStreamEvent, TaskView } from './task.js';

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
   * Opens a data directory, creating it and its keys when missing (as `serve` would on first start). Throws
   * DATA_DIR_INSECURE or STORE_CORRUPT.
   */
  static open(dataDirPath: string, options: { now?: () => number } = {}): TaskAdmin {
    const dataDir = openDataDir(dataDirPath, { create: true });
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

  /** Events of a task after `afterId`. */
  events(id: string, afterId = 0): TaskEvent[] {
    showTask(this.#store, id, this.#now());
    return this.#store.listEvents(id, afterId);
  }

  /** The token of an existing task (its PSK is derived again; nothing secret is stored). Throws TASK_NOT_FOUND. */
  token(id: string, advertise?: AdvertisedAddress): string {
    const task = this.#store.getTask(id);
    if (!task) throw new NoiseCfgError('TASK_NOT_FOUND', `no task with id ${JSON.stringify(id)}`);
    return taskToken(this.#dataDir, task, advertise);
  }

  /**
   * Follows a task through the store (another process may be serving it): the task now, every change after,
   * and the task as it ended. Polls every `pollMs`.
   */
  async *watch(id: string, options: { pollMs?: number; signal?: AbortSignal } = {}): AsyncGenerator<TaskStreamEvent> {
    const pollMs = options.pollMs ?? 250;
    let view = this.showTask(id);
    let after = this.#store.listEvents(id).at(-1)?.id ?? 0;
    yield { type: 'task', task: view };
    for (;;) {
      // The state is read before the events, so changes committed between the two reads are still sent before end.
      view = this.showTask(id);
      for (const event of this.#store.listEvents(id, after)) {
        after = event.id;
        yield { type: 'change', change: { ...event, at: new Date(event.at).toISOString() } };
      }
      if (view.state !== 'active') {
        view = this.showTask(id);
        yield { type: 'end', task: view };
        return;
      }
      if (options.signal?.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  close(): void {
    if (this.#ownsStore) this.#store.close();
  }
}

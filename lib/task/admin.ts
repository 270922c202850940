/**
 * TaskAdmin: the operator's handle on a data directory (create, list, show, cancel, revoke), for the CLI's
 * `task` commands with --data and for library users. It opens the same store a running server uses.
 */
import { NoiseCfgError } from '../errors.js';
import { openDataDir, type DataDir } from './data-dir.js';
import { cancelTask, createTask, listTasks, revokeClient, showTask, taskToken, type AdvertisedAddress, type CreatedTask, type CreateTaskOptions } from './operator.js';
import { TaskStore, type TaskEvent } from './store.js';
import type { TaskView } from './task.js';

/** Operator access to one data directory. Close it when done. */
export class TaskAdmin {
  readonly #dataDir: DataDir;
  readonly #store: TaskStore;
  readonly #now: () => number;

  private constructor(dataDir: DataDir, store: TaskStore, now: () => number) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#now = now;
  }

  /**
   * Opens a data directory, creating it and its keys when missing (as `serve` would on first start). Throws
   * DATA_DIR_INSECURE or STORE_CORRUPT.
   */
  static open(dataDirPath: string, options: { now?: () => number } = {}): TaskAdmin {
    const dataDir = openDataDir(dataDirPath, { create: true });
    return new TaskAdmin(dataDir, TaskStore.open(dataDir.databasePath), options.now ?? Date.now);
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

  close(): void {
    this.#store.close();
  }
}

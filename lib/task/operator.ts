/**
 * The operator's interface (CONTRACT.md `task …`, SPEC.md §8): what an operator does to tasks, whether on the data
 * directory (TaskAdmin) or through the REST API (ApiClient). Both implement Operator; one conformance test runs the
 * same cases against both and expects the same results and the same error codes.
 */
import type { TaskFileInput } from './file-set.js';
import type { TaskState, TaskStreamEvent, TaskView } from './task.js';
import type { TaskMode } from './task-mode.js';
import type { AdvertisedAddress } from './advertised-address.js';

export { DEFAULT_PORT, defaultAdvertiseHost, saveAdvertisedAddress, type AdvertisedAddress } from './advertised-address.js';

/** The largest time to live, in seconds (tokens carry a 32-bit expiry; this keeps well inside it). */
export const MAX_TTL_SECONDS = 365 * 86400;
/** The largest `maxClients` a task may have. */
export const MAX_CLIENTS_LIMIT = 1_000_000;
/** The longest task name, in UTF-16 code units. */
export const MAX_TASK_NAME_LENGTH = 200;

/** A value now (TaskAdmin) or later (ApiClient). */
export type Awaitable<T> = T | Promise<T>;

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

/** The token of an active task, minted again. */
export interface TaskToken {
  id: string;
  token: string;
  expiresAt: string;
}

/** What deleting tasks freed. */
export interface DeletedTasks {
  /** The tasks deleted (or, for a dry run, that would be), oldest ended first. */
  tasks: { id: string; name: string; state: TaskState; endedAt: string | null; totalBytes: number }[];
  /** The content bytes of those tasks. */
  freedBytes: number;
  /** The database file and its WAL on disk before and after, in bytes (equal for a dry run). */
  databaseBytes: { before: number; after: number };
}

/** Which ended tasks pruneTasks deletes. */
export interface PruneOptions {
  /** Tasks that ended more than this many milliseconds ago. */
  endedBeforeMs: number;
  /** Only list them. */
  dryRun?: boolean;
}

/** Options of Operator.watch. */
export interface WatchOptions {
  /** How often to look for changes, in milliseconds (default 250). */
  pollMs?: number;
  /** Stops following (the generator returns) as soon as it aborts, even in the middle of a wait. */
  signal?: AbortSignal;
  /** Send the changes after this event id (an event stream's Last-Event-ID); default: only changes from now on. */
  afterEventId?: number;
}

/**
 * What an operator does to tasks. A task id that is not one (malformed, or no such task) is TASK_NOT_FOUND through
 * both implementations (SPEC.md §6, §8).
 */
export interface Operator {
  /** Creates a task. Throws INVALID_ARGUMENT (no file, ttl, max clients, mode, name), PATH_UNSAFE, FILE_UNREADABLE. */
  createTask(options: CreateTaskOptions): Awaitable<CreatedTask>;
  /** Every task, newest first. */
  listTasks(): Awaitable<TaskView[]>;
  /** One task with its files and clients. Throws TASK_NOT_FOUND. */
  showTask(id: string): Awaitable<TaskView>;
  /** The token of an active task again. Throws TASK_NOT_FOUND or TASK_ENDED. */
  taskToken(id: string, advertise?: AdvertisedAddress): Awaitable<TaskToken>;
  /** Cancels an active task. Throws TASK_NOT_FOUND, or TASK_ENDED naming its state. */
  cancelTask(id: string): Awaitable<TaskView>;
  /**
   * Refuses one client from now on, named by its identity, a unique prefix of 8 or more hex characters, or its
   * name when unique. Throws TASK_NOT_FOUND, CLIENT_NOT_FOUND, INVALID_ARGUMENT (ambiguous or too short),
   * TASK_ENDED, or CLIENT_ALREADY_REVOKED.
   */
  revokeClient(id: string, identity: string): Awaitable<TaskView>;
  /** Deletes a task, cancelling it first if active, with its files, clients and events. Throws TASK_NOT_FOUND. */
  deleteTask(id: string): Awaitable<DeletedTasks>;
  /** Deletes (or, dry, lists) every task that ended longer ago than `endedBeforeMs`. Throws INVALID_ARGUMENT. */
  pruneTasks(options: PruneOptions): Awaitable<DeletedTasks>;
  /** The task now, every change after, and the task as it ended. Throws TASK_NOT_FOUND at the first step. */
  watch(id: string, options?: WatchOptions): AsyncGenerator<TaskStreamEvent>;
  /** Releases what the operator holds (the store of a data directory it opened). */
  close(): Awaitable<void>;
}

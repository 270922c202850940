/**
 * What the task layer asks of a store (SPEC.md §4.1, §4.9). The embedded SQLite store (store.ts) answers at once;
 * the PostgreSQL store (postgres-store.ts) answers later; both keep the same rules, and one conformance suite
 * (test/store/store-conformance.ts) holds them to it. Writes a pull makes (saveClient, claimSlot, saveResult,
 * markInterrupted, saveTransferProgress) go through the store's group commit and resolve once durable; the
 * operator's writes are durable when they return (or resolve).
 */
import type { FileEntry } from './digests.js';
import type { Awaitable } from './operator.js';
import type { LostSessionScope } from './served-by.js';
import type { ClientRecord, NewTaskFile, TaskEvent, TaskRecord, TransferProgress } from './store-records.js';

/**
 * What a store that several machines share keeps of its server processes (PostgreSQL; SPEC.md §4.9): each says it
 * is alive, and a process that has not said so for long enough died without a process of its own machine to
 * notice, so any other marks its sessions interrupted.
 */
export interface ProcessLiveness {
  /** Records that this handle's process (its servedBy) is alive now, by the database's clock. */
  markAlive(): Promise<void>;
  /**
   * Marks `interrupted` (at `at`, with `detail`) the sessions of every process not seen for `silentMs` by the
   * database's clock, and forgets those processes. Returns how many processes and sessions.
   */
  interruptSilentProcesses(silentMs: number, at: number, detail: string): Promise<{ processes: number; sessions: number }>;
  /** Forgets this handle's process (a clean stop). */
  forgetProcess(): Promise<void>;
}

/** Whether `store` keeps process liveness. */
export function hasProcessLiveness(store: TaskStoreContract): store is TaskStoreContract & ProcessLiveness {
  return 'markAlive' in store;
}

/** What saveResult did. */
export interface ResultRecorded {
  /** Why nothing was recorded: the task is gone or cancelled, or the client revoked; null when it was. */
  refused: 'cancelled' | 'revoked' | null;
  /** Whether this result completed the task. */
  completed: boolean;
}

/** A task database, SQLite or PostgreSQL. */
export interface TaskStoreContract {
  /** Transactions committed by this handle (each is one fsync). */
  readonly commitCount: number;
  /** Creates a task with its files in one transaction. */
  createTask(task: TaskRecord, files: readonly NewTaskFile[]): Awaitable<void>;
  getTask(id: string): Awaitable<TaskRecord | null>;
  /** Newest first, then by id. */
  listTasks(): Awaitable<TaskRecord[]>;
  /** In position order, without contents. */
  getFiles(taskId: string): Awaitable<FileEntry[]>;
  /** The whole content of the file at `position`; STORE_CORRUPT when it or a slice is missing. */
  getFileContent(taskId: string, position: number): Awaitable<Buffer>;
  /** Slice `slice` (CONTENT_SLICE_BYTES, the last shorter) of a file; STORE_CORRUPT when missing. */
  getFileSlice(taskId: string, position: number, slice: number): Awaitable<Buffer>;
  getClient(taskId: string, identity: string): Awaitable<ClientRecord | null>;
  /** The task and the identity's record in it, read together (what HELLO and RESULT need: one round trip). */
  getTaskAndClient(taskId: string, identity: string): Awaitable<{ task: TaskRecord | null; client: ClientRecord | null }>;
  /** By first seen, then identity. */
  listClients(taskId: string): Awaitable<ClientRecord[]>;
  /** Events after `afterId`, oldest first, at most `limit` (-1: all). */
  listEvents(taskId: string, afterId?: number, limit?: number): Awaitable<TaskEvent[]>;
  /** The id of the task's latest event, 0 when none. */
  lastEventId(taskId: string): Awaitable<number>;
  /** Ends an active task; false when it was not active. */
  endTask(taskId: string, state: 'cancelled' | 'completed', at: number): Awaitable<boolean>;
  /** Revokes a client; false when the task has no such client. */
  revokeClient(taskId: string, identity: string, at: number): Awaitable<boolean>;
  /** Upserts a client's state (a revoked client stays revoked; a slot once held stays held). */
  saveClient(client: ClientRecord, detail?: string | null): Promise<void>;
  /** Records an offer, taking a slot if fewer than `slotLimit` identities hold one; false (nothing written) when full. */
  claimSlot(offer: ClientRecord, slotLimit: number): Promise<boolean>;
  /**
   * Records a RESULT, unless the task is gone or cancelled or the client revoked (then nothing is written and
   * `refused` says which), in one transaction; `completed` when it completed the task (maxClients reached).
   */
  saveResult(outcome: ClientRecord, detail: string | null): Promise<ResultRecorded>;
  /** Marks a client still `offered` interrupted. */
  markInterrupted(taskId: string, identity: string, at: number, detail: string): Promise<void>;
  /** Marks clients left `connected` or `offered` interrupted, those of `scope` (served-by.ts). Returns how many. */
  interruptLostSessions(at: number, detail: string, scope: LostSessionScope): Awaitable<number>;
  saveTransferProgress(taskId: string, identity: string, bytesSent: number, at: number): Promise<void>;
  /** Transfers of clients still `offered` whose progress is of this offer, by identity. */
  listTransfers(taskId: string): Awaitable<TransferProgress[]>;
  /** Removes a task with everything it has; its content bytes, or null when there is none. */
  deleteTask(taskId: string): Awaitable<number | null>;
  /** Tasks that ended (or expired) before `cutoffMs`, oldest first. */
  listEndedBefore(cutoffMs: number): Awaitable<TaskRecord[]>;
  /** Bytes the database takes on disk now (SQLite: the file and its WAL; PostgreSQL: the whole database). */
  fileBytes(): Awaitable<number>;
  /** Gives the space of deleted tasks back after a batch of deletions; the bytes before and after. */
  reclaimSpace(): Awaitable<{ beforeBytes: number; afterBytes: number }>;
  /** Commits what is queued now. */
  flush(): Awaitable<void>;
  /** Commits what is queued and closes; closing again does nothing more. */
  close(): Awaitable<void>;
}

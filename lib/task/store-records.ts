/**
 * The records of the task database (SPEC.md §4.1, §4.4) as the rest of the task layer sees them, and their
 * mapping from rows. Times are milliseconds since the Unix epoch.
 */
import type { FileEntry } from './digests.js';
import type { TaskMode } from './task-mode.js';

/** Task states as stored; `expired` is derived from the clock (task.ts). */
export type StoredTaskState = 'active' | 'cancelled' | 'completed';
/**
 * Client states. `interrupted`: the session ended (connection lost, deadline, server restart) after the offer and
 * before a RESULT; a later pull by the same identity moves it on.
 */
export type ClientState = 'connected' | 'offered' | 'applied' | 'failed' | 'revoked' | 'interrupted';

/** A task row. Times are milliseconds since the Unix epoch. */
export interface TaskRecord {
  id: string;
  name: string;
  mode: TaskMode;
  createdAt: number;
  expiresAt: number;
  maxClients: number | null;
  state: StoredTaskState;
  endedAt: number | null;
  digest: string;
  totalBytes: number;
  fileCount: number;
}

/** A client row. */
export interface ClientRecord {
  taskId: string;
  /** Hex static public key (xxpsk3) or the client's chosen id (nnpsk0). */
  identity: string;
  name: string;
  remoteAddress: string;
  state: ClientState;
  firstSeenAt: number;
  updatedAt: number;
  exitCode: number | null;
  message: string | null;
  appliedDigest: string | null;
  /** True once the client was offered the files: it counts against maxClients. */
  hasSlot: boolean;
}

/** How far one client's transfer has got. */
export interface TransferProgress {
  identity: string;
  name: string;
  /** Content bytes sent to the client so far. */
  bytesSent: number;
  /** When that was, in milliseconds since the epoch. */
  at: number;
}

/** One state change, for `task watch` and the events API. */
export interface TaskEvent {
  id: number;
  taskId: string;
  identity: string | null;
  name: string | null;
  state: string;
  at: number;
  detail: string | null;
}

/** A file of a new task, with its content. */
export interface NewTaskFile extends FileEntry {
  content: Buffer;
}

/** A tasks row, as SQLite returns it. */
export interface TaskRow {
  id: string; name: string; mode: TaskMode; created_at: number; expires_at: number; max_clients: number | null;
  state: StoredTaskState; ended_at: number | null; digest: string; total_bytes: number; file_count: number;
}
/** A clients row, as SQLite returns it. */
export interface ClientRow {
  task_id: string; identity: string; name: string; remote_address: string; state: ClientState; first_seen_at: number;
  updated_at: number; exit_code: number | null; message: string | null; applied_digest: string | null; has_slot: number;
}

export const toTask = (row: TaskRow): TaskRecord => ({
  id: row.id, name: row.name, mode: row.mode, createdAt: row.created_at, expiresAt: row.expires_at, maxClients: row.max_clients,
  state: row.state, endedAt: row.ended_at, digest: row.digest, totalBytes: row.total_bytes, fileCount: row.file_count,
});
export const toClient = (row: ClientRow): ClientRecord => ({
  taskId: row.task_id, identity: row.identity, name: row.name, remoteAddress: row.remote_address, state: row.state,
  firstSeenAt: row.first_seen_at, updatedAt: row.updated_at, exitCode: row.exit_code, message: row.message,
  appliedDigest: row.applied_digest, hasSlot: row.has_slot === 1,
});


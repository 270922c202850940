/**
 * Task and client states (SPEC.md §4.4) and the views `task show --json` and the REST API print. The clock is
 * passed in. Pure.
 */
import type { ClientRecord, ClientState, TaskEvent, TaskRecord } from './store.js';

/** Every client state, in the order views count them. */
export const CLIENT_STATES: readonly ClientState[] = ['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted'];

/** A task's state as users see it. */
export type TaskState = 'active' | 'expired' | 'cancelled' | 'completed';

/** The default time to live of a task, in seconds. */
export const DEFAULT_TTL_SECONDS = 3600;

/** The state of `task` at `nowMs`: an active task whose expiry has passed is expired (at exactly its time). */
export function taskState(task: TaskRecord, nowMs: number): TaskState {
  if (task.state === 'active' && nowMs >= task.expiresAt) return 'expired';
  return task.state;
}

/** A client as shown to operators. */
export interface ClientView {
  identity: string;
  name: string;
  remoteAddress: string;
  state: ClientRecord['state'];
  firstSeenAt: string;
  updatedAt: string;
  result: { exitCode: number | null; message: string } | null;
}

/** A task as shown to operators; never holds the PSK or the token. */
export interface TaskView {
  id: string;
  name: string;
  mode: TaskRecord['mode'];
  state: TaskState;
  createdAt: string;
  expiresAt: string;
  endedAt: string | null;
  maxClients: number | null;
  digest: string;
  files: { path: string; size: number; mode: string; digest: string }[];
  totalBytes: number;
  counts: Record<ClientRecord['state'], number>;
  clients: ClientView[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The view of one client. */
export function clientView(client: ClientRecord): ClientView {
  const hasResult = client.state === 'applied' || client.state === 'failed' || (client.state === 'revoked' && client.message !== null);
  return {
    identity: client.identity,
    name: client.name,
    remoteAddress: client.remoteAddress,
    state: client.state,
    firstSeenAt: iso(client.firstSeenAt),
    updatedAt: iso(client.updatedAt),
    result: hasResult ? { exitCode: client.exitCode, message: client.message ?? '' } : null,
  };
}

/** The view of one task with its files and clients. */
export function taskView(task: TaskRecord, files: { path: string; size: number; mode: number; digest: string }[], clients: ClientRecord[], nowMs: number): TaskView {
  const counts = Object.fromEntries(CLIENT_STATES.map((state) => [state, 0])) as Record<ClientRecord['state'], number>;
  for (const client of clients) counts[client.state]++;
  return {
    id: task.id,
    name: task.name,
    mode: task.mode,
    state: taskState(task, nowMs),
    createdAt: iso(task.createdAt),
    expiresAt: iso(task.expiresAt),
    endedAt: task.endedAt === null ? (taskState(task, nowMs) === 'expired' ? iso(task.expiresAt) : null) : iso(task.endedAt),
    maxClients: task.maxClients,
    digest: task.digest,
    files: files.map((file) => ({ path: file.path, size: file.size, mode: file.mode.toString(8).padStart(4, '0'), digest: file.digest })),
    totalBytes: task.totalBytes,
    counts,
    clients: clients.map(clientView),
  };
}

/** Parses a duration such as `90s`, `10m`, `1h` or `2d` into seconds; returns null when malformed. */
export function parseDurationSeconds(text: string): number | null {
  const match = /^(\d{1,9})([smhd])$/.exec(String(text).trim());
  if (!match) return null;
  const value = Number(match[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
  const seconds = value * unit;
  return seconds > 0 ? seconds : null;
}

/** The transfers of a task in progress, as `task watch` shows them: content bytes sent of the task's total. */
export interface TaskProgress {
  taskId: string;
  totalBytes: number;
  transfers: { identity: string; name: string; bytesSent: number; at: string }[];
}

/**
 * One step of following a task: the task now, one state change, how far the transfers in progress have got (when
 * that changed; about once a second while a transfer lasts), or the task as it ended.
 */
export type TaskStreamEvent =
  | { type: 'task'; task: TaskView }
  | { type: 'change'; change: Omit<TaskEvent, 'at'> & { at: string } }
  | { type: 'progress'; progress: TaskProgress }
  | { type: 'end'; task: TaskView };

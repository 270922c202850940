/**
 * The task layer's public face (SPEC.md §4) for the REST API above it: the Operator interface, the local operator
 * (TaskAdmin) and the shapes they return. Re-exports only. The server and the pull side are reached through
 * lib/index.ts, which a client loads without the server's native store.
 */
export { TaskAdmin, DEFAULT_WATCH_POLL_MS } from './admin.js';
export type { TaskFileInput } from './file-set.js';
export type {
  AdvertisedAddress, Awaitable, CreatedTask, CreateTaskOptions, DeletedTasks, Operator, PruneOptions, TaskToken, WatchOptions,
} from './operator.js';
export type { TaskProgress, TaskStreamEvent, TaskView } from './task.js';
export { TASK_MODES, DEFAULT_TASK_MODE, isTaskMode, type TaskMode } from './task-mode.js';

/** The modes a task can have (SPEC.md §2.2, §4.1): the channel's modes, listed once for checks, schemas and help. */
import type { ChannelMode } from '../transport/index.js';

/** Every task mode, in the order help and the API's schemas list them. */
export const TASK_MODES = ['xxpsk3', 'nnpsk0'] as const satisfies readonly ChannelMode[];

/** A task's mode: xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only). */
export type TaskMode = (typeof TASK_MODES)[number];

/** The mode of a task created without one. */
export const DEFAULT_TASK_MODE: TaskMode = 'xxpsk3';

/** True when `value` names a task mode. */
export function isTaskMode(value: unknown): value is TaskMode {
  return (TASK_MODES as readonly unknown[]).includes(value);
}

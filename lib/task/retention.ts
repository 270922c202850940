/**
 * The server's retention sweep (SPEC.md §4.1): the tasks that ended more than `retainMs` ago are deleted whole,
 * records and content, as `task prune` does; the server's admin makes its caches forget them (TaskServer.admin).
 */
import { isNoiseCfgError } from '../errors.js';
import type { TaskAdmin } from './admin.js';
import type { ServerLog } from './server-log.js';

/**
 * Deletes every task that ended more than `retainMs` ago, gives the space back, and logs one `retention` line
 * when it removed any. A failure is logged, never thrown. Resolves to how many tasks it removed.
 */
export async function sweepEndedTasks(admin: TaskAdmin, retainMs: number, log: ServerLog): Promise<number> {
  try {
    const pruned = await admin.pruneTasks({ endedBeforeMs: retainMs });
    if (pruned.tasks.length > 0) {
      log.log({ event: 'retention', bytes: pruned.freedBytes, count: pruned.tasks.length, message: `removed ${pruned.tasks.length} task(s) that ended more than ${Math.round(retainMs / 1000)} s ago (${pruned.freedBytes} bytes of content); database ${pruned.databaseBytes.before} -> ${pruned.databaseBytes.after} bytes` });
    }
    return pruned.tasks.length;
  } catch (error) {
    log.log({ event: 'retention', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: `the retention sweep failed: ${(error as Error).message}` });
    return 0;
  }
}

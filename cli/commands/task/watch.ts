/**
 * `noise-cfg task watch ID`: follows a task until it ends (SPEC.md §8): a live view on a terminal, one line per
 * change when piped, one JSON event per line with --json. Exits 0 when the task completed, 6 otherwise.
 */
import type { Argv } from 'yargs';
import { toTerminalSafeJson, type Operator, type TaskProgress, type TaskStreamEvent, type TaskView } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { EXIT, exitCodesHelp } from '../../exit-codes.js';
import { renderWatchFrame, watchLine, WatchedTask } from '../../watch-view.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'watch <id>';
export const describe = 'Follow a task live until it completes, expires or is cancelled';

export function builder(yargs: Argv) {
  return commonOptions(yargs).positional('id', { type: 'string', demandOption: true })
    .epilogue(exitCodesHelp({ OK: 'completed (its --max-clients applied)', TASK_INCOMPLETE: 'expired or cancelled (also when no client came)', NOT_FOUND: 'no such task' }));
}

/** Exit code of `task watch` for the task as it ended: 0 completed, 6 expired or cancelled (SPEC.md §8). */
export function watchExitCode(task: TaskView): number {
  return task.state === 'completed' ? EXIT.OK : EXIT.TASK_INCOMPLETE;
}

// The end event that follows says the same, with the counts: one final line, not two (nor a "task … cancelled"
// line before it for a task that had ended before the watch began).
function isTaskEndChange(event: TaskStreamEvent): boolean {
  return event.type === 'change' && event.change.identity === null && (event.change.state === 'cancelled' || event.change.state === 'completed');
}

async function follow(operator: Operator, id: string, asJson: boolean): Promise<void> {
  const isTerminal = process.stdout.isTTY === true && !asJson;
  let view: TaskView | null = null;
  let watched: WatchedTask | null = null;
  const recent: string[] = [];
  let progress: TaskProgress | null = null;
  for await (const event of operator.watch(id)) {
    if (event.type === 'progress') {
      // Bytes are for the live frame and --json; a piped watch prints state changes only.
      progress = event.progress;
      if (asJson) process.stdout.write(`${toTerminalSafeJson(event)}\n`);
      else if (isTerminal && view) process.stdout.write(renderWatchFrame(view, recent.slice(-8), progress));
      continue;
    }
    if (event.type === 'task' || event.type === 'end') {
      view = event.task;
      watched = new WatchedTask(view);
    }
    if (asJson) {
      process.stdout.write(`${toTerminalSafeJson(event)}\n`);
    } else if (isTerminal) {
      if (event.type === 'change') {
        recent.push(watchLine(event));
        watched?.apply(event);
        view = watched?.view ?? view;
      }
      if (view) process.stdout.write(renderWatchFrame(view, recent.slice(-8), view.state === 'active' ? progress : null));
    } else if (!isTaskEndChange(event) && !(event.type === 'task' && event.task.state !== 'active')) {
      process.stdout.write(`${watchLine(event)}\n`);
    }
  }
  if (view) process.exitCode = watchExitCode(view);
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, (operator) => follow(operator, argv.id, argv.json));
}

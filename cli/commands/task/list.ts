/** `noise-cfg task list`: every task, newest first, one line each (a header on a terminal). */
import type { Argv } from 'yargs';
import { escapeUnprintable } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'list';
export const describe = 'List tasks, newest first';

export function builder(yargs: Argv) {
  return commonOptions(yargs);
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const tasks = await operator.listTasks();
    const rows = tasks.map((task) => `${task.id}  ${task.state.padEnd(9)} ${task.mode}  ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied${task.counts.interrupted > 0 ? `, ${task.counts.interrupted} interrupted` : ''}  expires ${task.expiresAt}  ${escapeUnprintable(task.name)}`);
    // A header for people; a script reading a pipe gets the rows alone.
    const header = process.stdout.isTTY === true ? [`${'ID'.padEnd(tasks[0]?.id.length ?? 2)}  ${'STATE'.padEnd(9)} MODE    CLIENTS    EXPIRY                            NAME`] : [];
    printResult(tasks, argv.json, tasks.length === 0 ? 'no tasks' : [...header, ...rows].join('\n'));
  });
}

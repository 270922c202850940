/** `noise-cfg task cancel ID`: ends an active task; a running server refuses its clients from the next connection. */
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'cancel <id>';
export const describe = 'Cancel a task: its clients are refused from the next connection on';

export function builder(yargs: Argv) {
  return commonOptions(yargs).positional('id', { type: 'string', demandOption: true });
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const task = await operator.cancelTask(argv.id);
    printResult(task, argv.json, `cancelled task ${task.id}`);
  });
}

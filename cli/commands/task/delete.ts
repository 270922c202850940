/** `noise-cfg task delete ID`: cancels the task if active, then removes it with its files, clients and events. */
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../../arguments-of.js';
import { exitCodesHelp } from '../../exit-codes.js';
import { printResult } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'delete <id>';
export const describe = 'Delete a task: cancel it if active, then remove its files, clients and events';

export function builder(yargs: Argv) {
  return commonOptions(yargs).positional('id', { type: 'string', demandOption: true })
    .epilogue(`${exitCodesHelp({ OK: 'deleted', NOT_FOUND: 'no such task (also when deleted already)' })} Through --api: DELETE /v1/tasks/{id}?purge=true.`);
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const deleted = await operator.deleteTask(argv.id);
    const task = deleted.tasks[0];
    printResult(deleted, argv.json, `deleted task ${task?.id ?? argv.id} (${task?.state ?? 'ended'}): ${deleted.freedBytes} bytes of content freed`);
  });
}

/** `noise-cfg task prune --ended-before AGE`: deletes every task that ended longer ago than AGE. */
import type { Argv } from 'yargs';
import { escapeUnprintable, parseDurationSeconds } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult, UsageError } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'prune';
export const describe = 'Delete every task that ended longer ago than --ended-before';

export function builder(yargs: Argv) {
  return commonOptions(yargs)
    .option('ended-before', { type: 'string', requiresArg: true, demandOption: true, describe: 'Age: tasks that ended (cancelled, completed or expired) more than this long ago go, e.g. 7d, 12h' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'Only list what would be deleted' })
    .check((argv) => {
      const endedBefore = argv['ended-before'];
      if (parseDurationSeconds(endedBefore) === null) throw new UsageError(`--ended-before must look like 90s, 10m, 1h or 2d, got "${endedBefore}"`);
      return true;
    });
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const pruned = await operator.pruneTasks({ endedBeforeMs: parseDurationSeconds(argv.endedBefore)! * 1000, dryRun: argv.dryRun });
    const verb = argv.dryRun ? 'would delete' : 'deleted';
    const lines = [
      `${verb} ${pruned.tasks.length} task(s) that ended more than ${argv.endedBefore} ago: ${pruned.freedBytes} bytes of content${argv.dryRun ? '' : ` freed; database ${pruned.databaseBytes.before} -> ${pruned.databaseBytes.after} bytes`}`,
      ...pruned.tasks.map((task) => `  ${task.id}  ${task.state.padEnd(9)} ended ${task.endedAt ?? '-'}  ${task.totalBytes} bytes  ${escapeUnprintable(task.name)}`),
    ];
    printResult({ dryRun: argv.dryRun, ...pruned }, argv.json, lines.join('\n'));
  });
}

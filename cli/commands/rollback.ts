/**
 * `noise-cfg rollback --out DIR`: makes the previous version of a pull's output current again, atomically and under
 * the output's lock (SPEC.md §4.7 "Rollback"). Errors are thrown for bin.ts to report (SPEC.md §6).
 */
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../arguments-of.js';
import { DEFAULT_LOCK_TIMEOUT_MS, rollBackOutput } from '../../lib/index.js';
import { exitCodesHelp } from '../exit-codes.js';
import { printResult, printStatus } from '../output.js';

export const command = 'rollback';
export const describe = 'Make the previous version of a pull\'s --out current again';

export function builder(yargs: Argv) {
  return yargs
    .option('out', { type: 'string', demandOption: true, requiresArg: true, describe: 'The output directory a pull manages' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
    .epilogue([
      'noise-cfg keeps one previous version of --out until the next successful apply. rollback points --out back at it with one rename, records it as current and removes the version it left, so a second rollback in a row refuses (exit 3) unless an earlier failed --exec left one more version. The server is not told; the next pull of the task you left applies it again. No command is run: reload your service yourself.',
      '',
      exitCodesHelp({ OK: 'rolled back', NOT_FOUND: 'no version to go back to', APPLY_FAILED: '--out unsafe, busy (another pull holds its lock) or its previous version was changed on disk' }),
    ].join('\n'));
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  const outcome = await rollBackOutput(argv.out, {
    lockTimeoutMs: DEFAULT_LOCK_TIMEOUT_MS,
    onWait: (pid) => printStatus(`waiting for another noise-cfg pull (pid ${pid}) applying to ${argv.out}`),
  });
  const result = {
    status: 'rolled-back',
    outDir: argv.out,
    taskId: outcome.to.taskId,
    digest: outcome.to.digest,
    from: { taskId: outcome.from.taskId, digest: outcome.from.digest },
  };
  printResult(result, argv.json, `rolled back ${argv.out}: task ${outcome.to.taskId} (digest ${outcome.to.digest.slice(0, 16)}…) is current again; the version of task ${outcome.from.taskId} was removed`);
}

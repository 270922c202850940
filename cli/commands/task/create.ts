/** `noise-cfg task create`: creates a task from files and prints its token (or a ready pull command). */
import type { Argv } from 'yargs';
import { DEFAULT_TASK_MODE, parseDurationSeconds, readTaskFiles, TASK_MODES } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult, printStatus, UsageError } from '../../output.js';
import { renderQr } from '../../qr.js';
import { ADVERTISE_OPTION, checkAdvertiseArgument, commonOptions, pullCommandFor, withOperator } from './common.js';

export const command = 'create';
export const describe = 'Create a task and print its token';

export function builder(yargs: Argv) {
  return commonOptions(yargs)
    .option('file', { type: 'string', requiresArg: true, array: true, demandOption: true, describe: 'A file (lands under its base name) or a directory (its files, relative paths kept); repeatable' })
    .option('ttl', { type: 'string', requiresArg: true, default: '1h', describe: 'Time to live: 90s, 10m, 1h, 2d' })
    .option('max-clients', { type: 'number', describe: 'Complete the task once this many clients have applied it' })
    .option('mode', { choices: TASK_MODES, default: DEFAULT_TASK_MODE, describe: 'xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only)' })
    .option('name', { type: 'string', requiresArg: true, describe: 'A name for people' })
    .option('advertise', ADVERTISE_OPTION)
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the token, nothing on stderr' })
    .option('print-pull-command', { type: 'boolean', default: false, describe: 'Print a ready pull command that passes the token in the environment' })
    .option('qr', { type: 'boolean', default: false, describe: 'Also draw the token as a QR code (on stderr)' })
    // The values and combinations, checked before anything is read or created.
    .check((argv) => {
      if (parseDurationSeconds(argv.ttl) === null) throw new UsageError(`--ttl must look like 90s, 10m, 1h or 2d, got ${JSON.stringify(argv.ttl)}`);
      const maxClients = argv['max-clients'];
      if (maxClients !== undefined && !(Number.isInteger(maxClients) && maxClients >= 1)) throw new UsageError('--max-clients must be a whole number of at least 1');
      return checkAdvertiseArgument(argv);
    });
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator, advertise) => {
    const created = await operator.createTask({
      files: readTaskFiles(argv.file),
      ttlSeconds: parseDurationSeconds(argv.ttl)!,
      mode: argv.mode,
      ...(argv.maxClients !== undefined ? { maxClients: argv.maxClients } : {}),
      ...(argv.name !== undefined ? { name: argv.name } : {}),
      ...(advertise !== undefined ? { advertise } : {}),
    });
    const pullCommand = pullCommandFor(created.token);
    if (argv.json) {
      printResult({ id: created.id, token: created.token, expiresAt: created.expiresAt, ...(argv.printPullCommand ? { pullCommand } : {}), task: created.task }, true, '');
    } else {
      printResult(null, false, argv.printPullCommand ? pullCommand : created.token);
    }
    if (argv.qr) process.stderr.write(`${renderQr(created.token)}\n`);
    if (!argv.quiet && !argv.json) {
      printStatus(`created task ${created.id}: ${created.task.files.length} file(s), ${created.task.totalBytes} bytes, ${created.task.mode}, expires ${created.expiresAt}`);
      if (!argv.printPullCommand) printStatus('clients pull it with: NOISE_CFG_TOKEN=<token> noise-cfg pull --out DIR');
    }
  });
}

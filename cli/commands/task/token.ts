/** `noise-cfg task token ID`: the token of an active task again (its PSK derived again), or its pull command. */
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult } from '../../output.js';
import { renderQr } from '../../qr.js';
import { ADVERTISE_OPTION, checkAdvertiseArgument, commonOptions, pullCommandFor, withOperator } from './common.js';

export const command = 'token <id>';
export const describe = 'Print the token of an active task again';

export function builder(yargs: Argv) {
  return commonOptions(yargs).positional('id', { type: 'string', demandOption: true })
    .option('advertise', ADVERTISE_OPTION)
    .option('print-pull-command', { type: 'boolean', default: false, describe: 'Print the pull command a client runs, with the token in its environment' })
    .option('qr', { type: 'boolean', default: false, describe: 'Also draw the token as a QR code (on stderr)' })
    .check((argv) => checkAdvertiseArgument(argv));
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator, advertise) => {
    const { id, token, expiresAt } = await operator.taskToken(argv.id, advertise);
    if (argv.json) printResult({ id, token, expiresAt, ...(argv.printPullCommand ? { pullCommand: pullCommandFor(token) } : {}) }, true, '');
    else printResult(null, false, argv.printPullCommand ? pullCommandFor(token) : token);
    if (argv.qr) process.stderr.write(`${renderQr(token)}\n`);
  });
}

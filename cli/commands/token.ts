/** `noise-cfg token inspect [TOKEN]`: shows what a token holds, except its PSK (SPEC.md §3). */
import type { Argv } from 'yargs';
import { decodeToken, describeToken } from '../../lib/index.js';
import { printResult } from '../output.js';
import { readTokenText } from '../token-input.js';
import type { ArgumentsOf } from '../arguments-of.js';

function inspectOptions(yargs: Argv) {
  return yargs
    .positional('token', { type: 'string', describe: 'The token (or use --token-file or NOISE_CFG_TOKEN)' })
    .option('token-file', { type: 'string', requiresArg: true, describe: 'Read the token from FILE (- for stdin)' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' });
}

export const command = 'token';
export const describe = 'Work with task tokens';

export function builder(yargs: Argv): Argv {
  return yargs
    .command('inspect [token]', 'Show the address, task id, mode, expiry and pin of a token (never its PSK)', inspectOptions, (argv) => inspect(argv))
    .demandCommand(1, 'name an action: inspect');
}

function inspect(argv: ArgumentsOf<typeof inspectOptions>): void {
  const fields = decodeToken(readTokenText(argv, { warnOnArgv: false }));
  const view = describeToken(fields, Math.floor(Date.now() / 1000));
  const text = [
    `version:  ${view.version}`,
    `address:  ${view.address}`,
    `task id:  ${view.taskId}`,
    `mode:     ${view.mode}`,
    `expires:  ${view.expiresAt}${view.isExpired ? ' (expired)' : ''}`,
    `pin:      ${view.pin ?? '(none: nnpsk0 has no server key)'}`,
  ].join('\n');
  printResult(view, argv.json, text);
}

/** The subcommands do the work. */
export function handler(): void {}

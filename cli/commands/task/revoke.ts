/** `noise-cfg task revoke ID CLIENT`: refuses one client of a task from now on. */
import type { Argv } from 'yargs';
import { escapeUnprintable } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'revoke <id> <identity>';
export const describe = 'Refuse one client of a task from now on';

export function builder(yargs: Argv) {
  return commonOptions(yargs)
    .positional('id', { type: 'string', demandOption: true })
    .positional('identity', { type: 'string', demandOption: true, describe: 'The client: its identity (hex key in xxpsk3, client id in nnpsk0), a unique prefix of 8 or more hex characters (logs and watch show 16), or its name when unique' });
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const task = await operator.revokeClient(argv.id, argv.identity);
    const revoked = task.clients.find((client) => client.state === 'revoked' && (client.identity.startsWith(argv.identity.toLowerCase()) || client.name === argv.identity));
    printResult(task, argv.json, `revoked ${revoked ? `${escapeUnprintable(revoked.name) || '(no name)'} ${revoked.identity}` : escapeUnprintable(argv.identity)} from task ${task.id}`);
  });
}

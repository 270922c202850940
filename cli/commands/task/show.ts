/** `noise-cfg task show ID`: one task with its files and clients. */
import type { Argv } from 'yargs';
import { escapeUnprintable, type TaskView } from '../../../lib/index.js';
import type { ArgumentsOf } from '../../arguments-of.js';
import { printResult } from '../../output.js';
import { commonOptions, withOperator } from './common.js';

export const command = 'show <id>';
export const describe = 'Show a task with its files and clients';

export function builder(yargs: Argv) {
  return commonOptions(yargs).positional('id', { type: 'string', demandOption: true });
}

// "(command exited 3: reload failed)", "(no command)"-free: only what adds to the state already shown.
function describeClientResult(client: TaskView['clients'][number]): string {
  if (!client.result) return '';
  const parts = [
    ...(client.result.exitCode === null ? [] : [`command exited ${client.result.exitCode}`]),
    ...(client.result.message === '' || client.result.message === client.state ? [] : [escapeUnprintable(client.result.message)]),
  ];
  return parts.length === 0 ? '' : ` (${parts.join(': ')})`;
}

/** The text `task show` prints for a task. */
export function describeTask(task: TaskView): string {
  const limit = task.maxClients === null ? '' : `/${task.maxClients}`;
  return [
    `task ${task.id}${task.name ? ` (${escapeUnprintable(task.name)})` : ''}: ${task.state}, ${task.mode}, expires ${task.expiresAt}`,
    `  files: ${task.files.length}, ${task.totalBytes} bytes, digest ${task.digest.slice(0, 16)}…`,
    `  clients: ${task.counts.applied}${limit} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving, ${task.counts.interrupted} interrupted, ${task.counts.revoked} revoked`,
    ...task.clients.map((client) => `  - ${escapeUnprintable(client.name) || '(no name)'} ${client.identity} ${client.state}${describeClientResult(client)} ${client.remoteAddress}`),
  ].join('\n');
}

export async function handler(argv: ArgumentsOf<typeof builder>): Promise<void> {
  await withOperator(argv, async (operator) => {
    const task = await operator.showTask(argv.id);
    printResult(task, argv.json, describeTask(task));
  });
}

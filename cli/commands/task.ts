/**
 * `noise-cfg task create|list|show|cancel|revoke` (CONTRACT.md), acting on the data directory whether or not a
 * server runs on it. `create` prints the token on stdout and the details on stderr (or all of it with --json).
 */
import type { Argv } from 'yargs';
import { NoiseCfgError, parseDurationSeconds, readTaskFiles, TaskAdmin, type TaskView } from '../../lib/index.js';
import { parseHostPort } from '../host-port.js';
import { printResult, printStatus, reportError } from '../output.js';

interface CommonArguments {
  data: string;
  json: boolean;
}

interface CreateArguments extends CommonArguments {
  file: string[];
  ttl: string;
  maxClients?: number;
  mode: 'xxpsk3' | 'nnpsk0';
  name?: string;
  advertise?: string;
}

export const command = 'task';
export const describe = 'Create, list, show, cancel update tasks and revoke clients';

function common(yargs: Argv): Argv {
  return yargs
    .option('data', { type: 'string', default: './noise-cfg-data', describe: 'Data directory of the server' })
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' });
}

function withAdmin<T>(argv: CommonArguments, work: (admin: TaskAdmin) => T): void {
  try {
    const admin = TaskAdmin.open(argv.data);
    try {
      work(admin);
    } finally {
      admin.close();
    }
  } catch (error) {
    reportError(error);
  }
}

function describeTask(task: TaskView): string {
  const limit = task.maxClients === null ? '' : `/${task.maxClients}`;
  return [
    `task ${task.id}${task.name ? ` (${task.name})` : ''}: ${task.state}, ${task.mode}, expires ${task.expiresAt}`,
    `  files: ${task.files.length}, ${task.totalBytes} bytes, digest ${task.digest.slice(0, 16)}…`,
    `  clients: ${task.counts.applied}${limit} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving, ${task.counts.revoked} revoked`,
    ...task.clients.map((client) => `  - ${client.name || '(no name)'} ${client.identity.slice(0, 16)} ${client.state}${client.result ? ` (exit ${client.result.exitCode ?? '-'}: ${client.result.message})` : ''} ${client.remoteAddress}`),
  ].join('\n');
}

export function builder(yargs: Argv): Argv {
  return yargs
    .command('create', 'Create a task and print its token', (sub) => common(sub)
      .option('file', { type: 'string', array: true, demandOption: true, describe: 'A file (lands under its base name) or a directory (its files, relative paths kept); repeatable' })
      .option('ttl', { type: 'string', default: '1h', describe: 'Time to live: 90s, 10m, 1h, 2d' })
      .option('max-clients', { type: 'number', describe: 'Complete the task once this many clients have applied it' })
      .option('mode', { choices: ['xxpsk3', 'nnpsk0'] as const, default: 'xxpsk3' as const, describe: 'xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only)' })
      .option('name', { type: 'string', describe: 'A name for people' })
      .option('advertise', { type: 'string', describe: 'HOST:PORT clients connect to (default: what serve advertised)' }),
    (argv) => withAdmin(argv as unknown as CreateArguments, (admin) => {
      const options = argv as unknown as CreateArguments;
      const ttlSeconds = parseDurationSeconds(options.ttl);
      if (ttlSeconds === null) throw new NoiseCfgError('INVALID_ARGUMENT', `--ttl must look like 90s, 10m, 1h or 2d, got "${options.ttl}"`);
      if (options.maxClients !== undefined && !Number.isInteger(options.maxClients)) throw new NoiseCfgError('INVALID_ARGUMENT', '--max-clients must be a whole number');
      const created = admin.createTask({
        files: readTaskFiles(options.file),
        ttlSeconds,
        mode: options.mode,
        ...(options.maxClients !== undefined ? { maxClients: options.maxClients } : {}),
        ...(options.name !== undefined ? { name: options.name } : {}),
        ...(options.advertise !== undefined ? { advertise: parseHostPort(options.advertise, '--advertise') } : {}),
      });
      if (options.json) {
        printResult({ id: created.id, token: created.token, expiresAt: created.expiresAt, task: created.task }, true, '');
      } else {
        printResult(null, false, created.token);
        printStatus(`created task ${created.id}: ${created.task.files.length} file(s), ${created.task.totalBytes} bytes, ${created.task.mode}, expires ${created.expiresAt}`);
        printStatus('clients pull it with: NOISE_CFG_TOKEN=<token> noise-cfg pull --out DIR');
      }
    }))
    .command('list', 'List tasks, newest first', (sub) => common(sub), (argv) => withAdmin(argv as unknown as CommonArguments, (admin) => {
      const tasks = admin.listTasks();
      const text = tasks.length === 0 ? 'no tasks' : tasks.map((task) => `${task.id}  ${task.state.padEnd(9)} ${task.mode}  ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied  expires ${task.expiresAt}  ${task.name}`).join('\n');
      printResult(tasks, (argv as unknown as CommonArguments).json, text);
    }))
    .command('show <id>', 'Show a task with its files and clients', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withAdmin(argv as unknown as CommonArguments, (admin) => {
        const task = admin.showTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, describeTask(task));
      }))
    .command('cancel <id>', 'Cancel a task: its clients are refused from the next connection on', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withAdmin(argv as unknown as CommonArguments, (admin) => {
        const task = admin.cancelTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, `cancelled task ${task.id}`);
      }))
    .command('revoke <id> <identity>', 'Refuse one client of a task from now on', (sub) => common(sub)
      .positional('id', { type: 'string', demandOption: true })
      .positional('identity', { type: 'string', demandOption: true, describe: 'The client identity (hex key in xxpsk3, client id in nnpsk0)' }),
    (argv) => withAdmin(argv as unknown as CommonArguments, (admin) => {
      const task = admin.revokeClient(String(argv['id']), String(argv['identity']));
      printResult(task, (argv as unknown as CommonArguments).json, `revoked ${String(argv['identity'])} from task ${task.id}`);
    }))
    .demandCommand(1, 'name an action: create, list, show, cancel or revoke');
}

/** The subcommands do the work. */
export function handler(): void {}

/**
 * `noise-cfg task create|list|show|cancel|revoke|watch` (CONTRACT.md). With --data DIR they act on the data
 * directory directly, whether or not a server runs on it; with --api URL they go through the REST API, with the
 * admin token from --data DIR/admin.token or NOISE_CFG_ADMIN_TOKEN.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import {
  ApiClient, escapeUnprintable, NoiseCfgError, parseDurationSeconds, readTaskFiles, TaskAdmin, toTerminalSafeJson,
  type CreatedTask, type CreateTaskOptions, type DeletedTasks, type TaskStreamEvent, type TaskView,
} from '../../lib/index.js';
import { dataOption } from '../data-option.js';
import { EXIT } from '../exit-codes.js';
import { parseHostPort } from '../host-port.js';
import { printResult, printStatus, reportError, UsageError } from '../output.js';
import { renderQr } from '../qr.js';
import { selfCommand } from '../self-command.js';
import { renderWatchFrame, watchLine, WatchedTask } from '../watch-view.js';

interface CommonArguments {
  data: string;
  api?: string;
  json: boolean;
}

interface CreateArguments extends CommonArguments {
  file: string[];
  ttl: string;
  maxClients?: number;
  mode: 'xxpsk3' | 'nnpsk0';
  name?: string;
  advertise?: string;
  quiet: boolean;
  printPullCommand: boolean;
  qr: boolean;
}

interface PruneArguments extends CommonArguments {
  endedBefore: string;
  dryRun: boolean;
}

/** What the task commands need, locally (TaskAdmin) or through the API (ApiClient). */
interface TaskOperations {
  createTask(options: CreateTaskOptions): CreatedTask | Promise<CreatedTask>;
  listTasks(): TaskView[] | Promise<TaskView[]>;
  showTask(id: string): TaskView | Promise<TaskView>;
  cancelTask(id: string): TaskView | Promise<TaskView>;
  revokeClient(id: string, identity: string): TaskView | Promise<TaskView>;
  deleteTask(id: string): DeletedTasks | Promise<DeletedTasks>;
  watch(id: string): AsyncGenerator<TaskStreamEvent>;
}

export const command = 'task';
export const describe = 'Create, follow and manage update tasks';

function common(yargs: Argv): Argv {
  return yargs
    .option('data', dataOption('Data directory of the server, which serve created (also where --api finds admin.token)'))
    .option('api', { type: 'string', describe: 'Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data directory' })
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' });
}

function adminToken(argv: CommonArguments): string {
  const fromEnvironment = process.env['NOISE_CFG_ADMIN_TOKEN'];
  if (fromEnvironment && fromEnvironment.trim() !== '') return fromEnvironment.trim();
  const path = join(argv.data, 'admin.token');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    throw new NoiseCfgError('INVALID_ARGUMENT', `--api needs the admin token: set NOISE_CFG_ADMIN_TOKEN or give --data DIR holding admin.token (${path} is not readable)`);
  }
}

async function withOperations(argv: CommonArguments, work: (operations: TaskOperations) => Promise<void>): Promise<void> {
  try {
    if (argv.api !== undefined) {
      await work(new ApiClient(argv.api, adminToken(argv)));
      return;
    }
    const admin = TaskAdmin.open(argv.data);
    try {
      await work(admin);
    } finally {
      admin.close();
    }
  } catch (error) {
    if (argv.json && error instanceof NoiseCfgError) printResult({ error: { code: error.code, message: error.message } }, true, '');
    reportError(error);
  }
}

function describeTask(task: TaskView): string {
  const limit = task.maxClients === null ? '' : `/${task.maxClients}`;
  return [
    `task ${task.id}${task.name ? ` (${escapeUnprintable(task.name)})` : ''}: ${task.state}, ${task.mode}, expires ${task.expiresAt}`,
    `  files: ${task.files.length}, ${task.totalBytes} bytes, digest ${task.digest.slice(0, 16)}…`,
    `  clients: ${task.counts.applied}${limit} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving, ${task.counts.interrupted} interrupted, ${task.counts.revoked} revoked`,
    ...task.clients.map((client) => `  - ${escapeUnprintable(client.name) || '(no name)'} ${client.identity} ${client.state}${client.result ? ` (exit ${client.result.exitCode ?? '-'}: ${escapeUnprintable(client.result.message)})` : ''} ${client.remoteAddress}`),
  ].join('\n');
}

async function create(operations: TaskOperations, options: CreateArguments): Promise<void> {
  const ttlSeconds = parseDurationSeconds(options.ttl);
  if (ttlSeconds === null) throw new NoiseCfgError('INVALID_ARGUMENT', `--ttl must look like 90s, 10m, 1h or 2d, got "${options.ttl}"`);
  if (options.maxClients !== undefined && !Number.isInteger(options.maxClients)) throw new NoiseCfgError('INVALID_ARGUMENT', '--max-clients must be a whole number');
  if (options.advertise !== undefined && options.api !== undefined) throw new NoiseCfgError('INVALID_ARGUMENT', '--advertise goes with --data; through --api the server uses its own address');
  const created = await operations.createTask({
    files: readTaskFiles(options.file),
    ttlSeconds,
    mode: options.mode,
    ...(options.maxClients !== undefined ? { maxClients: options.maxClients } : {}),
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.advertise !== undefined ? { advertise: parseHostPort(options.advertise, '--advertise') } : {}),
  });
  // The token goes into the environment of the printed command, never into its argv.
  const pullCommand = `NOISE_CFG_TOKEN='${created.token}' ${selfCommand()} pull --out ./config`;
  if (options.json) {
    printResult({ id: created.id, token: created.token, expiresAt: created.expiresAt, ...(options.printPullCommand ? { pullCommand } : {}), task: created.task }, true, '');
  } else if (options.printPullCommand) {
    printResult(null, false, pullCommand);
  } else {
    printResult(null, false, created.token);
  }
  if (options.qr) process.stderr.write(`${renderQr(created.token)}\n`);
  if (!options.quiet && !options.json) {
    printStatus(`created task ${created.id}: ${created.task.files.length} file(s), ${created.task.totalBytes} bytes, ${created.task.mode}, expires ${created.expiresAt}`);
    if (!options.printPullCommand) printStatus(`clients pull it with: NOISE_CFG_TOKEN=<token> ${selfCommand()} pull --out DIR`);
  }
}

/** Exit code of `task watch` for the task as it ended: 0 completed (or expired with every client applied). */
export function watchExitCode(task: TaskView): number {
  if (task.state === 'completed') return EXIT.OK;
  const isUnreached = task.maxClients !== null && task.counts.applied < task.maxClients;
  if (task.state === 'expired' && task.counts.failed === 0 && !isUnreached && task.counts.offered === 0) return EXIT.OK;
  return EXIT.TASK_INCOMPLETE;
}

async function watch(operations: TaskOperations, id: string, asJson: boolean): Promise<void> {
  const isTerminal = process.stdout.isTTY === true && !asJson;
  let view: TaskView | null = null;
  let watched: WatchedTask | null = null;
  const recent: string[] = [];
  for await (const event of operations.watch(id)) {
    if (event.type === 'task' || event.type === 'end') {
      view = event.task;
      watched = new WatchedTask(view);
    }
    if (asJson) {
      process.stdout.write(`${toTerminalSafeJson(event)}\n`);
    } else if (isTerminal) {
      if (event.type === 'change') {
        recent.push(watchLine(event));
        watched?.apply(event);
        view = watched?.view ?? view;
      }
      if (view) process.stdout.write(renderWatchFrame(view, recent.slice(-8)));
    } else {
      process.stdout.write(`${watchLine(event)}\n`);
    }
  }
  if (view) process.exitCode = watchExitCode(view);
}

export function builder(yargs: Argv): Argv {
  return yargs
    .command('create', 'Create a task and print its token', (sub) => common(sub)
      .option('file', { type: 'string', array: true, demandOption: true, describe: 'A file (lands under its base name) or a directory (its files, relative paths kept); repeatable' })
      .option('ttl', { type: 'string', default: '1h', describe: 'Time to live: 90s, 10m, 1h, 2d' })
      .option('max-clients', { type: 'number', describe: 'Complete the task once this many clients have applied it' })
      .option('mode', { choices: ['xxpsk3', 'nnpsk0'] as const, default: 'xxpsk3' as const, describe: 'xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only)' })
      .option('name', { type: 'string', describe: 'A name for people' })
      .option('advertise', { type: 'string', describe: 'HOST:PORT clients connect to (with --data; default: what serve advertised)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the token, nothing on stderr' })
      .option('print-pull-command', { type: 'boolean', default: false, describe: 'Print a ready pull command that passes the token in the environment' })
      .option('qr', { type: 'boolean', default: false, describe: 'Also draw the token as a QR code (on stderr)' }),
    (argv) => withOperations(argv as unknown as CreateArguments, (operations) => create(operations, argv as unknown as CreateArguments)))
    .command('list', 'List tasks, newest first', (sub) => common(sub), (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const tasks = await operations.listTasks();
      const text = tasks.length === 0 ? 'no tasks' : tasks.map((task) => `${task.id}  ${task.state.padEnd(9)} ${task.mode}  ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied${task.counts.interrupted > 0 ? `, ${task.counts.interrupted} interrupted` : ''}  expires ${task.expiresAt}  ${escapeUnprintable(task.name)}`).join('\n');
      printResult(tasks, (argv as unknown as CommonArguments).json, text);
    }))
    .command('show <id>', 'Show a task with its files and clients', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
        const task = await operations.showTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, describeTask(task));
      }))
    .command('watch <id>', 'Follow a task live until it completes, expires or is cancelled', (sub) => common(sub).positional('id', { type: 'string', demandOption: true })
      .epilogue('Exit codes: 0 completed (or expired with every client applied), 6 ended incomplete (failures, unreached clients, cancelled).'),
    (argv) => withOperations(argv as unknown as CommonArguments, (operations) => watch(operations, String(argv['id']), (argv as unknown as CommonArguments).json)))
    .command('cancel <id>', 'Cancel a task: its clients are refused from the next connection on', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
        const task = await operations.cancelTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, `cancelled task ${task.id}`);
      }))
    .command('revoke <id> <identity>', 'Refuse one client of a task from now on', (sub) => common(sub)
      .positional('id', { type: 'string', demandOption: true })
      .positional('identity', { type: 'string', demandOption: true, describe: 'The client identity (hex key in xxpsk3, client id in nnpsk0)' }),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const task = await operations.revokeClient(String(argv['id']), String(argv['identity']));
      printResult(task, (argv as unknown as CommonArguments).json, `revoked ${String(argv['identity'])} from task ${task.id}`);
    }))
    .command('delete <id>', 'Delete a task: cancel it if active, then remove its files, clients and events', (sub) => common(sub).positional('id', { type: 'string', demandOption: true })
      .epilogue('Exit codes: 0 deleted, 3 no such task (also when deleted already). Through --api: DELETE /v1/tasks/{id}?purge=true.'),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const deleted = await operations.deleteTask(String(argv['id']));
      const task = deleted.tasks[0];
      printResult(deleted, (argv as unknown as CommonArguments).json, `deleted task ${task?.id ?? String(argv['id'])} (${task?.state ?? 'ended'}): ${deleted.freedBytes} bytes of content freed`);
    }))
    .command('prune', 'Delete every task that ended longer ago than --ended-before', (sub) => common(sub)
      .option('ended-before', { type: 'string', demandOption: true, describe: 'Age: tasks that ended (cancelled, completed or expired) more than this long ago go, e.g. 7d, 12h' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Only list what would be deleted' })
      .check((argv) => {
        if (argv['api'] !== undefined) throw new UsageError('task prune works on the data directory (--data DIR), not through --api');
        if (parseDurationSeconds(String(argv['ended-before'])) === null) throw new UsageError(`--ended-before must look like 90s, 10m, 1h or 2d, got "${String(argv['ended-before'])}"`);
        return true;
      }),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const options = argv as unknown as PruneArguments;
      const pruned = (operations as TaskAdmin).pruneTasks({ endedBeforeMs: parseDurationSeconds(options.endedBefore)! * 1000, dryRun: options.dryRun });
      const verb = options.dryRun ? 'would delete' : 'deleted';
      const lines = [
        `${verb} ${pruned.tasks.length} task(s) that ended more than ${options.endedBefore} ago: ${pruned.freedBytes} bytes of content${options.dryRun ? '' : ` freed; database ${pruned.databaseBytes.before} -> ${pruned.databaseBytes.after} bytes`}`,
        ...pruned.tasks.map((task) => `  ${task.id}  ${task.state.padEnd(9)} ended ${task.endedAt ?? '-'}  ${task.totalBytes} bytes  ${escapeUnprintable(task.name)}`),
      ];
      printResult({ dryRun: options.dryRun, ...pruned }, options.json, lines.join('\n'));
    }))
    .demandCommand(1, 'name an action: create, list, show, watch, cancel, revoke, delete or prune');
}

/** The subcommands do the work. */
export function handler(): void {}

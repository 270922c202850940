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
  type CreatedTask, type CreateTaskOptions, type DeletedTasks, type TaskProgress, type TaskStreamEvent, type TaskView,
} from '../../lib/index.js';
import { dataOption } from '../data-option.js';
import { EXIT, exitCodesHelp } from '../exit-codes.js';
import { checkAdvertise } from '../advertise-check.js';
import { parseHostPort } from '../host-port.js';
import { printResult, printStatus, UsageError } from '../output.js';
import { renderQr } from '../qr.js';
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
  taskToken(id: string): { id: string; token: string; expiresAt: string } | Promise<{ id: string; token: string; expiresAt: string }>;
  cancelTask(id: string): TaskView | Promise<TaskView>;
  revokeClient(id: string, identity: string): TaskView | Promise<TaskView>;
  deleteTask(id: string): DeletedTasks | Promise<DeletedTasks>;
  /** Only on the data directory (there is no API route for it). */
  pruneTasks?: TaskAdmin['pruneTasks'];
  watch(id: string): AsyncGenerator<TaskStreamEvent>;
}

export const command = 'task';
export const describe = 'Create, follow and manage update tasks';

function common(yargs: Argv): Argv {
  return yargs
    .option('data', dataOption('Data directory of the server, which serve created (also where --api finds admin.token)'))
    .option('api', { type: 'string', requiresArg: true, describe: 'Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data directory' })
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
  if (argv.api !== undefined) {
    await work(new ApiClient(argv.api, adminToken(argv)));
    return;
  }
  const advertiseText = (argv as { advertise?: string }).advertise;
  const advertise = advertiseText === undefined ? undefined : parseHostPort(advertiseText, '--advertise');
  if (advertise !== undefined) {
    const warning = await checkAdvertise(advertise);
    if (warning !== null) printStatus(warning);
  }
  const admin = TaskAdmin.open(argv.data);
  // TaskAdmin's methods keep their `this`: its private fields do not follow a copy or a prototype.
  const operations: TaskOperations = {
    createTask: (options) => admin.createTask(options),
    listTasks: () => admin.listTasks(),
    showTask: (id) => admin.showTask(id),
    taskToken: (id) => ({ id, token: admin.token(id, advertise), expiresAt: admin.showTask(id).expiresAt }),
    cancelTask: (id) => admin.cancelTask(id),
    revokeClient: (id, identity) => admin.revokeClient(id, identity),
    deleteTask: (id) => admin.deleteTask(id),
    pruneTasks: (options) => admin.pruneTasks(options),
    watch: (id) => admin.watch(id),
  };
  try {
    await work(operations);
  } finally {
    admin.close();
  }
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

function describeTask(task: TaskView): string {
  const limit = task.maxClients === null ? '' : `/${task.maxClients}`;
  return [
    `task ${task.id}${task.name ? ` (${escapeUnprintable(task.name)})` : ''}: ${task.state}, ${task.mode}, expires ${task.expiresAt}`,
    `  files: ${task.files.length}, ${task.totalBytes} bytes, digest ${task.digest.slice(0, 16)}…`,
    `  clients: ${task.counts.applied}${limit} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving, ${task.counts.interrupted} interrupted, ${task.counts.revoked} revoked`,
    ...task.clients.map((client) => `  - ${escapeUnprintable(client.name) || '(no name)'} ${client.identity} ${client.state}${describeClientResult(client)} ${client.remoteAddress}`),
  ].join('\n');
}

/** `task create`'s values and combinations, checked before anything is read or created. */
function checkCreateArguments(options: CreateArguments): true {
  if (parseDurationSeconds(options.ttl) === null) throw new UsageError(`--ttl must look like 90s, 10m, 1h or 2d, got ${JSON.stringify(options.ttl)}`);
  if (options.maxClients !== undefined && !(Number.isInteger(options.maxClients) && options.maxClients >= 1)) throw new UsageError('--max-clients must be a whole number of at least 1');
  if (options.advertise !== undefined && options.api !== undefined) throw new UsageError('--advertise goes with --data; through --api the server uses its own address');
  if (options.advertise !== undefined) parseHostPort(options.advertise, '--advertise');
  return true;
}

// What a client machine runs (where noise-cfg is installed), not how this machine started the CLI. The token goes
// into the command's environment, never into its argv, where other users of the client could read it.
function pullCommandFor(token: string): string {
  return `NOISE_CFG_TOKEN='${token}' noise-cfg pull --out ./config`;
}

async function create(operations: TaskOperations, options: CreateArguments): Promise<void> {
  const ttlSeconds = parseDurationSeconds(options.ttl)!;
  const created = await operations.createTask({
    files: readTaskFiles(options.file),
    ttlSeconds,
    mode: options.mode,
    ...(options.maxClients !== undefined ? { maxClients: options.maxClients } : {}),
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.advertise !== undefined ? { advertise: parseHostPort(options.advertise, '--advertise') } : {}),
  });
  const pullCommand = pullCommandFor(created.token);
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
    if (!options.printPullCommand) printStatus('clients pull it with: NOISE_CFG_TOKEN=<token> noise-cfg pull --out DIR');
  }
}

/** Exit code of `task watch` for the task as it ended: 0 completed, 6 expired or cancelled (SPEC.md §8). */
export function watchExitCode(task: TaskView): number {
  return task.state === 'completed' ? EXIT.OK : EXIT.TASK_INCOMPLETE;
}

// The end event that follows says the same, with the counts: one final line, not two (nor a "task … cancelled"
// line before it for a task that had ended before the watch began).
function isTaskEndChange(event: TaskStreamEvent): boolean {
  return event.type === 'change' && event.change.identity === null && (event.change.state === 'cancelled' || event.change.state === 'completed');
}

async function watch(operations: TaskOperations, id: string, asJson: boolean): Promise<void> {
  const isTerminal = process.stdout.isTTY === true && !asJson;
  let view: TaskView | null = null;
  let watched: WatchedTask | null = null;
  const recent: string[] = [];
  let progress: TaskProgress | null = null;
  for await (const event of operations.watch(id)) {
    if (event.type === 'progress') {
      // Bytes are for the live frame and --json; a piped watch prints state changes only.
      progress = event.progress;
      if (asJson) process.stdout.write(`${toTerminalSafeJson(event)}\n`);
      else if (isTerminal && view) process.stdout.write(renderWatchFrame(view, recent.slice(-8), progress));
      continue;
    }
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
      if (view) process.stdout.write(renderWatchFrame(view, recent.slice(-8), view.state === 'active' ? progress : null));
    } else if (!isTaskEndChange(event) && !(event.type === 'task' && event.task.state !== 'active')) {
      process.stdout.write(`${watchLine(event)}\n`);
    }
  }
  if (view) process.exitCode = watchExitCode(view);
}

export function builder(yargs: Argv): Argv {
  return yargs
    .command('create', 'Create a task and print its token', (sub) => common(sub)
      .option('file', { type: 'string', requiresArg: true, array: true, demandOption: true, describe: 'A file (lands under its base name) or a directory (its files, relative paths kept); repeatable' })
      .option('ttl', { type: 'string', requiresArg: true, default: '1h', describe: 'Time to live: 90s, 10m, 1h, 2d' })
      .option('max-clients', { type: 'number', describe: 'Complete the task once this many clients have applied it' })
      .option('mode', { choices: ['xxpsk3', 'nnpsk0'] as const, default: 'xxpsk3' as const, describe: 'xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only)' })
      .option('name', { type: 'string', requiresArg: true, describe: 'A name for people' })
      .option('advertise', { type: 'string', requiresArg: true, describe: 'HOST:PORT clients connect to (with --data; default: what serve advertised)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the token, nothing on stderr' })
      .option('print-pull-command', { type: 'boolean', default: false, describe: 'Print a ready pull command that passes the token in the environment' })
      .option('qr', { type: 'boolean', default: false, describe: 'Also draw the token as a QR code (on stderr)' })
      .check((argv) => checkCreateArguments(argv as unknown as CreateArguments)),
    (argv) => withOperations(argv as unknown as CreateArguments, (operations) => create(operations, argv as unknown as CreateArguments)))
    .command('list', 'List tasks, newest first', (sub) => common(sub), (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const tasks = await operations.listTasks();
      const rows = tasks.map((task) => `${task.id}  ${task.state.padEnd(9)} ${task.mode}  ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied${task.counts.interrupted > 0 ? `, ${task.counts.interrupted} interrupted` : ''}  expires ${task.expiresAt}  ${escapeUnprintable(task.name)}`);
      // A header for people; a script reading a pipe gets the rows alone.
      const header = process.stdout.isTTY === true ? [`${'ID'.padEnd(tasks[0]?.id.length ?? 2)}  ${'STATE'.padEnd(9)} MODE    CLIENTS    EXPIRY                            NAME`] : [];
      const text = tasks.length === 0 ? 'no tasks' : [...header, ...rows].join('\n');
      printResult(tasks, (argv as unknown as CommonArguments).json, text);
    }))
    .command('show <id>', 'Show a task with its files and clients', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
        const task = await operations.showTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, describeTask(task));
      }))
    .command('watch <id>', 'Follow a task live until it completes, expires or is cancelled', (sub) => common(sub).positional('id', { type: 'string', demandOption: true })
      .epilogue(exitCodesHelp({ OK: 'completed (its --max-clients applied)', TASK_INCOMPLETE: 'expired or cancelled (also when no client came)', NOT_FOUND: 'no such task' })),
    (argv) => withOperations(argv as unknown as CommonArguments, (operations) => watch(operations, String(argv['id']), (argv as unknown as CommonArguments).json)))
    .command('token <id>', 'Print the token of an active task again', (sub) => common(sub).positional('id', { type: 'string', demandOption: true })
      .option('advertise', { type: 'string', requiresArg: true, describe: 'HOST:PORT clients connect to (with --data; default: what serve advertised)' })
      .option('print-pull-command', { type: 'boolean', default: false, describe: 'Print the pull command a client runs, with the token in its environment' })
      .option('qr', { type: 'boolean', default: false, describe: 'Also draw the token as a QR code (on stderr)' })
      .check((argv) => {
        if (argv['advertise'] !== undefined && argv['api'] !== undefined) throw new UsageError('--advertise goes with --data; through --api the server uses its own address');
        if (argv['advertise'] !== undefined) parseHostPort(argv['advertise'] as string, '--advertise');
        return true;
      }),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const options = argv as unknown as CommonArguments & { printPullCommand: boolean; qr: boolean };
      const { id, token, expiresAt } = await operations.taskToken(String(argv['id']));
      if (options.json) printResult({ id, token, expiresAt, ...(options.printPullCommand ? { pullCommand: pullCommandFor(token) } : {}) }, true, '');
      else printResult(null, false, options.printPullCommand ? pullCommandFor(token) : token);
      if (options.qr) process.stderr.write(`${renderQr(token)}\n`);
    }))
    .command('cancel <id>', 'Cancel a task: its clients are refused from the next connection on', (sub) => common(sub).positional('id', { type: 'string', demandOption: true }),
      (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
        const task = await operations.cancelTask(String(argv['id']));
        printResult(task, (argv as unknown as CommonArguments).json, `cancelled task ${task.id}`);
      }))
    .command('revoke <id> <identity>', 'Refuse one client of a task from now on', (sub) => common(sub)
      .positional('id', { type: 'string', demandOption: true })
      .positional('identity', { type: 'string', demandOption: true, describe: 'The client: its identity (hex key in xxpsk3, client id in nnpsk0), a unique prefix of 8 or more hex characters (logs and watch show 16), or its name when unique' }),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const task = await operations.revokeClient(String(argv['id']), String(argv['identity']));
      const revoked = task.clients.find((client) => client.state === 'revoked' && (client.identity.startsWith(String(argv['identity']).toLowerCase()) || client.name === String(argv['identity'])));
      printResult(task, (argv as unknown as CommonArguments).json, `revoked ${revoked ? `${escapeUnprintable(revoked.name) || '(no name)'} ${revoked.identity}` : escapeUnprintable(String(argv['identity']))} from task ${task.id}`);
    }))
    .command('delete <id>', 'Delete a task: cancel it if active, then remove its files, clients and events', (sub) => common(sub).positional('id', { type: 'string', demandOption: true })
      .epilogue(`${exitCodesHelp({ OK: 'deleted', NOT_FOUND: 'no such task (also when deleted already)' })} Through --api: DELETE /v1/tasks/{id}?purge=true.`),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const deleted = await operations.deleteTask(String(argv['id']));
      const task = deleted.tasks[0];
      printResult(deleted, (argv as unknown as CommonArguments).json, `deleted task ${task?.id ?? String(argv['id'])} (${task?.state ?? 'ended'}): ${deleted.freedBytes} bytes of content freed`);
    }))
    .command('prune', 'Delete every task that ended longer ago than --ended-before', (sub) => common(sub)
      .option('ended-before', { type: 'string', requiresArg: true, demandOption: true, describe: 'Age: tasks that ended (cancelled, completed or expired) more than this long ago go, e.g. 7d, 12h' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Only list what would be deleted' })
      .check((argv) => {
        if (argv['api'] !== undefined) throw new UsageError('task prune works on the data directory (--data DIR), not through --api');
        if (parseDurationSeconds(String(argv['ended-before'])) === null) throw new UsageError(`--ended-before must look like 90s, 10m, 1h or 2d, got "${String(argv['ended-before'])}"`);
        return true;
      }),
    (argv) => withOperations(argv as unknown as CommonArguments, async (operations) => {
      const options = argv as unknown as PruneArguments;
      const pruned = operations.pruneTasks!({ endedBeforeMs: parseDurationSeconds(options.endedBefore)! * 1000, dryRun: options.dryRun });
      const verb = options.dryRun ? 'would delete' : 'deleted';
      const lines = [
        `${verb} ${pruned.tasks.length} task(s) that ended more than ${options.endedBefore} ago: ${pruned.freedBytes} bytes of content${options.dryRun ? '' : ` freed; database ${pruned.databaseBytes.before} -> ${pruned.databaseBytes.after} bytes`}`,
        ...pruned.tasks.map((task) => `  ${task.id}  ${task.state.padEnd(9)} ended ${task.endedAt ?? '-'}  ${task.totalBytes} bytes  ${escapeUnprintable(task.name)}`),
      ];
      printResult({ dryRun: options.dryRun, ...pruned }, options.json, lines.join('\n'));
    }))
    .demandCommand(1, 'name an action: create, list, show, token, watch, cancel, revoke, delete or prune');
}

/** The subcommands do the work. */
export function handler(): void {}

/**
 * What every `task` subcommand shares: --data, --api and --json, and the operator they act through. With --data
 * DIR the commands act on the data directory directly, whether or not a server runs on it; with --api URL they
 * go through the REST API, with the admin token from --data DIR/admin.token or NOISE_CFG_ADMIN_TOKEN.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { ApiClient, NoiseCfgError, TaskAdmin, type AdvertisedAddress, type CreatedTask, type CreateTaskOptions, type DeletedTasks, type TaskStreamEvent, type TaskView } from '../../../lib/index.js';
import { checkAdvertise } from '../../advertise-check.js';
import { dataOption } from '../../data-option.js';
import { parseHostPort } from '../../host-port.js';
import { printStatus, UsageError } from '../../output.js';

/** --data, --api and --json, as every task subcommand takes them. */
export function commonOptions(yargs: Argv) {
  return yargs
    .option('data', dataOption('Data directory of the server, which serve created (also where --api finds admin.token)'))
    .option('api', { type: 'string', requiresArg: true, describe: 'Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data directory' })
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' });
}

/** The parsed common options. */
export interface CommonArguments {
  data: string;
  api?: string | undefined;
  json: boolean;
}

/** --advertise, where a subcommand mints a token. */
export const ADVERTISE_OPTION = {
  type: 'string',
  requiresArg: true,
  describe: 'HOST:PORT clients connect to (with --data; default: what serve advertised)',
} as const;

/** Checks --advertise: a HOST:PORT, and only with --data. Throws UsageError. */
export function checkAdvertiseArgument(argv: { advertise?: string | undefined; api?: string | undefined }): true {
  if (argv.advertise !== undefined && argv.api !== undefined) throw new UsageError('--advertise goes with --data; through --api the server uses its own address');
  if (argv.advertise !== undefined) parseHostPort(argv.advertise, '--advertise');
  return true;
}

/** What the task commands need, locally (TaskAdmin) or through the API (ApiClient). */
export interface TaskOperations {
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

/** Runs `work` with the operations of --api or else --data, closing the data directory afterwards. */
export async function withOperations(argv: CommonArguments & { advertise?: string | undefined }, work: (operations: TaskOperations) => Promise<void>): Promise<void> {
  if (argv.api !== undefined) {
    await work(new ApiClient(argv.api, adminToken(argv)));
    return;
  }
  const advertise: AdvertisedAddress | undefined = argv.advertise === undefined ? undefined : parseHostPort(argv.advertise, '--advertise');
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

// What a client machine runs (where noise-cfg is installed), not how this machine started the CLI. The token goes
// into the command's environment, never into its argv, where other users of the client could read it.
/** The pull command a client runs for `token`. */
export function pullCommandFor(token: string): string {
  return `NOISE_CFG_TOKEN='${token}' noise-cfg pull --out ./config`;
}

/**
 * `noise-cfg serve`: the update server (CONTRACT.md). Creates the data directory and its keys on first start,
 * logs one line per connection outcome (text or JSON) on stdout, and stops cleanly on SIGINT or SIGTERM.
 */
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../arguments-of.js';
import {
  escapeUnprintable, MAX_WORKERS, NoiseCfgError, parseDurationSeconds, parseWorkerCount, reportWorkerFailed, reportWorkerReady, startApiServer,
  describeStoreLocation, TaskAdmin, TaskServer, toTerminalSafeJson, WorkerPool, workerRole, type ApiLogRecord, type LogRecord, type TaskServerOptions,
} from '../../lib/index.js';
import { dataOption } from '../data-option.js';
import { storeLocation, storeOption } from '../store-option.js';
import { checkAdvertise } from '../advertise-check.js';
import { parseHostPort } from '../host-port.js';
import { isLoopbackHost } from '../loopback.js';
import { printStatus, UsageError } from '../output.js';
import { selfCommand } from '../self-command.js';

export const command = 'serve';
export const describe = 'Run the update server';

export function builder(yargs: Argv) {
  return yargs
    .option('data', dataOption('Data directory: keys (0600) and the task database; created (0700) on first start, and locked while serving'))
    .option('store', storeOption())
    .option('listen', { type: 'string', requiresArg: true, default: '0.0.0.0:7447', describe: 'Address for client connections, HOST:PORT' })
    .option('api', { type: 'string', requiresArg: true, default: '127.0.0.1:7448', describe: 'Address of the REST API, HOST:PORT, or "off"' })
    .option('api-allow-remote', { type: 'boolean', default: false, describe: 'Allow the API on a non-loopback address (it carries tokens: put it behind TLS)' })
    .option('advertise', { type: 'string', requiresArg: true, describe: 'HOST:PORT written into tokens (default: the listen address, or this machine\'s first IPv4 address)' })
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'One line per connection outcome, as text or JSON' })
    .option('demo', { type: 'boolean', default: false, describe: 'Also create a demo task (1 file, 1 hour) and print how to pull it' })
    .option('grace-seconds', { type: 'number', default: 10, describe: 'On SIGINT/SIGTERM, how long pulls in flight may finish' })
    .option('workers', { type: 'string', requiresArg: true, default: '1', describe: `Server processes sharing the ports and the data directory, 1 to ${MAX_WORKERS}, or "auto" (one per CPU)` })
    .option('retain', { type: 'string', requiresArg: true, default: '7d', describe: 'Delete tasks (records and content) this long after they ended, checked hourly: 12h, 7d, 30d; 0 or off keeps them forever' })
    .check((argv) => {
      if (retainMs(String(argv['retain'])) === undefined) throw new UsageError(`--retain must look like 12h, 7d or 30d, or be 0 or off, got ${JSON.stringify(String(argv['retain']))}`);
      if (parseWorkerCount(String(argv['workers'])) === null) throw new UsageError(`--workers must be a whole number from 1 to ${MAX_WORKERS}, or auto, got ${JSON.stringify(String(argv['workers']))}`);
      storeLocation({ store: argv['store'] as string | undefined });
      parseHostPort(argv['listen'] as string, '--listen');
      if (argv['advertise'] !== undefined) parseHostPort(argv['advertise'] as string, '--advertise');
      if (argv['api'] !== 'off') parseHostPort(argv['api'] as string, '--api');
      const graceSeconds = argv['graceSeconds'] as number;
      if (!(Number.isFinite(graceSeconds) && graceSeconds >= 0)) throw new UsageError('--grace-seconds must be a number of seconds, 0 or more');
      return true;
    });
}

/** --retain in milliseconds: null keeps tasks forever (0, off); undefined when malformed. */
function retainMs(text: string): number | null | undefined {
  if (text === '0' || text === 'off') return null;
  const seconds = parseDurationSeconds(text);
  return seconds === null ? undefined : seconds * 1000;
}

// A client chooses its name and result message: in text, a value with white space is quoted as JSON, and no value
// keeps a control, escape or bidi character (a fake log line or a recoloured screen).
function formatText(record: LogRecord | ApiLogRecord): string {
  const { time, event, ...rest } = record;
  const fields = Object.entries(rest).map(([key, value]) => `${key}=${typeof value === 'string' && /\s/.test(value) ? toTerminalSafeJson(value) : escapeUnprintable(String(value))}`);
  return [time, event, ...fields].join(' ');
}

type ServeArguments = ArgumentsOf<typeof builder>;
type ApiServer = Awaited<ReturnType<typeof startApiServer>>;
type Address = { host: string; port: number };

export async function handler(argv: ServeArguments): Promise<void> {
  const role = workerRole();
  const listen = parseHostPort(argv.listen, '--listen');
  const advertise = argv.advertise === undefined ? undefined : parseHostPort(argv.advertise, '--advertise');
  // A worker's primary checked the address and said what it found.
  const advertiseWarning = advertise === undefined || role ? null : await checkAdvertise(advertise);
  if (advertiseWarning !== null) printStatus(advertiseWarning);
  // Checked before the server opens (and on first start creates) its data directory.
  const apiAddress = argv.api === 'off' ? null : parseHostPort(argv.api, '--api');
  const isApiLoopback = apiAddress !== null && await isLoopbackHost(apiAddress.host, '--api');
  if (apiAddress && !isApiLoopback && !argv.apiAllowRemote) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `--api ${argv.api} is not a loopback address; the API hands out tokens, so add --api-allow-remote (and put it behind TLS) or use 127.0.0.1`);
  }
  const writeLog = (record: LogRecord | ApiLogRecord): void => {
    process.stdout.write(`${argv.logFormat === 'json' ? toTerminalSafeJson(record) : formatText(record)}\n`);
  };
  const store = storeLocation(argv);
  const serverOptions: TaskServerOptions = {
    dataDir: argv.data,
    store,
    listen,
    ...(advertise ? { advertise } : {}),
    retainMs: retainMs(argv.retain) ?? null,
    log: writeLog,
  };
  if (role) return serveAsWorker({ ...serverOptions, worker: role }, apiAddress, writeLog, argv.graceSeconds * 1000);
  const workers = parseWorkerCount(argv.workers)!;
  let stop: () => Promise<void>;
  let address: Address;
  let api: Address | null = null;
  let admin: () => Promise<TaskAdmin>;
  if (workers === 1) {
    const server = new TaskServer(serverOptions);
    address = await server.start();
    let apiServer: ApiServer | null = null;
    if (apiAddress) {
      try {
        apiServer = await startApiServer({ admin: server.admin(), adminToken: server.dataDir.adminToken, log: writeLog }, apiAddress);
      } catch (error) {
        await server.stop(0);
        throw error;
      }
      api = { host: apiServer.host, port: apiServer.port };
    }
    admin = () => Promise.resolve(server.admin());
    stop = () => Promise.resolve(apiServer?.app.close()).then(() => server.stop(argv.graceSeconds * 1000));
  } else {
    const pool = new WorkerPool({ dataDir: argv.data, store, workers, listen: `${listen.host}:${listen.port}`, log: writeLog });
    ({ address, api } = await pool.start());
    admin = () => TaskAdmin.open(argv.data, { store });
    stop = () => pool.stop(argv.graceSeconds * 1000);
  }
  const processes = workers === 1 ? '' : ` (${workers} worker processes)`;
  const tasks = store.kind === 'sqlite' ? '' : `, tasks in ${describeStoreLocation(store)}`;
  printStatus(`noise-cfg serve: listening on ${address.host}:${address.port}, data in ${argv.data}${tasks}${processes}`);
  if (api) {
    if (!isApiLoopback) printStatus(`warning: the REST API listens on ${api.host}:${api.port}, reachable from the network; it carries tokens, so put it behind a TLS proxy`);
    printStatus(`REST API on http://${api.host.includes(':') ? `[${api.host}]` : api.host}:${api.port}/v1 (bearer token in ${argv.data}/admin.token)`);
  }
  if (argv.demo) await createDemoTask(await admin(), workers > 1);
  await new Promise<void>((resolve, reject) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      printStatus(`${signal}: stopping (pulls in flight get ${argv.graceSeconds} s)`);
      stop().then(resolve, reject);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

// Through the server's own store when there is one (`ownsAdmin` false): no second handle on the database.
async function createDemoTask(admin: TaskAdmin, ownsAdmin: boolean): Promise<void> {
  try {
    const created = await admin.createTask({
      name: 'demo',
      files: [{ path: 'demo/hello.conf', content: Buffer.from(`# written by noise-cfg serve --demo\ngreeting = "hello"\ncreated = "${new Date().toISOString()}"\n`) }],
    });
    printStatus(`demo task ${created.id} (expires ${created.expiresAt}); in another terminal run:`);
    printStatus(`  NOISE_CFG_TOKEN=${created.token} ${selfCommand()} pull --out ./demo-out`);
  } finally {
    if (ownsAdmin) await admin.close();
  }
}

// One worker of `serve --workers`: serves until its primary (or the terminal) sends SIGTERM or SIGINT, then drains
// like a single server. It prints nothing of its own: its primary says what the pool does, and reports a failure
// to start, which the worker sends it instead of printing.
async function serveAsWorker(options: TaskServerOptions, apiAddress: Address | null, writeLog: (record: ApiLogRecord) => void, graceMs: number): Promise<void> {
  const server = new TaskServer(options);
  let apiServer: ApiServer | null = null;
  let isStarted = false;
  try {
    const address = await server.start();
    isStarted = true;
    if (apiAddress) apiServer = await startApiServer({ admin: server.admin(), adminToken: server.dataDir.adminToken, log: writeLog }, apiAddress);
    reportWorkerReady({ address, api: apiServer ? { host: apiServer.host, port: apiServer.port } : null });
  } catch (error) {
    // A server that failed to start closed what it opened; one whose API failed is stopped here.
    if (isStarted) await server.stop(0).catch(() => undefined);
    await reportWorkerFailed(error);
    process.exitCode = 1;
    process.disconnect?.();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    // A terminal's Ctrl-C reaches the whole process group and the primary then sends SIGTERM: the second signal must
    // not kill a worker that is draining (the primary kills one that overstays the grace).
    const ignore = (): void => undefined;
    const onSignal = (): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.on('SIGINT', ignore);
      process.on('SIGTERM', ignore);
      Promise.resolve(apiServer?.app.close()).then(() => server.stop(graceMs)).then(resolve, reject);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  // The IPC channel to the primary would keep this process alive.
  process.disconnect?.();
}

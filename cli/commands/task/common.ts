/**
 * What every `task` subcommand shares: --data, --api and --json, and the Operator they act through. With --data
 * DIR the commands act on the data directory directly (TaskAdmin), whether or not a server runs on it; with --api
 * URL through the REST API (ApiClient), with the admin token from --data DIR/admin.token or NOISE_CFG_ADMIN_TOKEN.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { ApiClient, NoiseCfgError, TaskAdmin, type AdvertisedAddress, type Operator } from '../../../lib/index.js';
import { checkAdvertise } from '../../advertise-check.js';
import { dataOption } from '../../data-option.js';
import { storeLocation, storeOption } from '../../store-option.js';
import { parseHostPort } from '../../host-port.js';
import { printStatus, UsageError } from '../../output.js';

/** --data, --api and --json, as every task subcommand takes them. */
export function commonOptions(yargs: Argv) {
  return yargs
    .option('data', dataOption('Data directory of the server, which serve created (also where --api finds admin.token)'))
    .option('store', storeOption())
    .option('api', { type: 'string', requiresArg: true, describe: 'Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data directory' })
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' });
}

/** The parsed common options. */
export interface CommonArguments {
  data: string;
  store?: string | undefined;
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

/**
 * Runs `work` with the operator of --api (the REST API) or else --data (the data directory), and closes it
 * afterwards. A token minted on the data directory goes to --advertise when given.
 */
export async function withOperator(argv: CommonArguments & { advertise?: string | undefined }, work: (operator: Operator, advertise: AdvertisedAddress | undefined) => Promise<void>): Promise<void> {
  const advertise: AdvertisedAddress | undefined = argv.advertise === undefined ? undefined : parseHostPort(argv.advertise, '--advertise');
  if (advertise !== undefined) {
    const warning = await checkAdvertise(advertise);
    if (warning !== null) printStatus(warning);
  }
  const operator: Operator = argv.api !== undefined ? new ApiClient(argv.api, adminToken(argv)) : await TaskAdmin.open(argv.data, { store: storeLocation(argv) });
  try {
    await work(operator, advertise);
  } finally {
    await operator.close();
  }
}

// What a client machine runs (where noise-cfg is installed), not how this machine started the CLI. The token goes
// into the command's environment, never into its argv, where other users of the client could read it.
/** The pull command a client runs for `token`. */
export function pullCommandFor(token: string): string {
  return `NOISE_CFG_TOKEN='${token}' noise-cfg pull --out ./config`;
}

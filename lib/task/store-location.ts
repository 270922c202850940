/**
 * Where the task database lives (SPEC.md §4.9): `sqlite`, the embedded file in the data directory (the default),
 * or `postgres://user[:password]@host[:port]/database[?host=/socket/dir]` for several servers acting as one. Pure:
 * reading a password file is the caller's (readStorePassword), so the rules can be tested without files.
 */
import { readFileSync } from 'node:fs';
import { NoiseCfgError } from '../errors.js';

/** The embedded SQLite store in the data directory. */
export interface SqliteLocation {
  kind: 'sqlite';
}

/** A PostgreSQL database, reached over TCP or a Unix socket directory. */
export interface PostgresLocation {
  kind: 'postgres';
  user: string;
  /** From the URL, when it carries one; else from NOISE_CFG_STORE_PASSWORD(_FILE), see readStorePassword. */
  password: string | null;
  /** A host name or address, or an absolute socket directory (from `?host=`). */
  host: string;
  port: number;
  database: string;
}

export type StoreLocation = SqliteLocation | PostgresLocation;

/** PostgreSQL's own default port. */
export const DEFAULT_POSTGRES_PORT = 5432;

const SCHEMES = new Set(['postgres:', 'postgresql:']);
/** Query parameters of the URL that are understood; anything else is a typo to report, not to ignore. */
const KNOWN_PARAMETERS = new Set(['host', 'port']);
// libpq's form for a socket directory leaves the host out (`postgres://user@/db?host=/dir`), which WHATWG URL
// parsing refuses; the gap is filled with a name that cannot resolve, and ?host= is then required.
const EMPTY_HOST = /^(postgres(?:ql)?:\/\/[^/@?#]*@)(?=\/)/;
const EMPTY_HOST_PLACEHOLDER = 'no-host.invalid';

function invalid(message: string): NoiseCfgError {
  return new NoiseCfgError('INVALID_ARGUMENT', `--store: ${message}`);
}

/**
 * Parses `--store` (or NOISE_CFG_STORE). Throws INVALID_ARGUMENT naming what is wrong, never echoing a password.
 */
export function parseStoreLocation(text: string): StoreLocation {
  const value = text.trim();
  if (value === '' || value === 'sqlite') return { kind: 'sqlite' };
  let url: URL;
  try {
    url = new URL(value.replace(EMPTY_HOST, `$1${EMPTY_HOST_PLACEHOLDER}`));
  } catch {
    throw invalid('expected "sqlite" or a URL postgres://user@host[:port]/database');
  }
  if (!SCHEMES.has(url.protocol)) throw invalid(`the scheme ${url.protocol.slice(0, -1)}: is not supported (sqlite or postgres)`);
  for (const name of url.searchParams.keys()) {
    if (!KNOWN_PARAMETERS.has(name)) throw invalid(`the URL parameter "${name}" is not understood (only host=/socket/dir and port=)`);
  }
  const user = decodeURIComponent(url.username);
  if (user === '') throw invalid('the URL names no user (postgres://USER@host/database)');
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) throw invalid('the URL names no database (postgres://user@host/DATABASE)');
  const socketDir = url.searchParams.get('host');
  if (socketDir !== null && !socketDir.startsWith('/')) throw invalid('host= must be an absolute socket directory');
  const hostname = url.hostname === EMPTY_HOST_PLACEHOLDER ? '' : url.hostname.replace(/^\[|\]$/g, '');
  const host = socketDir ?? hostname;
  if (host === '') throw invalid('the URL names no host (postgres://user@HOST/database, or ?host=/socket/dir)');
  const portText = url.searchParams.get('port') ?? url.port;
  const port = portText === '' ? DEFAULT_POSTGRES_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`port must be 1 to 65535, got "${portText}"`);
  return { kind: 'postgres', user, password: url.password === '' ? null : decodeURIComponent(url.password), host, port, database };
}

/** The location for logs and errors: a password, wherever it came from, is never part of it. */
export function describeStoreLocation(location: StoreLocation): string {
  if (location.kind === 'sqlite') return 'sqlite (in the data directory)';
  const where = location.host.startsWith('/') ? `socket ${location.host}, port ${location.port}` : `${location.host.includes(':') ? `[${location.host}]` : location.host}:${location.port}`;
  return `postgres ${location.user}@${where}/${location.database}`;
}

/**
 * The password for a PostgreSQL location: the URL's, else NOISE_CFG_STORE_PASSWORD, else the first line of the file
 * NOISE_CFG_STORE_PASSWORD_FILE names; null when none is given (the server may not ask: trust or peer auth).
 * Throws INVALID_ARGUMENT when the file cannot be read or is empty.
 */
export function readStorePassword(location: PostgresLocation, env: NodeJS.ProcessEnv = process.env): string | null {
  if (location.password !== null) return location.password;
  const fromEnv = env['NOISE_CFG_STORE_PASSWORD'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const file = env['NOISE_CFG_STORE_PASSWORD_FILE'];
  if (file === undefined || file === '') return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `NOISE_CFG_STORE_PASSWORD_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  const password = text.split(/\r?\n/, 1)[0]!;
  if (password === '') throw new NoiseCfgError('INVALID_ARGUMENT', `NOISE_CFG_STORE_PASSWORD_FILE: ${file} is empty`);
  return password;
}

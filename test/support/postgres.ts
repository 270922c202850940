/**
 * A throwaway PostgreSQL cluster for the tests (issue 14): Debian's server binaries, `initdb` into a temporary
 * directory, `pg_ctl start` on a free port and a socket directory of its own, stopped and removed in teardown.
 * The server refuses to run as root, so under root every server command runs as the `postgres` user (setpriv).
 *
 * Without the binaries a test skips with the reason, except under CI (`CI` set), where `.ci/run` has installed
 * them and a missing server is a failure: CI must never count a PostgreSQL test as passed without running it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SETPRIV } from './as-nobody.js';

const DEBIAN_POSTGRES_ROOT = '/usr/lib/postgresql';
/** How long `pg_ctl start` may take before the test fails (initdb and start take about 2 s here). */
const START_TIMEOUT_SECONDS = 60;

/** A running throwaway cluster and how to reach it. */
export interface PostgresCluster {
  /** The directory of the server's Unix socket (`?host=` in a URL). */
  socketDir: string;
  port: number;
  /** The superuser the cluster was made with, and its password (TCP connections need it). */
  user: string;
  password: string;
  /** A file holding the password alone, mode 0600. */
  passwordFile: string;
  database: string;
  /** `postgres://user:password@127.0.0.1:port/database` */
  tcpUrl: string;
  /** `postgres://user@/database?host=socketDir&port=port` (trust over the socket, no password) */
  socketUrl: string;
  /** Runs `psql` against the cluster over its socket (in `database`, default the cluster's) and returns its trimmed stdout; throws on failure. */
  psql: (sql: string, database?: string) => string;
  /** Stops the cluster (fast shutdown); teardown calls it too. */
  stop: () => void;
}

/** The newest Debian PostgreSQL bin directory, or null. */
export function postgresBinDir(): string | null {
  if (!existsSync(DEBIAN_POSTGRES_ROOT)) return null;
  const versions = readdirSync(DEBIAN_POSTGRES_ROOT).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(DEBIAN_POSTGRES_ROOT, version, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return null;
}

/** Why no cluster can be started here, or null when one can. Under CI this is never a reason to skip. */
export function postgresSkipReason(): string | null {
  let reason: string | null = null;
  if (postgresBinDir() === null) reason = `no PostgreSQL server binaries under ${DEBIAN_POSTGRES_ROOT} (Debian package postgresql)`;
  else if (process.geteuid?.() === 0 && !existsSync(SETPRIV)) reason = `running as root without ${SETPRIV}, so the server cannot run as postgres`;
  else if (process.geteuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) reason = 'running as root and there is no postgres user to run the server as';
  if (reason !== null && process.env['CI']) throw new Error(`PostgreSQL is required under CI: ${reason}`);
  return reason;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

/** Starts a fresh cluster; stopped and deleted in `t`'s teardown. Call only when postgresSkipReason() is null. */
export async function startPostgres(t: Teardowns): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error(postgresSkipReason() ?? 'no PostgreSQL binaries');
  const isRoot = process.geteuid?.() === 0;
  const owner = isRoot ? Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()) : process.geteuid!();
  const ownerGroup = isRoot ? Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()) : process.getegid!();
  const asOwner = (command: string, args: readonly string[]): readonly string[] => (isRoot ? [SETPRIV, `--reuid=${owner}`, `--regid=${ownerGroup}`, '--init-groups', command, ...args] : [command, ...args]);
  const run = (command: string, args: readonly string[], what: string): string => {
    const [file, ...rest] = asOwner(command, args);
    const result = spawnSync(file!, rest, { encoding: 'utf8', env: { PATH: process.env['PATH'], LANG: 'C.UTF-8', PGTZ: 'UTC' }, timeout: START_TIMEOUT_SECONDS * 1000 });
    if (result.status !== 0) throw new Error(`${what} failed (${result.status ?? result.signal}): ${result.stderr || result.stdout}`);
    return result.stdout;
  };

  // The base directory is 0755 so that the postgres user can reach it, whatever this process's umask.
  const base = mkdtempSync(join(tmpdir(), 'noise-cfg-pg-'));
  chmodSync(base, 0o755);
  const dataDir = join(base, 'data');
  const socketDir = join(base, 'socket');
  const user = 'noisecfg';
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const passwordFile = join(base, 'password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  const initPasswordFile = join(base, 'initdb-password');
  writeFileSync(initPasswordFile, password, { mode: 0o600 });
  for (const dir of [dataDir, socketDir]) {
    spawnSync('mkdir', ['-m', '0700', dir]);
    chownSync(dir, owner, ownerGroup);
  }
  chownSync(initPasswordFile, owner, ownerGroup);
  let isRunning = false;
  const stop = (): void => {
    if (!isRunning) return;
    isRunning = false;
    run(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'], 'pg_ctl stop');
  };
  t.teardown(() => {
    try {
      stop();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  run(join(bin, 'initdb'), ['-D', dataDir, '-U', user, `--pwfile=${initPasswordFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync'], 'initdb');
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${socketDir} -c fsync=on -c max_connections=200`;
  run(join(bin, 'pg_ctl'), ['-D', dataDir, '-o', options, '-l', join(dataDir, 'server.log'), '-w', '-t', String(START_TIMEOUT_SECONDS), 'start'], 'pg_ctl start');
  isRunning = true;
  const database = 'postgres';
  const psql = (sql: string, inDatabase = database): string => {
    const result = spawnSync(join(bin, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', user, '-d', inDatabase, '-c', sql], { encoding: 'utf8', env: { PATH: process.env['PATH'] } });
    if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
    return result.stdout.trim();
  };
  return {
    socketDir,
    port,
    user,
    password,
    passwordFile,
    database,
    tcpUrl: `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    socketUrl: `postgres://${user}@/${database}?host=${encodeURIComponent(socketDir)}&port=${port}`,
    psql,
    stop,
  };
}

/**
 * A throwaway PostgreSQL cluster, for the tests (test/support/postgres.ts) and the bench (section 6): Debian's
 * server binaries, `initdb` into a temporary directory, `pg_ctl start` on a free port and a socket directory of
 * its own; stop() stops it and removes the directory. The server refuses to run as root, so under root every
 * server command runs as the `postgres` user (setpriv).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SETPRIV = '/usr/bin/setpriv';
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
  /** Stops the cluster (fast shutdown). */
  stop: () => void;
  /** Stops the cluster if it runs and deletes its directory. */
  remove: () => void;
  /** CPU time of the server's processes (the postmaster and every backend), in microseconds, so far. */
  cpuMicros: () => number;
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

/** Why no cluster can be started here, or null when one can. */
export function postgresUnavailableReason(): string | null {
  if (postgresBinDir() === null) return `no PostgreSQL server binaries under ${DEBIAN_POSTGRES_ROOT} (Debian package postgresql)`;
  if (process.geteuid?.() === 0 && !existsSync(SETPRIV)) return `running as root without ${SETPRIV}, so the server cannot run as postgres`;
  if (process.geteuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root and there is no postgres user to run the server as';
  return null;
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

/** Starts a fresh cluster. Call only when postgresUnavailableReason() is null; remove() it when done. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error(postgresUnavailableReason() ?? 'no PostgreSQL binaries');
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
  const remove = (): void => {
    try {
      stop();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };

  let port: number;
  try {
    run(join(bin, 'initdb'), ['-D', dataDir, '-U', user, `--pwfile=${initPasswordFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync'], 'initdb');
    port = await freePort();
    const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${socketDir} -c fsync=on -c max_connections=200`;
    // Marked running first: a start that timed out may still have a server to stop.
    isRunning = true;
    run(join(bin, 'pg_ctl'), ['-D', dataDir, '-o', options, '-l', join(dataDir, 'server.log'), '-w', '-t', String(START_TIMEOUT_SECONDS), 'start'], 'pg_ctl start');
  } catch (error) {
    try {
      remove();
    } catch {
      // The start's own error says more.
    }
    throw error;
  }
  const database = 'postgres';
  const psql = (sql: string, inDatabase = database): string => {
    const result = spawnSync(join(bin, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', user, '-d', inDatabase, '-c', sql], { encoding: 'utf8', env: { PATH: process.env['PATH'] } });
    if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
    return result.stdout.trim();
  };
  const ticksPerSecond = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  // utime and stime of each process, fields 14 and 15 of /proc/PID/stat (after the parenthesised command).
  const processMicros = (pid: number): number => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / ticksPerSecond;
    } catch {
      return 0;
    }
  };
  // A backend that exited takes its CPU time with it; a connection pool keeps its backends for the whole run.
  const cpuMicros = (): number => {
    const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    return [postmaster, ...children].reduce((sum, pid) => sum + processMicros(pid), 0);
  };
  return {
    remove,
    cpuMicros,
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

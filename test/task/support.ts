// Helpers shared by the update-task tests: servers on 127.0.0.1 port 0, trees read back from disk, a seeded
// generator, and CLI child processes whose output lines can be awaited (no sleeps).
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { TaskServer, type LogRecord, type TaskServerOptions } from '../../lib/task/server.js';
import { CLI_BIN } from '../support/paths.js';
import { spawnWatched, type CliProcess } from '../support/watched-process.js';

/** The subset of a tap Test these helpers use. */
export interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

export { seededRandom } from '../support/seeded-random.js';

/** A running TaskServer and everything it logged. */
export interface RunningServer {
  server: TaskServer;
  port: number;
  logs: LogRecord[];
  /** Log records about connections (everything but listening/stopping/stopped). */
  connectionLogs: () => LogRecord[];
  /** Resolves with the first log record (already logged or to come) that `match` accepts. */
  waitForLog: (match: (record: LogRecord) => boolean) => Promise<LogRecord>;
  /** Resolves with the `pull` records once there are at least `count` (the server logs after its side closes). */
  waitForPullLogs: (count: number) => Promise<LogRecord[]>;
}

/** Starts a TaskServer on 127.0.0.1 port 0 with a collecting log; stops it in teardown. */
export async function startServer(t: Teardowns, dataDir: string, options: Partial<TaskServerOptions> = {}): Promise<RunningServer> {
  const logs: LogRecord[] = [];
  const waiters: { match: (record: LogRecord) => boolean; resolve: (record: LogRecord) => void }[] = [];
  const server = new TaskServer({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    ...options,
    log: (record) => {
      logs.push(record);
      for (const waiter of [...waiters]) {
        if (waiter.match(record)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(record);
        }
      }
    },
  });
  const { port } = await server.start();
  t.teardown(() => server.stop(0));
  const pullLogs = (): LogRecord[] => logs.filter((record) => record.event === 'pull');
  const waitForLog = (match: (record: LogRecord) => boolean): Promise<LogRecord> => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return {
    server,
    port,
    logs,
    connectionLogs: () => logs.filter((record) => !['listening', 'stopping', 'stopped'].includes(record.event)),
    waitForLog,
    waitForPullLogs: async (count) => {
      await waitForLog(() => pullLogs().length >= count);
      return pullLogs();
    },
  };
}

/** Opens a TaskAdmin on a data directory and closes it in teardown. */
export async function openAdmin(t: Teardowns, dataDir: string, options: { now?: () => number } = {}): Promise<TaskAdmin> {
  const admin = await TaskAdmin.open(dataDir, { create: true, ...options });
  t.teardown(() => admin.close());
  return admin;
}

/** One regular file read back from disk. */
export interface TreeFile {
  content: string;
  mode: number;
}

/** Every regular file under `root` (following the top link), by relative `/` path, with content and mode. */
export function readTree(root: string): Record<string, TreeFile> {
  const found: Record<string, TreeFile> = {};
  const walk = (directory: string, prefix: string): void => {
    for (const name of readdirSync(directory).sort()) {
      const full = join(directory, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const stats = lstatSync(full);
      if (stats.isDirectory()) walk(full, path);
      else found[path] = { content: readFileSync(full, 'latin1'), mode: stats.mode & 0o777 };
    }
  };
  walk(root, '');
  return found;
}

/** Inode and mtime of each file under the link `root`, to prove nothing was rewritten. */
export function fileStamps(root: string, paths: readonly string[]): Record<string, { ino: number; mtimeMs: number }> {
  return Object.fromEntries(paths.map((path) => {
    const stats = statSync(join(root, path));
    return [path, { ino: stats.ino, mtimeMs: stats.mtimeMs }];
  }));
}

export type { CliProcess } from '../support/watched-process.js';

/** Spawns the built CLI; kills it (SIGKILL) in teardown if it is still running. */
export function spawnCli(t: Teardowns, args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): CliProcess {
  return spawnWatched(t, process.execPath, [CLI_BIN, ...args], { env: { ...process.env, ...options.env }, ...(options.stdin !== undefined ? { stdin: options.stdin } : {}) });
}

/** Runs the CLI to completion. */
export async function runCli(t: Teardowns, args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const process = spawnCli(t, args, options);
  const { code } = await process.exited;
  return { code, stdout: process.stdout(), stderr: process.stderr() };
}

/** Starts `noise-cfg serve` on 127.0.0.1 (port 0 unless given) and resolves once it printed its bound port. */
export async function startServe(t: Teardowns, dataDir: string, options: { port?: number; env?: NodeJS.ProcessEnv; extra?: string[] } = {}): Promise<CliProcess & { port: number }> {
  // --api off: the REST API's default port (7448) is fixed, and parallel tests must not compete for it.
  const serve = spawnCli(t, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${options.port ?? 0}`, '--api', 'off', '--grace-seconds', '2', ...(options.extra ?? [])], options.env ? { env: options.env } : {});
  const match = await serve.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  return { ...serve, port: Number(match[1]) };
}

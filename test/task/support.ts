// Helpers shared by the update-task tests: servers on 127.0.0.1 port 0, trees read back from disk, a seeded
// generator, and CLI child processes whose output lines can be awaited (no sleeps).
import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { TaskServer, type LogRecord, type TaskServerOptions } from '../../lib/task/server.js';
import { CLI_BIN } from '../support/paths.js';

/** The subset of a tap Test these helpers use. */
export interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

/** A small seeded generator (mulberry32), so a failure reproduces. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = Math.imul(state ^ (state >>> 15), 1 | state);
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value;
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

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
export function openAdmin(t: Teardowns, dataDir: string, options: { now?: () => number } = {}): TaskAdmin {
  const admin = TaskAdmin.open(dataDir, options);
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

/** A CLI child process with its collected output. */
export interface CliProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first match of `pattern` in stderr (or stdout with `stream`), rejects if the process exits first. */
  waitFor: (pattern: RegExp, stream?: 'stdout' | 'stderr') => Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the built CLI; kills it (SIGKILL) in teardown if it is still running. */
export function spawnCli(t: Teardowns, args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    notify();
  });
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  else child.stdin!.end();
  let hasExited = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      hasExited = true;
      notify();
      resolve({ code, signal });
    });
  });
  t.teardown(() => {
    if (!hasExited) child.kill('SIGKILL');
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor: (pattern, stream = 'stderr') => new Promise((resolve, reject) => {
      const check = (): void => {
        const match = (stream === 'stderr' ? stderr : stdout).match(pattern);
        if (match) {
          listeners.delete(check);
          resolve(match);
        } else if (hasExited) {
          listeners.delete(check);
          reject(new Error(`process exited before ${pattern} appeared on ${stream}; stdout: ${stdout}; stderr: ${stderr}`));
        }
      };
      listeners.add(check);
      check();
    }),
  };
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

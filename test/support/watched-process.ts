/** A child process whose output is collected and whose lines can be awaited (no sleeps); SIGKILLed in teardown. */
import { spawn, type ChildProcess } from 'node:child_process';

/** The subset of a tap Test this helper uses. */
interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

/** A child process with its collected output. */
export interface CliProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first match of `pattern` in stderr (or stdout with `stream`), rejects if the process exits first. */
  waitFor: (pattern: RegExp, stream?: 'stdout' | 'stderr') => Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `command args` with exactly `env`, writes `stdin` (or nothing) and closes it. */
export function spawnWatched(t: Teardowns, command: string, args: readonly string[], options: { env: NodeJS.ProcessEnv; stdin?: string }): CliProcess {
  const child = spawn(command, args, { env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let hasExited = false;
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
          reject(new Error(`the process exited before ${pattern} appeared on ${stream}; stdout: ${stdout}; stderr: ${stderr}`));
        }
      };
      listeners.add(check);
      check();
    }),
  };
}

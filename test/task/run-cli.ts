// Runs the built CLI once in a chosen working directory with a chosen environment, and collects its output: for
// the data-directory tests (issue 12 items 4, 5, 7, 11), where the working directory matters.
import { spawn } from 'node:child_process';
import { CLI_BIN } from '../support/paths.js';

/** What one CLI run printed and how it ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `noise-cfg args` in `cwd`; `env` is added to this process's environment, less NOISE_CFG_DATA and
 * NOISE_CFG_ADMIN_TOKEN unless given. `command` runs node through a wrapper (setpriv … to run as another user).
 */
export function runCli(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, options: { command?: readonly string[] } = {}): Promise<CliRun> {
  const base = { ...process.env };
  delete base['NOISE_CFG_DATA'];
  delete base['NOISE_CFG_ADMIN_TOKEN'];
  // As another user, tap's coverage hook (NODE_OPTIONS) could not write its record, and would say so on stderr.
  if (options.command) delete base['NODE_OPTIONS'];
  const [command, ...prefix] = options.command ?? [process.execPath];
  return new Promise((resolve, reject) => {
    const child = spawn(command!, [...prefix, ...(options.command ? [process.execPath] : []), CLI_BIN, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

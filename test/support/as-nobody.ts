/**
 * Running the built CLI as another local user (nobody), for the permission tests: how, and whether it can run here.
 * Only root can switch users, and nobody must be able to read the checkout: a clone under a 0700 directory (a
 * `mktemp -d`) cannot be run as nobody at all, which is a fact about the machine, said as the skip reason.
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { CLI_BIN } from './paths.js';

export const SETPRIV = '/usr/bin/setpriv';
export const NOBODY = 65534;
/** The command prefix that runs what follows as nobody (uid and gid 65534, no groups). */
export const AS_NOBODY: readonly string[] = [SETPRIV, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];

let cachedReason: string | null | undefined;

/** Why the CLI cannot be run as nobody here, or null when it can. */
export function nobodySkipReason(): string | null {
  if (cachedReason !== undefined) return cachedReason;
  if (!existsSync(SETPRIV)) cachedReason = `${SETPRIV} is missing, so the CLI cannot be run as another user`;
  else if (process.geteuid?.() !== 0) cachedReason = 'switching to nobody needs root';
  else {
    const probe = spawnSync(SETPRIV, [...AS_NOBODY.slice(1), process.execPath, '-e', 'require("node:fs").accessSync(process.argv[1], require("node:fs").constants.R_OK)', CLI_BIN], { env: { PATH: process.env['PATH'] }, encoding: 'utf8' });
    cachedReason = probe.status === 0 ? null : `nobody cannot read ${CLI_BIN} (a directory above the checkout is closed to other users), so the CLI cannot run as nobody here`;
  }
  return cachedReason;
}

/**
 * What a managed output directory records of its versions (SPEC.md §4.7, state.json), the permission bits a pulled
 * file gets, and the one error a failed apply step becomes.
 */
import { readFileSync } from 'node:fs';
import { NoiseCfgError } from '../errors.js';
import { describeFileSystemError } from './safe-directory.js';

/**
 * One file of an applied version as state.json records it: what the offer said (path, size, digest), the mode
 * written here, and the inode and change time (ns, as decimal strings) right after it was written. An unchanged
 * inode and ctime mean the bytes are the ones hashed on arrival, so the check before `have` need not read them.
 */
export interface AppliedFile {
  path: string;
  size: number;
  /** The permission bits on disk (after maxFileMode and the umask). */
  mode: number;
  digest: string;
  inode: string;
  ctimeNs: string;
}

/** What a managed output directory records of its current version. */
export interface AppliedState {
  taskId: string;
  digest: string;
  version: string;
  appliedAt: string;
  /** False when the files are current but the --exec command that followed failed: the next pull redoes both. */
  isCommandDone?: boolean;
  /** The version's files; a state without them (older versions of noise-cfg) never counts as holding its digest. */
  files?: AppliedFile[];
  /**
   * The version that was current before this one, kept on disk for a rollback. Its own `previous` is kept only
   * while this version's command has not succeeded, so that a rollback after a failed command still leaves one
   * version to go back to.
   */
  previous?: AppliedState;
}

/** What a rollback did: the version it left (now removed) and the one now current. */
export interface RollbackOutcome {
  from: { taskId: string; digest: string; version: string };
  to: AppliedState;
}

/** `state` without the `previous` of its `previous`: what is kept once its command has succeeded. */
export function keepOnePrevious(state: AppliedState): AppliedState {
  if (state.previous === undefined) return state;
  const { previous: _older, ...previous } = state.previous;
  return { ...state, previous };
}

/** The version names a state keeps on disk: its own and those of its previous versions. */
export function keptVersions(state: AppliedState | null): Set<string> {
  const names = new Set<string>();
  for (let entry: AppliedState | undefined = state ?? undefined; entry !== undefined; entry = entry.previous) names.add(entry.version);
  return names;
}

/** The widest permission bits a pulled file gets unless the person pulling allows more (`maxFileMode`). */
export const DEFAULT_MAX_FILE_MODE = 0o755;

/**
 * This process's umask: from /proc where it can be read without changing it, else from process.umask(). Read
 * each time (it is cheap), since a process may change its umask.
 */
export function currentUmask(): number {
  try {
    const match = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return parseInt(match[1]!, 8);
  } catch {
    // No /proc: ask the process (which sets the umask back at once).
  }
  return process.umask();
}

/** The permission bits a file offered with `offeredMode` gets here: within `maxFileMode`, then the umask. */
export function appliedFileMode(offeredMode: number, maxFileMode: number, umask = currentUmask()): number {
  return offeredMode & maxFileMode & ~umask & 0o777;
}

/** A file-system failure of an apply step as APPLY_FAILED saying what was being done; a NoiseCfgError passes through. */
export function applyError(what: string, error: unknown): NoiseCfgError {
  if (error instanceof NoiseCfgError) return error;
  return new NoiseCfgError('APPLY_FAILED', `${what}: ${describeFileSystemError(error)}`, { cause: error });
}

/**
 * The lock that lets one pull at a time apply to an --out (SPEC.md §4.7). Node has no flock(), so the lock is the
 * file `.lock` in the versions directory, holding the holder's pid and a random nonce. It appears complete: it is
 * written under a random name (O_EXCL | O_NOFOLLOW) and then link(2)ed to `.lock`, which fails if a lock exists.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { createNewFile, readFileNoFollow } from './safe-directory.js';

/** How long a pull waits for another pull's lock on the same --out by default, in milliseconds. */
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
/** How often a waiting pull looks at the lock again, in milliseconds. */
const POLL_INTERVAL_MS = 25;
/** The lock file's name inside the versions directory. */
export const LOCK_FILE = '.lock';
// Breakers of breakers exist only when a pull dies inside the few system calls of breaking a stale lock; a chain
// this deep means something else is wrong, and the person is told which files to remove.
const MAX_BREAKER_DEPTH = 4;

interface LockHolder {
  /** The holder's pid, or null when the file does not parse (it is then treated as stale). */
  pid: number | null;
  /** What identifies this lock file: its nonce, or a digest of a file that does not parse. */
  key: string;
}

/** Options of OutputLock.acquire. */
export interface LockOptions {
  /** How long to wait for a live holder, in milliseconds (0: fail at once). */
  timeoutMs: number;
  /** The --out the lock guards, for the messages. */
  outDir: string;
  /** Called once when the lock is held by a live process and this one starts waiting. */
  onWait?: (pid: number) => void;
}

/**
 * Nonces of the locks and breakers this process holds or is creating (added before the file can appear). A file
 * with this pid and another nonce was left by an earlier process with the same pid (a container restarted on a
 * kept volume often gets the same pid), so it is stale.
 */
const ownNonces = new Set<string>();

/** Whether the holder of a lock or breaker file may still be at work. */
function isHolderAlive(holder: LockHolder): boolean {
  if (holder.pid === null) return false;
  if (holder.pid === process.pid) return ownNonces.has(holder.key);
  return isProcessAlive(holder.pid);
}

/** Whether a process with `pid` exists on this host (one of another user's counts). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(path: string): Promise<LockHolder | null> {
  let raw: Buffer;
  try {
    raw = await readFileNoFollow(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as { pid?: unknown; nonce?: unknown };
    if (Number.isSafeInteger(parsed.pid) && (parsed.pid as number) > 0 && typeof parsed.nonce === 'string' && /^[0-9a-f]{32}$/.test(parsed.nonce)) {
      return { pid: parsed.pid as number, key: parsed.nonce };
    }
  } catch {
    // Falls through: a damaged lock is stale.
  }
  return { pid: null, key: createHash('sha256').update(raw).digest('hex').slice(0, 32) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A held lock on one versions directory; release() gives it up. */
export class OutputLock {
  readonly #path: string;
  readonly #nonce: string;
  #isHeld = true;

  private constructor(path: string, nonce: string) {
    this.#path = path;
    this.#nonce = nonce;
  }

  /**
   * Takes the lock of `directory` (a versions directory noise-cfg owns), waiting up to `timeoutMs` while a live
   * process holds it and breaking it when its holder is dead. Throws APPLY_FAILED when the wait runs out
   * ("another noise-cfg pull (pid N) is applying to DIR") or the lock cannot be written.
   */
  static async acquire(directory: string, options: LockOptions): Promise<OutputLock> {
    const path = join(directory, LOCK_FILE);
    const nonce = randomBytes(16).toString('hex');
    const record = `${JSON.stringify({ pid: process.pid, nonce })}\n`;
    const deadline = Date.now() + options.timeoutMs;
    let hasWaited = false;
    ownNonces.add(nonce);
    try {
      for (;;) {
        if (await OutputLock.#tryCreate(directory, path, record)) {
          const lock = new OutputLock(path, nonce);
          await lock.#removeLeftovers(directory);
          return lock;
        }
        const holder = await readHolder(path);
        if (holder === null) continue;
        let mustWait = isHolderAlive(holder);
        if (!mustWait) mustWait = !(await OutputLock.#breakStale(path, holder.key, 0, directory));
        if (!mustWait) continue;
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) {
          const who = holder.pid === null ? 'another noise-cfg pull' : `another noise-cfg pull (pid ${holder.pid})`;
          throw new NoiseCfgError('APPLY_FAILED', `${who} is applying to ${options.outDir}; wait for it or try again (if no such pull runs, remove ${path})`);
        }
        if (!hasWaited && holder.pid !== null) options.onWait?.(holder.pid);
        hasWaited = true;
        await sleep(Math.min(POLL_INTERVAL_MS, remainingMs));
      }
    } catch (error) {
      ownNonces.delete(nonce);
      if (error instanceof NoiseCfgError) throw error;
      throw new NoiseCfgError('APPLY_FAILED', `cannot lock ${options.outDir} (${path}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
  }

  /** Creates the lock complete or not at all: false when one exists. */
  static async #tryCreate(directory: string, path: string, record: string): Promise<boolean> {
    const temporary = join(directory, `.lock-${process.pid}-${randomBytes(6).toString('hex')}`);
    await createNewFile(temporary, record, 0o600);
    try {
      await fs.link(temporary, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await fs.unlink(temporary);
    }
  }

  /**
   * Removes the stale lock file at `path` whose key is `key`, unless another process is doing so. Only the one
   * that creates the breaker `<path>.break-<key>` (O_EXCL) may remove it, and it does so only after reading the
   * lock again and finding the same key: a lock taken since then is never removed. Returns false when a live
   * process is breaking it (the caller waits), true when the caller should look again.
   */
  static async #breakStale(path: string, key: string, depth: number, directory: string): Promise<boolean> {
    const breaker = `${path}.break-${key}`;
    const breakerNonce = randomBytes(16).toString('hex');
    ownNonces.add(breakerNonce);
    try {
      await createNewFile(breaker, `${JSON.stringify({ pid: process.pid, nonce: breakerNonce })}\n`, 0o600);
    } catch (error) {
      ownNonces.delete(breakerNonce);
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const breakerHolder = await readHolder(breaker);
      if (breakerHolder === null) return true;
      if (isHolderAlive(breakerHolder)) return false;
      if (depth >= MAX_BREAKER_DEPTH) {
        throw new NoiseCfgError('APPLY_FAILED', `stale lock files of dead pulls in ${directory} could not be cleared; make sure no noise-cfg pull runs on this --out, then remove ${join(directory, '.lock')}*`);
      }
      // Its breaker died while breaking: break the breaker the same way, then try again.
      await OutputLock.#breakStale(breaker, breakerHolder.key, depth + 1, directory);
      return true;
    }
    try {
      const current = await readHolder(path);
      if (current !== null && current.key === key) await fs.unlink(path);
    } finally {
      // A pull that took the lock meanwhile may have removed this breaker as a leftover already.
      await fs.rm(breaker, { force: true });
      ownNonces.delete(breakerNonce);
    }
    return true;
  }

  /**
   * Removes breakers and lock temporaries that dead pulls left. Safe while holding the lock: a breaker names the
   * key of a lock that no longer exists, so whoever still holds one will find another key and remove nothing.
   */
  async #removeLeftovers(directory: string): Promise<void> {
    for (const name of await fs.readdir(directory)) {
      const temporary = /^\.lock-(\d+)-[0-9a-f]+$/.exec(name);
      if (name.startsWith(`${LOCK_FILE}.break-`) || (temporary && !isProcessAlive(Number(temporary[1])))) {
        await fs.rm(join(directory, name), { force: true });
      }
    }
  }

  /** Gives the lock up (once; later calls do nothing). Removes the lock file only if it is still this one. */
  async release(): Promise<void> {
    if (!this.#isHeld) return;
    this.#isHeld = false;
    const holder = await readHolder(this.#path).catch(() => null);
    if (holder?.key === this.#nonce) await fs.unlink(this.#path).catch(() => undefined);
    ownNonces.delete(this.#nonce);
  }
}

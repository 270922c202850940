/**
 * The advisory lock a server holds on its data directory while it serves (SPEC.md §4.1): the file `serve.lock`,
 * holding the holder's pid, host name, process start time, listen address and a random nonce.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { dataDirFailure } from './data-dir.js';
import { isProcessAlive } from './output-lock.js';

/** The lock file's name inside the data directory. */
export const DATA_DIR_LOCK_FILE = 'serve.lock';

/** What a lock file says about its holder. */
export interface DataDirLockHolder {
  pid: number;
  host: string;
  /** The holder's start time in clock ticks since boot (/proc/PID/stat field 22), or null where there is none. */
  startTicks: number | null;
  /** The address the holder listens on (HOST:PORT), or what it was asked to listen on before it bound. */
  address: string;
  startedAt: string;
  nonce: string;
}

/** Nonces of the locks this process holds: a lock with our pid and another nonce is an earlier process's. */
const ownNonces = new Set<string>();

// Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces): with the pid, it names
// one process, so a pid reused after a crash is not taken for the holder.
function processStartTicks(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isSafeInteger(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

function parseHolder(text: string): DataDirLockHolder | null {
  try {
    const parsed = JSON.parse(text) as Partial<DataDirLockHolder>;
    if (!Number.isSafeInteger(parsed.pid) || (parsed.pid as number) < 1 || typeof parsed.nonce !== 'string' || typeof parsed.host !== 'string') return null;
    return {
      pid: parsed.pid as number, host: parsed.host, nonce: parsed.nonce, startTicks: Number.isSafeInteger(parsed.startTicks) ? parsed.startTicks as number : null,
      address: typeof parsed.address === 'string' ? parsed.address : '?', startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : '?',
    };
  } catch {
    return null;
  }
}

/**
 * Whether the holder may still be serving. A lock of another host cannot be checked from here and counts as
 * held. On this host it is stale when no process has its pid, when that pid is ours (a container restarted on a
 * kept volume often gets the same pid) but not one of our locks, or when the process with that pid started at
 * another time than the holder did (the pid was reused).
 */
function isHolderAlive(holder: DataDirLockHolder): boolean {
  if (holder.host !== hostname()) return true;
  if (holder.pid === process.pid) return ownNonces.has(holder.nonce);
  if (!isProcessAlive(holder.pid)) return false;
  const ticks = processStartTicks(holder.pid);
  return holder.startTicks === null || ticks === null || ticks === holder.startTicks;
}

function readHolderText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

// Writes `text` under a new name and fsyncs it, so that whatever appears under the lock's name is complete.
function writeTemporary(directory: string, text: string): string {
  const temporary = join(directory, `${DATA_DIR_LOCK_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temporary;
}

// Temporaries of servers that died between writing and removing them.
function removeLeftovers(directory: string): void {
  for (const name of readdirSync(directory)) {
    const temporary = /^serve\.lock\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (temporary && Number(temporary[1]) !== process.pid && !isProcessAlive(Number(temporary[1]))) rmSync(join(directory, name), { force: true });
  }
}

/** A held lock on one data directory. */
export class DataDirLock {
  readonly path: string;
  readonly #directory: string;
  #holder: DataDirLockHolder;
  #isHeld = true;

  private constructor(directory: string, holder: DataDirLockHolder) {
    this.#directory = directory;
    this.path = join(directory, DATA_DIR_LOCK_FILE);
    this.#holder = holder;
  }

  /**
   * Takes the lock of the data directory `directory` (which must exist) for a server that will listen on
   * `address`, or fails at once. A lock whose holder is gone (killed, crashed, or a pid since reused) is broken.
   * Throws DATA_DIR_LOCKED naming the holder's pid, host and address; DATA_DIR_UNAVAILABLE when the lock file
   * cannot be written or read.
   */
  static acquire(directory: string, address: string): DataDirLock {
    const holder: DataDirLockHolder = {
      pid: process.pid, host: hostname(), startTicks: processStartTicks('self'), address,
      startedAt: new Date().toISOString(), nonce: randomBytes(16).toString('hex'),
    };
    const path = join(directory, DATA_DIR_LOCK_FILE);
    ownNonces.add(holder.nonce);
    try {
      // Two tries: the second follows breaking a stale lock; a lock that reappears then is a live server's.
      for (let attempt = 0; attempt < 2; attempt++) {
        const temporary = writeTemporary(directory, `${JSON.stringify(holder)}\n`);
        try {
          // link(2) fails if the lock exists: of two servers starting at once, exactly one gets it.
          linkSync(temporary, path);
          removeLeftovers(directory);
          return new DataDirLock(directory, holder);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        } finally {
          unlinkSync(temporary);
        }
        const text = readHolderText(path);
        if (text === null) continue;
        const current = parseHolder(text);
        if (current !== null && isHolderAlive(current)) throw lockedError(directory, current);
        DataDirLock.#breakStale(directory, path, text);
      }
      const current = parseHolder(readHolderText(path) ?? '');
      throw current ? lockedError(directory, current) : new NoiseCfgError('DATA_DIR_LOCKED', `another noise-cfg serve is starting on ${resolve(directory)}; stop it, or use another --data`);
    } catch (error) {
      ownNonces.delete(holder.nonce);
      throw dataDirFailure(error, path, 'lock the data directory at');
    }
  }

  // Moves the stale lock aside and removes it only if it is still the file that was judged stale: a lock a live
  // server took meanwhile is put back (link fails only if yet another appeared, which then holds).
  static #breakStale(directory: string, path: string, staleText: string): void {
    const aside = join(directory, `${DATA_DIR_LOCK_FILE}.stale.${randomBytes(6).toString('hex')}`);
    try {
      renameSync(path, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (readFileSync(aside, 'utf8') !== staleText) {
      try {
        linkSync(aside, path);
      } catch {
        // Another lock is in place: it holds.
      }
    }
    unlinkSync(aside);
  }

  /** The holder this lock names (this process). */
  get holder(): DataDirLockHolder {
    return { ...this.#holder };
  }

  /** Records the address the server bound (a port 0 became a port), replacing the lock file atomically. */
  updateAddress(address: string): void {
    if (!this.#isHeld) return;
    this.#holder = { ...this.#holder, address };
    try {
      const temporary = writeTemporary(this.#directory, `${JSON.stringify(this.#holder)}\n`);
      renameSync(temporary, this.path);
    } catch (error) {
      throw dataDirFailure(error, this.path, 'update the lock');
    }
  }

  /** Gives the lock up (once): removes the lock file if it is still this one. Never throws. */
  release(): void {
    if (!this.#isHeld) return;
    this.#isHeld = false;
    try {
      if (parseHolder(readHolderText(this.path) ?? '')?.nonce === this.#holder.nonce) unlinkSync(this.path);
    } catch {
      // A lock file that cannot be removed is stale once this process ends; the next server breaks it.
    }
    ownNonces.delete(this.#holder.nonce);
  }
}

function lockedError(directory: string, holder: DataDirLockHolder): NoiseCfgError {
  const where = holder.host === hostname() ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
  return new NoiseCfgError('DATA_DIR_LOCKED', `the data directory ${resolve(directory)} is in use by another noise-cfg serve (${where}, listening on ${holder.address}, since ${holder.startedAt}); stop that server first, or give this one another --data. If that server is gone, remove ${join(resolve(directory), DATA_DIR_LOCK_FILE)}`);
}

/**
 * Atomic apply (SPEC.md §4.7): OUT is a link noise-cfg owns to a complete version in the 0700 directory beside it,
 * `OUT -> .OUT.noise-cfg/<version>`; a version is staged there, fsynced, checked to be what this pull made, and
 * swapped in with one rename(), so readers and a killed pull see the old files or the new ones, never a mix.
 * Over 300 lines on purpose: ManagedOutput is one object keeping one directory's invariants (its lock, link,
 * versions and state.json) that every step checks again; the state and modes are applied-state.ts, the writing
 * of a version staged-version.ts.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { fileDigest, StreamingDigest, type FileEntry } from './digests.js';
import { DEFAULT_LOCK_TIMEOUT_MS, isProcessAlive, OutputLock } from './output-lock.js';
import { checkPathSet } from './paths.js';
import { StagedVersion } from './staged-version.js';
import {
  applyError, DEFAULT_MAX_FILE_MODE, keepOnePrevious, keptVersions, type AppliedState, type RollbackOutcome,
} from './applied-state.js';
import {
  checkParentChain, createNewFile, describeFileSystemError, effectiveUid, entryIdentity, expectSameEntry,
  fsyncDirectory, openNoFollow, openOwnedDirectory, readFileNoFollow, type EntryIdentity,
} from './safe-directory.js';

export { appliedFileMode, currentUmask, DEFAULT_MAX_FILE_MODE, type AppliedFile, type AppliedState, type RollbackOutcome } from './applied-state.js';
export { StagedVersion } from './staged-version.js';

const STATE_FILE = 'state.json';
/** Temporaries of a pull, named with its pid so that the next pull can remove those of dead ones. */
const TEMPORARY_NAME = /^\.(?:staging|link|state)-(\d+)-[0-9a-f]+$/;
/** The state temporary of older versions, a predictable name: removed, never written through. */
const OLD_STATE_TEMPORARY = /^\.state\.json\.\d+$/;
const VERSIONS_DIRECTORY = 'the versions directory';

/** The hex digest of a file's content, read in pieces without following a link. Throws the fs error. */
async function hashFile(path: string): Promise<string> {
  const handle = await openNoFollow(path);
  try {
    const digest = new StreamingDigest();
    const buffer = Buffer.alloc(1024 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, null);
      if (bytesRead === 0) return digest.digest();
      digest.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}

/** What `OUT` was when it was checked. */
type Target = { kind: 'missing' } | { kind: 'empty' | 'link'; identity: EntryIdentity };

/** A version that commit() made current, to check again before the command runs. */
interface AppliedVersion {
  versionDir: string;
  versionIdentity: EntryIdentity;
  linkIdentity: EntryIdentity;
}

/** Options of a managed output directory. */
export interface ManagedOutputOptions {
  /** The widest permission bits a file gets (default 0o755); the umask applies on top. */
  maxFileMode?: number;
}

/** The paths noise-cfg uses for one output directory, and the checks that keep them its own. */
export class ManagedOutput {
  /** The output directory the user named (the link), for messages and the command's environment. */
  readonly outDir: string;
  /** The widest permission bits a file gets. */
  readonly maxFileMode: number;
  /** Where OUT is operated on: beside the real path of its parent once lock() resolved it. */
  #linkPath: string;
  #versionsDir: string;
  #realParent: string | null = null;
  #versionsIdentity: EntryIdentity | null = null;
  #lock: OutputLock | null = null;
  #applied: AppliedVersion | null = null;

  constructor(outDir: string, options: ManagedOutputOptions = {}) {
    this.outDir = resolve(outDir);
    this.maxFileMode = options.maxFileMode ?? DEFAULT_MAX_FILE_MODE;
    this.#linkPath = this.outDir;
    this.#versionsDir = join(dirname(this.outDir), `.${basename(this.outDir)}.noise-cfg`);
  }

  /** Where versions live: `.<name>.noise-cfg` beside OUT. */
  get versionsDir(): string {
    return this.#versionsDir;
  }

  /**
   * Makes OUT safe to apply to and takes its lock: checks the parent chain (checkParentChain), OUT itself
   * (checkTarget), creates or checks the 0700 versions directory, then waits up to `timeoutMs` for another pull's
   * lock. Throws APPLY_FAILED with the reason and the fix.
   */
  async lock(options: { timeoutMs?: number; onWait?: (pid: number) => void } = {}): Promise<void> {
    const realParent = await checkParentChain(this.outDir);
    this.#realParent = realParent;
    this.#linkPath = join(realParent, basename(this.outDir));
    this.#versionsDir = join(realParent, `.${basename(this.outDir)}.noise-cfg`);
    await this.checkTarget();
    const versionsIdentity = await openOwnedDirectory(this.#versionsDir, VERSIONS_DIRECTORY);
    this.#versionsIdentity = versionsIdentity;
    this.#lock = await OutputLock.acquire(this.#versionsDir, {
      timeoutMs: options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
      outDir: this.outDir,
      ...(options.onWait ? { onWait: options.onWait } : {}),
    });
    try {
      await expectSameEntry(this.#versionsDir, versionsIdentity, VERSIONS_DIRECTORY);
      // While this pull waited another one may have applied; OUT must still be one this pull may take over.
      await this.checkTarget();
      await this.#removeStaleTemporaries();
    } catch (error) {
      await this.unlock();
      throw applyError(`cannot prepare ${this.outDir}`, error);
    }
  }

  /** Releases the lock taken by lock(), if any. */
  async unlock(): Promise<void> {
    const lock = this.#lock;
    this.#lock = null;
    await lock?.release();
  }

  /** The current applied state, or null when the directory is not managed (by this user) yet or the state does not match. */
  async readState(): Promise<AppliedState | null> {
    try {
      const euid = effectiveUid();
      const versions = await fs.lstat(this.#versionsDir);
      if (!versions.isDirectory() || (euid !== null && versions.uid !== euid)) return null;
      const state = JSON.parse((await readFileNoFollow(join(this.#versionsDir, STATE_FILE))).toString('utf8')) as AppliedState;
      if (typeof state.taskId !== 'string' || typeof state.digest !== 'string' || typeof state.version !== 'string') return null;
      const link = await fs.lstat(this.#linkPath);
      if (!link.isSymbolicLink() || (euid !== null && link.uid !== euid)) return null;
      const target = await fs.readlink(this.#linkPath);
      return target === join(basename(this.#versionsDir), state.version) ? state : null;
    } catch {
      return null;
    }
  }

  /**
   * Checks that OUT can be managed: missing, an empty directory of the effective user, or a link of the effective
   * user to one of our versions. Throws APPLY_FAILED for anything else (a non-empty directory, a file, another
   * link, someone else's link or directory), so that nothing of the user's is replaced and nothing planted by
   * another user is adopted.
   */
  async checkTarget(): Promise<Target> {
    let stats;
    try {
      stats = await fs.lstat(this.#linkPath, { bigint: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
      throw applyError(`cannot inspect ${this.outDir}`, error);
    }
    const euid = effectiveUid();
    const uid = Number(stats.uid);
    const identity = { device: stats.dev, inode: stats.ino };
    if (stats.isSymbolicLink()) {
      const target = await fs.readlink(this.#linkPath);
      const isOurs = dirname(target) === basename(this.#versionsDir) && !basename(target).startsWith('.');
      if (!isOurs) throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is a symbolic link that noise-cfg does not manage (to ${target}); choose another --out`);
      if (euid !== null && uid !== euid) {
        throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is a symbolic link owned by uid ${uid}, not by you (uid ${euid}): another user made it, so it is not adopted; remove it (rm ${this.outDir}) or choose another --out`);
      }
      return { kind: 'link', identity };
    }
    if (stats.isDirectory() && (await fs.readdir(this.#linkPath)).length === 0) {
      if (euid !== null && uid !== euid) {
        throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is an empty directory owned by uid ${uid}, not by you (uid ${euid}); remove it (rmdir ${this.outDir}) or choose another --out`);
      }
      return { kind: 'empty', identity };
    }
    throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} already exists and is not managed by noise-cfg; move it away or choose an empty or new --out`);
  }

  /** Throws APPLY_FAILED unless the versions directory is still the one lock() checked. */
  async verifyVersionsDir(): Promise<void> {
    if (this.#versionsIdentity === null || this.#lock === null) throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is not locked for this pull`);
    await expectSameEntry(this.#versionsDir, this.#versionsIdentity, VERSIONS_DIRECTORY);
  }

  /**
   * Throws APPLY_FAILED unless the version that commit() made current is still in place: the versions directory,
   * the version directory and the OUT link are the very ones this pull made. Called before the command runs.
   */
  async verifyApplied(): Promise<void> {
    const applied = this.#applied;
    if (applied === null) throw new NoiseCfgError('APPLY_FAILED', `nothing was applied to ${this.outDir} by this pull`);
    await this.verifyVersionsDir();
    await expectSameEntry(applied.versionDir, applied.versionIdentity, 'the version directory');
    await expectSameEntry(this.#linkPath, applied.linkIdentity, 'the output link');
  }

  /**
   * The digest this output really holds for `taskId`, to send as HELLO `have`, or null with the reason (null when
   * there is nothing to say: a new or unmanaged directory, another task). It is held only when state.json names
   * this task with its command done, OUT links to that version, and the version holds exactly the recorded files
   * with their sizes and modes, and their recorded digests (a file whose inode or ctime changed is hashed again).
   */
  async heldDigest(taskId: string): Promise<{ digest: string | null; reason: string | null }> {
    const state = await this.readState();
    if (state === null || state.taskId !== taskId) return { digest: null, reason: null };
    if (state.isCommandDone === false) return { digest: null, reason: 'the command after the last apply did not succeed; applying again' };
    const problem = await this.#findDamage(state).catch((error: unknown) => `cannot check its files: ${describeFileSystemError(error)}`);
    if (problem !== null) return { digest: null, reason: `${this.outDir} no longer holds what was applied (${problem}); pulling the files again` };
    return { digest: state.digest, reason: null };
  }

  /** What differs between a version on disk and its record, or null when it holds exactly the recorded files. */
  async #findDamage(state: AppliedState): Promise<string | null> {
    if (state.files === undefined) return 'state.json of an older noise-cfg lists no files';
    const versionDir = join(this.#versionsDir, state.version);
    const onDisk = new Set<string>();
    const walk = async (directory: string, prefix: string): Promise<string | null> => {
      let entries;
      try {
        entries = await fs.readdir(directory, { withFileTypes: true });
      } catch (error) {
        return `cannot read ${directory}: ${describeFileSystemError(error)}`;
      }
      for (const entry of entries) {
        const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
        if (entry.isDirectory()) {
          const found = await walk(join(directory, entry.name), path);
          if (found !== null) return found;
        } else if (entry.isFile()) onDisk.add(path);
        else return `${path} is not a regular file`;
      }
      return null;
    };
    const walkProblem = await walk(versionDir, '');
    if (walkProblem !== null) return walkProblem;
    for (const file of state.files) {
      if (!onDisk.delete(file.path)) return `${file.path} is missing`;
      const full = join(versionDir, ...file.path.split('/'));
      const stats = await fs.lstat(full, { bigint: true });
      if (Number(stats.size) !== file.size) return `${file.path} has ${stats.size} bytes, not ${file.size}`;
      if ((Number(stats.mode) & 0o777) !== file.mode) return `${file.path} has mode ${(Number(stats.mode) & 0o777).toString(8)}, not ${file.mode.toString(8)}`;
      if (String(stats.ino) === file.inode && String(stats.ctimeNs) === file.ctimeNs) continue;
      if ((await hashFile(full)) !== file.digest) return `${file.path} was changed`;
    }
    const extra = [...onDisk][0];
    return extra === undefined ? null : `${extra} is not one of its files`;
  }

  /**
   * Records that the command after the current version succeeded (state.json, written atomically): the apply is
   * successful, so only one previous version is kept from now on and older ones are removed.
   */
  async commandSucceeded(): Promise<void> {
    const state = await this.readState();
    if (!state) return;
    const kept = keepOnePrevious({ ...state, isCommandDone: true });
    await this.#writeState(kept);
    await this.#removeUnkeptVersions(kept);
  }

  /**
   * Goes back one version (the lock must be held): checks that the previous version recorded in state.json is
   * intact, points OUT at it with one rename(), records it as current and removes the version it left. Throws
   * ROLLBACK_UNAVAILABLE when OUT holds no applied version or none before it, APPLY_FAILED when the previous
   * version was changed on disk or a file-system step fails (then OUT is unchanged, or already the previous one).
   */
  async rollBack(): Promise<RollbackOutcome> {
    await this.verifyVersionsDir();
    const state = await this.readState();
    if (state === null) throw noVersionToRollBack(this.outDir);
    const previous = state.previous;
    if (previous === undefined) {
      throw new NoiseCfgError('ROLLBACK_UNAVAILABLE', `${this.outDir} has no previous version to go back to: it holds task ${state.taskId}, and noise-cfg keeps one previous version, which a rollback uses up; pull a task to change it`);
    }
    const damage = await this.#findDamage(previous).catch((error: unknown) => `cannot check its files: ${describeFileSystemError(error)}`);
    if (damage !== null) throw new NoiseCfgError('APPLY_FAILED', `the previous version of ${this.outDir} (task ${previous.taskId}) was changed on disk (${damage}), so noise-cfg does not go back to it; pull the task you want instead`);
    try {
      await this.#pointLinkAt(previous.version);
      this.#applied = null;
      await this.#writeState(previous);
      await this.#removeUnkeptVersions(previous);
    } catch (error) {
      throw applyError(`cannot go back to the previous version of ${this.outDir}`, error);
    }
    return { from: { taskId: state.taskId, digest: state.digest, version: state.version }, to: previous };
  }

  /** Removes state.json, so that the next pull claims to have nothing (after a version was found tampered with). */
  async forgetState(): Promise<void> {
    await this.verifyVersionsDir();
    await fs.rm(join(this.#versionsDir, STATE_FILE), { force: true });
  }

  /** Files of the current version with their sizes and modes, for a dry run. */
  async currentFiles(): Promise<Map<string, FileEntry> | null> {
    const state = await this.readState();
    if (!state) return null;
    const found = new Map<string, FileEntry>();
    const walk = async (directory: string, prefix: string): Promise<void> => {
      for (const entry of await fs.readdir(directory, { withFileTypes: true })) {
        const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
        const full = join(directory, entry.name);
        if (entry.isDirectory()) await walk(full, path);
        else if (entry.isFile()) {
          const content = await readFileNoFollow(full);
          const stats = await fs.lstat(full);
          found.set(path, { path, size: content.byteLength, mode: stats.mode & 0o777, digest: fileDigest(content) });
        }
      }
    };
    await walk(join(this.#versionsDir, state.version), '');
    return found;
  }

  /** Starts staging a new version (the lock must be held). Throws PATH_UNSAFE or APPLY_FAILED. */
  async stage(taskId: string, digest: string, files: readonly FileEntry[]): Promise<StagedVersion> {
    checkPathSet(files.map((file) => file.path));
    try {
      await this.verifyVersionsDir();
      const stagingDir = join(this.#versionsDir, `.staging-${process.pid}-${randomBytes(6).toString('hex')}`);
      await fs.mkdir(stagingDir, { mode: 0o755 });
      const stats = await fs.lstat(stagingDir, { bigint: true });
      if (!stats.isDirectory()) throw new NoiseCfgError('APPLY_FAILED', `the staging directory ${stagingDir} is not a directory`);
      return new StagedVersion(this, stagingDir, { device: stats.dev, inode: stats.ino }, taskId, digest, files);
    } catch (error) {
      throw applyError(`cannot stage files beside ${this.outDir}`, error);
    }
  }

  /**
   * The swap of StagedVersion.commit(), with every check right before the rename it guards. Returns nothing;
   * throws APPLY_FAILED; before the link's rename nothing visible changed.
   */
  async swapIn(stagingDir: string, stagingIdentity: EntryIdentity, name: (time: number) => string, state: Omit<AppliedState, 'version' | 'previous'>): Promise<void> {
    const linkTemp = join(this.#versionsDir, `.link-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      // Right before the swap, as before connecting: the parent chain, OUT, and what this pull made.
      if ((await checkParentChain(this.outDir)) !== this.#realParent) {
        throw new NoiseCfgError('APPLY_FAILED', `the parent directory of ${this.outDir} now resolves elsewhere than when the pull started; pull again`);
      }
      await this.verifyVersionsDir();
      const target = await this.checkTarget();
      // What is current now becomes the previous version, kept for a rollback.
      const current = await this.readState();
      await expectSameEntry(stagingDir, stagingIdentity, 'the staging directory');
      let time = Date.now();
      // Under the lock no other pull makes a version, so a free name stays free.
      while (await fs.lstat(join(this.#versionsDir, name(time))).then(() => true, () => false)) time += 1;
      const version = name(time);
      const versionDir = join(this.#versionsDir, version);
      await fs.rename(stagingDir, versionDir);
      await expectSameEntry(versionDir, stagingIdentity, 'the new version directory');
      await fsyncDirectory(this.#versionsDir);
      await fs.symlink(join(basename(this.#versionsDir), version), linkTemp);
      const linkIdentity = await entryIdentity(linkTemp);
      if (target.kind !== 'missing') await expectSameEntry(this.#linkPath, target.identity, 'the output directory');
      // An empty directory at OUT (first use) is replaced by the link: rmdir then rename, done once.
      if (target.kind === 'empty') await fs.rmdir(this.#linkPath);
      await this.verifyVersionsDir();
      await expectSameEntry(versionDir, stagingIdentity, 'the new version directory');
      await expectSameEntry(linkTemp, linkIdentity, 'the new link');
      await fs.rename(linkTemp, this.#linkPath);
      await expectSameEntry(this.#linkPath, linkIdentity, 'the output link');
      await fsyncDirectory(this.#realParent!);
      this.#applied = { versionDir, versionIdentity: stagingIdentity, linkIdentity };
      await this.verifyApplied();
      const previous = current === null ? undefined : keepOnePrevious(current);
      const applied: AppliedState = { ...state, version, ...(previous ? { previous } : {}) };
      // Without a pending command the apply has succeeded here; with one, the version before the previous stays
      // until the command succeeds, so that a rollback after a failed command leaves a version to go back to.
      const kept = state.isCommandDone === false ? applied : keepOnePrevious(applied);
      await this.#writeState(kept);
      await this.#removeUnkeptVersions(kept);
    } catch (error) {
      await fs.rm(linkTemp, { force: true }).catch(() => undefined);
      throw applyError(`cannot make the new files current in ${this.outDir}`, error);
    }
  }

  /** Points OUT at `version` (one of ours, in the versions directory) with one rename() of a new link over it. */
  async #pointLinkAt(version: string): Promise<void> {
    const linkTemp = join(this.#versionsDir, `.link-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const target = await this.checkTarget();
      if (target.kind !== 'link') throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is no longer a link to a version noise-cfg made`);
      const versionDir = join(this.#versionsDir, version);
      const versionIdentity = await entryIdentity(versionDir);
      await fs.symlink(join(basename(this.#versionsDir), version), linkTemp);
      const linkIdentity = await entryIdentity(linkTemp);
      await this.verifyVersionsDir();
      await expectSameEntry(this.#linkPath, target.identity, 'the output link');
      await fs.rename(linkTemp, this.#linkPath);
      await expectSameEntry(this.#linkPath, linkIdentity, 'the output link');
      await expectSameEntry(versionDir, versionIdentity, 'the version directory');
      await fsyncDirectory(this.#realParent!);
    } catch (error) {
      await fs.rm(linkTemp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Removes versions that `state` does not keep, but never the one the link points to now (read again here). */
  async #removeUnkeptVersions(state: AppliedState): Promise<void> {
    const kept = keptVersions(state);
    kept.add(basename(await fs.readlink(this.#linkPath)));
    for (const name of await fs.readdir(this.#versionsDir)) {
      // Dot-names (the lock, temporaries) are left to their owners and to #removeStaleTemporaries.
      if (!kept.has(name) && name !== STATE_FILE && !name.startsWith('.')) {
        await fs.rm(join(this.#versionsDir, name), { recursive: true, force: true });
      }
    }
  }

  /** Removes staging directories and temporaries left by pulls that died (the lock is held). */
  async #removeStaleTemporaries(): Promise<void> {
    for (const name of await fs.readdir(this.#versionsDir)) {
      const match = TEMPORARY_NAME.exec(name);
      // fs.rm removes a link itself, never what it points to.
      if ((match && !isProcessAlive(Number(match[1]))) || OLD_STATE_TEMPORARY.test(name)) {
        await fs.rm(join(this.#versionsDir, name), { recursive: true, force: true });
      }
    }
  }

  async #writeState(state: AppliedState): Promise<void> {
    await this.verifyVersionsDir();
    const temporary = join(this.#versionsDir, `.state-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await createNewFile(temporary, `${JSON.stringify(state)}\n`, 0o600);
      await fs.rename(temporary, join(this.#versionsDir, STATE_FILE));
      await fsyncDirectory(this.#versionsDir);
    } catch (error) {
      await fs.rm(temporary, { force: true }).catch(() => undefined);
      throw applyError(`cannot record the state of ${this.outDir}`, error);
    }
  }
}

function noVersionToRollBack(outDir: string): NoiseCfgError {
  return new NoiseCfgError('ROLLBACK_UNAVAILABLE', `${outDir} holds no version applied by noise-cfg (it is new, empty, or not managed by noise-cfg), so there is nothing to go back to`);
}

/**
 * `noise-cfg rollback --out DIR` (SPEC.md §4.7): makes the previous version of `outDir` current again under its lock
 * and removes the version it leaves. Throws ROLLBACK_UNAVAILABLE (nothing applied, or no previous version; checked
 * before anything is created), APPLY_FAILED (an unsafe --out, the lock held past `lockTimeoutMs`, a changed
 * previous version, a file-system error).
 */
export async function rollBackOutput(outDir: string, options: { lockTimeoutMs?: number; onWait?: (pid: number) => void } = {}): Promise<RollbackOutcome> {
  const output = new ManagedOutput(outDir);
  // Looked at before the lock, which would create the versions directory of a new --out.
  if ((await output.readState()) === null) throw noVersionToRollBack(output.outDir);
  await output.lock(options);
  try {
    return await output.rollBack();
  } finally {
    await output.unlock();
  }
}

/**
 * A version being staged (SPEC.md §4.7): the CHUNKs' bytes are written into new files beside OUT, each hashed as
 * it arrives and checked against the offer, then ManagedOutput swaps the complete version in with one rename.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import type { ManagedOutput } from './apply.js';
import { applyError, appliedFileMode, type AppliedFile } from './applied-state.js';
import { StreamingDigest, type FileEntry } from './digests.js';
import { CREATE_NEW_FILE_FLAGS, expectSameEntry, fsyncDirectory, type EntryIdentity } from './safe-directory.js';

/** A version being written; commit() makes it current in one rename. */
export class StagedVersion {
  readonly #output: ManagedOutput;
  readonly #stagingDir: string;
  readonly #stagingIdentity: EntryIdentity;
  readonly #taskId: string;
  readonly #digest: string;
  readonly #files: readonly FileEntry[];
  #index = 0;
  #handle: fs.FileHandle | null = null;
  #written = 0;
  #fileDigest: StreamingDigest | null = null;
  /** The files written so far, as state.json records them. */
  readonly #applied: AppliedFile[] = [];
  /** Directories this pull made inside staging, by relative path, with their identity. */
  readonly #directories = new Map<string, EntryIdentity>();

  constructor(output: ManagedOutput, stagingDir: string, stagingIdentity: EntryIdentity, taskId: string, digest: string, files: readonly FileEntry[]) {
    this.#output = output;
    this.#stagingDir = stagingDir;
    this.#stagingIdentity = stagingIdentity;
    this.#taskId = taskId;
    this.#digest = digest;
    this.#files = files;
  }

  /** Where the version is being written. */
  get stagingDir(): string {
    return this.#stagingDir;
  }

  /** True when every file has been written and checked. */
  get isComplete(): boolean {
    return this.#index >= this.#files.length && this.#handle === null;
  }

  /**
   * Writes the next bytes of the content stream (files concatenated in list order); an empty `chunk` creates the
   * empty files that come next. Throws DIGEST_MISMATCH when a file's bytes do not hash to its announced digest,
   * PROTOCOL_ERROR on more bytes than announced, APPLY_FAILED on a write error or a replaced directory.
   */
  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength || (this.#index < this.#files.length && this.#files[this.#index]!.size === 0 && this.#handle === null)) {
      if (this.#index >= this.#files.length) throw new NoiseCfgError('PROTOCOL_ERROR', 'the server sent more content than its offer announced');
      const file = this.#files[this.#index]!;
      if (this.#handle === null) await this.#openFile(file);
      const take = Math.min(file.size - this.#written, chunk.byteLength - offset);
      const piece = chunk.subarray(offset, offset + take);
      if (take > 0) {
        try {
          await this.#handle!.write(piece);
        } catch (error) {
          throw applyError(`cannot write ${file.path}`, error);
        }
        this.#fileDigest!.update(piece);
      }
      this.#written += take;
      offset += take;
      if (this.#written === file.size) await this.#finishFile(file);
    }
  }

  /**
   * Opens the next file in staging. Each directory on its way is made here, one level at a time, and checked by
   * identity before anything is created under it, so a link swapped in for staging or one of its directories is
   * found before a byte lands where it points.
   */
  async #openFile(file: FileEntry): Promise<void> {
    const segments = file.path.split('/');
    try {
      await this.#output.verifyVersionsDir();
      await expectSameEntry(this.#stagingDir, this.#stagingIdentity, 'the staging directory');
      for (let depth = 1; depth < segments.length; depth++) {
        const relative = segments.slice(0, depth).join('/');
        const full = join(this.#stagingDir, ...segments.slice(0, depth));
        const known = this.#directories.get(relative);
        if (known) {
          await expectSameEntry(full, known, 'a directory of the staged version');
          continue;
        }
        // Not recursive, and EEXIST is an error: nothing but this pull creates entries in staging.
        await fs.mkdir(full, { mode: 0o755 });
        const stats = await fs.lstat(full, { bigint: true });
        if (!stats.isDirectory()) throw new NoiseCfgError('APPLY_FAILED', `${full} is not the directory this pull made`);
        this.#directories.set(relative, { device: stats.dev, inode: stats.ino });
      }
      // The mode goes through open(2), so the umask applies; maxFileMode drops what the puller did not allow.
      this.#handle = await fs.open(join(this.#stagingDir, ...segments), CREATE_NEW_FILE_FLAGS, appliedFileMode(file.mode, this.#output.maxFileMode, 0));
    } catch (error) {
      throw applyError(`cannot create ${file.path}`, error);
    }
    this.#written = 0;
    this.#fileDigest = new StreamingDigest();
  }

  async #finishFile(file: FileEntry): Promise<void> {
    const digest = this.#fileDigest!.digest();
    try {
      await this.#handle!.sync();
      const stats = await this.#handle!.stat({ bigint: true });
      this.#applied.push({ path: file.path, size: file.size, mode: Number(stats.mode) & 0o777, digest: file.digest, inode: String(stats.ino), ctimeNs: String(stats.ctimeNs) });
      await this.#handle!.close();
    } catch (error) {
      throw applyError(`cannot write ${file.path}`, error);
    }
    this.#handle = null;
    this.#index += 1;
    if (digest !== file.digest) {
      throw new NoiseCfgError('DIGEST_MISMATCH', `${file.path}: received content hashes to ${digest.slice(0, 16)}…, the offer said ${file.digest.slice(0, 16)}…`);
    }
  }

  /**
   * Makes the staged version current: fsyncs its directories, checks that nothing was replaced, renames it into
   * place, then swaps the OUT link with one rename(). With `isCommandPending`, state.json records the command as
   * not done yet (a kill before it finishes counts as not done). Returns the paths written. Throws APPLY_FAILED;
   * before the final rename nothing visible changed.
   */
  async commit(options: { isCommandPending?: boolean } = {}): Promise<string[]> {
    if (!this.isComplete) throw new NoiseCfgError('PROTOCOL_ERROR', 'the content ended before every file was complete');
    try {
      const directories = [...this.#directories.keys()].sort((a, b) => b.length - a.length);
      for (const relative of directories) await fsyncDirectory(join(this.#stagingDir, ...relative.split('/')));
      await fsyncDirectory(this.#stagingDir);
    } catch (error) {
      throw applyError(`cannot write the new files beside ${this.#output.outDir}`, error);
    }
    const prefix = `${this.#taskId}-${this.#digest.slice(0, 16)}-`;
    await this.#output.swapIn(this.#stagingDir, this.#stagingIdentity, (time) => `${prefix}${time}`, {
      taskId: this.#taskId, digest: this.#digest, appliedAt: new Date().toISOString(),
      ...(options.isCommandPending ? { isCommandDone: false } : {}),
      files: this.#applied,
    });
    return this.#files.map((file) => file.path);
  }

  /** Throws APPLY_FAILED unless the staging directory is still the one this pull made (before --verify runs on it). */
  async checkStillStaged(): Promise<void> {
    await this.#output.verifyVersionsDir();
    await expectSameEntry(this.#stagingDir, this.#stagingIdentity, 'the staging directory');
  }

  /** Throws the staged files away (only if staging is still the directory this pull made); the current version is untouched. */
  async abort(): Promise<void> {
    await this.#handle?.close().catch(() => undefined);
    this.#handle = null;
    const isOurs = await expectSameEntry(this.#stagingDir, this.#stagingIdentity, 'the staging directory').then(() => true, () => false);
    if (isOurs) await fs.rm(this.#stagingDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

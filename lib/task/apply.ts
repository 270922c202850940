/**
 * Atomic apply (SPEC.md §4.6). The output directory is a symbolic link that noise-cfg owns, pointing at a complete
 * version directory beside it: `OUT -> .OUT.noise-cfg/<version>`. A new version is staged in that same directory
 * (so on the same filesystem), every file and directory fsynced, and then one rename() swaps the link. Readers,
 * and a process killed at any point, see either the old files or the new ones, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { fileDigest, StreamingDigest, type FileEntry } from './digests.js';
import { checkPathSet } from './paths.js';

/** What a managed output directory records of its current version. */
export interface AppliedState {
  taskId: string;
  digest: string;
  version: string;
  appliedAt: string;
  /** False when the files are current but the --exec command that followed failed: the next pull redoes both. */
  isCommandDone?: boolean;
}

const STATE_FILE = 'state.json';

function applyError(what: string, error: unknown): NoiseCfgError {
  if (error instanceof NoiseCfgError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  return new NoiseCfgError('APPLY_FAILED', `${what}: ${code ?? (error as Error).message}`, { cause: error });
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await fs.open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function writeStateFile(versionsDir: string, state: AppliedState): Promise<void> {
  const stateTemp = join(versionsDir, `.${STATE_FILE}.${process.pid}`);
  await fs.writeFile(stateTemp, `${JSON.stringify(state)}\n`);
  await fsyncPath(stateTemp);
  await fs.rename(stateTemp, join(versionsDir, STATE_FILE));
  await fsyncPath(versionsDir);
}

/** The paths noise-cfg uses for one output directory. */
export class ManagedOutput {
  /** The output directory the user named (the link). */
  readonly outDir: string;
  /** Where versions live: `.<name>.noise-cfg` beside it. */
  readonly versionsDir: string;

  constructor(outDir: string) {
    this.outDir = resolve(outDir);
    this.versionsDir = join(dirname(this.outDir), `.${basename(this.outDir)}.noise-cfg`);
  }

  /** The current applied state, or null when the directory is not managed yet or the state does not match. */
  async readState(): Promise<AppliedState | null> {
    try {
      const state = JSON.parse(await fs.readFile(join(this.versionsDir, STATE_FILE), 'utf8')) as AppliedState;
      const target = await fs.readlink(this.outDir);
      return target === join(basename(this.versionsDir), state.version) ? state : null;
    } catch {
      return null;
    }
  }

  /**
   * Checks that OUT can be managed: missing, an empty directory, or our own link. Throws APPLY_FAILED for
   * anything else (a non-empty directory, a file, another link), so that nothing of the user's is replaced.
   */
  async checkTarget(): Promise<void> {
    let stats;
    try {
      stats = await fs.lstat(this.outDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw applyError(`cannot inspect ${this.outDir}`, error);
    }
    if (stats.isSymbolicLink()) {
      const target = await fs.readlink(this.outDir);
      if (dirname(target) === basename(this.versionsDir)) return;
      throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} is a symbolic link that noise-cfg does not manage (to ${target}); choose another --out`);
    }
    if (stats.isDirectory() && (await fs.readdir(this.outDir)).length === 0) return;
    throw new NoiseCfgError('APPLY_FAILED', `${this.outDir} already exists and is not managed by noise-cfg; move it away or choose an empty or new --out`);
  }

  /** Records whether the command after the current version succeeded (state.json, written atomically). */
  async setCommandDone(isDone: boolean): Promise<void> {
    const state = await this.readState();
    if (!state) return;
    await writeStateFile(this.versionsDir, { ...state, isCommandDone: isDone });
  }

  /** Files of the current version with their sizes, for a dry run. */
  async currentFiles(): Promise<Map<string, FileEntry> | null> {
    const state = await this.readState();
    if (!state) return null;
    const found = new Map<string, FileEntry>();
    const root = join(this.versionsDir, state.version);
    const walk = async (directory: string, prefix: string): Promise<void> => {
      for (const entry of await fs.readdir(directory, { withFileTypes: true })) {
        const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
        if (entry.isDirectory()) await walk(join(directory, entry.name), path);
        else if (entry.isFile()) {
          const content = await fs.readFile(join(directory, entry.name));
          const stats = await fs.stat(join(directory, entry.name));
          found.set(path, { path, size: content.byteLength, mode: stats.mode & 0o777, digest: fileDigest(content) });
        }
      }
    };
    await walk(root, '');
    return found;
  }

  /** Removes staging directories left by pulls that were killed. */
  async removeStaleStaging(): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(this.versionsDir);
    } catch {
      return;
    }
    for (const name of names) {
      const match = /^\.staging-(\d+)-/.exec(name);
      if (match && !isAlive(Number(match[1]))) await fs.rm(join(this.versionsDir, name), { recursive: true, force: true });
    }
  }

  /** Starts staging a new version. */
  async stage(taskId: string, digest: string, files: readonly FileEntry[]): Promise<StagedVersion> {
    checkPathSet(files.map((file) => file.path));
    await this.checkTarget();
    try {
      await fs.mkdir(this.versionsDir, { recursive: true, mode: 0o755 });
      await this.removeStaleStaging();
      const stagingDir = join(this.versionsDir, `.staging-${process.pid}-${randomBytes(6).toString('hex')}`);
      await fs.mkdir(stagingDir, { mode: 0o755 });
      return new StagedVersion(this, stagingDir, taskId, digest, files);
    } catch (error) {
      throw applyError(`cannot stage files beside ${this.outDir}`, error);
    }
  }
}

/** A version being written; commit() makes it current in one rename. */
export class StagedVersion {
  readonly #output: ManagedOutput;
  readonly #stagingDir: string;
  readonly #taskId: string;
  readonly #digest: string;
  readonly #files: readonly FileEntry[];
  #index = 0;
  #handle: fs.FileHandle | null = null;
  #written = 0;
  #fileDigest: StreamingDigest | null = null;
  readonly #directories = new Set<string>();

  constructor(output: ManagedOutput, stagingDir: string, taskId: string, digest: string, files: readonly FileEntry[]) {
    this.#output = output;
    this.#stagingDir = stagingDir;
    this.#taskId = taskId;
    this.#digest = digest;
    this.#files = files;
  }

  /** True when every file has been written and checked. */
  get isComplete(): boolean {
    return this.#index >= this.#files.length && this.#handle === null;
  }

  /**
   * Writes the next bytes of the content stream (files concatenated in list order). Throws DIGEST_MISMATCH when a
   * file's bytes do not hash to its announced digest, PROTOCOL_ERROR on more bytes than announced, APPLY_FAILED on a write error.
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

  async #openFile(file: FileEntry): Promise<void> {
    const path = join(this.#stagingDir, ...file.path.split('/'));
    try {
      await fs.mkdir(dirname(path), { recursive: true, mode: 0o755 });
      this.#directories.add(dirname(path));
      // O_EXCL and a fresh staging tree: nothing can sit in the way, not even a symbolic link.
      this.#handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, file.mode);
      await this.#handle.chmod(file.mode);
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
   * Makes the staged version current: fsyncs its directories, renames it into place, then swaps the OUT link with
   * one rename(). Returns the paths written. Throws APPLY_FAILED; before the final rename nothing visible changed.
   */
  async commit(): Promise<string[]> {
    if (!this.isComplete) throw new NoiseCfgError('PROTOCOL_ERROR', 'the content ended before every file was complete');
    const output = this.#output;
    const version = `${this.#taskId}-${this.#digest.slice(0, 16)}-${Date.now()}`;
    const versionDir = join(output.versionsDir, version);
    const linkTemp = join(output.versionsDir, `.link-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      for (const directory of [...this.#directories].sort((a, b) => b.length - a.length)) await fsyncPath(directory);
      await fsyncPath(this.#stagingDir);
      await fs.rename(this.#stagingDir, versionDir);
      await fsyncPath(output.versionsDir);
      await output.checkTarget();
      // An empty directory at OUT (first use) is replaced by the link: rmdir then rename, done once.
      const stats = await fs.lstat(output.outDir).catch(() => null);
      if (stats?.isDirectory()) await fs.rmdir(output.outDir);
      await fs.symlink(join(basename(output.versionsDir), version), linkTemp);
      await fs.rename(linkTemp, output.outDir);
      await fsyncPath(dirname(output.outDir));
      await writeStateFile(output.versionsDir, { taskId: this.#taskId, digest: this.#digest, version, appliedAt: new Date().toISOString() });
      for (const name of await fs.readdir(output.versionsDir)) {
        // Older versions go; dot-names (staging and link temporaries of other pulls) are left to their owners.
        if (name !== version && name !== STATE_FILE && !name.startsWith('.')) {
          await fs.rm(join(output.versionsDir, name), { recursive: true, force: true });
        }
      }
    } catch (error) {
      await fs.rm(linkTemp, { force: true }).catch(() => undefined);
      throw applyError(`cannot make the new files current in ${output.outDir}`, error);
    }
    return this.#files.map((file) => file.path);
  }

  /** Throws the staged files away; the current version is untouched. */
  async abort(): Promise<void> {
    await this.#handle?.close().catch(() => undefined);
    this.#handle = null;
    await fs.rm(this.#stagingDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * What keeps other local users out of a pull's output (SPEC.md §4.7): the checks on the directories above --out,
 * on the directories noise-cfg makes itself, the identity (device and inode) of what it made, and files that are
 * only ever created new (O_EXCL | O_NOFOLLOW), never through a name someone else could have planted.
 */
import { constants, promises as fs, type BigIntStats } from 'node:fs';
import { dirname } from 'node:path';
import { NoiseCfgError } from '../errors.js';

// Windows has neither flag; there the checks that need them are skipped along with the owner checks.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

/** What to do about a file-system error under --out, by errno code. */
const FIX_BY_ERRNO: Readonly<Record<string, string>> = {
  EACCES: 'permission denied; run noise-cfg as the user who owns that directory, or choose an --out in a directory you can write',
  EPERM: 'operation not permitted; run noise-cfg as the user who owns that directory, or choose an --out in a directory you can write',
  EROFS: 'the file system is read-only; choose an --out on a writable file system',
  ENOSPC: 'no space left on the device; free some space, or choose an --out on another file system',
  EDQUOT: 'the disk quota is exceeded; free some space, or choose an --out on another file system',
  ENOTDIR: 'a part of that path is not a directory',
};

/**
 * A file-system error as one line for people: the errno code, the path it names, and the fix where one is known
 * ("EACCES (/srv/app/.x): permission denied; run noise-cfg as the user who owns …").
 */
export function describeFileSystemError(error: unknown): string {
  const failure = error as NodeJS.ErrnoException;
  if (typeof failure?.code !== 'string') return error instanceof Error ? error.message : String(error);
  const where = typeof failure.path === 'string' ? ` (${failure.path})` : '';
  const fix = FIX_BY_ERRNO[failure.code];
  return `${failure.code}${where}${fix ? `: ${fix}` : ''}`;
}

/** Flags for every file noise-cfg creates: a new file, never an existing one or the target of a link. */
export const CREATE_NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;

/** Which filesystem object a path named when noise-cfg made or checked it. */
export interface EntryIdentity {
  device: bigint;
  inode: bigint;
}

/** The effective user id, or null where the platform has none (then ownership is not checked). */
export function effectiveUid(): number | null {
  return process.geteuid?.() ?? null;
}

function identityOf(stats: BigIntStats): EntryIdentity {
  return { device: stats.dev, inode: stats.ino };
}

function octal(mode: number | bigint): string {
  return (Number(mode) & 0o7777).toString(8).padStart(3, '0');
}

/** The identity of `path` itself (lstat: a link is not followed). Throws the fs error. */
export async function entryIdentity(path: string): Promise<EntryIdentity> {
  return identityOf(await fs.lstat(path, { bigint: true }));
}

/**
 * Throws APPLY_FAILED unless `path` still names the object recorded in `expected` (lstat, so a link put in its
 * place does not match). `what` says what it is, for the message.
 */
export async function expectSameEntry(path: string, expected: EntryIdentity, what: string): Promise<void> {
  let actual: EntryIdentity | null = null;
  try {
    actual = await entryIdentity(path);
  } catch {
    // Gone counts as replaced.
  }
  if (actual === null || actual.device !== expected.device || actual.inode !== expected.inode) throw replacedError(path, what);
}

function replacedError(path: string, what: string): NoiseCfgError {
  return new NoiseCfgError('APPLY_FAILED', `${what} ${path} was replaced while the pull ran (something else renamed, removed or swapped it), so noise-cfg stopped using it; check who else can write beside --out, then pull again`);
}

/**
 * Checks the directory that will hold --out and every directory above it, up to `/`, after resolving links in the
 * parent with realpath. Each must be owned by the effective user or root, and must not be writable by group or
 * others unless it has the sticky bit: otherwise another user could rename what noise-cfg makes there and put
 * their own in its place. The parent must also be writable by this process (access W_OK). Returns the parent's
 * real path. Throws APPLY_FAILED naming the directory and the fix.
 */
export async function checkParentChain(outDir: string): Promise<string> {
  const parent = dirname(outDir);
  let real: string;
  try {
    real = await fs.realpath(parent);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: its parent directory ${parent} does not exist; create it first (noise-cfg does not create parent directories)`);
    throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: cannot resolve its parent directory ${parent}: ${describeFileSystemError(error)}`, { cause: error });
  }
  const euid = effectiveUid();
  for (let directory = real; ; directory = dirname(directory)) {
    let stats: BigIntStats;
    try {
      stats = await fs.lstat(directory, { bigint: true });
    } catch (error) {
      throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: cannot inspect ${directory}: ${describeFileSystemError(error)}`, { cause: error });
    }
    if (!stats.isDirectory()) throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: ${directory} is not a directory`);
    if (euid !== null) {
      const uid = Number(stats.uid);
      if (uid !== euid && uid !== 0) {
        throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: ${directory} belongs to uid ${uid}, not to you (uid ${euid}) or root, so that user could replace what noise-cfg writes there; choose an --out in a directory that only you or root own`);
      }
      const mode = Number(stats.mode);
      const isSticky = (mode & 0o1000) !== 0;
      const writers = [(mode & 0o020) !== 0 ? 'group' : null, (mode & 0o002) !== 0 ? 'others' : null].filter((who) => who !== null);
      if (writers.length > 0 && !isSticky) {
        const fix = writers.map((who) => (who === 'group' ? 'g-w' : 'o-w')).join(',');
        throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: ${directory} is writable by ${writers.join(' and ')} (mode ${octal(mode)}) without the sticky bit, so other users could replace what noise-cfg writes there; run chmod ${fix} ${directory} (or chmod +t ${directory}), or choose an --out in a directory only you can write`);
      }
    }
    if (dirname(directory) === directory) break;
  }
  await checkWritable(outDir, real);
  return real;
}

/**
 * Throws APPLY_FAILED unless this process may create and rename entries in `directory` (the parent of --out):
 * access(W_OK | X_OK), so that a pull that could not apply never connects and downloads first.
 */
async function checkWritable(outDir: string, directory: string): Promise<void> {
  try {
    await fs.access(directory, constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    const stats = await fs.stat(directory).catch(() => null);
    const owner = stats ? ` (owner uid ${stats.uid}, mode ${octal(stats.mode)})` : '';
    const euid = effectiveUid();
    const who = euid === null ? 'this process' : `you (uid ${euid})`;
    if (code === 'EROFS') {
      throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: its parent directory ${directory} is on a read-only file system (EROFS); choose an --out on a writable file system`, { cause: error });
    }
    if (code === 'EPERM') {
      throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: its parent directory ${directory}${owner} does not permit changes (EPERM): it may be immutable or append-only (see lsattr -d ${directory}; chattr -i removes that); choose an --out in a directory you can write`, { cause: error });
    }
    throw new NoiseCfgError('APPLY_FAILED', `cannot pull into ${outDir}: ${who} cannot create entries in its parent directory ${directory}${owner}: ${code}; run noise-cfg as the user who owns ${directory}, or choose an --out in a directory you can write`, { cause: error });
  }
}

/**
 * Makes `path` a directory of the effective user with mode 0700, or accepts one that already is: a real directory
 * (not a link) owned by the effective user that neither group nor others may write. Wider read or search bits on
 * one of ours (older versions made it 0755) are tightened to 0700. Its parent must exist (nothing is made
 * recursively). Returns its identity. Throws APPLY_FAILED with the reason and the fix.
 */
export async function openOwnedDirectory(path: string, what: string): Promise<EntryIdentity> {
  try {
    await fs.mkdir(path, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new NoiseCfgError('APPLY_FAILED', `cannot create ${what} ${path}: ${describeFileSystemError(error)}`, { cause: error });
    }
  }
  const stats = await fs.lstat(path, { bigint: true });
  if (stats.isSymbolicLink()) throw new NoiseCfgError('APPLY_FAILED', `${what} ${path} is a symbolic link, not a directory noise-cfg made; remove it (rm ${path}) if you did not make it, or choose another --out`);
  if (!stats.isDirectory()) throw new NoiseCfgError('APPLY_FAILED', `${what} ${path} is not a directory; move it away or choose another --out`);
  const euid = effectiveUid();
  if (euid === null) return identityOf(stats);
  const uid = Number(stats.uid);
  if (uid !== euid) {
    throw new NoiseCfgError('APPLY_FAILED', `${what} ${path} belongs to uid ${uid}, not to you (uid ${euid}): someone else made it, so nothing in it can be trusted; remove it (rm -r ${path}, as root if need be) or choose another --out`);
  }
  if ((Number(stats.mode) & 0o022) !== 0) {
    throw new NoiseCfgError('APPLY_FAILED', `${what} ${path} is writable by group or others (mode ${octal(stats.mode)}), so other users could have changed what is in it; if you trust its content run chmod 700 ${path}, otherwise remove it (rm -r ${path})`);
  }
  if ((Number(stats.mode) & 0o777) !== 0o700) {
    // Through a descriptor opened without following links, so the mode lands on the directory just checked.
    const handle = await fs.open(path, constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      const opened = await handle.stat({ bigint: true });
      if (opened.dev !== stats.dev || opened.ino !== stats.ino) throw replacedError(path, what);
      await handle.chmod(0o700);
    } finally {
      await handle.close();
    }
  }
  return identityOf(stats);
}

/** Creates the new file `path` (O_EXCL | O_NOFOLLOW) with `data` and `mode`, fsynced. Throws the fs error (EEXIST, ELOOP…). */
export async function createNewFile(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const handle = await fs.open(path, CREATE_NEW_FILE_FLAGS, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Opens `path` for reading without following a link at its last component (ELOOP then). Throws the fs error. */
export async function openNoFollow(path: string): Promise<fs.FileHandle> {
  return fs.open(path, constants.O_RDONLY | O_NOFOLLOW);
}

/** Reads `path` without following a link at its last component (ELOOP then). Throws the fs error. */
export async function readFileNoFollow(path: string): Promise<Buffer> {
  const handle = await fs.open(path, constants.O_RDONLY | O_NOFOLLOW);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory, opened without following a link. Throws the fs error. */
export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await fs.open(path, constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

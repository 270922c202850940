/**
 * The server's data directory (SPEC.md §4.1): the static key, the master secret that task PSKs are derived from,
 * the admin API token and the database. Secret files are created 0600 in a 0700 directory, never overwritten,
 * and refused when group or others can read them.
 */
import { existsSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import sodium from 'sodium-native';
import { NoiseCfgError } from '../errors.js';
import { HASH_FUNCTIONS, keyPairFromSecretKey, type KeyPair } from '../noise/index.js';
import { loadOrCreateSecretFile } from './secret-files.js';

/** File names inside the data directory. */
export const DATA_FILES = {
  serverKey: 'server.key',
  masterKey: 'master.key',
  adminToken: 'admin.token',
  database: 'noise-cfg.db',
} as const;

/** The files every node of a fleet on one PostgreSQL store holds alike, copied from the first (SPEC.md §4.9). */
export const FLEET_KEY_FILES = [DATA_FILES.serverKey, DATA_FILES.masterKey, DATA_FILES.adminToken] as const;

const PSK_LABEL = Buffer.from('noise-cfg/1 task psk:', 'ascii');

/** The secrets and paths of one data directory. */
export interface DataDir {
  path: string;
  databasePath: string;
  serverKeyPair: KeyPair;
  /** 32-byte secret from which every task PSK is derived; never leaves this process. */
  masterKey: Buffer;
  adminToken: string;
}

/**
 * Throws DATA_DIR_INSECURE unless the data directory belongs to the effective user and neither group nor others
 * may enter it: the database holds every task's files, so a directory open to others gives them away. Refused,
 * not repaired: whoever could read it may already have, and the operator should know.
 */
function checkDataDirOwnership(path: string, stats: Stats): void {
  const euid = process.geteuid?.();
  if (euid !== undefined && stats.uid !== euid) {
    // Also for root: files root made in it (the database's -wal and -shm) would lock its owner out.
    throw new NoiseCfgError('DATA_DIR_INSECURE', `data directory ${path} belongs to uid ${stats.uid}, not to you (uid ${euid}); run noise-cfg as its owner (e.g. sudo -u '#${stats.uid}' noise-cfg …) or choose another --data`);
  }
  const mode = stats.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new NoiseCfgError('DATA_DIR_INSECURE', `data directory ${path} is open to group or others (mode ${mode.toString(8).padStart(3, '0')}), so other local users could read every task's files; fix it with: chmod 700 ${path}`);
  }
}

/** The environment variable that names the data directory when --data is not given (SPEC.md §4.1). */
export const DATA_DIR_ENVIRONMENT = 'NOISE_CFG_DATA';

// Where an operator is told to look: the absolute path, and both ways of pointing elsewhere.
function missingDataDir(path: string, what: string): NoiseCfgError {
  return new NoiseCfgError('DATA_DIR_MISSING', `${what} at ${resolve(path)}; only noise-cfg serve creates one. Point at the server's data directory with --data DIR or ${DATA_DIR_ENVIRONMENT}=DIR, or start noise-cfg serve --data DIR first`);
}

/**
 * A file-system error about the data directory (or a file in it) as DATA_DIR_UNAVAILABLE (exit 5), naming the
 * path and the fix. A NoiseCfgError passes through unchanged.
 */
export function dataDirFailure(error: unknown, path: string, doing: string): NoiseCfgError {
  if (error instanceof NoiseCfgError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const absolute = resolve(path);
  const fixes: Record<string, string> = {
    EACCES: 'permission denied; run noise-cfg as the user that owns it, or choose another --data',
    EPERM: 'operation not permitted; run noise-cfg as the user that owns it, or choose another --data',
    EROFS: 'the file system is read-only; choose a writable --data',
    ENOSPC: 'no space left on the device; free some space, or choose another --data',
    EDQUOT: 'the disk quota is exhausted; free some space, or choose another --data',
    ENOTDIR: 'a part of the path is not a directory; choose another --data',
    EISDIR: 'a directory is where a file belongs; move it away, or choose another --data',
    EBUSY: 'the resource is busy; retry, or stop the process that holds it',
    EMFILE: 'too many open files; raise the limit (ulimit -n)',
    ELOOP: 'too many symbolic links; choose another --data',
  };
  const fix = fixes[code] ?? `${code || (error as Error).message}; check the path, or choose another --data`;
  return new NoiseCfgError('DATA_DIR_UNAVAILABLE', `cannot ${doing} ${absolute} (${code || 'error'}): ${fix}`, { cause: error });
}

/**
 * Makes the data directory (mode 0700) when it is missing and checks that it is a directory only the effective
 * user may enter. Only `serve` creates a data directory. Throws DATA_DIR_INSECURE, DATA_DIR_UNAVAILABLE, or
 * DATA_DIR_MISSING when it is missing (or holds none of the data directory's files) and `create` is false.
 */
export function prepareDataDir(path: string, options: { create: boolean }): void {
  try {
    if (!existsSync(path)) {
      if (!options.create) throw missingDataDir(path, 'no data directory');
      mkdirSync(path, { recursive: true, mode: 0o700 });
    }
    const stats = statSync(path);
    if (!stats.isDirectory()) throw new NoiseCfgError('DATA_DIR_UNAVAILABLE', `the data directory ${resolve(path)} is not a directory; choose another --data`);
    checkDataDirOwnership(path, stats);
    // A directory without any of our files (a wrong --data, or the working directory) is not a data directory.
    if (!options.create && !Object.values(DATA_FILES).some((name) => existsSync(join(path, name)))) {
      throw missingDataDir(path, `no noise-cfg data directory (no ${DATA_FILES.serverKey}, ${DATA_FILES.database}, …)`);
    }
  } catch (error) {
    throw dataDirFailure(error, path, 'use the data directory');
  }
}

/**
 * Opens (and with `create`, first makes, mode 0700) a data directory. Throws DATA_DIR_MISSING when it is missing
 * and `create` is false; DATA_DIR_INSECURE for a directory that another user owns or that group or others may
 * enter, and for a readable or damaged secret file, with the fix in the message; DATA_DIR_UNAVAILABLE for a
 * file-system error (permission, read-only, full, not a directory), naming the path.
 */
export function openDataDir(path: string, options: { create: boolean }): DataDir {
  prepareDataDir(path, options);
  const hex64 = /^[0-9a-f]{64}$/;
  let serverSecret: string;
  let masterKey: string;
  let adminToken: string;
  let current = path;
  try {
    current = join(path, DATA_FILES.serverKey);
    serverSecret = loadOrCreateSecretFile(current, () => randomBytes(32).toString('hex'), hex64, 'server static key', options.create);
    current = join(path, DATA_FILES.masterKey);
    masterKey = loadOrCreateSecretFile(current, () => randomBytes(32).toString('hex'), hex64, 'master secret', options.create);
    current = join(path, DATA_FILES.adminToken);
    adminToken = loadOrCreateSecretFile(current, () => randomBytes(32).toString('base64url'), /^[A-Za-z0-9_-]{43}$/, 'admin API token', options.create);
  } catch (error) {
    throw dataDirFailure(error, current, 'read or create');
  }
  return {
    path,
    databasePath: join(path, DATA_FILES.database),
    serverKeyPair: keyPairFromSecretKey(Buffer.from(serverSecret, 'hex')),
    masterKey: Buffer.from(masterKey, 'hex'),
    adminToken,
  };
}

/**
 * A task's PSK: the first 32 bytes of output 1 of HKDF (Noise rev. 34 §4.3, HMAC-BLAKE2b) with the master
 * secret as chaining key and "noise-cfg/1 task psk:" || task id as input key material. Stored nowhere.
 */
export function deriveTaskPsk(masterKey: Uint8Array, taskId: string): Buffer {
  const [output1, output2] = HASH_FUNCTIONS.BLAKE2b.hkdf(masterKey, Buffer.concat([PSK_LABEL, Buffer.from(taskId, 'ascii')]), 2) as [Buffer, Buffer];
  const psk = Buffer.from(output1.subarray(0, 32));
  sodium.sodium_memzero(output1);
  sodium.sodium_memzero(output2);
  return psk;
}

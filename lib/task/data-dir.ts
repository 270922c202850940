/**
 * The server's data directory (SPEC.md §4.1): the static key, the master secret that task PSKs are derived from,
 * the admin API token and the database. Secret files are created 0600 in a 0700 directory, never overwritten,
 * and refused when group or others can read them.
 */
import { existsSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import sodium from 'sodium-native';
import { NoiseCfgError } from '../errors.js';
import { keyPairFromSecretKey, type KeyPair } from '../noise/dh-functions.js';
import { HASH_FUNCTIONS } from '../noise/hash-functions.js';
import { loadOrCreateSecretFile } from './secret-files.js';

/** File names inside the data directory. */
export const DATA_FILES = {
  serverKey: 'server.key',
  masterKey: 'master.key',
  adminToken: 'admin.token',
  database: 'noise-cfg.db',
} as const;

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

/**
 * Opens (and with `create`, first makes, mode 0700) a data directory. Throws DATA_DIR_INSECURE for a directory
 * that another user owns or that group or others may enter, and for a readable or damaged secret file, with the
 * fix in the message; INVALID_ARGUMENT when the path is not a directory.
 */
export function openDataDir(path: string, options: { create: boolean }): DataDir {
  if (!existsSync(path)) {
    if (!options.create) throw new NoiseCfgError('INVALID_ARGUMENT', `data directory ${path} does not exist`);
    mkdirSync(path, { recursive: true, mode: 0o700 });
  }
  const stats = statSync(path);
  if (!stats.isDirectory()) throw new NoiseCfgError('INVALID_ARGUMENT', `data directory ${path} is not a directory`);
  checkDataDirOwnership(path, stats);
  const hex64 = /^[0-9a-f]{64}$/;
  const serverSecret = loadOrCreateSecretFile(join(path, DATA_FILES.serverKey), () => randomBytes(32).toString('hex'), hex64, 'server static key', options.create);
  const masterKey = loadOrCreateSecretFile(join(path, DATA_FILES.masterKey), () => randomBytes(32).toString('hex'), hex64, 'master secret', options.create);
  const adminToken = loadOrCreateSecretFile(join(path, DATA_FILES.adminToken), () => randomBytes(32).toString('base64url'), /^[A-Za-z0-9_-]{43}$/, 'admin API token', options.create);
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

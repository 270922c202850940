/**
 * Reading and creating the secret files the CLI uses: PSK files and static key files, 64 hex characters each.
 * New key files are created 0600; an existing one readable by group or others is refused with the fix.
 */
import { chmodSync, existsSync, openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import { DH_BYTES, generateKeyPair, keyFromHex, keyPairFromSecretKey, NoiseCfgError, PSK_BYTES, type KeyPair } from '../lib/index.js';

// A PSK and an X25519 secret key are both 32 bytes: one pattern of 64 hex characters reads either.
const HEX_KEY = new RegExp(`^[0-9a-fA-F]{${2 * PSK_BYTES}}$`);

function readSecretFile(path: string, what: string): string {
  if (!existsSync(path)) throw new NoiseCfgError('INVALID_ARGUMENT', `${what} ${path} does not exist`);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `${what} ${path} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`);
  }
  return readFileSync(path, 'utf8').trim();
}

/** Reads a 32-byte PSK written as 64 hex characters. Throws INVALID_ARGUMENT or INVALID_KEY, never showing the file. */
export function readPskFile(path: string): Buffer {
  const text = readSecretFile(path, 'PSK file');
  if (!HEX_KEY.test(text)) throw new NoiseCfgError('INVALID_KEY', `PSK file ${path} must hold exactly 64 hex characters`);
  return Buffer.from(text, 'hex');
}

/** Loads our static key pair from a file of 64 hex characters, or creates the file (0600) with a new key. */
export function loadOrCreateKeyFile(path: string): { keyPair: KeyPair; isNew: boolean } {
  if (!existsSync(path)) {
    const keyPair = generateKeyPair();
    // O_EXCL: never overwrite a key that appeared meanwhile; 0600 from the first byte written.
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, `${keyPair.secretKey.toString('hex')}\n`);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600);
    return { keyPair, isNew: true };
  }
  const text = readSecretFile(path, 'key file');
  if (!HEX_KEY.test(text)) throw new NoiseCfgError('INVALID_KEY', `key file ${path} must hold exactly 64 hex characters`);
  return { keyPair: keyPairFromSecretKey(keyFromHex(text, 'key file')), isNew: false };
}

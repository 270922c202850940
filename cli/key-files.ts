/**
 * Reading and creating the secret files the CLI uses: PSK files and static key files, 64 hex characters each.
 * New key files are created as the server creates its own (the library's createSecretFile: 0600 from the first
 * byte, O_EXCL, fsynced); an existing one readable by group or others is refused with the fix.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createSecretFile, DH_BYTES, generateKeyPair, keyFromHex, keyPairFromSecretKey, NoiseCfgError, PSK_BYTES, type KeyPair } from '../lib/index.js';

const PSK_HEX = new RegExp(`^[0-9a-fA-F]{${2 * PSK_BYTES}}$`);
const KEY_HEX = new RegExp(`^[0-9a-fA-F]{${2 * DH_BYTES}}$`);

// The CLI's own check, not the data directory's: a bad --psk-file or --key-file is bad input (exit 2), not a
// damaged data directory.
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
  if (!PSK_HEX.test(text)) throw new NoiseCfgError('INVALID_KEY', `PSK file ${path} must hold exactly ${2 * PSK_BYTES} hex characters`);
  return Buffer.from(text, 'hex');
}

/** Loads our static key pair from a file of 64 hex characters, or creates the file (0600) with a new key. */
export function loadOrCreateKeyFile(path: string): { keyPair: KeyPair; isNew: boolean } {
  if (!existsSync(path)) {
    const keyPair = generateKeyPair();
    // Throws if a key appeared meanwhile: it is never overwritten.
    createSecretFile(path, `${keyPair.secretKey.toString('hex')}\n`);
    return { keyPair, isNew: true };
  }
  const text = readSecretFile(path, 'key file');
  if (!KEY_HEX.test(text)) throw new NoiseCfgError('INVALID_KEY', `key file ${path} must hold exactly ${2 * DH_BYTES} hex characters`);
  return { keyPair: keyPairFromSecretKey(keyFromHex(text, 'key file')), isNew: false };
}

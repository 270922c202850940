/**
 * A client's persistent identity (SPEC.md §4.4, §4.7): in xxpsk3 its static X25519 key pair, kept in
 * `identity.key` (0600); in nnpsk0 a random client id kept in `client-id`. Both live in the identity directory,
 * by default `$XDG_CONFIG_HOME/noise-cfg` or `~/.config/noise-cfg`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { generateKeyPair, keyPairFromSecretKey, type KeyPair } from '../noise/index.js';
import { loadOrCreateSecretFile } from './secret-files.js';

/** The default identity directory. */
export function defaultIdentityDir(): string {
  const base = process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'noise-cfg');
}

/** What to do about a file-system error in the identity directory, by errno code. */
const FIX_BY_ERRNO: Readonly<Record<string, string>> = {
  EACCES: 'permission denied; run noise-cfg as the user who owns it, or choose an identity directory you can write with --identity-dir',
  EPERM: 'operation not permitted; run noise-cfg as the user who owns it, or choose an identity directory you can write with --identity-dir',
  EROFS: 'the file system is read-only; choose a writable identity directory with --identity-dir',
  ENOTDIR: 'a part of that path is a file, not a directory; move it away or choose another --identity-dir',
  EEXIST: 'a file is in the way; move it away or choose another --identity-dir',
  ENOSPC: 'no space left on the device; free some, or choose another --identity-dir',
};

/** Runs `load`, turning a file-system error into IDENTITY_UNAVAILABLE naming the path and the fix. */
function inIdentityDir<T>(identityDir: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof NoiseCfgError) throw error;
    const failure = error as NodeJS.ErrnoException;
    const where = typeof failure.path === 'string' && failure.path !== identityDir ? ` (${failure.path})` : '';
    const fix = (failure.code && FIX_BY_ERRNO[failure.code]) ?? 'choose another identity directory with --identity-dir';
    throw new NoiseCfgError('IDENTITY_UNAVAILABLE', `cannot use the client identity directory ${identityDir}${where}: ${failure.code ?? failure.message}: ${fix}`, { cause: error });
  }
}

/** This client's static key pair, created on first use. Throws IDENTITY_UNAVAILABLE, DATA_DIR_INSECURE. */
export function loadClientKeyPair(identityDir: string): KeyPair {
  return inIdentityDir(identityDir, () => {
    mkdirSync(identityDir, { recursive: true, mode: 0o700 });
    const secret = loadOrCreateSecretFile(join(identityDir, 'identity.key'), () => generateKeyPair().secretKey.toString('hex'), /^[0-9a-f]{64}$/, 'client identity key');
    return keyPairFromSecretKey(Buffer.from(secret, 'hex'));
  });
}

/** This client's nnpsk0 id, created on first use. Throws IDENTITY_UNAVAILABLE, DATA_DIR_INSECURE. */
export function loadClientId(identityDir: string): string {
  return inIdentityDir(identityDir, () => {
    mkdirSync(identityDir, { recursive: true, mode: 0o700 });
    return loadOrCreateSecretFile(join(identityDir, 'client-id'), () => randomBytes(12).toString('base64url'), /^[A-Za-z0-9_.-]{1,64}$/, 'client id');
  });
}

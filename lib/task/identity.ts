/**
 * A client's persistent identity (SPEC.md §4.4): in xxpsk3 its static X25519 key pair, kept in
 * `identity.key` (0600); in nnpsk0 a random client id kept in `client-id`. Both live in the identity directory,
 * by default `$XDG_CONFIG_HOME/noise-cfg` or `~/.config/noise-cfg`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, keyPairFromSecretKey, type KeyPair } from '../noise/dh-functions.js';
import { loadOrCreateSecretFile } from './secret-files.js';

/** The default identity directory. */
export function defaultIdentityDir(): string {
  const base = process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'noise-cfg');
}

/** This client's static key pair, created on first use. Throws DATA_DIR_INSECURE. */
export function loadClientKeyPair(identityDir: string): KeyPair {
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  const secret = loadOrCreateSecretFile(join(identityDir, 'identity.key'), () => generateKeyPair().secretKey.toString('hex'), /^[0-9a-f]{64}$/, 'client identity key');
  return keyPairFromSecretKey(Buffer.from(secret, 'hex'));
}

/** This client's nnpsk0 id, created on first use. */
export function loadClientId(identityDir: string): string {
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  return loadOrCreateSecretFile(join(identityDir, 'client-id'), () => randomBytes(12).toString('base64url'), /^[A-Za-z0-9_.-]{1,64}$/, 'client id');
}

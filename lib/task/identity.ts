/**
 * A client's persistent identity (SPEC.md §4.4): in xxpsk3 its static X25519 key pair, kept in
 * `identity.key` (0600); in nnpsk0 a random client id kept in `client-id`. Both live in the identity directory,
 * by default `$XDG_CONFIG_HOME/noise-cfg` or `~/.config/noise-cfg`.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { generateKeyPair, keyPairFromSecretKey, type KeyPair } from '../noise/dh-functions.js';

/** The default identity directory. */
export function defaultIdentityDir(): string {
  const base = process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'noise-cfg');
}

function createFile(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readPrivate(path: string, pattern: RegExp, what: string): string {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new NoiseCfgError('DATA_DIR_INSECURE', `${path} (${what}) is readable by group or others (mode ${mode.toString(8)}); fix it with: chmod 600 ${path}`);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!pattern.test(text)) throw new NoiseCfgError('DATA_DIR_INSECURE', `${path} (${what}) is damaged`);
  return text;
}

/** This client's static key pair, created on first use. Throws DATA_DIR_INSECURE. */
export function loadClientKeyPair(identityDir: string): KeyPair {
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  const path = join(identityDir, 'identity.key');
  if (!existsSync(path)) createFile(path, `${generateKeyPair().secretKey.toString('hex')}\n`);
  return keyPairFromSecretKey(Buffer.from(readPrivate(path, /^[0-9a-f]{64}$/, 'client identity key'), 'hex'));
}

/** This client's nnpsk0 id, created on first use. */
export function loadClientId(identityDir: string): string {
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  const path = join(identityDir, 'client-id');
  if (!existsSync(path)) createFile(path, `${randomBytes(12).toString('base64url')}\n`);
  return readPrivate(path, /^[A-Za-z0-9_.-]{1,64}$/, 'client id');
}

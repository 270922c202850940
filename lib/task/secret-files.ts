/**
 * Secret files (SPEC.md §4.1, §4.7): created 0600 with O_EXCL (never replacing one that exists) and fsynced;
 * read only when neither group nor others can read them, with the fix in the error.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { NoiseCfgError } from '../errors.js';

/** Creates `path` with `text`, mode 0600. Throws if the file exists. */
export function createSecretFile(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a secret file, trimmed, checking its mode and its form. Throws DATA_DIR_INSECURE naming `what`: readable by
 * others (with the chmod fix), or damaged.
 */
export function readSecretFile(path: string, pattern: RegExp, what: string): string {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new NoiseCfgError('DATA_DIR_INSECURE', `${path} (${what}) is readable by group or others (mode ${mode.toString(8)}); fix it with: chmod 600 ${path}`);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!pattern.test(text)) throw new NoiseCfgError('DATA_DIR_INSECURE', `${path} (${what}) is damaged: expected ${pattern.source}`);
  return text;
}

/** Reads a secret file, creating it first with `create()` when it is missing and `canCreate` holds. */
export function loadOrCreateSecretFile(path: string, create: () => string, pattern: RegExp, what: string, canCreate = true): string {
  if (!existsSync(path)) {
    if (!canCreate) throw new NoiseCfgError('DATA_DIR_INSECURE', `${path} (${what}) is missing`);
    createSecretFile(path, `${create()}\n`);
  }
  return readSecretFile(path, pattern, what);
}

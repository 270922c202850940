/**
 * What SQLite and the file system report about the task database, sorted into STORE_UNAVAILABLE (cannot be used
 * now, with the fix) and STORE_CORRUPT (damaged, or not what this build expects), SPEC.md §4.1.
 */
import { NoiseCfgError } from '../errors.js';

// SQLite result codes (extended ones start with the primary's name) that say the database cannot be used now, with
// the fix; nothing in them says the file is damaged, so they are STORE_UNAVAILABLE, never STORE_CORRUPT.
const UNAVAILABLE_FIXES: readonly [RegExp, string][] = [
  [/^SQLITE_READONLY/, 'it is read-only (its mode or owner, or a read-only file system): run noise-cfg as the owner of the data directory, make the files writable (chmod 600), or choose another --data'],
  [/^SQLITE_(BUSY|LOCKED)/, 'another process holds it locked; retry, or stop the process that holds it'],
  [/^SQLITE_CANTOPEN/, 'it cannot be opened (missing directory, no permission, or a directory in its place): run noise-cfg as the owner of the data directory, or choose another --data'],
  [/^SQLITE_FULL/, 'the disk is full; free some space, or move the data directory'],
  [/^SQLITE_(PERM|AUTH)/, 'permission denied; run noise-cfg as the owner of the data directory'],
  [/^SQLITE_IOERR/, 'an I/O error (disk failing, full or read-only, or the file removed underneath); check the disk and the data directory'],
  [/^SQLITE_NOMEM/, 'out of memory'],
];

/**
 * A failure of the database at `path` as a NoiseCfgError: STORE_UNAVAILABLE, naming the path and the fix, when it
 * cannot be used now (read-only, busy, locked, cannot open, full, permission, I/O, or a file-system error);
 * STORE_CORRUPT when it is damaged (CORRUPT, NOTADB) or its schema or data are not what this build expects. A
 * NoiseCfgError passes through.
 */
export function storeFailure(error: unknown, path: string): NoiseCfgError {
  if (error instanceof NoiseCfgError) return error;
  const code = (error as { code?: string }).code ?? '';
  if (/^SQLITE_(CORRUPT|NOTADB)/.test(code)) {
    return new NoiseCfgError('STORE_CORRUPT', `the database ${path} is damaged (${code}); restore it from a backup or move it away (it is never reset automatically)`, { cause: error });
  }
  const fix = UNAVAILABLE_FIXES.find(([pattern]) => pattern.test(code))?.[1];
  const what = (error as Error).message;
  // A statement that fails on the schema or the data (a migration in the way of a table, a constraint) means the
  // database is not what this build expects: as before, STORE_CORRUPT.
  if (fix === undefined && /^SQLITE_/.test(code)) {
    return new NoiseCfgError('STORE_CORRUPT', `the database ${path} cannot be used: ${what}`, { cause: error });
  }
  return new NoiseCfgError('STORE_UNAVAILABLE', `the database ${path} cannot be used (${code || what}): ${fix ?? `${what}; check the data directory, or choose another --data`}`, { cause: error });
}


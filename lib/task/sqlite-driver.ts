/**
 * better-sqlite3, loaded when a store is first opened rather than when the library is imported. It is a native
 * module built at install time and only the server side needs it: a client machine installs noise-cfg without a
 * compiler (it is an optional dependency), and `pull` or `--version` never pay for loading it.
 */
import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import { NoiseCfgError } from '../errors.js';

let driver: typeof Database | null = null;

/** The better-sqlite3 constructor. Throws STORE_UNAVAILABLE, with the fix, when it is not installed here. */
export function loadSqliteDriver(): typeof Database {
  if (driver !== null) return driver;
  try {
    driver = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
  } catch (error) {
    throw new NoiseCfgError('STORE_UNAVAILABLE', `the task database needs the optional package better-sqlite3, which is not installed or not built here (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): a client needs none, a server does; install it where noise-cfg is installed (npm install better-sqlite3; it builds with python3, make and a C++ compiler when no prebuilt binary fits)`, { cause: error });
  }
  return driver;
}

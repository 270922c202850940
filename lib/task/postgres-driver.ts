/**
 * The `pg` client, loaded when a PostgreSQL store is first opened rather than when the library is imported: only a
 * server that runs with `--store postgres://…` needs it, so it is an optional dependency like better-sqlite3.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';
import { NoiseCfgError } from '../errors.js';

let driver: typeof pg | null = null;

/** The pg module. Throws STORE_UNAVAILABLE, with the fix, when it is not installed here. */
export function loadPostgresDriver(): typeof pg {
  if (driver !== null) return driver;
  try {
    driver = createRequire(import.meta.url)('pg') as typeof pg;
  } catch (error) {
    throw new NoiseCfgError('STORE_UNAVAILABLE', `a PostgreSQL store needs the optional package pg, which is not installed here (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); install it where noise-cfg is installed (npm install pg)`, { cause: error });
  }
  return driver;
}

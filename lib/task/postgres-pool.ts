/**
 * A connection pool to a PostgreSQL store (SPEC.md §4.9), migrated before it is handed out, with the database's
 * failures turned into the store's error codes. A password is never part of a message.
 */
import type pg from 'pg';
import { NoiseCfgError } from '../errors.js';
import { loadPostgresDriver } from './postgres-driver.js';
import { migratePostgres, type MigrationOutcome } from './postgres-schema.js';
import { describeStoreLocation, readStorePassword, type PostgresLocation } from './store-location.js';

/** Connections per server process: enough for the group commit, the API and a few pulls reading content at once. */
export const DEFAULT_POSTGRES_POOL_SIZE = 8;
/** PostgreSQL's type id of bigint (int8). */
const BIGINT_OID = 20;
/** How long connecting may take before STORE_UNAVAILABLE, in milliseconds. */
export const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;

// SQLSTATE classes and codes (PostgreSQL appendix A) that mean "cannot use the database now or as configured".
const UNAVAILABLE_STATES: Readonly<Record<string, string>> = {
  '28P01': 'password authentication failed',
  '28000': 'the server refused this user or host',
  '3D000': 'the database does not exist',
  '57P03': 'the server is starting up or shutting down',
  '53300': 'the server has too many connections',
};

/** The store error for a failure of the PostgreSQL client at `location`. */
export function postgresFailure(error: unknown, location: PostgresLocation): NoiseCfgError {
  if (error instanceof NoiseCfgError) return error;
  const where = describeStoreLocation(location);
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code in UNAVAILABLE_STATES) {
    return new NoiseCfgError('STORE_UNAVAILABLE', `the store ${where}: ${UNAVAILABLE_STATES[code]} (SQLSTATE ${code})`, { cause: error });
  }
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return new NoiseCfgError('STORE_UNAVAILABLE', `the store ${where} cannot be reached (${code}); is PostgreSQL running there, and is --store right?`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new NoiseCfgError('STORE_UNAVAILABLE', `the store ${where}: ${message}`, { cause: error });
}

/** An open, migrated pool and what the migration did. */
export interface PostgresStoreConnection {
  pool: pg.Pool;
  migration: MigrationOutcome;
}

/**
 * Opens a pool to `location`, checks that it connects and migrates the schema. Throws STORE_UNAVAILABLE (cannot
 * connect or authenticate, named without the password) or STORE_CORRUPT (a newer or foreign schema).
 */
export async function openPostgresStore(location: PostgresLocation, options: { poolSize?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PostgresStoreConnection> {
  const { Pool, types } = loadPostgresDriver();
  const password = readStorePassword(location, options.env);
  const pool = new Pool({
    host: location.host,
    port: location.port,
    user: location.user,
    database: location.database,
    ...(password === null ? {} : { password }),
    max: options.poolSize ?? DEFAULT_POSTGRES_POOL_SIZE,
    connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
    // bigint (times in milliseconds, sizes, counts, event ids) as numbers: every value the store keeps is below
    // 2^53, and the records are numbers on SQLite too.
    types: { getTypeParser: (oid: number, format?: string) => (oid === BIGINT_OID ? (text: string) => Number(text) : types.getTypeParser(oid, format as 'text')) },
    application_name: 'noise-cfg',
  });
  // An idle connection that the server drops (a restart) is an error event on the pool; it is replaced on the next
  // query, and the query that then fails reports it.
  pool.on('error', () => undefined);
  let client: pg.PoolClient | undefined;
  try {
    client = await pool.connect();
    const migration = await migratePostgres(client);
    return { pool, migration };
  } catch (error) {
    client?.release();
    client = undefined;
    await pool.end().catch(() => undefined);
    throw postgresFailure(error, location);
  } finally {
    client?.release();
  }
}

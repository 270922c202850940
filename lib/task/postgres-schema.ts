/**
 * The task database's schema on PostgreSQL (SPEC.md §4.9), created and migrated by noise-cfg itself: one table
 * holds the version, each migration is one step, and every server that starts on the database runs the steps it
 * is missing under a transaction-scoped advisory lock, so nodes that start together migrate once, in order, and
 * a node never sees half a migration. A database newer than this build is refused, never downgraded.
 *
 * Version 1 is the SQLite schema at its version 4 (lib/task/store-schema.ts) in PostgreSQL's types: times in
 * milliseconds as bigint, content as bytea in slices of CONTENT_SLICE_BYTES, has_slot as boolean.
 */
import type pg from 'pg';
import { NoiseCfgError } from '../errors.js';

/** Key of the advisory lock that serialises migrations (any constant; this one spells "ncfg" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x6e636667;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     mode TEXT NOT NULL CHECK (mode IN ('xxpsk3', 'nnpsk0')),
     created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL,
     max_clients INTEGER CHECK (max_clients > 0),
     state TEXT NOT NULL CHECK (state IN ('active', 'cancelled', 'completed')),
     ended_at BIGINT,
     digest TEXT NOT NULL,
     total_bytes BIGINT NOT NULL CHECK (total_bytes >= 0),
     file_count INTEGER NOT NULL CHECK (file_count >= 0)
   );
   CREATE TABLE task_files (
     task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
     position INTEGER NOT NULL,
     path TEXT NOT NULL,
     mode INTEGER NOT NULL,
     size BIGINT NOT NULL CHECK (size >= 0),
     digest TEXT NOT NULL,
     PRIMARY KEY (task_id, position)
   );
   CREATE TABLE file_slices (
     task_id TEXT NOT NULL,
     position INTEGER NOT NULL,
     slice INTEGER NOT NULL,
     content BYTEA NOT NULL,
     PRIMARY KEY (task_id, position, slice),
     FOREIGN KEY (task_id, position) REFERENCES task_files (task_id, position) ON DELETE CASCADE
   );
   CREATE TABLE clients (
     task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
     identity TEXT NOT NULL,
     name TEXT NOT NULL,
     remote_address TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted')),
     first_seen_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     exit_code INTEGER,
     message TEXT,
     applied_digest TEXT,
     has_slot BOOLEAN NOT NULL DEFAULT FALSE,
     PRIMARY KEY (task_id, identity)
   );
   CREATE TABLE events (
     id BIGSERIAL PRIMARY KEY,
     task_id TEXT NOT NULL,
     identity TEXT,
     name TEXT,
     state TEXT NOT NULL,
     at BIGINT NOT NULL,
     detail TEXT
   );
   CREATE INDEX events_by_task ON events (task_id, id);
   CREATE TABLE transfers (
     task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
     identity TEXT NOT NULL,
     bytes_sent BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     PRIMARY KEY (task_id, identity)
   );`,
  // Version 2 is the SQLite schema's version 5: slot counting and completion in the database, and the server
  // process that recorded each offer (lib/task/store-schema.ts says why).
  `ALTER TABLE tasks ADD COLUMN slots_taken INTEGER NOT NULL DEFAULT 0 CHECK (slots_taken >= 0);
   UPDATE tasks SET slots_taken = (SELECT count(*) FROM clients c WHERE c.task_id = tasks.id AND (c.has_slot OR c.state = 'applied'));
   ALTER TABLE clients ADD COLUMN served_by TEXT;
   CREATE INDEX clients_by_state ON clients (task_id, state, applied_digest);`,
  // Version 3: every server process of every node says it is alive here, so that another node can tell one that
  // died and was not restarted, and interrupt its sessions (SPEC.md §4.9). PostgreSQL only: on SQLite every
  // process is on one machine, under one data directory lock, and its primary or the next start does that.
  `CREATE TABLE server_processes (
     served_by TEXT PRIMARY KEY,
     last_seen_at BIGINT NOT NULL
   );`,
];

/** The schema version this build writes. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/** What a migration run found and did. */
export interface MigrationOutcome {
  /** The version the database had (0: new). */
  from: number;
  /** The version it has now: POSTGRES_SCHEMA_VERSION. */
  to: number;
}

/**
 * Brings the database to POSTGRES_SCHEMA_VERSION in one transaction. Throws STORE_CORRUPT for a database of a
 * newer version (upgrade noise-cfg) or a version table that is not ours; database errors propagate as they are.
 */
export async function migratePostgres(client: pg.ClientBase): Promise<MigrationOutcome> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query('CREATE TABLE IF NOT EXISTS noise_cfg_schema (version INTEGER NOT NULL)');
    const rows = (await client.query<{ version: number }>('SELECT version FROM noise_cfg_schema')).rows;
    if (rows.length > 1) throw new NoiseCfgError('STORE_CORRUPT', `the table noise_cfg_schema has ${rows.length} rows, not one: this database was changed by hand; restore it from a backup`);
    const from = rows[0]?.version ?? 0;
    if (from > POSTGRES_SCHEMA_VERSION) {
      throw new NoiseCfgError('STORE_CORRUPT', `the database has schema version ${from}, newer than this build's ${POSTGRES_SCHEMA_VERSION}; upgrade noise-cfg on this node`);
    }
    for (let next = from; next < POSTGRES_SCHEMA_VERSION; next++) await client.query(MIGRATIONS[next]!);
    if (rows.length === 0) await client.query('INSERT INTO noise_cfg_schema (version) VALUES ($1)', [POSTGRES_SCHEMA_VERSION]);
    else if (from !== POSTGRES_SCHEMA_VERSION) await client.query('UPDATE noise_cfg_schema SET version = $1', [POSTGRES_SCHEMA_VERSION]);
    await client.query('COMMIT');
    return { from, to: POSTGRES_SCHEMA_VERSION };
  } catch (error) {
    // The migration's own error is the one to report; a ROLLBACK that fails too (the connection is gone) adds nothing.
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

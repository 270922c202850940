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

/**
 * Key of the advisory lock every write transaction takes first ("ncfh": the migration lock's neighbour): the
 * writes of all nodes run one at a time (postgres-store.ts says why). noise_cfg_write_batch takes it itself.
 */
export const WRITE_LOCK_KEY = 0x6e636668;

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
  // Version 4: a pull's writes as functions, and noise_cfg_write_batch, which runs a whole group-commit batch of
  // them in one statement, taking the write lock itself: sent outside BEGIN, that statement is its own
  // transaction, so a batch costs a node one round trip however many writes it holds, where each write took two
  // to four (and BEGIN, the lock and COMMIT one more each). A round trip is where a node's CPU went on
  // PostgreSQL (Node's socket machinery and the client library, per query: a profile gave 814 µs of a pull's
  // 1,825 to sockets, against 208 on SQLite). Each function keeps the SQLite store's rule for the same write
  // (store.ts: upsertClient, claimSlot, saveResult, markInterrupted, saveTransferProgress); the conformance suite
  // holds both stores to it. Parameter names begin with p_ so that none is read as a column of the same name.
  `CREATE FUNCTION noise_cfg_upsert_client(p_task_id TEXT, p_identity TEXT, p_name TEXT, p_remote_address TEXT, p_state TEXT,
     p_first_seen_at BIGINT, p_updated_at BIGINT, p_exit_code INTEGER, p_message TEXT, p_applied_digest TEXT, p_has_slot BOOLEAN,
     p_served_by TEXT, p_detail TEXT) RETURNS void LANGUAGE plpgsql AS $$
   BEGIN
     INSERT INTO clients (task_id, identity, name, remote_address, state, first_seen_at, updated_at, exit_code, message, applied_digest, has_slot, served_by)
       VALUES (p_task_id, p_identity, p_name, p_remote_address, p_state, p_first_seen_at, p_updated_at, p_exit_code, p_message, p_applied_digest, p_has_slot, p_served_by)
       ON CONFLICT (task_id, identity) DO UPDATE SET name = excluded.name, remote_address = excluded.remote_address,
         state = CASE WHEN clients.state = 'revoked' THEN 'revoked' ELSE excluded.state END,
         updated_at = excluded.updated_at, exit_code = excluded.exit_code, message = excluded.message,
         applied_digest = excluded.applied_digest, has_slot = clients.has_slot OR excluded.has_slot, served_by = excluded.served_by;
     INSERT INTO events (task_id, identity, name, state, at, detail) VALUES (p_task_id, p_identity, p_name, p_state, p_updated_at, p_detail);
   END $$;
   CREATE FUNCTION noise_cfg_claim_slot(p_task_id TEXT, p_identity TEXT, p_name TEXT, p_remote_address TEXT, p_state TEXT,
     p_first_seen_at BIGINT, p_updated_at BIGINT, p_exit_code INTEGER, p_message TEXT, p_applied_digest TEXT,
     p_served_by TEXT, p_slot_limit INTEGER) RETURNS boolean LANGUAGE plpgsql AS $$
   DECLARE
     holds BOOLEAN;
   BEGIN
     SELECT has_slot INTO holds FROM clients WHERE task_id = p_task_id AND identity = p_identity;
     IF holds IS NOT TRUE THEN
       UPDATE tasks SET slots_taken = slots_taken + 1 WHERE id = p_task_id AND slots_taken < p_slot_limit;
       IF NOT FOUND THEN
         RETURN FALSE;
       END IF;
     END IF;
     PERFORM noise_cfg_upsert_client(p_task_id, p_identity, p_name, p_remote_address, p_state, p_first_seen_at, p_updated_at,
       p_exit_code, p_message, p_applied_digest, TRUE, p_served_by, NULL);
     RETURN TRUE;
   END $$;
   CREATE FUNCTION noise_cfg_save_result(p_task_id TEXT, p_identity TEXT, p_name TEXT, p_remote_address TEXT, p_state TEXT,
     p_first_seen_at BIGINT, p_updated_at BIGINT, p_exit_code INTEGER, p_message TEXT, p_applied_digest TEXT, p_has_slot BOOLEAN,
     p_served_by TEXT, p_detail TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
   DECLARE
     task_state TEXT;
     client_state TEXT;
   BEGIN
     SELECT state INTO task_state FROM tasks WHERE id = p_task_id;
     IF NOT FOUND OR task_state = 'cancelled' THEN
       RETURN 'cancelled';
     END IF;
     SELECT state INTO client_state FROM clients WHERE task_id = p_task_id AND identity = p_identity;
     IF client_state = 'revoked' THEN
       RETURN 'revoked';
     END IF;
     PERFORM noise_cfg_upsert_client(p_task_id, p_identity, p_name, p_remote_address, p_state, p_first_seen_at, p_updated_at,
       p_exit_code, p_message, p_applied_digest, p_has_slot, p_served_by, p_detail);
     IF p_state <> 'applied' THEN
       RETURN 'recorded';
     END IF;
     UPDATE tasks SET state = 'completed', ended_at = p_updated_at WHERE id = p_task_id AND state = 'active' AND max_clients IS NOT NULL
       AND max_clients <= (SELECT count(*) FROM clients c WHERE c.task_id = tasks.id AND c.state = 'applied' AND c.applied_digest = tasks.digest);
     IF NOT FOUND THEN
       RETURN 'recorded';
     END IF;
     INSERT INTO events (task_id, identity, name, state, at, detail) VALUES (p_task_id, NULL, NULL, 'completed', p_updated_at, NULL);
     RETURN 'completed';
   END $$;
   CREATE FUNCTION noise_cfg_mark_interrupted(p_task_id TEXT, p_identity TEXT, p_at BIGINT, p_detail TEXT) RETURNS void LANGUAGE plpgsql AS $$
   DECLARE
     client_name TEXT;
   BEGIN
     UPDATE clients SET state = 'interrupted', updated_at = p_at WHERE task_id = p_task_id AND identity = p_identity AND state = 'offered'
       RETURNING name INTO client_name;
     IF FOUND THEN
       INSERT INTO events (task_id, identity, name, state, at, detail) VALUES (p_task_id, p_identity, client_name, 'interrupted', p_at, p_detail);
     END IF;
   END $$;
   CREATE FUNCTION noise_cfg_write_batch(p_writes JSONB) RETURNS JSONB LANGUAGE plpgsql AS $$
   DECLARE
     w JSONB;
     results JSONB := '[]';
     result JSONB;
   BEGIN
     PERFORM pg_advisory_xact_lock(${WRITE_LOCK_KEY});
     FOR w IN SELECT value FROM jsonb_array_elements(p_writes) WITH ORDINALITY ORDER BY ordinality LOOP
       result := 'null';
       CASE w->>'write'
         WHEN 'client' THEN
           PERFORM noise_cfg_upsert_client(w->>'taskId', w->>'identity', w->>'name', w->>'remoteAddress', w->>'state',
             (w->>'firstSeenAt')::bigint, (w->>'updatedAt')::bigint, (w->>'exitCode')::integer, w->>'message', w->>'appliedDigest',
             (w->>'hasSlot')::boolean, w->>'servedBy', w->>'detail');
         WHEN 'claim' THEN
           result := to_jsonb(noise_cfg_claim_slot(w->>'taskId', w->>'identity', w->>'name', w->>'remoteAddress', w->>'state',
             (w->>'firstSeenAt')::bigint, (w->>'updatedAt')::bigint, (w->>'exitCode')::integer, w->>'message', w->>'appliedDigest',
             w->>'servedBy', (w->>'slotLimit')::integer));
         WHEN 'result' THEN
           result := to_jsonb(noise_cfg_save_result(w->>'taskId', w->>'identity', w->>'name', w->>'remoteAddress', w->>'state',
             (w->>'firstSeenAt')::bigint, (w->>'updatedAt')::bigint, (w->>'exitCode')::integer, w->>'message', w->>'appliedDigest',
             (w->>'hasSlot')::boolean, w->>'servedBy', w->>'detail'));
         WHEN 'interrupted' THEN
           PERFORM noise_cfg_mark_interrupted(w->>'taskId', w->>'identity', (w->>'at')::bigint, w->>'detail');
         WHEN 'progress' THEN
           INSERT INTO transfers (task_id, identity, bytes_sent, updated_at) VALUES (w->>'taskId', w->>'identity', (w->>'bytesSent')::bigint, (w->>'at')::bigint)
             ON CONFLICT (task_id, identity) DO UPDATE SET bytes_sent = excluded.bytes_sent, updated_at = excluded.updated_at;
         ELSE
           RAISE EXCEPTION 'noise_cfg_write_batch: unknown write %', w->>'write';
       END CASE;
       results := results || jsonb_build_array(result);
     END LOOP;
     RETURN results;
   END $$;`,
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

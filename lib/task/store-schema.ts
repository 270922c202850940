/**
 * The task database's schema and how a file becomes a usable database (SPEC.md §4.1): the migrations, one per
 * version (PRAGMA user_version), the pragmas (WAL, synchronous=FULL), the private file modes, and the checks
 * that refuse a damaged or newer database instead of resetting it.
 */
import { chmodSync, existsSync, lstatSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { NoiseCfgError } from '../errors.js';
import { loadSqliteDriver } from './sqlite-driver.js';
import { storeFailure } from './store-errors.js';

/**
 * Bytes of file content per stored slice (the last slice of a file is shorter; an empty file has none). SQLite
 * reads a value whole, so this bounds what one read of content costs a pull.
 */
export const CONTENT_SLICE_BYTES = 1024 * 1024;

/** One step of the schema: SQL, or a function for a step that moves data. Each runs in its own transaction. */
type Migration = string | ((db: Database.Database) => void);

// Version 2: contents move from task_files.content into file_slices, one file read at a time.
function migrateToSlices(db: Database.Database): void {
  db.exec(`CREATE TABLE file_slices (
     task_id TEXT NOT NULL,
     position INTEGER NOT NULL,
     slice INTEGER NOT NULL,
     content BLOB NOT NULL,
     PRIMARY KEY (task_id, position, slice),
     FOREIGN KEY (task_id, position) REFERENCES task_files (task_id, position) ON DELETE CASCADE
   )`);
  const files = db.prepare('SELECT task_id, position FROM task_files ORDER BY task_id, position').all() as { task_id: string; position: number }[];
  const read = db.prepare('SELECT content FROM task_files WHERE task_id = ? AND position = ?');
  const insert = db.prepare('INSERT INTO file_slices (task_id, position, slice, content) VALUES (?, ?, ?, ?)');
  for (const file of files) {
    const { content } = read.get(file.task_id, file.position) as { content: Buffer };
    for (let slice = 0; slice * CONTENT_SLICE_BYTES < content.byteLength; slice++) {
      insert.run(file.task_id, file.position, slice, content.subarray(slice * CONTENT_SLICE_BYTES, (slice + 1) * CONTENT_SLICE_BYTES));
    }
  }
  db.exec('ALTER TABLE task_files DROP COLUMN content');
}

// Version 3: clients may be `interrupted`. SQLite cannot change a CHECK constraint in place, so the table is
// rebuilt with every row (nothing refers to it).
const ALLOW_INTERRUPTED = `CREATE TABLE clients_v3 (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
     identity TEXT NOT NULL,
     name TEXT NOT NULL,
     remote_address TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted')),
     first_seen_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     exit_code INTEGER,
     message TEXT,
     applied_digest TEXT,
     has_slot INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (task_id, identity)
   );
   INSERT INTO clients_v3 (task_id, identity, name, remote_address, state, first_seen_at, updated_at, exit_code, message, applied_digest, has_slot)
     SELECT task_id, identity, name, remote_address, state, first_seen_at, updated_at, exit_code, message, applied_digest, has_slot FROM clients;
   DROP TABLE clients;
   ALTER TABLE clients_v3 RENAME TO clients;`;

// Version 4: how far each transfer in progress has got, for `task watch`. Written about once a second per transfer
// that lasts longer than that, apart from the clients table so that progress writes no event and no client row.
const ADD_TRANSFERS = `CREATE TABLE transfers (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
     identity TEXT NOT NULL,
     bytes_sent INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (task_id, identity)
   );`;

// Version 5: what several processes on one database need (serve --workers, SPEC.md §4.10). `slots_taken` counts a
// task's slot holders, so that a slot is taken by one conditional UPDATE inside the write transaction, which every
// process takes in turn; the old rows are counted once here. `served_by` names the server process that recorded a
// client `offered`, so that when that process dies its own sessions, and no other's, become `interrupted`. The
// index answers "how many applied this digest?" for completion without reading the client rows.
const ADD_SHARED_ACCOUNTING = `ALTER TABLE tasks ADD COLUMN slots_taken INTEGER NOT NULL DEFAULT 0;
   UPDATE tasks SET slots_taken = (SELECT count(*) FROM clients c WHERE c.task_id = tasks.id AND (c.has_slot = 1 OR c.state = 'applied'));
   ALTER TABLE clients ADD COLUMN served_by TEXT;
   CREATE INDEX clients_by_state ON clients (task_id, state, applied_digest);`;

const MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     mode TEXT NOT NULL CHECK (mode IN ('xxpsk3', 'nnpsk0')),
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     max_clients INTEGER,
     state TEXT NOT NULL CHECK (state IN ('active', 'cancelled', 'completed')),
     ended_at INTEGER,
     digest TEXT NOT NULL,
     total_bytes INTEGER NOT NULL,
     file_count INTEGER NOT NULL
   );
   CREATE TABLE task_files (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
     position INTEGER NOT NULL,
     path TEXT NOT NULL,
     mode INTEGER NOT NULL,
     size INTEGER NOT NULL,
     digest TEXT NOT NULL,
     content BLOB NOT NULL,
     PRIMARY KEY (task_id, position)
   );
   CREATE TABLE clients (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
     identity TEXT NOT NULL,
     name TEXT NOT NULL,
     remote_address TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('connected', 'offered', 'applied', 'failed', 'revoked')),
     first_seen_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     exit_code INTEGER,
     message TEXT,
     applied_digest TEXT,
     has_slot INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (task_id, identity)
   );
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     task_id TEXT NOT NULL,
     identity TEXT,
     name TEXT,
     state TEXT NOT NULL,
     at INTEGER NOT NULL,
     detail TEXT
   );
   CREATE INDEX events_by_task ON events (task_id, id);`,
  migrateToSlices,
  ALLOW_INTERRUPTED,
  ADD_TRANSFERS,
  ADD_SHARED_ACCOUNTING,
];

/** How long a statement waits for another process's lock on the database before STORE_UNAVAILABLE, in milliseconds. */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const DATABASE_FILE_SUFFIXES = ['', '-wal', '-shm'];

// The database holds every task's files: only its owner may read it. SQLite creates a new database with mode 0644
// less the umask, and gives the -wal and -shm files the database file's mode; so the umask is narrowed for the
// synchronous open (nothing else runs meanwhile), and files of ours that others can read are narrowed to 0600.
function openPrivate(path: string): Database.Database {
  const uid = process.geteuid?.();
  for (const suffix of DATABASE_FILE_SUFFIXES) {
    let stats;
    try {
      stats = lstatSync(`${path}${suffix}`);
    } catch {
      continue;
    }
    if (stats.isFile() && (stats.mode & 0o077) !== 0 && (uid === undefined || stats.uid === uid)) chmodSync(`${path}${suffix}`, 0o600);
  }
  const previousUmask = process.umask(0o077);
  try {
    return new (loadSqliteDriver())(path);
  } finally {
    process.umask(previousUmask);
  }
}


/**
 * Opens the database at `path`, creating and migrating it as needed (see TaskStore.open for what it throws).
 */
export function openTaskDatabase(path: string, options: { check?: boolean; busyTimeoutMs?: number }): Database.Database {
  // An existing empty file is a database that lost its contents, not a new one: never set it up afresh.
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new NoiseCfgError('STORE_UNAVAILABLE', `the database ${path} is a directory; move it away (a database file belongs there), or choose another --data`);
  }
  if (existsSync(path) && statSync(path).size === 0) {
    throw new NoiseCfgError('STORE_CORRUPT', `the database ${path} is an empty file (truncated?); restore it from a backup or move it away (it is never reset automatically)`);
  }
  let db: Database.Database | undefined;
  try {
    db = openPrivate(path);
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`);
    // Checks come before anything that writes (the journal mode changes the file header).
    if (options.check) {
      const result = db.pragma('quick_check', { simple: true });
      if (result !== 'ok') throw Object.assign(new Error(`quick_check: ${String(result)}`), { code: 'SQLITE_CORRUPT' });
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new NoiseCfgError('STORE_CORRUPT', `the database ${path} has schema version ${version}, newer than this build's ${SCHEMA_VERSION}; upgrade noise-cfg`);
    }
    // A new database frees the pages of deleted tasks with incremental_vacuum (reclaimSpace); the mode can only
    // be chosen before the first table exists (an older database is converted by reclaimSpace when cheap).
    if (version === 0 && (db.pragma('page_count', { simple: true }) as number) <= 1) db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    for (let next = version; next < SCHEMA_VERSION; next++) {
      const migration = MIGRATIONS[next]!;
      db.transaction(() => {
        if (typeof migration === 'string') db!.exec(migration);
        else migration(db!);
        db!.pragma(`user_version = ${next + 1}`);
      }).immediate();
    }
    return db;
  } catch (error) {
    db?.close();
    if (error instanceof NoiseCfgError) throw error;
    throw storeFailure(error, path);
  }
}

/**
 * The embedded task database (SPEC.md §4.1): SQLite through better-sqlite3, WAL journal with synchronous=FULL,
 * so a committed transaction survives SIGKILL and power loss. Server writes go through a group-commit queue:
 * all writes queued while the event loop is busy share one transaction and one fsync. The schema is versioned
 * (PRAGMA user_version) and migrated forward; a damaged or newer database is an error, never reset. File
 * contents are stored in slices, so that a pull reads a bounded amount at a time. The files are 0600.
 */
import { chmodSync, existsSync, lstatSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { NoiseCfgError } from '../errors.js';
import { loadSqliteDriver } from './sqlite-driver.js';
import type { FileEntry } from './digests.js';
import type { TaskMode } from './task-mode.js';

/** Task states as stored; `expired` is derived from the clock (task.ts). */
export type StoredTaskState = 'active' | 'cancelled' | 'completed';
/**
 * Client states. `interrupted`: the session ended (connection lost, deadline, server restart) after the offer and
 * before a RESULT; a later pull by the same identity moves it on.
 */
export type ClientState = 'connected' | 'offered' | 'applied' | 'failed' | 'revoked' | 'interrupted';

/** A task row. Times are milliseconds since the Unix epoch. */
export interface TaskRecord {
  id: string;
  name: string;
  mode: TaskMode;
  createdAt: number;
  expiresAt: number;
  maxClients: number | null;
  state: StoredTaskState;
  endedAt: number | null;
  digest: string;
  totalBytes: number;
  fileCount: number;
}

/** A client row. */
export interface ClientRecord {
  taskId: string;
  /** Hex static public key (xxpsk3) or the client's chosen id (nnpsk0). */
  identity: string;
  name: string;
  remoteAddress: string;
  state: ClientState;
  firstSeenAt: number;
  updatedAt: number;
  exitCode: number | null;
  message: string | null;
  appliedDigest: string | null;
  /** True once the client was offered the files: it counts against maxClients. */
  hasSlot: boolean;
}

/** How far one client's transfer has got. */
export interface TransferProgress {
  identity: string;
  name: string;
  /** Content bytes sent to the client so far. */
  bytesSent: number;
  /** When that was, in milliseconds since the epoch. */
  at: number;
}

/** One state change, for `task watch` and the events API. */
export interface TaskEvent {
  id: number;
  taskId: string;
  identity: string | null;
  name: string | null;
  state: string;
  at: number;
  detail: string | null;
}

/** A file of a new task, with its content. */
export interface NewTaskFile extends FileEntry {
  content: Buffer;
}

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
];

/** How long a statement waits for another process's lock on the database before STORE_UNAVAILABLE, in milliseconds. */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** The most live data reclaimSpace rewrites with a VACUUM to convert an older database, in bytes. */
export const RECLAIM_VACUUM_MAX_BYTES = 64 * 1024 * 1024;

/** How long queued writes wait for company before they are committed, in milliseconds. */
export const GROUP_COMMIT_WINDOW_MS = 10;

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

const storeError = storeFailure;

interface TaskRow {
  id: string; name: string; mode: 'xxpsk3' | 'nnpsk0'; created_at: number; expires_at: number; max_clients: number | null;
  state: StoredTaskState; ended_at: number | null; digest: string; total_bytes: number; file_count: number;
}
interface ClientRow {
  task_id: string; identity: string; name: string; remote_address: string; state: ClientState; first_seen_at: number;
  updated_at: number; exit_code: number | null; message: string | null; applied_digest: string | null; has_slot: number;
}

const toTask = (row: TaskRow): TaskRecord => ({
  id: row.id, name: row.name, mode: row.mode, createdAt: row.created_at, expiresAt: row.expires_at, maxClients: row.max_clients,
  state: row.state, endedAt: row.ended_at, digest: row.digest, totalBytes: row.total_bytes, fileCount: row.file_count,
});
const toClient = (row: ClientRow): ClientRecord => ({
  taskId: row.task_id, identity: row.identity, name: row.name, remoteAddress: row.remote_address, state: row.state,
  firstSeenAt: row.first_seen_at, updatedAt: row.updated_at, exitCode: row.exit_code, message: row.message,
  appliedDigest: row.applied_digest, hasSlot: row.has_slot === 1,
});

interface QueuedWrite {
  apply: () => void;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The task database of one data directory. Safe to open from several processes at once. */
export class TaskStore {
  readonly path: string;
  readonly #db: Database.Database;
  #queue: QueuedWrite[] = [];
  readonly #statements = new Map<string, Database.Statement>();
  #isFlushScheduled = false;
  #commits = 0;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
  }

  /**
   * Opens the database, creating and migrating it as needed. Throws STORE_CORRUPT for a damaged file or a schema
   * newer than this build; STORE_UNAVAILABLE for one that is read-only, busy (past `busyTimeoutMs`, default 10 000), cannot be opened (a directory in its
   * place, no permission) or on a full disk. `check` also runs SQLite's quick_check (the server does, at start).
   */
  static open(path: string, options: { check?: boolean; busyTimeoutMs?: number } = {}): TaskStore {
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
      return new TaskStore(path, db);
    } catch (error) {
      db?.close();
      if (error instanceof NoiseCfgError) throw error;
      throw storeError(error, path);
    }
  }

  /** Transactions committed by this handle (each is one WAL fsync). */
  get commitCount(): number {
    return this.#commits;
  }

  /** Creates a task with its files in one transaction, durable on return. */
  createTask(task: TaskRecord, files: readonly NewTaskFile[]): void {
    this.#run(() => {
      this.#db.transaction(() => {
        this.#statement(`INSERT INTO tasks (id, name, mode, created_at, expires_at, max_clients, state, ended_at, digest, total_bytes, file_count)
          VALUES (@id, @name, @mode, @createdAt, @expiresAt, @maxClients, @state, @endedAt, @digest, @totalBytes, @fileCount)`).run(task);
        const insertFile = this.#statement('INSERT INTO task_files (task_id, position, path, mode, size, digest) VALUES (?, ?, ?, ?, ?, ?)');
        const insertSlice = this.#statement('INSERT INTO file_slices (task_id, position, slice, content) VALUES (?, ?, ?, ?)');
        files.forEach((file, position) => {
          insertFile.run(task.id, position, file.path, file.mode, file.size, file.digest);
          for (let slice = 0; slice * CONTENT_SLICE_BYTES < file.content.byteLength; slice++) {
            insertSlice.run(task.id, position, slice, file.content.subarray(slice * CONTENT_SLICE_BYTES, (slice + 1) * CONTENT_SLICE_BYTES));
          }
        });
        this.#insertEvent(task.id, null, null, 'created', task.createdAt, null);
      }).immediate();
      this.#commits++;
    });
  }

  getTask(id: string): TaskRecord | null {
    return this.#run(() => {
      const row = this.#statement('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
      return row ? toTask(row) : null;
    });
  }

  listTasks(): TaskRecord[] {
    return this.#run(() => (this.#statement('SELECT * FROM tasks ORDER BY created_at DESC, id').all() as TaskRow[]).map(toTask));
  }

  /** The file list of a task, in position order, without contents. */
  getFiles(taskId: string): FileEntry[] {
    return this.#run(() => this.#statement('SELECT path, mode, size, digest FROM task_files WHERE task_id = ? ORDER BY position').all(taskId) as FileEntry[]);
  }

  /**
   * The whole content of one file (by its position in the list). Throws STORE_CORRUPT when the file or one of its
   * slices is missing. A pull reads slices instead (getFileSlice): this holds the whole file in memory.
   */
  getFileContent(taskId: string, position: number): Buffer {
    return this.#run(() => {
      const file = this.#statement('SELECT size FROM task_files WHERE task_id = ? AND position = ?').get(taskId, position) as { size: number } | undefined;
      if (!file) throw new NoiseCfgError('STORE_CORRUPT', `file ${position} of task ${taskId} is missing from ${this.path}`);
      const slices = this.#statement('SELECT content FROM file_slices WHERE task_id = ? AND position = ? ORDER BY slice').all(taskId, position) as { content: Buffer }[];
      const content = Buffer.concat(slices.map((row) => row.content));
      if (content.byteLength !== file.size) {
        throw new NoiseCfgError('STORE_CORRUPT', `file ${position} of task ${taskId} has ${content.byteLength} bytes of content in ${this.path}, its record says ${file.size}`);
      }
      return content;
    });
  }

  /**
   * Slice `slice` of one file's content: CONTENT_SLICE_BYTES, or fewer for the last. Throws STORE_CORRUPT when it
   * is missing.
   */
  getFileSlice(taskId: string, position: number, slice: number): Buffer {
    return this.#run(() => {
      const row = this.#statement('SELECT content FROM file_slices WHERE task_id = ? AND position = ? AND slice = ?').get(taskId, position, slice) as { content: Buffer } | undefined;
      if (!row) throw new NoiseCfgError('STORE_CORRUPT', `slice ${slice} of file ${position} of task ${taskId} is missing from ${this.path}`);
      return row.content;
    });
  }

  getClient(taskId: string, identity: string): ClientRecord | null {
    return this.#run(() => {
      const row = this.#statement('SELECT * FROM clients WHERE task_id = ? AND identity = ?').get(taskId, identity) as ClientRow | undefined;
      return row ? toClient(row) : null;
    });
  }

  listClients(taskId: string): ClientRecord[] {
    return this.#run(() => (this.#statement('SELECT * FROM clients WHERE task_id = ? ORDER BY first_seen_at, identity').all(taskId) as ClientRow[]).map(toClient));
  }

  /** Events of a task after `afterId`, oldest first; at most `limit` of them when given. */
  listEvents(taskId: string, afterId = 0, limit = -1): TaskEvent[] {
    // LIMIT -1 is SQLite's "no limit".
    return this.#run(() => this.#statement('SELECT id, task_id AS taskId, identity, name, state, at, detail FROM events WHERE task_id = ? AND id > ? ORDER BY id LIMIT ?').all(taskId, afterId, limit) as TaskEvent[]);
  }

  /** The id of a task's latest event, or 0 when it has none. */
  lastEventId(taskId: string): number {
    return this.#run(() => (this.#statement('SELECT max(id) AS id FROM events WHERE task_id = ?').get(taskId) as { id: number | null }).id ?? 0);
  }

  /** Marks an active task cancelled or completed, durable on return. Returns false if it was not active. */
  endTask(taskId: string, state: 'cancelled' | 'completed', at: number): boolean {
    return this.#run(() => {
      let changed = false;
      this.#db.transaction(() => {
        changed = this.#statement("UPDATE tasks SET state = ?, ended_at = ? WHERE id = ? AND state = 'active'").run(state, at, taskId).changes === 1;
        if (changed) this.#insertEvent(taskId, null, null, state, at, null);
      }).immediate();
      this.#commits++;
      return changed;
    });
  }

  /** Marks a client revoked, durable on return. Returns false when the task has no such client. */
  revokeClient(taskId: string, identity: string, at: number): boolean {
    return this.#run(() => {
      let changed = false;
      this.#db.transaction(() => {
        changed = this.#statement("UPDATE clients SET state = 'revoked', updated_at = ? WHERE task_id = ? AND identity = ?").run(at, taskId, identity).changes === 1;
        if (changed) this.#insertEvent(taskId, identity, null, 'revoked', at, null);
      }).immediate();
      this.#commits++;
      return changed;
    });
  }

  /**
   * Queues an upsert of a client's state (group commit). Resolves once the batch holding it is committed and
   * durable; the ACK of a result is sent only then.
   */
  saveClient(client: ClientRecord, detail: string | null = null): Promise<void> {
    return this.#enqueue(() => {
      // Positional parameters: binding by name walks the object's keys on every run.
      this.#statement(`INSERT INTO clients (task_id, identity, name, remote_address, state, first_seen_at, updated_at, exit_code, message, applied_digest, has_slot)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (task_id, identity) DO UPDATE SET name = excluded.name, remote_address = excluded.remote_address,
          state = CASE WHEN clients.state = 'revoked' THEN 'revoked' ELSE excluded.state END,
          updated_at = excluded.updated_at, exit_code = excluded.exit_code, message = excluded.message,
          applied_digest = excluded.applied_digest, has_slot = MAX(clients.has_slot, excluded.has_slot)`)
        .run(client.taskId, client.identity, client.name, client.remoteAddress, client.state, client.firstSeenAt, client.updatedAt,
          client.exitCode, client.message, client.appliedDigest, client.hasSlot ? 1 : 0);
      this.#insertEvent(client.taskId, client.identity, client.name, client.state, client.updatedAt, detail);
    });
  }

  /**
   * Queues marking a client `interrupted` (group commit): its session ended after the offer without a RESULT.
   * Only a client still `offered` changes: one that applied, failed or was revoked meanwhile (another session of
   * the same identity) keeps its state. `detail` says why (it goes into the event).
   */
  markInterrupted(taskId: string, identity: string, at: number, detail: string): Promise<void> {
    return this.#enqueue(() => {
      const row = this.#statement("UPDATE clients SET state = 'interrupted', updated_at = ? WHERE task_id = ? AND identity = ? AND state = 'offered' RETURNING name").get(at, taskId, identity) as { name: string } | undefined;
      if (row) this.#insertEvent(taskId, identity, row.name, 'interrupted', at, detail);
    });
  }

  /**
   * Marks every client left `connected` or `offered` interrupted, durable on return: a server starting on this
   * store lost those sessions (the previous process ended while they ran). Returns how many.
   */
  interruptLostSessions(at: number, detail: string): number {
    return this.#run(() => {
      let count = 0;
      this.#db.transaction(() => {
        const rows = this.#statement("UPDATE clients SET state = 'interrupted', updated_at = ? WHERE state IN ('connected', 'offered') RETURNING task_id, identity, name").all(at) as { task_id: string; identity: string; name: string }[];
        for (const row of rows) this.#insertEvent(row.task_id, row.identity, row.name, 'interrupted', at, detail);
        count = rows.length;
      }).immediate();
      this.#commits++;
      return count;
    });
  }

  /** Queues marking a task completed (group commit). */
  completeTask(taskId: string, at: number): Promise<void> {
    return this.#enqueue(() => {
      if (this.#statement("UPDATE tasks SET state = 'completed', ended_at = ? WHERE id = ? AND state = 'active'").run(at, taskId).changes === 1) {
        this.#insertEvent(taskId, null, null, 'completed', at, null);
      }
    });
  }

  /** Queues how many content bytes a client's transfer has been sent so far (group commit; no event). */
  saveTransferProgress(taskId: string, identity: string, bytesSent: number, at: number): Promise<void> {
    return this.#enqueue(() => {
      this.#statement(`INSERT INTO transfers (task_id, identity, bytes_sent, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (task_id, identity) DO UPDATE SET bytes_sent = excluded.bytes_sent, updated_at = excluded.updated_at`)
        .run(taskId, identity, bytesSent, at);
    });
  }

  /**
   * The transfers of a task in progress now: clients still `offered` whose progress was saved during this offer
   * (a row older than the offer belongs to an earlier attempt), by identity.
   */
  listTransfers(taskId: string): TransferProgress[] {
    return this.#run(() => this.#statement(`SELECT p.identity, c.name, p.bytes_sent AS bytesSent, p.updated_at AS at
      FROM transfers p JOIN clients c ON c.task_id = p.task_id AND c.identity = p.identity
      WHERE p.task_id = ? AND c.state = 'offered' AND p.updated_at >= c.updated_at ORDER BY p.identity`).all(taskId) as TransferProgress[]);
  }

  /**
   * Removes a task with its files, contents, clients and events in one transaction, durable on return. Returns
   * the task's content bytes, or null when there is no such task. Call reclaimSpace() after a batch of deletions.
   */
  deleteTask(taskId: string): number | null {
    return this.#run(() => {
      let freedBytes: number | null = null;
      this.#db.transaction(() => {
        const row = this.#statement('SELECT total_bytes FROM tasks WHERE id = ?').get(taskId) as { total_bytes: number } | undefined;
        if (!row) return;
        freedBytes = row.total_bytes;
        for (const table of ['file_slices', 'task_files', 'transfers', 'clients', 'events']) this.#statement(`DELETE FROM ${table} WHERE task_id = ?`).run(taskId);
        this.#statement('DELETE FROM tasks WHERE id = ?').run(taskId);
      }).immediate();
      this.#commits++;
      return freedBytes;
    });
  }

  /**
   * Tasks that ended before `cutoffMs`: cancelled or completed then, or expired then (an active task whose expiry
   * is before the cutoff, which is in the past), oldest first.
   */
  listEndedBefore(cutoffMs: number): TaskRecord[] {
    return this.#run(() => (this.#statement(`SELECT * FROM tasks
      WHERE (state != 'active' AND COALESCE(ended_at, expires_at) < @cutoff) OR (state = 'active' AND expires_at < @cutoff)
      ORDER BY COALESCE(ended_at, expires_at), id`).all({ cutoff: cutoffMs }) as TaskRow[]).map(toTask));
  }

  /** Bytes the database file and its WAL take on disk now. */
  fileBytes(): number {
    let bytes = 0;
    for (const suffix of ['', '-wal']) {
      try {
        bytes += statSync(`${this.path}${suffix}`).size;
      } catch {
        // No WAL file: nothing to add.
      }
    }
    return bytes;
  }

  /**
   * Gives the pages of deleted content back to the file system: `PRAGMA incremental_vacuum` on a database in
   * incremental auto-vacuum mode (every database this build creates), then a WAL checkpoint that truncates the
   * WAL. An older database is converted once (auto_vacuum = INCREMENTAL, then VACUUM) when what it still holds is
   * at most `maxVacuumBytes` (default 64 MiB), since a VACUUM rewrites all of it; a bigger one keeps its free
   * pages, which later tasks reuse. Returns the bytes the database and its WAL took before and after.
   */
  reclaimSpace(options: { maxVacuumBytes?: number } = {}): { beforeBytes: number; afterBytes: number } {
    return this.#run(() => {
      this.flush();
      const beforeBytes = this.fileBytes();
      const autoVacuum = this.#db.pragma('auto_vacuum', { simple: true }) as number;
      if (autoVacuum === 2) {
        this.#db.pragma('incremental_vacuum');
      } else {
        const pageSize = this.#db.pragma('page_size', { simple: true }) as number;
        const freePages = this.#db.pragma('freelist_count', { simple: true }) as number;
        const liveBytes = ((this.#db.pragma('page_count', { simple: true }) as number) - freePages) * pageSize;
        if (freePages > 0 && liveBytes <= (options.maxVacuumBytes ?? RECLAIM_VACUUM_MAX_BYTES)) {
          this.#db.pragma('auto_vacuum = INCREMENTAL');
          this.#db.exec('VACUUM');
        }
      }
      // Readers of other processes (a task watch) may keep part of the WAL; what they hold goes at a later checkpoint.
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
      return { beforeBytes, afterBytes: this.fileBytes() };
    });
  }

  /** Commits whatever is queued now, instead of at the next turn of the event loop. */
  flush(): void {
    this.#isFlushScheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    try {
      this.#db.transaction(() => {
        for (const write of batch) write.apply();
      }).immediate();
      this.#commits++;
    } catch (error) {
      const failure = storeError(error, this.path);
      for (const write of batch) write.reject(failure);
      return;
    }
    for (const write of batch) write.resolve();
  }

  /** Commits what is queued and closes the database. */
  close(): void {
    this.flush();
    this.#db.close();
  }

  #enqueue(apply: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ apply, resolve, reject });
      if (!this.#isFlushScheduled) {
        this.#isFlushScheduled = true;
        // A short window gathers the writes of concurrent clients into one transaction (one fsync) instead of one
        // per event-loop turn; it delays an ACK by at most GROUP_COMMIT_WINDOW_MS.
        setTimeout(() => this.flush(), GROUP_COMMIT_WINDOW_MS);
      }
    });
  }

  #insertEvent(taskId: string, identity: string | null, name: string | null, state: string, at: number, detail: string | null): void {
    this.#statement('INSERT INTO events (task_id, identity, name, state, at, detail) VALUES (?, ?, ?, ?, ?, ?)').run(taskId, identity, name, state, at, detail);
  }

  // better-sqlite3 compiles SQL on every prepare(); each statement here is compiled once per handle.
  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #run<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof NoiseCfgError) throw error;
      throw storeError(error, this.path);
    }
  }
}

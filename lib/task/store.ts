/**
 * The embedded task database (SPEC.md §4.1): SQLite through better-sqlite3, WAL journal with synchronous=FULL,
 * so a committed transaction survives SIGKILL and power loss. Server writes go through a group-commit queue:
 * all writes queued while the event loop is busy share one transaction and one fsync. The schema is versioned
 * (PRAGMA user_version) and migrated forward; a damaged or newer database is an error, never reset. File
 * contents are stored in slices, so that a pull reads a bounded amount at a time. The files are 0600.
 * Beside it: the schema and opening (store-schema.ts), the records (store-records.ts), the error sorting
 * (store-errors.ts) and the queue (group-commit.ts). Over 300 lines on purpose: one class over one database
 * handle, each method one query or one transaction sharing its statement cache and commit count.
 */
import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { NoiseCfgError } from '../errors.js';
import type { FileEntry } from './digests.js';
import { GroupCommitQueue } from './group-commit.js';
import { storableNullableText, storableText } from './storable-text.js';
import { storeFailure } from './store-errors.js';
import { toClient, toTask, type ClientRecord, type ClientRow, type NewTaskFile, type TaskEvent, type TaskRecord, type TaskRow, type TransferProgress } from './store-records.js';
import type { ResultRecorded, TaskStoreContract } from './store-contract.js';
import type { LostSessionScope } from './served-by.js';
import { CONTENT_SLICE_BYTES, openTaskDatabase } from './store-schema.js';

export { storeFailure } from './store-errors.js';
export type { ClientRecord, ClientState, NewTaskFile, StoredTaskState, TaskEvent, TaskRecord, TransferProgress } from './store-records.js';
export { CONTENT_SLICE_BYTES, DEFAULT_BUSY_TIMEOUT_MS, SCHEMA_VERSION } from './store-schema.js';
export { GROUP_COMMIT_WINDOW_MS } from './group-commit.js';

/** The most live data reclaimSpace rewrites with a VACUUM to convert an older database, in bytes. */
export const RECLAIM_VACUUM_MAX_BYTES = 64 * 1024 * 1024;

/** The task database of one data directory. Safe to open from several processes at once. */
export class TaskStore implements TaskStoreContract {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  #commits = 0;
  readonly #writes = new GroupCommitQueue((applyAll) => {
    this.#db.transaction(applyAll).immediate();
    this.#commits++;
  }, (error) => storeFailure(error, this.path));

  readonly #servedBy: string | null;

  private constructor(path: string, db: Database.Database, servedBy: string | null) {
    this.path = path;
    this.#db = db;
    this.#servedBy = servedBy;
  }

  /**
   * Opens the database, creating and migrating it as needed. Throws STORE_CORRUPT for a damaged file or a schema
   * newer than this build; STORE_UNAVAILABLE for one that is read-only, busy (past `busyTimeoutMs`, default 10 000), cannot be opened (a directory in its
   * place, no permission) or on a full disk. `check` also runs SQLite's quick_check (the server does, at start).
   * `servedBy` names the server process this handle belongs to: every client record it writes carries it, so
   * that the sessions of a process that died can be told from those of the processes still serving.
   */
  static open(path: string, options: { check?: boolean; busyTimeoutMs?: number; servedBy?: string } = {}): TaskStore {
    return new TaskStore(path, openTaskDatabase(path, options), options.servedBy ?? null);
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

  getTaskAndClient(taskId: string, identity: string): { task: TaskRecord | null; client: ClientRecord | null } {
    // Two statements: in-process there is no round trip to save (PostgreSQL reads both in one query).
    const task = this.getTask(taskId);
    return { task, client: task ? this.getClient(taskId, identity) : null };
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
   * durable; the ACK of a result is sent only then. It takes no slot: a client that holds none gets one through
   * claimSlot.
   */
  saveClient(client: ClientRecord, detail: string | null = null): Promise<void> {
    return this.#enqueue(() => this.#upsertClient(client, detail));
  }

  /**
   * Queues the offer of a task to a client that holds no slot in it yet (group commit): the slot is taken, and
   * `offer` recorded, only if fewer than `slotLimit` identities hold one. The count is read and raised inside the
   * write transaction, which every process writing to this database takes in turn (BEGIN IMMEDIATE), so the limit
   * is exact across processes; an identity that took its slot meanwhile (another session) keeps it and takes no
   * second one. Resolves true once the offer is durable, false (nothing written) when the task is full.
   */
  claimSlot(offer: ClientRecord, slotLimit: number): Promise<boolean> {
    return this.#enqueue(() => {
      // Another session of the same identity (here or in another process) may have taken the slot meanwhile.
      const holds = (this.#statement('SELECT has_slot FROM clients WHERE task_id = ? AND identity = ?').get(offer.taskId, offer.identity) as { has_slot: number } | undefined)?.has_slot === 1;
      const taken = holds || this.#statement('UPDATE tasks SET slots_taken = slots_taken + 1 WHERE id = ? AND slots_taken < ?').run(offer.taskId, slotLimit).changes === 1;
      if (taken) this.#upsertClient({ ...offer, hasSlot: true }, null);
      return taken;
    });
  }

  /**
   * Queues a client's RESULT as `outcome` (group commit), and when it is `applied` and brings the number of
   * identities recorded as having applied the task's digest to its maxClients, completes the task in the same
   * transaction. Counted in the database, so results recorded by other processes count too, and a revoked client
   * (no longer `applied`) does not. A task gone or cancelled, or a client revoked, since the offer: nothing is
   * written, and `refused` says which (read in the same transaction, so no cancel slips between check and write).
   * Resolves once durable.
   */
  saveResult(outcome: ClientRecord, detail: string | null): Promise<ResultRecorded> {
    return this.#enqueue((): ResultRecorded => {
      const task = this.#statement('SELECT state FROM tasks WHERE id = ?').get(outcome.taskId) as { state: string } | undefined;
      if (!task || task.state === 'cancelled') return { refused: 'cancelled', completed: false };
      const current = this.#statement('SELECT state FROM clients WHERE task_id = ? AND identity = ?').get(outcome.taskId, outcome.identity) as { state: string } | undefined;
      if (current?.state === 'revoked') return { refused: 'revoked', completed: false };
      this.#upsertClient(outcome, detail);
      if (outcome.state !== 'applied') return { refused: null, completed: false };
      const completed = this.#statement(`UPDATE tasks SET state = 'completed', ended_at = ? WHERE id = ? AND state = 'active' AND max_clients IS NOT NULL
        AND max_clients <= (SELECT count(*) FROM clients WHERE task_id = tasks.id AND state = 'applied' AND applied_digest = tasks.digest)`)
        .run(outcome.updatedAt, outcome.taskId).changes === 1;
      if (completed) this.#insertEvent(outcome.taskId, null, null, 'completed', outcome.updatedAt, null);
      return { refused: null, completed };
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
   * Marks the clients left `connected` or `offered` interrupted, durable on return: the sessions that recorded
   * them are gone. `scope`: those one server process recorded (it died; the others go on serving theirs), those of
   * one node's processes (a node restarting on a database other nodes share), or every one (a server starting
   * alone on this store: the previous run ended while they ran). Returns how many.
   */
  interruptLostSessions(at: number, detail: string, scope: LostSessionScope): number {
    return this.#run(() => {
      let count = 0;
      this.#db.transaction(() => {
        const lost = "UPDATE clients SET state = 'interrupted', updated_at = ? WHERE state IN ('connected', 'offered')";
        const rows = (scope === 'all' ? this.#statement(`${lost} RETURNING task_id, identity, name`).all(at)
          : 'servedBy' in scope ? this.#statement(`${lost} AND served_by = ? RETURNING task_id, identity, name`).all(at, scope.servedBy)
            : this.#statement(`${lost} AND substr(served_by, 1, ?) = ? RETURNING task_id, identity, name`).all(at, scope.node.length, scope.node)) as { task_id: string; identity: string; name: string }[];
        for (const row of rows) this.#insertEvent(row.task_id, row.identity, row.name, 'interrupted', at, detail);
        count = rows.length;
      }).immediate();
      this.#commits++;
      return count;
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
    this.#writes.flush();
  }

  /** Commits what is queued and closes the database. */
  close(): void {
    this.flush();
    this.#db.close();
  }

  #enqueue<T>(apply: () => T): Promise<T> {
    return this.#writes.enqueue(apply);
  }

  #upsertClient(client: ClientRecord, detail: string | null): void {
    // Positional parameters: binding by name walks the object's keys on every run.
    this.#statement(`INSERT INTO clients (task_id, identity, name, remote_address, state, first_seen_at, updated_at, exit_code, message, applied_digest, has_slot, served_by)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (task_id, identity) DO UPDATE SET name = excluded.name, remote_address = excluded.remote_address,
        state = CASE WHEN clients.state = 'revoked' THEN 'revoked' ELSE excluded.state END,
        updated_at = excluded.updated_at, exit_code = excluded.exit_code, message = excluded.message,
        applied_digest = excluded.applied_digest, has_slot = MAX(clients.has_slot, excluded.has_slot), served_by = excluded.served_by`)
      .run(client.taskId, client.identity, storableText(client.name), client.remoteAddress, client.state, client.firstSeenAt, client.updatedAt,
        client.exitCode, storableNullableText(client.message), client.appliedDigest, client.hasSlot ? 1 : 0, this.#servedBy);
    this.#insertEvent(client.taskId, client.identity, client.name, client.state, client.updatedAt, detail);
  }

  #insertEvent(taskId: string, identity: string | null, name: string | null, state: string, at: number, detail: string | null): void {
    this.#statement('INSERT INTO events (task_id, identity, name, state, at, detail) VALUES (?, ?, ?, ?, ?, ?)').run(taskId, identity, storableNullableText(name), state, at, storableNullableText(detail));
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
      throw storeFailure(error, this.path);
    }
  }
}

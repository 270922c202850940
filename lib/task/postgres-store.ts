/**
 * The task database on PostgreSQL (SPEC.md §4.9): the rules of the SQLite store (store.ts), asynchronously, for
 * several nodes on one database. Every write transaction first takes one transaction-scoped advisory lock
 * (WRITE_LOCK_KEY), so the writes of all nodes run one transaction at a time: event ids are taken and committed in
 * the same order (a watcher reading `id > last` never skips one that commits late), the slot count a claim reads
 * is the one it raises (maxClients exact across nodes), and two transactions never wait on each other's rows (no
 * deadlock). Each node's pull writes share one transaction per GROUP_COMMIT_WINDOW_MS (group commit), so the lock
 * is taken once per batch, not once per write. Reads take no lock. Over 300 lines on purpose: one class over one
 * pool, each method one query or one transaction, as store.ts.
 */
import type pg from 'pg';
import { NoiseCfgError } from '../errors.js';
import type { FileEntry } from './digests.js';
import { GROUP_COMMIT_WINDOW_MS } from './group-commit.js';
import { openPostgresStore, postgresFailure } from './postgres-pool.js';
import { WRITE_LOCK_KEY } from './postgres-schema.js';
import { CONTENT_SLICE_BYTES } from './store-schema.js';
import type { ProcessLiveness, ResultRecorded, TaskStoreContract } from './store-contract.js';
import type { LostSessionScope } from './served-by.js';
import { toTask, type ClientRecord, type ClientState, type NewTaskFile, type TaskEvent, type TaskRecord, type TaskRow, type TransferProgress } from './store-records.js';
import type { PostgresLocation } from './store-location.js';
import { storableText } from './storable-text.js';

type Query = (text: string, values?: readonly unknown[]) => Promise<pg.QueryResult>;

const nothing = (): void => undefined;

// jsonb refuses \u0000 and a lone surrogate, failing the whole batch: every string goes in as storableText.
const storableStrings = (_key: string, value: unknown): unknown => (typeof value === 'string' ? storableText(value) : value);

/**
 * One of a pull's writes, as noise_cfg_write_batch takes it (postgres-schema.ts, version 4): `write` names the
 * function, the other fields are its arguments by name (a client's are a ClientRecord's).
 */
type BatchWrite = { write: 'client' | 'claim' | 'result' | 'interrupted' | 'progress' } & Record<string, unknown>;

interface QueuedWrite {
  write: BatchWrite;
  /** The write's result in the batch's answer (a JSON value) as its promise resolves with it. */
  decode: (result: unknown) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface ClientRowPg {
  task_id: string; identity: string; name: string; remote_address: string; state: ClientState; first_seen_at: number;
  updated_at: number; exit_code: number | null; message: string | null; applied_digest: string | null; has_slot: boolean;
}

const toClient = (row: ClientRowPg): ClientRecord => ({
  taskId: row.task_id, identity: row.identity, name: row.name, remoteAddress: row.remote_address, state: row.state,
  firstSeenAt: row.first_seen_at, updatedAt: row.updated_at, exitCode: row.exit_code, message: row.message,
  appliedDigest: row.applied_digest, hasSlot: row.has_slot,
});

/** The database's clock, in milliseconds since the epoch. */
const DATABASE_NOW_MS = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

const EVENT_COLUMNS = 'id, task_id AS "taskId", identity, name, state, at, detail';

/** The task database of a fleet of nodes, on PostgreSQL. */
export class PostgresTaskStore implements TaskStoreContract, ProcessLiveness {
  readonly #pool: pg.Pool;
  readonly #location: PostgresLocation;
  readonly #servedBy: string | null;
  #commits = 0;
  #queue: QueuedWrite[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  // The batch being committed: batches of one node run one after the other, in the order they were queued.
  #committing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | null = null;
  readonly #statementNames = new Map<string, string>();

  private constructor(pool: pg.Pool, location: PostgresLocation, servedBy: string | null) {
    this.#pool = pool;
    this.#location = location;
    this.#servedBy = servedBy;
  }

  /**
   * Connects, migrates the schema and returns the store. Throws STORE_UNAVAILABLE or STORE_CORRUPT as
   * openPostgresStore does. `servedBy` names the server process, as for TaskStore.open.
   */
  static async open(location: PostgresLocation, options: { servedBy?: string; env?: NodeJS.ProcessEnv; poolSize?: number } = {}): Promise<PostgresTaskStore> {
    const { pool } = await openPostgresStore(location, { ...(options.env ? { env: options.env } : {}), ...(options.poolSize ? { poolSize: options.poolSize } : {}) });
    return new PostgresTaskStore(pool, location, options.servedBy ?? null);
  }

  get commitCount(): number {
    return this.#commits;
  }

  createTask(task: TaskRecord, files: readonly NewTaskFile[]): Promise<void> {
    return this.#transaction(async (query) => {
      await query(`INSERT INTO tasks (id, name, mode, created_at, expires_at, max_clients, state, ended_at, digest, total_bytes, file_count)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [task.id, task.name, task.mode, task.createdAt, task.expiresAt, task.maxClients, task.state, task.endedAt, task.digest, task.totalBytes, task.fileCount]);
      for (const [position, file] of files.entries()) {
        await query('INSERT INTO task_files (task_id, position, path, mode, size, digest) VALUES ($1, $2, $3, $4, $5, $6)', [task.id, position, file.path, file.mode, file.size, file.digest]);
        for (let slice = 0; slice * CONTENT_SLICE_BYTES < file.content.byteLength; slice++) {
          await query('INSERT INTO file_slices (task_id, position, slice, content) VALUES ($1, $2, $3, $4)',
            [task.id, position, slice, file.content.subarray(slice * CONTENT_SLICE_BYTES, (slice + 1) * CONTENT_SLICE_BYTES)]);
        }
      }
      await this.#insertEvent(query, task.id, null, null, 'created', task.createdAt, null);
    });
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    const row = (await this.#read<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id]))[0];
    return row ? toTask(row) : null;
  }

  async listTasks(): Promise<TaskRecord[]> {
    return (await this.#read<TaskRow>('SELECT * FROM tasks ORDER BY created_at DESC, id')).map(toTask);
  }

  getFiles(taskId: string): Promise<FileEntry[]> {
    return this.#read<FileEntry>('SELECT path, mode, size, digest FROM task_files WHERE task_id = $1 ORDER BY position', [taskId]);
  }

  async getFileContent(taskId: string, position: number): Promise<Buffer> {
    const file = (await this.#read<{ size: number }>('SELECT size FROM task_files WHERE task_id = $1 AND position = $2', [taskId, position]))[0];
    if (!file) throw new NoiseCfgError('STORE_CORRUPT', `file ${position} of task ${taskId} is missing from the store`);
    const slices = await this.#read<{ content: Buffer }>('SELECT content FROM file_slices WHERE task_id = $1 AND position = $2 ORDER BY slice', [taskId, position]);
    const content = Buffer.concat(slices.map((row) => row.content));
    if (content.byteLength !== file.size) {
      throw new NoiseCfgError('STORE_CORRUPT', `file ${position} of task ${taskId} has ${content.byteLength} bytes of content in the store, its record says ${file.size}`);
    }
    return content;
  }

  async getFileSlice(taskId: string, position: number, slice: number): Promise<Buffer> {
    const row = (await this.#read<{ content: Buffer }>('SELECT content FROM file_slices WHERE task_id = $1 AND position = $2 AND slice = $3', [taskId, position, slice]))[0];
    if (!row) throw new NoiseCfgError('STORE_CORRUPT', `slice ${slice} of file ${position} of task ${taskId} is missing from the store`);
    return row.content;
  }

  async getTaskAndClient(taskId: string, identity: string): Promise<{ task: TaskRecord | null; client: ClientRecord | null }> {
    const row = (await this.#read<TaskRow & { client: ClientRowPg | null }>(
      'SELECT t.*, (SELECT row_to_json(c) FROM clients c WHERE c.task_id = t.id AND c.identity = $2) AS client FROM tasks t WHERE t.id = $1', [taskId, identity]))[0];
    // row_to_json gives bigint columns as JSON numbers: every value the store keeps is below 2^53.
    return row ? { task: toTask(row), client: row.client ? toClient(row.client) : null } : { task: null, client: null };
  }

  async getClient(taskId: string, identity: string): Promise<ClientRecord | null> {
    const row = (await this.#read<ClientRowPg>('SELECT * FROM clients WHERE task_id = $1 AND identity = $2', [taskId, identity]))[0];
    return row ? toClient(row) : null;
  }

  async listClients(taskId: string): Promise<ClientRecord[]> {
    return (await this.#read<ClientRowPg>('SELECT * FROM clients WHERE task_id = $1 ORDER BY first_seen_at, identity', [taskId])).map(toClient);
  }

  listEvents(taskId: string, afterId = 0, limit = -1): Promise<TaskEvent[]> {
    // LIMIT NULL is PostgreSQL's "no limit".
    return this.#read<TaskEvent>(`SELECT ${EVENT_COLUMNS} FROM events WHERE task_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [taskId, afterId, limit < 0 ? null : limit]);
  }

  async lastEventId(taskId: string): Promise<number> {
    return (await this.#read<{ id: number | null }>('SELECT max(id) AS id FROM events WHERE task_id = $1', [taskId]))[0]?.id ?? 0;
  }

  endTask(taskId: string, state: 'cancelled' | 'completed', at: number): Promise<boolean> {
    return this.#transaction(async (query) => {
      const changed = (await query("UPDATE tasks SET state = $1, ended_at = $2 WHERE id = $3 AND state = 'active'", [state, at, taskId])).rowCount === 1;
      if (changed) await this.#insertEvent(query, taskId, null, null, state, at, null);
      return changed;
    });
  }

  revokeClient(taskId: string, identity: string, at: number): Promise<boolean> {
    return this.#transaction(async (query) => {
      const changed = (await query("UPDATE clients SET state = 'revoked', updated_at = $1 WHERE task_id = $2 AND identity = $3", [at, taskId, identity])).rowCount === 1;
      if (changed) await this.#insertEvent(query, taskId, identity, null, 'revoked', at, null);
      return changed;
    });
  }

  // A pull's writes go to the database as data, a batch at a time, and its functions (postgres-schema.ts, version 4)
  // apply them with the SQLite store's rules; the batch transaction's write lock makes each one step for every node.
  saveClient(client: ClientRecord, detail: string | null = null): Promise<void> {
    return this.#enqueue({ write: 'client', ...client, servedBy: this.#servedBy, detail }, nothing);
  }

  claimSlot(offer: ClientRecord, slotLimit: number): Promise<boolean> {
    return this.#enqueue({ write: 'claim', ...offer, servedBy: this.#servedBy, slotLimit }, (taken) => taken === true);
  }

  saveResult(outcome: ClientRecord, detail: string | null): Promise<ResultRecorded> {
    return this.#enqueue({ write: 'result', ...outcome, servedBy: this.#servedBy, detail }, (recorded): ResultRecorded => {
      if (recorded === 'cancelled' || recorded === 'revoked') return { refused: recorded, completed: false };
      return { refused: null, completed: recorded === 'completed' };
    });
  }

  markInterrupted(taskId: string, identity: string, at: number, detail: string): Promise<void> {
    return this.#enqueue({ write: 'interrupted', taskId, identity, at, detail }, nothing);
  }

  interruptLostSessions(at: number, detail: string, scope: LostSessionScope): Promise<number> {
    return this.#transaction((query) => (scope === 'all' ? this.#interrupt(query, at, detail, '', [])
      : 'servedBy' in scope ? this.#interrupt(query, at, detail, 'AND served_by = $2', [scope.servedBy])
        : this.#interrupt(query, at, detail, 'AND left(served_by, $2) = $3', [scope.node.length, scope.node])));
  }

  // Liveness is timed by the database's clock, not the nodes': nodes whose clocks differ still agree on who is silent.
  async markAlive(): Promise<void> {
    if (this.#servedBy === null) return;
    await this.#transaction((query) => query(`INSERT INTO server_processes (served_by, last_seen_at) VALUES ($1, ${DATABASE_NOW_MS})
      ON CONFLICT (served_by) DO UPDATE SET last_seen_at = excluded.last_seen_at`, [this.#servedBy]));
  }

  interruptSilentProcesses(silentMs: number, at: number, detail: string): Promise<{ processes: number; sessions: number }> {
    return this.#transaction(async (query) => {
      const silent = (await query(`DELETE FROM server_processes WHERE last_seen_at < ${DATABASE_NOW_MS} - $1 RETURNING served_by`, [silentMs])).rows as { served_by: string }[];
      let sessions = 0;
      for (const { served_by: servedBy } of silent) sessions += await this.#interrupt(query, at, detail, 'AND served_by = $2', [servedBy]);
      return { processes: silent.length, sessions };
    });
  }

  async forgetProcess(): Promise<void> {
    if (this.#servedBy === null) return;
    await this.#transaction((query) => query('DELETE FROM server_processes WHERE served_by = $1', [this.#servedBy]));
  }

  saveTransferProgress(taskId: string, identity: string, bytesSent: number, at: number): Promise<void> {
    return this.#enqueue({ write: 'progress', taskId, identity, bytesSent, at }, nothing);
  }

  listTransfers(taskId: string): Promise<TransferProgress[]> {
    return this.#read<TransferProgress>(`SELECT p.identity, c.name, p.bytes_sent AS "bytesSent", p.updated_at AS at
      FROM transfers p JOIN clients c ON c.task_id = p.task_id AND c.identity = p.identity
      WHERE p.task_id = $1 AND c.state = 'offered' AND p.updated_at >= c.updated_at ORDER BY p.identity`, [taskId]);
  }

  deleteTask(taskId: string): Promise<number | null> {
    return this.#transaction(async (query) => {
      const row = (await query('SELECT total_bytes FROM tasks WHERE id = $1', [taskId])).rows[0] as { total_bytes: number } | undefined;
      if (!row) return null;
      for (const table of ['file_slices', 'task_files', 'transfers', 'clients', 'events']) await query(`DELETE FROM ${table} WHERE task_id = $1`, [taskId]);
      await query('DELETE FROM tasks WHERE id = $1', [taskId]);
      return row.total_bytes;
    });
  }

  async listEndedBefore(cutoffMs: number): Promise<TaskRecord[]> {
    return (await this.#read<TaskRow>(`SELECT * FROM tasks
      WHERE (state != 'active' AND COALESCE(ended_at, expires_at) < $1) OR (state = 'active' AND expires_at < $1)
      ORDER BY COALESCE(ended_at, expires_at), id`, [cutoffMs])).map(toTask);
  }

  async fileBytes(): Promise<number> {
    return (await this.#read<{ bytes: number }>('SELECT pg_database_size(current_database()) AS bytes'))[0]!.bytes;
  }

  /**
   * VACUUMs the tables a deletion empties, so that their free space is reused by later tasks (PostgreSQL gives a
   * table's space back to the file system only with VACUUM FULL, which locks it: not done while nodes serve).
   * Outside any transaction, as VACUUM must be; takes no write lock (it blocks no reader or writer).
   */
  async reclaimSpace(): Promise<{ beforeBytes: number; afterBytes: number }> {
    await this.flush();
    const beforeBytes = await this.fileBytes();
    await this.#read('VACUUM file_slices, task_files, clients, events, transfers, tasks');
    return { beforeBytes, afterBytes: await this.fileBytes() };
  }

  /** Commits what is queued now, and resolves once every batch queued so far is committed. */
  async flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length > 0) this.#committing = this.#committing.then(() => this.#commitBatch(batch));
    await this.#committing;
  }

  /** Commits what is queued and ends the pool; closing again waits for the first close. */
  close(): Promise<void> {
    this.#closing ??= this.flush().finally(() => this.#pool.end());
    return this.#closing;
  }

  #enqueue<T>(write: BatchWrite, decode: (result: unknown) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ write, decode, resolve: resolve as (value: unknown) => void, reject });
      // As in group-commit.ts: a short window gathers concurrent clients' writes into one transaction.
      this.#flushTimer ??= setTimeout(() => void this.flush(), GROUP_COMMIT_WINDOW_MS);
    });
  }

  // One statement outside BEGIN is one transaction, and the function takes the write lock first (schema version 4):
  // the batch is one round trip.
  async #commitBatch(batch: readonly QueuedWrite[]): Promise<void> {
    let results: unknown[];
    try {
      results = (await this.#read<{ results: unknown[] }>('SELECT noise_cfg_write_batch($1) AS results',
        [JSON.stringify(batch.map((queued) => queued.write), storableStrings)]))[0]!.results;
      this.#commits++;
    } catch (error) {
      for (const write of batch) write.reject(error as Error);
      return;
    }
    batch.forEach((queued, index) => queued.resolve(queued.decode(results[index])));
  }

  // One write transaction under the write lock; its error sorted into the store's codes.
  async #transaction<T>(step: (query: Query) => Promise<T>): Promise<T> {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.#pool.connect();
      const query: Query = (text, values) => client!.query(this.#statement(text, values));
      try {
        // One round trip for both: a simple query may hold several statements.
        await query(`BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK_KEY})`);
        const result = await step(query);
        await query('COMMIT');
        this.#commits++;
        return result;
      } catch (error) {
        await query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    } catch (error) {
      throw this.#failure(error);
    } finally {
      client?.release();
    }
  }

  async #read<Row>(text: string, values: readonly unknown[] = []): Promise<Row[]> {
    try {
      return (await this.#pool.query(this.#statement(text, values))).rows as Row[];
    } catch (error) {
      throw this.#failure(error);
    }
  }

  // A statement with parameters is prepared once per connection (a named statement): PostgreSQL then skips parsing
  // and planning it again, which was most of the database's CPU per pull (the same few statements run for every
  // client). One without parameters (BEGIN, COMMIT, VACUUM) goes as a simple query.
  #statement(text: string, values: readonly unknown[] = []): pg.QueryConfig {
    if (values.length === 0) return { text };
    let name = this.#statementNames.get(text);
    if (name === undefined) {
      name = `noise_cfg_${this.#statementNames.size + 1}`;
      this.#statementNames.set(text, name);
    }
    return { name, text, values: values as unknown[] };
  }

  // A broken constraint (class 23: a foreign key to a task that is gone, a check) is a write the data refuses, as
  // SQLite's constraint errors are STORE_CORRUPT in store-errors.ts; everything else is the connection's.
  #failure(error: unknown): NoiseCfgError {
    if (error instanceof NoiseCfgError) return error;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('23')) {
      return new NoiseCfgError('STORE_CORRUPT', `the store refused a write: ${(error as Error).message} (SQLSTATE ${code})`, { cause: error });
    }
    return postgresFailure(error, this.#location);
  }

  // Marks `interrupted`, each with its event, the clients still connected or offered that `condition` (on $2…)
  // selects; how many.
  async #interrupt(query: Query, at: number, detail: string, condition: string, values: readonly unknown[]): Promise<number> {
    const rows = (await query(`UPDATE clients SET state = 'interrupted', updated_at = $1 WHERE state IN ('connected', 'offered') ${condition}
      RETURNING task_id, identity, name`, [at, ...values])).rows as { task_id: string; identity: string; name: string }[];
    for (const row of rows) await this.#insertEvent(query, row.task_id, row.identity, row.name, 'interrupted', at, detail);
    return rows.length;
  }

  async #insertEvent(query: Query, taskId: string, identity: string | null, name: string | null, state: string, at: number, detail: string | null): Promise<void> {
    await query('INSERT INTO events (task_id, identity, name, state, at, detail) VALUES ($1, $2, $3, $4, $5, $6)', [taskId, identity, name, state, at, detail]);
  }
}

/**
 * The update server's in-memory caches (SPEC.md §4.8), all of them: their bounds in one table, and for each the
 * rule that keeps it true — what invalidates it, why that is enough, and whether it stays true when several
 * processes serve one database (the scale-out issue, 14). Nothing else in lib/task keeps state across sessions.
 *
 * Never cached, so needing no rule: the task record (its state, expiry, maxClients) and the client records. The
 * server reads them from the store at HELLO and again at RESULT, so a cancel, an expiry, a revoke or a delete made
 * by any process holds from the next read on, whatever these caches hold. Only the handshake's question "is there
 * such a task, and of which mode?" is cached, for TASK_KEY_TTL_MS (#taskKeys). Not a cache either: the open-session
 * counts (session-limits.ts), which count this process's own sockets and are per process by design.
 */
import type { TaskKey } from '../transport/index.js';
import type { Awaitable } from './operator.js';
import type { ClientRecord, TaskRecord } from './store.js';
import { buildTaskContent, type ContentSource, type TaskContent } from './task-content.js';

// ---- Bounds ----

/** Task PSKs kept, in tasks (32 bytes each, about 100 bytes with the key). */
export const MAX_CACHED_PSKS = 10_000;
/** Tasks whose existence and mode the handshake trusts without a read, in tasks (about 150 bytes each). */
export const MAX_CACHED_TASK_KEYS = 10_000;
/**
 * How long the handshake trusts that a task it read exists, in ms: the longest a task deleted by another process
 * (`task delete` from the CLI, another worker or node) still passes a handshake here; its HELLO is then refused
 * as for a cancelled task. One second turns all but one read a second per busy task into none: on PostgreSQL
 * that read was a round trip per pull, 0.15 of a node's CPU per 64 KiB pull (1,438 µs to 1,208, c=50).
 */
export const TASK_KEY_TTL_MS = 1000;
/**
 * Tasks whose slot holders are counted in memory, in tasks. Each count holds up to the task's maxClients (or the
 * server's maxClientsPerTask) identities, as the store does; an evicted count is read back from the store.
 */
export const MAX_SLOT_COUNTS = 1024;
/** Encoded CHUNK bytes kept, by default (TaskServerOptions.contentCacheBytes), in bytes; a bigger task is streamed. */
export const DEFAULT_CONTENT_CACHE_BYTES = 64 * 1024 * 1024;
/** Tasks whose encoded messages are kept, in tasks, whatever their size (a file list alone can be large). */
export const MAX_CACHED_CONTENTS = 256;

/** The bounds above, for one TaskCaches (tests pass smaller ones). */
export interface CacheBounds {
  psks: number;
  taskKeys: number;
  slotCounts: number;
  contents: number;
  contentBytes: number;
}

/** The bounds a server uses unless told otherwise. */
export const DEFAULT_CACHE_BOUNDS: Readonly<CacheBounds> = {
  psks: MAX_CACHED_PSKS,
  taskKeys: MAX_CACHED_TASK_KEYS,
  slotCounts: MAX_SLOT_COUNTS,
  contents: MAX_CACHED_CONTENTS,
  contentBytes: DEFAULT_CONTENT_CACHE_BYTES,
};

/**
 * A map bounded by entries and, optionally, by the bytes each entry was given when set. At either bound it
 * drops the least recently used entry first (a get counts as a use).
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, { value: V; bytes: number }>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxEntries: number, maxBytes = Number.POSITIVE_INFINITY) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held now, as given to set(). */
  get bytes(): number {
    return this.#bytes;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    // Map order is insertion order: re-inserting marks the entry most recently used.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Holds `value` under `key` as `bytes` bytes, then drops the least recently used entries until within bounds. */
  set(key: K, value: V, bytes = 0): void {
    this.delete(key);
    this.#entries.set(key, { value, bytes });
    this.#bytes += bytes;
    for (const [oldKey, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes && this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(oldKey);
      this.#bytes -= entry.bytes;
    }
  }

  delete(key: K): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
    return true;
  }
}

/** What the caches read from the store: tasks, content, client records, and a way to commit queued writes first. */
export interface CacheSource extends ContentSource {
  getTask(taskId: string): Awaitable<TaskRecord | null>;
  listClients(taskId: string): Awaitable<ClientRecord[]>;
  /** Commits the writes queued so far (group commit), so that a read after it sees them. */
  flush(): Awaitable<void>;
}

/** The caches of one running server. */
export class TaskCaches {
  readonly #source: CacheSource;
  readonly #derivePsk: (taskId: string) => Buffer;
  readonly #contentBytes: number;
  /**
   * Task id → PSK. Derived once per task: an HKDF per connection is work a stranger with a task id could make us
   * repeat. Invalidated by nothing: the PSK is a function of the master key and the task id alone, the master key
   * never changes while the data directory exists, and task ids are random and never reused, so an entry of a
   * deleted task is never asked for again (the handshake fails on the missing task, or HELLO refuses it).
   * Prune forgets the entry to give the memory back. Across processes: correct as it stands (every process
   * derives the same PSK from the same master key).
   */
  readonly #psks: LruCache<string, Buffer>;
  /**
   * Task id → the task's key (mode and PSK) and when it was read, for the handshake (keyFor). The mode never
   * changes and ids are never reused, so an entry can be wrong only in saying that a task exists: for at most
   * TASK_KEY_TTL_MS after another process deleted it (forgetTask drops it at once for this process's own deletes).
   * Such a handshake succeeds, with the PSK the client already held, and HELLO's read of the task refuses it as
   * for a cancelled one: nothing is offered. A task not found is not kept, so a new task is found at once and a
   * stranger's made-up ids fill nothing. Across processes: correct within that bound.
   */
  readonly #taskKeys: LruCache<string, { key: TaskKey; readAtMs: number }>;
  /**
   * Task id → identities known to hold a slot: the store's records (hasSlot, or applied) when the entry was loaded,
   * and the slots this server claimed since. It answers "does this identity hold a slot already?" (such an offer
   * is not waited for) and gives negotiate() a count that never exceeds the true one, to refuse a full task without
   * a write. Which identity gets the last free slot is decided by the store (claimSlot), in the write transaction
   * every process and node takes in turn, so maxClients is exact however many serve the database. Slots are never
   * given back (SPEC.md §4.4: revoked, failed and interrupted clients keep theirs), so the set only grows, no entry
   * is ever wrong, and cancel, expiry and revoke change nothing in it. Delete and prune forget the task (prune
   * here; a deleted task fails the handshake or its HELLO, before its slots are read). An evicted or new entry is read from
   * the store after flush(). Across processes: correct (another process's holders are missing until a reload,
   * which only makes the count lower; negotiate() reads each client's own record too, and a claim by an identity
   * that took its slot elsewhere finds that and takes none).
   */
  readonly #slots: LruCache<string, Set<string>>;
  /**
   * Task id → its encoded file list, OFFERs and (when within the byte bound) CHUNKs. Invalidated by nothing: a
   * task's files never change after it is created and ids are never reused, so an entry is right for the task's
   * whole life; cancel and expiry are refused at HELLO before the content is asked for; a deleted task fails the
   * handshake or its HELLO. Prune forgets it; the byte and task bounds drop the least recently used. Across processes: correct
   * as it stands (content is immutable; each process holds its own copy).
   */
  readonly #contents: LruCache<string, TaskContent>;
  /**
   * Loads in progress, by task id: sessions that ask while the store is read wait for the same read, so a burst of
   * HELLOs for a task not cached yet reads (and holds) its content once, not once per session, and slot sets
   * loaded at once cannot replace one another.
   */
  readonly #loadingTaskKeys = new Map<string, Promise<TaskKey | null>>();
  readonly #loadingContents = new Map<string, Promise<TaskContent>>();
  readonly #loadingSlots = new Map<string, Promise<Set<string>>>();

  readonly #monotonicMs: () => number;

  /**
   * `contentBytes` bounds the cached CHUNK bytes (TaskServerOptions.contentCacheBytes). `monotonicMs` times the
   * task keys (tests pass their own clock); the server's wall clock is not used, as it may step.
   */
  constructor(options: { source: CacheSource; derivePsk: (taskId: string) => Buffer; bounds?: Partial<CacheBounds>; monotonicMs?: () => number }) {
    const bounds = { ...DEFAULT_CACHE_BOUNDS, ...options.bounds };
    this.#source = options.source;
    this.#monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.#taskKeys = new LruCache(bounds.taskKeys);
    this.#derivePsk = options.derivePsk;
    this.#contentBytes = bounds.contentBytes;
    this.#psks = new LruCache(bounds.psks);
    this.#slots = new LruCache(bounds.slotCounts);
    this.#contents = new LruCache(bounds.contents, bounds.contentBytes);
  }

  /** Bytes of CHUNK messages held now. */
  get contentBytes(): number {
    return this.#contents.bytes;
  }

  /** The task's PSK. */
  psk(taskId: string): Buffer {
    let psk = this.#psks.get(taskId);
    if (psk === undefined) {
      psk = this.#derivePsk(taskId);
      this.#psks.set(taskId, psk);
    }
    return psk;
  }

  /**
   * The mode and PSK of the task, or null when the store holds no such task (see #taskKeys): at once when read
   * within TASK_KEY_TTL_MS, else from the store. Rejects with what the store throws.
   */
  keyFor(taskId: string): Awaitable<TaskKey | null> {
    const cached = this.#taskKeys.get(taskId);
    if (cached !== undefined && this.#monotonicMs() - cached.readAtMs < TASK_KEY_TTL_MS) return cached.key;
    return this.#load(this.#loadingTaskKeys, taskId, async () => {
      const readAtMs = this.#monotonicMs();
      const task = await this.#source.getTask(taskId);
      if (task === null) {
        this.#taskKeys.delete(taskId);
        return null;
      }
      const key = { mode: task.mode, psk: this.psk(taskId) };
      this.#taskKeys.set(taskId, { key, readAtMs });
      return key;
    });
  }

  /** The identities known to hold a slot in the task (see #slots). Rejects with what the store throws. */
  slotHolders(taskId: string): Awaitable<ReadonlySet<string>> {
    return this.#slotSet(taskId);
  }

  /** Records that `identity` holds a slot in the task: call it once the store's claim of the slot succeeded. */
  async addSlotHolder(taskId: string, identity: string): Promise<void> {
    (await this.#slotSet(taskId)).add(identity);
  }

  /** The task's encoded messages, from the cache or built from the store. Rejects with what the store throws. */
  content(task: TaskRecord): Awaitable<TaskContent> {
    const cached = this.#contents.get(task.id);
    if (cached !== undefined) return cached;
    return this.#load(this.#loadingContents, task.id, async () => {
      const content = await buildTaskContent(task, this.#source, task.totalBytes <= this.#contentBytes);
      this.#contents.set(task.id, content, content.chunks === null ? 0 : task.totalBytes);
      return content;
    });
  }

  /** Drops everything held for a task that is gone (prune, delete). */
  forgetTask(taskId: string): void {
    this.#taskKeys.delete(taskId);
    this.#psks.delete(taskId);
    this.#slots.delete(taskId);
    this.#contents.delete(taskId);
  }

  #slotSet(taskId: string): Awaitable<Set<string>> {
    const holders = this.#slots.get(taskId);
    if (holders !== undefined) return holders;
    return this.#load(this.#loadingSlots, taskId, async () => {
      // Queued offers of holders first, so that the reload sees every record this server wrote.
      await this.#source.flush();
      const clients = await this.#source.listClients(taskId);
      const loaded = new Set(clients.filter((client) => client.hasSlot || client.state === 'applied').map((client) => client.identity));
      this.#slots.set(taskId, loaded);
      return loaded;
    });
  }

  // One load of `taskId` at a time: a caller that comes while one runs gets its promise.
  #load<T>(loading: Map<string, Promise<T>>, taskId: string, read: () => Promise<T>): Promise<T> {
    let pending = loading.get(taskId);
    if (pending === undefined) {
      pending = read().finally(() => loading.delete(taskId));
      loading.set(taskId, pending);
    }
    return pending;
  }
}

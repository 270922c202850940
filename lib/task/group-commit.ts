/**
 * The store's group-commit queue (SPEC.md §4.1): a batch commits at most once per GROUP_COMMIT_WINDOW_MS, and every
 * write queued meanwhile shares its transaction, so one WAL fsync; each write's promise settles only once that
 * transaction has committed.
 */

/** The shortest time between two batches' commits, in milliseconds: how long writes wait for company when busy. */
export const GROUP_COMMIT_WINDOW_MS = 10;

/**
 * How long a write queued at `now` waits before its batch is taken, given when the last batch was (milliseconds on
 * one monotonic clock): until a window after that one, or not at all once a window has passed. So a busy store
 * still commits at most once per window, and an idle one does not hold a lone write back for a window it needs
 * no company in: a single client's pull waited two windows (its slot, its result) of its 28 ms for that.
 */
export function commitDelayMs(lastBatchAt: number, now: number): number {
  return Math.max(0, lastBatchAt + GROUP_COMMIT_WINDOW_MS - now);
}

interface QueuedWrite {
  apply: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Writes queued for one database handle. */
export class GroupCommitQueue {
  #queue: QueuedWrite[] = [];
  #isFlushScheduled = false;
  /** When the last batch was taken, on performance.now()'s clock. */
  #lastBatchAt = Number.NEGATIVE_INFINITY;
  readonly #commit: (applyAll: () => void) => void;
  readonly #failure: (error: unknown) => Error;

  /**
   * `commit` runs its argument in one transaction and commits it (it throws when that fails); `failure` turns what
   * it threw into the error every write of the batch rejects with.
   */
  constructor(commit: (applyAll: () => void) => void, failure: (error: unknown) => Error) {
    this.#commit = commit;
    this.#failure = failure;
  }

  /**
   * Queues `apply`; resolves with what it returned once the batch holding it is committed and durable, rejects when
   * that batch failed.
   */
  enqueue<T>(apply: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ apply, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#isFlushScheduled) {
        this.#isFlushScheduled = true;
        // The writes of concurrent clients gather until a window after the last batch (one transaction, one fsync,
        // instead of one per event-loop turn); an ACK waits at most GROUP_COMMIT_WINDOW_MS for it. Even with no
        // wait, the batch is taken in a later turn, so this turn's other writes join it.
        setTimeout(() => this.flush(), commitDelayMs(this.#lastBatchAt, performance.now()));
      }
    });
  }

  /** Commits whatever is queued now, instead of at the end of the window. */
  flush(): void {
    this.#isFlushScheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    this.#lastBatchAt = performance.now();
    const results: unknown[] = [];
    try {
      this.#commit(() => {
        for (const write of batch) results.push(write.apply());
      });
    } catch (error) {
      const failure = this.#failure(error);
      for (const write of batch) write.reject(failure);
      return;
    }
    batch.forEach((write, index) => write.resolve(results[index]));
  }
}

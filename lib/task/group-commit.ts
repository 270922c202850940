/**
 * The store's group-commit queue (SPEC.md §4.1): every write queued within GROUP_COMMIT_WINDOW_MS shares one
 * transaction, so one WAL fsync, and each write's promise settles only once that transaction has committed.
 */

/** How long queued writes wait for company before they are committed, in milliseconds. */
export const GROUP_COMMIT_WINDOW_MS = 10;

interface QueuedWrite {
  apply: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Writes queued for one database handle. */
export class GroupCommitQueue {
  #queue: QueuedWrite[] = [];
  #isFlushScheduled = false;
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
        // A short window gathers the writes of concurrent clients into one transaction (one fsync) instead of one
        // per event-loop turn; it delays an ACK by at most GROUP_COMMIT_WINDOW_MS. The whole window, even when the
        // store is idle: measured 2026-12-07 (64 KiB pulls, interleaved runs), waiting only for what is left of a
        // window after the last batch made 5 concurrent pulls 1.5x faster, but at 100 concurrent pull() clients
        // it committed 2-3x as often per pull and cost the server 8-9 % more CPU per pull; skipping the wait only
        // after a quiet window still cost 5 % and 1.5x the commits, for little at low concurrency.
        setTimeout(() => this.flush(), GROUP_COMMIT_WINDOW_MS);
      }
    });
  }

  /** Commits whatever is queued now, instead of at the end of the window. */
  flush(): void {
    this.#isFlushScheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
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

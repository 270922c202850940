/**
 * The idle timeout of established connections (SPEC.md §2.5, §2.6) on one timer for all of them: each connection
 * notes when it last carried application data (a number, no timer of its own), and a sweep at the earliest
 * deadline closes those past theirs. Control records (REKEY, END) are not activity, so a peer cannot keep a
 * connection open with them.
 */

import { IDLE_SWEEP_SPACING_MS } from './limits.js';

/** What the sweep needs to know of what it watches. */
export interface IdleSweepOptions<Watched> {
  /** When `watched` becomes idle, in performance.now() milliseconds; activity moves it later. */
  deadlineOf: (watched: Watched) => number;
  /** Closes `watched` for being idle; it has already left the sweep. */
  onIdle: (watched: Watched) => void;
}

/** The open connections with an idle timeout, and the one timer that checks them. */
export class IdleSweep<Watched> {
  readonly #options: IdleSweepOptions<Watched>;
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | null = null;
  /** When the pending sweep runs, in performance.now() milliseconds. */
  #timerAt = Number.POSITIVE_INFINITY;
  #lastSweepAt = Number.NEGATIVE_INFINITY;
  readonly #onTimer = (): void => this.#sweep();

  constructor(options: IdleSweepOptions<Watched>) {
    this.#options = options;
  }

  /** Watches `connection` from now on. */
  add(connection: Watched): void {
    this.#watched.add(connection);
    this.#schedule(this.#options.deadlineOf(connection));
  }

  /** Stops watching `connection`. */
  delete(connection: Watched): void {
    this.#watched.delete(connection);
    if (this.#watched.size === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
      this.#timerAt = Number.POSITIVE_INFINITY;
    }
  }

  /** Connections watched now. */
  get size(): number {
    return this.#watched.size;
  }

  // Activity only moves deadlines later, so a sweep planned for an earlier deadline is at worst early: it finds
  // nothing to close there and plans the next one.
  #schedule(deadline: number): void {
    const at = Math.max(deadline, this.#lastSweepAt + IDLE_SWEEP_SPACING_MS);
    if (this.#timer !== null && this.#timerAt <= at) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, at - performance.now()));
    // Open sockets keep the process alive; the sweep alone must not.
    this.#timer.unref();
  }

  #sweep(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    this.#lastSweepAt = now;
    let next = Number.POSITIVE_INFINITY;
    const idle: Watched[] = [];
    for (const connection of this.#watched) {
      const deadline = this.#options.deadlineOf(connection);
      if (deadline <= now) idle.push(connection);
      else if (deadline < next) next = deadline;
    }
    for (const connection of idle) {
      this.#watched.delete(connection);
      this.#options.onIdle(connection);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#schedule(next);
  }
}

/**
 * A log that strangers cannot flood (SPEC.md §2.6): in each interval the first few events of a kind pass one by one,
 * the rest are counted, and each kind that had more gets one summary line with the count when the interval ends.
 * The clock and the timer are Node's; the timer does not keep the process alive.
 */
import { LOG_EVENTS_PER_INTERVAL, LOG_INTERVAL_MS } from './limits.js';

/** Options of a RateLimitedLog. */
export interface RateLimitedLogOptions<Event> {
  /** Receives each event that passes, and each summary. */
  emit: (event: Event) => void;
  /** The summary of `count` events of one kind that did not pass; `last` is the latest of them. */
  summarize: (last: Event, count: number) => Event;
  eventsPerInterval?: number;
  intervalMs?: number;
}

/** Rate-bounded event reporting. */
export class RateLimitedLog<Event> {
  readonly #options: RateLimitedLogOptions<Event>;
  readonly #eventsPerInterval: number;
  readonly #intervalMs: number;
  /** Events passed in the current interval, by kind. */
  readonly #passed = new Map<string, number>();
  /** Events held back in the current interval, by kind: how many and the latest. */
  readonly #held = new Map<string, { count: number; last: Event }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(options: RateLimitedLogOptions<Event>) {
    this.#options = options;
    this.#eventsPerInterval = options.eventsPerInterval ?? LOG_EVENTS_PER_INTERVAL;
    this.#intervalMs = options.intervalMs ?? LOG_INTERVAL_MS;
  }

  /** Reports `event` of kind `kind`: passed now, or counted into the interval's summary. */
  report(kind: string, event: Event): void {
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.flush(), this.#intervalMs);
      this.#timer.unref();
    }
    const passed = this.#passed.get(kind) ?? 0;
    if (passed < this.#eventsPerInterval) {
      this.#passed.set(kind, passed + 1);
      this.#options.emit(event);
      return;
    }
    const held = this.#held.get(kind);
    if (held) {
      held.count += 1;
      held.last = event;
    } else {
      this.#held.set(kind, { count: 1, last: event });
    }
  }

  /** Ends the interval now: one summary per kind that had events held back. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#passed.clear();
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const { count, last } of held) this.#options.emit(this.#options.summarize(last, count));
  }
}

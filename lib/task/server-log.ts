/**
 * The update server's log (SPEC.md §4.8): one record per connection outcome, with the time; refusals that any
 * token holder can cause at any rate go through a RateLimitedLog. Records never hold a secret.
 */
import { isNoiseCfgError } from '../errors.js';
import { RateLimitedLog, type ChannelEvent } from '../transport/index.js';
import type { LogRecord } from './server-options.js';

/** Outcomes that strangers with a token can cause at any rate: they are logged through a RateLimitedLog. */
const RATE_LIMITED_OUTCOMES = new Set(['rejected:busy', 'rejected:full']);

/** Where a server's records go. */
export class ServerLog {
  readonly #emit: ((record: LogRecord) => void) | undefined;
  readonly #now: () => number;
  readonly #refusals: RateLimitedLog<LogRecord>;

  constructor(emit: ((record: LogRecord) => void) | undefined, now: () => number) {
    this.#emit = emit;
    this.#now = now;
    this.#refusals = new RateLimitedLog<LogRecord>({
      emit: (record) => this.#emit?.(record),
      summarize: (last, count) => ({
        ...last, time: this.time(), count,
        message: `${count} more refusal(s) like this in the last second, the latest: ${last.message ?? ''}`,
      }),
    });
  }

  /** The time now, as a record carries it. */
  time(): string {
    return new Date(this.#now()).toISOString();
  }

  /** Logs `fields` stamped with the time now. */
  log(fields: Omit<LogRecord, 'time'>): void {
    this.#emit?.({ time: this.time(), ...fields });
  }

  /** Logs a connection's closing record; a refusal of a rate-limited kind goes through the rate limit. */
  connection(record: LogRecord): void {
    if (record.outcome !== undefined && RATE_LIMITED_OUTCOMES.has(record.outcome)) this.#refusals.report(record.outcome, record);
    else this.#emit?.(record);
  }

  /** Logs a store write that failed while nobody waited for it (an offer, progress, an interruption). */
  storeError(taskId: string, error: Error): void {
    this.log({ event: 'pull', task: taskId, outcome: 'store-error', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: error.message });
  }

  /** Logs what the channel reports before a session starts (a failed handshake, a refused connection). */
  channelEvent(event: ChannelEvent): void {
    if (event.event === 'authenticated') return;
    this.log({
      event: event.event === 'refused' ? 'refused' : 'handshake-failed',
      remote: event.remoteAddress,
      ...(event.code ? { code: event.code } : {}),
      ...(event.message ? { message: event.message } : {}),
      ...(event.count !== undefined ? { count: event.count } : {}),
    });
  }

  /** Writes the pending summaries of rate-limited refusals now. */
  flush(): void {
    this.#refusals.flush();
  }
}

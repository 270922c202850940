/**
 * Many clients pulling at once, for the tests of several server processes (task/workers.test.ts) and several nodes
 * (store/postgres-nodes.test.ts): a bounded crowd of pulls, and a one-line tally of how they ended.
 */
import type { PullResult } from '../../lib/task/client.js';

/** How one pull of the crowd ended: its result, or what it threw. */
export type Outcome = { index: number; result: PullResult } | { index: number; error: Error & { code?: string } };

/**
 * Runs `count` pulls, at most `concurrency` at once, calling `onAcknowledged` with the running count after each
 * acknowledged one. Resolves with every outcome, by index.
 */
export async function pullAll(count: number, start: (index: number) => Promise<PullResult>, options: { concurrency: number; onAcknowledged?: (acknowledged: number) => void }): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  let acknowledged = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      try {
        const result = await start(index);
        outcomes.push({ index, result });
        if (result.isAcknowledged === true) options.onAcknowledged?.(++acknowledged);
      } catch (error) {
        outcomes.push({ index, error: error as Error });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  return outcomes.sort((a, b) => a.index - b.index);
}

/** "100 applied, 200 threw REJECTED": how many ended each way. */
export function tally(outcomes: readonly Outcome[]): string {
  const kinds = new Map<string, number>();
  for (const outcome of outcomes) {
    const kind = 'error' in outcome ? `threw ${outcome.error.code ?? outcome.error.message}` : `${outcome.result.status}${outcome.result.isAcknowledged ? '' : ' unacknowledged'}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].map(([kind, n]) => `${n} ${kind}`).join(', ');
}

/** A pull that applied and whose result the server acknowledged. */
export const isAcknowledgedApply = (outcome: Outcome): boolean => 'result' in outcome && outcome.result.status === 'applied' && outcome.result.isAcknowledged === true;

/**
 * Fires `kill` once, when `threshold` pulls have been acknowledged and `threshold` are receiving at the same time:
 * a server killed then has sessions in flight. Pass `progressOf(index)` as a pull's onTransferProgress and
 * `acknowledged` as pullAll's onAcknowledged.
 */
export class KillWhenBusy {
  readonly #threshold: number;
  readonly #kill: () => void;
  readonly #receiving = new Set<number>();
  #acknowledged = 0;
  isKilled = false;

  constructor(threshold: number, kill: () => void) {
    this.#threshold = threshold;
    this.#kill = kill;
  }

  readonly acknowledged = (count: number): void => {
    this.#acknowledged = count;
  };

  progressOf(index: number): (received: number, total: number) => void {
    return (received, total) => {
      if (received === 0) this.#receiving.add(index);
      if (received === total) this.#receiving.delete(index);
      if (this.isKilled || this.#acknowledged < this.#threshold || this.#receiving.size < this.#threshold) return;
      this.isKilled = true;
      this.#kill();
    };
  }
}

/**
 * Open-session counts (SPEC.md §4.8): how many sessions each task, and each identity in a task, holds open in this
 * process now. Not a cache: a live count of this process's own sockets, each released when its socket closes, so
 * it is per process by design (each server bounds its own descriptors and memory) and needs no invalidation.
 */
import type { SecureConnection } from '../transport/index.js';

/** Open sessions by key, each counted until its connection closes, at most `limit` per key. */
export class SessionCounter {
  readonly #counts = new Map<string, number>();
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Sessions open under `key` now. */
  openOf(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Counts `connection` under `key` until it closes. Returns false, counting nothing, when `key` is at the limit. */
  admit(key: string, connection: SecureConnection): boolean {
    const open = this.#counts.get(key) ?? 0;
    if (open >= this.limit) return false;
    this.#counts.set(key, open + 1);
    connection.onClose(() => {
      const left = (this.#counts.get(key) ?? 1) - 1;
      if (left <= 0) this.#counts.delete(key);
      else this.#counts.set(key, left);
    });
    return true;
  }
}

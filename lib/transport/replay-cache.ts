/**
 * A short-lived memory of initiator ephemeral keys (SPEC.md §2.4), so a replayed handshake message 1 is refused
 * before the server does any DH for it. Two generations rotate every window; the clock is passed in. Pure.
 */
import { REPLAY_CACHE_MAX_KEYS, REPLAY_WINDOW_MS } from './limits.js';

/** Remembers keys for between one and two windows. */
export class ReplayCache {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  #current = new Set<string>();
  #previous = new Set<string>();
  #rotatedAt: number;

  constructor(options: { now: () => number; windowMs?: number; maxKeys?: number }) {
    this.#now = options.now;
    this.#windowMs = options.windowMs ?? REPLAY_WINDOW_MS;
    this.#maxKeys = options.maxKeys ?? REPLAY_CACHE_MAX_KEYS;
    this.#rotatedAt = this.#now();
  }

  /** Records `key` and returns true if it is new; returns false if it was seen within the window. */
  checkAndRemember(key: Uint8Array): boolean {
    const now = this.#now();
    if (now - this.#rotatedAt >= 2 * this.#windowMs) {
      this.#previous = new Set();
      this.#current = new Set();
      this.#rotatedAt = now;
    } else if (now - this.#rotatedAt >= this.#windowMs || this.#current.size >= this.#maxKeys) {
      this.#previous = this.#current;
      this.#current = new Set();
      this.#rotatedAt = now;
    }
    // Latin-1 maps each byte to one character: a compact key string made without copying the bytes first.
    const id = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
    if (this.#current.has(id) || this.#previous.has(id)) return false;
    this.#current.add(id);
    return true;
  }

  /** Keys held now. */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }
}

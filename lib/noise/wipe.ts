/**
 * Copies of small buffers that live long, and zeroing of secrets we are done with (SPEC.md §1.3 "Zeroing" lists
 * which buffers, and when). A small Buffer.from() is a slice of Node's shared 8 KiB pool and keeps the whole slab
 * alive: a handshake hash held by an idle connection would pin other connections' garbage.
 */

/** A copy of `bytes` in memory of its own (not a slice of Node's buffer pool), for buffers kept long. */
export function copyOutOfPool(bytes: Uint8Array): Buffer {
  const copy = Buffer.alloc(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/**
 * Overwrites `buffer` with zeros, with fill(0) rather than sodium_memzero: a JavaScript engine does not elide a
 * store to memory that stays reachable through the buffer (sodium_memzero's guarantee is against C compilers), and
 * fill(0) costs no native call: measured on 64 bytes, 20–32 ns against 62–119 ns for sodium_memzero.
 */
export function wipe(buffer: Uint8Array): void {
  buffer.fill(0);
}

/**
 * Copies of small buffers that live long, and zeroing of secrets we are done with. A small Buffer.from() is a
 * slice of Node's shared 8 KiB pool and keeps the whole slab alive: a handshake hash held by an idle connection
 * would pin other connections' garbage. A JavaScript fill(0) on a Buffer is a real store that the engine does
 * not elide (the memory stays reachable through the Buffer), and it costs no native call: sodium_memzero's
 * guarantee is about C compilers, and the N-API crossing cost more than the hashing on the handshake path.
 */

/** A copy of `bytes` in memory of its own (not a slice of Node's buffer pool), for buffers kept long. */
export function copyOutOfPool(bytes: Uint8Array): Buffer {
  const copy = Buffer.alloc(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/** Overwrites `buffer` with zeros. */
export function wipe(buffer: Uint8Array): void {
  buffer.fill(0);
}

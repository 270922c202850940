/**
 * Zeroing of secrets we are done with. A JavaScript fill(0) on a Buffer is a real store that the engine does not
 * elide (the memory stays reachable through the Buffer), and it costs no native call: sodium_memzero's guarantee
 * is about C compilers, and the N-API crossing cost more than the hashing on the handshake path.
 */

/** Overwrites `buffer` with zeros. */
export function wipe(buffer: Uint8Array): void {
  buffer.fill(0);
}

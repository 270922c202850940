/**
 * Bytes lent for the length of one call: a chunk of the read buffer that client sockets share (socket-chunks.ts),
 * or a frame in the decoder's reused assembly buffer (framing.ts). The type is opaque, not a Uint8Array, so the
 * checker refuses to store or pass one on as ordinary bytes: a callee reads it with viewLent() before it returns,
 * or keeps it with copyLent(). At run time a LentBytes is the Buffer itself; the functions below cost nothing.
 */

declare const LENT: unique symbol;

/** Bytes valid only until the call that received them returns. */
export interface LentBytes {
  readonly [LENT]: 'valid only during the call that received it';
}

/** Bytes a callee treats as lent: a LentBytes, or plain bytes the caller may reuse once the call returns. */
export type BytesForTheCall = LentBytes | Uint8Array;

/** Marks `bytes` as lent to the callee, for this call only. */
export function lend(bytes: Buffer): LentBytes {
  return bytes as unknown as LentBytes;
}

/** The lent bytes as a Buffer that must not outlive the call (decrypt from it, scan it, copy from it). */
export function viewLent(bytes: LentBytes): Buffer {
  return bytes as unknown as Buffer;
}

/** A copy of the lent bytes, to keep. */
export function copyLent(bytes: LentBytes): Buffer {
  return Buffer.from(bytes as unknown as Buffer);
}

/** Bytes given for the call, lent or not, as a view that must not outlive the call. */
export function viewForTheCall(bytes: BytesForTheCall): Uint8Array {
  return bytes as Uint8Array;
}

/**
 * Reusable buffers for the channel's sending side (SPEC.md §2.5). A fresh megabyte costs page faults on first
 * write, several times the copy into it; a buffer the socket has finished writing is taken again instead. The
 * pool is shared by every connection of the process and holds a bounded number of buffers.
 */

/** Bytes of each pooled buffer: one batch of records, about 1 MiB. */
export const POOLED_BUFFER_BYTES = 16 * (65535 + 2);
/** Batches smaller than this are allocated as usual: a pooled megabyte for them would waste most of itself. */
const POOL_FROM_BYTES = 256 * 1024;
/** Buffers kept for reuse, at most. */
const MAX_POOLED_BUFFERS = 16;

const free: Buffer[] = [];

/** A buffer of exactly `bytes` bytes (at most POOLED_BUFFER_BYTES) and the function that gives it back. */
export function takeSendBuffer(bytes: number): { buffer: Buffer; release: (() => void) | null } {
  if (bytes < POOL_FROM_BYTES || bytes > POOLED_BUFFER_BYTES) return { buffer: Buffer.allocUnsafe(bytes), release: null };
  const whole = free.pop() ?? Buffer.allocUnsafe(POOLED_BUFFER_BYTES);
  return {
    buffer: whole.subarray(0, bytes),
    release: () => {
      if (free.length < MAX_POOLED_BUFFERS) free.push(whole);
    },
  };
}

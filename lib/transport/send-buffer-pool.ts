/**
 * Reusable buffers for the channel's sending side (SPEC.md §2.5). A fresh buffer of tens of kilobytes or more
 * costs page faults on first write, several times the copy into it; a buffer the socket has finished writing is
 * taken again instead. Two sizes are pooled: one full record (a CHUNK of a pull) and one batch of 16 records
 * (a megabyte of a long message). The pools are shared by every connection of the process and bounded.
 */
import { BATCH_WIRE_BYTES, FULL_RECORD_WIRE_BYTES, MAX_POOLED_BUFFERS, POOLED_BATCH_FROM_BYTES, POOLED_RECORD_FROM_BYTES } from './limits.js';

/** Bytes of the largest pooled buffer: one batch of full records (limits.ts). */
export const POOLED_BUFFER_BYTES = BATCH_WIRE_BYTES;

interface SizeClass {
  /** Smallest request served from this pool: smaller ones would waste most of the buffer. */
  fromBytes: number;
  bufferBytes: number;
  free: Buffer[];
}

const SIZE_CLASSES: readonly SizeClass[] = [
  { fromBytes: POOLED_RECORD_FROM_BYTES, bufferBytes: FULL_RECORD_WIRE_BYTES, free: [] },
  { fromBytes: POOLED_BATCH_FROM_BYTES, bufferBytes: BATCH_WIRE_BYTES, free: [] },
];

/**
 * A buffer of exactly `bytes` bytes and, when it came from a pool, the function that gives it back once nothing
 * reads it any more. Calling that function again does nothing: a buffer is never in the pool twice.
 */
export function takeSendBuffer(bytes: number): { buffer: Buffer; release: (() => void) | null } {
  const sizeClass = SIZE_CLASSES.find((candidate) => bytes >= candidate.fromBytes && bytes <= candidate.bufferBytes);
  if (sizeClass === undefined) return { buffer: Buffer.allocUnsafe(bytes), release: null };
  const whole = sizeClass.free.pop() ?? Buffer.allocUnsafe(sizeClass.bufferBytes);
  let isReleased = false;
  return {
    buffer: whole.subarray(0, bytes),
    release: () => {
      if (isReleased) return;
      isReleased = true;
      if (sizeClass.free.length < MAX_POOLED_BUFFERS) sizeClass.free.push(whole);
    },
  };
}

/**
 * The wire framing of SPEC.md §2.1 (Noise rev. 34 §13): every Noise message is sent as a 2-byte big-endian length
 * followed by the message. The decoder is incremental and pure: it accepts any chunking, and it holds at most one
 * partial frame (at most `maxFrameBytes` + 2 bytes) besides what it has already handed out.
 */
import { NoiseCfgError } from '../errors.js';
import { viewForTheCall, type BytesForTheCall, type LentBytes } from './lent-bytes.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './limits.js';

export { FRAME_HEADER_BYTES, MAX_FRAME_BYTES };

const EMPTY = Buffer.alloc(0);

/** Prefixes `message` with its 2-byte big-endian length. Throws MESSAGE_TOO_LONG over MAX_FRAME_BYTES. */
export function encodeFrame(message: Uint8Array): Buffer {
  if (message.byteLength > MAX_FRAME_BYTES) {
    throw new NoiseCfgError('MESSAGE_TOO_LONG', `frame body of ${message.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.byteLength);
  frame.writeUInt16BE(message.byteLength, 0);
  frame.set(message, FRAME_HEADER_BYTES);
  return frame;
}

/** Splits a byte stream into frame bodies. */
export class FrameDecoder {
  #maxFrameBytes: number;
  /** Bytes of the frame being assembled (header included); null between frames. */
  #partial: Buffer | null = null;
  /** How many bytes of #partial are filled. */
  #filled = 0;
  /** The first header byte, when a chunk ends inside the 2-byte prefix (a number, not a buffer per decoder). */
  #headerFirstByte = 0;
  #headerFilled = 0;
  #hasFailed = false;
  /** pushEach's reusable assembly buffer for frames that span chunks; null when none is held. */
  #spare: Buffer | null = null;

  /** `maxFrameBytes` (at most MAX_FRAME_BYTES) bounds a frame body; a larger length prefix is FRAME_INVALID. */
  constructor(maxFrameBytes: number = MAX_FRAME_BYTES) {
    this.#maxFrameBytes = checkMaxFrameBytes(maxFrameBytes);
  }

  /** Changes the bound for frames not yet started, e.g. once a peer has authenticated. */
  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkMaxFrameBytes(value);
  }

  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** True when no partial frame is buffered (a clean place for the stream to end). */
  get isAtFrameBoundary(): boolean {
    return this.#partial === null && this.#headerFilled === 0;
  }

  /** Bytes held for the frame in progress. */
  get bufferedBytes(): number {
    return this.#partial === null ? this.#headerFilled : this.#filled;
  }

  /**
   * Consumes one chunk and returns the frame bodies it completes, in order. Throws FRAME_INVALID on a length
   * prefix over the bound; the decoder is then unusable (the stream cannot be resynchronised).
   */
  push(chunk: Uint8Array): Buffer[] {
    const frames: Buffer[] = [];
    this.#consume(chunk, false, (body) => frames.push(body));
    return frames;
  }

  /**
   * As push(), for a chunk lent for the call (or one the caller will reuse): every frame returned is the caller's
   * to keep, those that view the chunk copied out of it.
   */
  pushKept(chunk: BytesForTheCall): Buffer[] {
    const bytes = viewForTheCall(chunk);
    const frames: Buffer[] = [];
    this.#consume(bytes, false, (body) => frames.push(body.buffer === bytes.buffer ? Buffer.from(body) : body));
    return frames;
  }

  /**
   * Consumes one chunk and calls `onFrame` with each frame body it completes, in order. Unlike push() it copies
   * the frames that span chunks into one buffer it reuses, so each body is lent for its call only. For
   * receivers that decrypt each frame out of place at once. Throws as push() does.
   */
  pushEach(chunk: BytesForTheCall, onFrame: (body: LentBytes) => void): void {
    // A LentBytes is the Buffer at run time: the callback is passed as it is, with no wrapper per chunk.
    this.#consume(viewForTheCall(chunk), true, onFrame as unknown as (body: Buffer) => void);
    // An idle connection keeps no assembly buffer; a busy one, whose chunks rarely end between frames, reuses it.
    if (this.isAtFrameBoundary) this.#spare = null;
  }

  #consume(chunk: Uint8Array, isReusing: boolean, onFrame: (body: Buffer) => void): void {
    if (this.#hasFailed) throw new NoiseCfgError('FRAME_INVALID', 'the frame decoder already failed');
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.#partial !== null) {
        const partial: Buffer = this.#partial;
        const take = Math.min(partial.byteLength - this.#filled, chunk.byteLength - offset);
        partial.set(chunk.subarray(offset, offset + take), this.#filled);
        this.#filled += take;
        offset += take;
        if (this.#filled === partial.byteLength) {
          this.#partial = null;
          this.#filled = 0;
          onFrame(partial);
        }
        continue;
      }
      // Whole frames that sit inside the chunk are handed out as views of it, without a copy.
      if (this.#headerFilled === 0 && chunk.byteLength - offset >= FRAME_HEADER_BYTES) {
        const length = (chunk[offset]! << 8) | chunk[offset + 1]!;
        this.#checkLength(length);
        const end = offset + FRAME_HEADER_BYTES + length;
        if (end <= chunk.byteLength) {
          onFrame(Buffer.from(chunk.buffer, chunk.byteOffset + offset + FRAME_HEADER_BYTES, length));
          offset = end;
          continue;
        }
        this.#startFrame(length, isReusing);
        offset += FRAME_HEADER_BYTES;
        continue;
      }
      const length = this.#takeHeaderByte(chunk[offset++]!);
      if (length !== null) {
        this.#checkLength(length);
        this.#headerFilled = 0;
        if (length === 0) onFrame(EMPTY);
        else this.#startFrame(length, isReusing);
      }
    }
  }

  // One byte of a header split across chunks; the frame length once both bytes are in, else null.
  #takeHeaderByte(byte: number): number | null {
    if (this.#headerFilled === 0) {
      this.#headerFirstByte = byte;
      this.#headerFilled = 1;
      return null;
    }
    this.#headerFilled = FRAME_HEADER_BYTES;
    return (this.#headerFirstByte << 8) | byte;
  }

  #startFrame(length: number, isReusable = false): void {
    if (!isReusable) {
      this.#partial = Buffer.allocUnsafe(length);
    } else {
      if (this.#spare === null || this.#spare.byteLength < length) this.#spare = Buffer.allocUnsafe(Math.max(length, this.#spare?.byteLength ?? 0));
      this.#partial = this.#spare.subarray(0, length);
    }
    this.#filled = 0;
  }

  #checkLength(length: number): void {
    if (length > this.#maxFrameBytes) {
      this.#hasFailed = true;
      throw new NoiseCfgError('FRAME_INVALID', `frame length ${length} exceeds the limit of ${this.#maxFrameBytes} bytes`);
    }
  }
}

function checkMaxFrameBytes(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FRAME_BYTES) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `maxFrameBytes must be an integer from 0 to ${MAX_FRAME_BYTES}, got ${value}`);
  }
  return value;
}

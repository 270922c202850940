/**
 * Raw mode's messages (SPEC.md §2.7), pure: each application message is exactly one framed Noise transport message,
 * with no records, END or rekey schedule, and the stream ends with the FIN. Both halves in one small type, for the
 * socket adapter of secure-connection.ts.
 */
import { NoiseCfgError } from '../errors.js';
import { MAX_TRANSPORT_PLAINTEXT_BYTES, TAG_BYTES, type TransportState } from '../noise/index.js';
import { viewLent, type LentBytes } from './lent-bytes.js';
import { FRAME_HEADER_BYTES } from './limits.js';
import type { MessageReader } from './record-reader.js';
import type { MessageWriter, SealedSink } from './record-writer.js';

/** Both directions of a raw connection. */
export class RawMessages implements MessageWriter, MessageReader {
  /** One transport message's plaintext, the most a raw message can be. */
  readonly maxMessageBytes = MAX_TRANSPORT_PLAINTEXT_BYTES;
  readonly #transport: Pick<TransportState, 'encryptInPlace' | 'decryptInto'>;
  readonly #sink: SealedSink;

  constructor(transport: Pick<TransportState, 'encryptInPlace' | 'decryptInto'>, sink: SealedSink) {
    this.#transport = transport;
    this.#sink = sink;
  }

  /** Seals all of `message` (at most maxMessageBytes) in one frame. Throws NONCE_EXHAUSTED. */
  write(message: Uint8Array): number {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.byteLength + TAG_BYTES);
    frame.writeUInt16BE(message.byteLength + TAG_BYTES, 0);
    frame.set(message, FRAME_HEADER_BYTES);
    this.#transport.encryptInPlace(frame.subarray(FRAME_HEADER_BYTES), message.byteLength);
    this.#sink.writeSealed(frame, null);
    return message.byteLength;
  }

  /** Nothing: a raw stream ends with the FIN alone. */
  end(): void {}

  /** The message in `frame`. Throws DECRYPT_FAILED. */
  read(lent: LentBytes): Buffer {
    const frame = viewLent(lent);
    if (frame.byteLength < TAG_BYTES) {
      throw new NoiseCfgError('DECRYPT_FAILED', `transport message of ${frame.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
    }
    return this.#transport.decryptInto(frame, Buffer.allocUnsafe(frame.byteLength - TAG_BYTES));
  }

  /** A FIN between frames is the clean end; inside one, CONNECTION_TRUNCATED. */
  peerFinished(isAtFrameBoundary: boolean): NoiseCfgError | null {
    return isAtFrameBoundary ? null : new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection in the middle of a frame');
  }

  discard(): void {}
}

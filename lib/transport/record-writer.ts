/**
 * The sending half of the record layer (SPEC.md §2.5), pure: splits an application message into FRAGMENT records
 * and a FINAL one, seals them as framed Noise transport messages, sends REKEY on the schedule (after
 * rekeyAfterMessages messages or rekeyAfterMs under one key, on the clock it is given) and END. Sealed bytes go to
 * a SealedSink; it holds no socket and sets no timer (the socket adapter is secure-connection.ts).
 */
import { TAG_BYTES, type TransportState } from '../noise/index.js';
import { FRAME_HEADER_BYTES, MAX_RECORD_BODY_BYTES, RECORD_OVERHEAD_BYTES, RECORD_TYPE_BYTES, RECORDS_PER_WRITE, type ChannelLimits } from './limits.js';
import { RECORD_TYPES } from './records.js';
import { takeSendBuffer } from './send-buffer-pool.js';

/** Where sealed frames go, in order. */
export interface SealedSink {
  /** `release`, when not null, returns `bytes` to the send pool: call it once they are written (or the write failed). */
  writeSealed(bytes: Buffer, release: (() => void) | null): void;
}

/** What a connection needs of its sending half, records (this file) or raw (raw-messages.ts). */
export interface MessageWriter {
  /** The largest message write() takes, in bytes. */
  readonly maxMessageBytes: number;
  /**
   * Seals the next part of `message` from byte `offset` and hands it to the sink; returns the offset reached,
   * `message.byteLength` once it is all sent. A message of 0 bytes takes one call. Throws NONCE_EXHAUSTED.
   */
  write(message: Uint8Array, offset: number): number;
  /** Seals what ends the stream before the FIN, if anything. Throws NONCE_EXHAUSTED. */
  end(): void;
}

/** The transport state the writer seals with. */
export type SendingTransport = Pick<TransportState, 'encryptInPlace' | 'rekeySend'>;

/** The records of one connection's sending side, on its rekey schedule. */
export class RecordWriter implements MessageWriter {
  readonly maxMessageBytes: number;
  readonly #transport: SendingTransport;
  readonly #sink: SealedSink;
  readonly #rekeyAfterMessages: number;
  readonly #rekeyAfterMs: number;
  readonly #now: () => number;
  /** Transport messages sealed under the current key. */
  #sentUnderKey = 0;
  /** When the current key was taken into use, on `now`'s clock (milliseconds). */
  #keyStartedAt: number;

  constructor(transport: SendingTransport, sink: SealedSink, options: {
    limits: Pick<ChannelLimits, 'maxSendMessageBytes' | 'rekeyAfterMessages' | 'rekeyAfterMs'>;
    /** The rekey schedule's clock, in milliseconds. */
    now: () => number;
  }) {
    this.#transport = transport;
    this.#sink = sink;
    this.maxMessageBytes = options.limits.maxSendMessageBytes;
    this.#rekeyAfterMessages = options.limits.rekeyAfterMessages;
    this.#rekeyAfterMs = options.limits.rekeyAfterMs;
    this.#now = options.now;
    this.#keyStartedAt = options.now();
  }

  /**
   * Seals up to RECORDS_PER_WRITE records of `message` from `offset` in place in one buffer, handed to the sink
   * at once: one allocation and one socket write per megabyte instead of per record. A REKEY that is due goes
   * first, and a batch never crosses the message-count rekey point (the next one starts with REKEY).
   */
  write(message: Uint8Array, offset: number): number {
    if (this.#isRekeyDue()) this.#rekey();
    const recordsLeft = Math.max(1, Math.ceil((message.byteLength - offset) / MAX_RECORD_BODY_BYTES));
    const records = Math.min(recordsLeft, RECORDS_PER_WRITE, this.#rekeyAfterMessages - this.#sentUnderKey);
    const end = Math.min(message.byteLength, offset + records * MAX_RECORD_BODY_BYTES);
    const { buffer: batch, release } = takeSendBuffer(records * RECORD_OVERHEAD_BYTES + (end - offset));
    let position = 0;
    for (let bodyStart = offset, record = 0; record < records; record++) {
      const bodyEnd = Math.min(bodyStart + MAX_RECORD_BODY_BYTES, end);
      const plaintextBytes = RECORD_TYPE_BYTES + bodyEnd - bodyStart;
      batch.writeUInt16BE(plaintextBytes + TAG_BYTES, position);
      batch[position + FRAME_HEADER_BYTES] = bodyEnd === message.byteLength ? RECORD_TYPES.FINAL : RECORD_TYPES.FRAGMENT;
      batch.set(message.subarray(bodyStart, bodyEnd), position + FRAME_HEADER_BYTES + RECORD_TYPE_BYTES);
      const sealed = batch.subarray(position + FRAME_HEADER_BYTES, position + FRAME_HEADER_BYTES + plaintextBytes + TAG_BYTES);
      this.#transport.encryptInPlace(sealed, plaintextBytes);
      this.#sentUnderKey += 1;
      position += FRAME_HEADER_BYTES + plaintextBytes + TAG_BYTES;
      bodyStart = bodyEnd;
    }
    this.#sink.writeSealed(batch, release);
    return end;
  }

  /** Seals END (after a REKEY, if one is due). */
  end(): void {
    if (this.#isRekeyDue()) this.#rekey();
    this.#writeEmptyRecord(RECORD_TYPES.END);
  }

  #rekey(): void {
    this.#writeEmptyRecord(RECORD_TYPES.REKEY);
    this.#transport.rekeySend();
    this.#sentUnderKey = 0;
    this.#keyStartedAt = this.#now();
  }

  #writeEmptyRecord(type: number): void {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + RECORD_TYPE_BYTES + TAG_BYTES);
    frame.writeUInt16BE(RECORD_TYPE_BYTES + TAG_BYTES, 0);
    frame[FRAME_HEADER_BYTES] = type;
    this.#transport.encryptInPlace(frame.subarray(FRAME_HEADER_BYTES), RECORD_TYPE_BYTES);
    this.#sentUnderKey += 1;
    this.#sink.writeSealed(frame, null);
  }

  #isRekeyDue(): boolean {
    return this.#sentUnderKey >= this.#rekeyAfterMessages || this.#now() - this.#keyStartedAt >= this.#rekeyAfterMs;
  }
}

/**
 * The receiving half of the record layer (SPEC.md §2.5), pure: decrypts each frame, reassembles FRAGMENT records
 * into a message up to maxReceiveMessageBytes, follows the peer's REKEY, takes its END, and refuses READY or
 * anything after END. It holds no socket: the adapter (secure-connection.ts) feeds it frames and acts on what it
 * returns.
 */
import { NoiseCfgError } from '../errors.js';
import { MAX_TRANSPORT_PLAINTEXT_BYTES, TAG_BYTES, type TransportState } from '../noise/index.js';
import { viewLent, type LentBytes } from './lent-bytes.js';
import { MAX_ASSEMBLY_GUESS_BYTES, type ChannelLimits } from './limits.js';
import { decodeRecord, type RecordType } from './records.js';

/**
 * What a frame meant, besides a whole message (a Buffer): part of one ('fragment'), a key change that carries
 * no data ('control'), or the peer's authenticated end ('end').
 */
export type ReadEvent = 'fragment' | 'control' | 'end';

/** What a connection needs of its receiving half, records (this file) or raw (raw-messages.ts). */
export interface MessageReader {
  /**
   * Decrypts one frame body, lent for the call: a whole message (the caller's to keep) or what else it was.
   * Throws a NoiseCfgError (DECRYPT_FAILED, FRAME_INVALID, MESSAGE_TOO_LARGE, CONNECTION_TRUNCATED) that is final.
   */
  read(frame: LentBytes): Buffer | ReadEvent;
  /** The peer's FIN before anything ended the stream: the error it is, or null for a clean end. */
  peerFinished(isAtFrameBoundary: boolean): NoiseCfgError | null;
  /** Lets go of a message in reassembly: the connection failed. */
  discard(): void;
}

/** The transport state the reader opens with. */
export type ReceivingTransport = Pick<TransportState, 'decryptInto' | 'rekeyReceive'>;

/** The records of one connection's receiving side. */
export class RecordReader implements MessageReader {
  readonly #transport: ReceivingTransport;
  readonly #maxMessageBytes: number;
  /** Told once, when the first frame decrypts (the server's nnpsk0 proof of liveness); null after, or never set. */
  #onFirstDecrypt: (() => void) | null;
  /**
   * The message being reassembled: byte 0 is scratch, the body so far follows. Each record is decrypted straight
   * into place after the last body byte, its type byte over that byte, which is then put back. Null between
   * messages.
   */
  #assembly: Buffer | null = null;
  /** Body bytes of the message being reassembled. */
  #fragmentBytes = 0;
  /** Size of the last message that took more than one record: the guess for the next one. */
  #lastLongMessageBytes = 0;
  #isEnded = false;

  constructor(transport: ReceivingTransport, options: { limits: Pick<ChannelLimits, 'maxReceiveMessageBytes'>; onFirstDecrypt?: () => void }) {
    this.#transport = transport;
    this.#maxMessageBytes = options.limits.maxReceiveMessageBytes;
    this.#onFirstDecrypt = options.onFirstDecrypt ?? null;
  }

  /** True once a message is in reassembly. */
  get isMidMessage(): boolean {
    return this.#assembly !== null;
  }

  read(lent: LentBytes): Buffer | ReadEvent {
    const frame = viewLent(lent);
    if (this.#isEnded) throw new NoiseCfgError('FRAME_INVALID', 'data after the END record');
    if (frame.byteLength < TAG_BYTES) {
      throw new NoiseCfgError('DECRYPT_FAILED', `transport message of ${frame.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
    }
    const plaintextBytes = frame.byteLength - TAG_BYTES;
    if (this.#assembly !== null) return this.#readIntoAssembly(frame, plaintextBytes);
    // A full record usually starts a long message: set aside room for the size the last long one had.
    const capacity = plaintextBytes === MAX_TRANSPORT_PLAINTEXT_BYTES
      ? Math.max(plaintextBytes, Math.min(this.#lastLongMessageBytes + 1, MAX_ASSEMBLY_GUESS_BYTES))
      : plaintextBytes;
    const buffer = Buffer.allocUnsafe(capacity);
    const plaintext = this.#transport.decryptInto(frame, buffer.subarray(0, plaintextBytes));
    if (this.#onFirstDecrypt !== null) {
      const onFirstDecrypt = this.#onFirstDecrypt;
      this.#onFirstDecrypt = null;
      onFirstDecrypt();
    }
    const { type, body } = decodeRecord(plaintext);
    if (type === 'FRAGMENT') {
      this.#checkMessageSize(body.byteLength);
      this.#assembly = buffer;
      this.#fragmentBytes = body.byteLength;
      return 'fragment';
    }
    if (type === 'FINAL') {
      this.#checkMessageSize(body.byteLength);
      return capacity === plaintextBytes ? body : Buffer.from(body);
    }
    return this.#readControl(type);
  }

  peerFinished(): NoiseCfgError | null {
    const partial = this.#assembly !== null ? ' in the middle of a message' : '';
    return new NoiseCfgError('CONNECTION_TRUNCATED', `the peer closed the connection before its END record${partial}`);
  }

  discard(): void {
    this.#assembly = null;
    this.#fragmentBytes = 0;
  }

  #readIntoAssembly(frame: Buffer, plaintextBytes: number): Buffer | ReadEvent {
    // The record's body would follow the body so far; a control record's single byte lands on the kept byte.
    this.#checkMessageSize(this.#fragmentBytes + plaintextBytes - 1);
    const end = 1 + this.#fragmentBytes;
    if (end - 1 + plaintextBytes > this.#assembly!.byteLength) {
      const grown = Buffer.allocUnsafe(Math.max(end - 1 + plaintextBytes, 2 * this.#assembly!.byteLength));
      this.#assembly!.copy(grown, 0, 0, end);
      this.#assembly = grown;
    }
    const assembly = this.#assembly!;
    const kept = assembly[end - 1]!;
    let record;
    try {
      record = decodeRecord(this.#transport.decryptInto(frame, assembly.subarray(end - 1, end - 1 + plaintextBytes)));
    } finally {
      assembly[end - 1] = kept;
    }
    if (record.type !== 'FRAGMENT' && record.type !== 'FINAL') return this.#readControl(record.type);
    this.#fragmentBytes += record.body.byteLength;
    if (record.type === 'FRAGMENT') return 'fragment';
    const size = this.#fragmentBytes;
    // A guess far above the size is copied out rather than held by the message.
    const message = assembly.byteLength > 2 * (size + 1) ? Buffer.from(assembly.subarray(1, 1 + size)) : assembly.subarray(1, 1 + size);
    this.#assembly = null;
    this.#fragmentBytes = 0;
    this.#lastLongMessageBytes = size;
    return message;
  }

  #checkMessageSize(bytes: number): void {
    if (bytes > this.#maxMessageBytes) {
      throw new NoiseCfgError('MESSAGE_TOO_LARGE', `incoming message exceeds the limit of ${this.#maxMessageBytes} bytes`);
    }
  }

  #readControl(type: RecordType): ReadEvent {
    switch (type) {
      case 'REKEY':
        this.#transport.rekeyReceive();
        return 'control';
      case 'END':
        if (this.#assembly !== null) throw new NoiseCfgError('CONNECTION_TRUNCATED', 'END arrived in the middle of a message');
        this.#isEnded = true;
        return 'end';
      default:
        throw new NoiseCfgError('FRAME_INVALID', `${type} after the handshake`);
    }
  }
}

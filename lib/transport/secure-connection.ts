/**
 * An established channel (SPEC.md §2.5): application messages of any size up to a limit, split into records,
 * encrypted as Noise transport messages and framed; an authenticated END; REKEY on a schedule; backpressure both
 * ways. In raw mode each message is one plain Noise transport message and the stream simply ends.
 */
import type { Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { MAX_TRANSPORT_PLAINTEXT_BYTES, TAG_BYTES, type TransportState } from '../noise/index.js';
import type { ReaderLeftovers } from './frame-reader.js';
import { IdleSweep } from './idle-sweep.js';
import {
  FRAME_HEADER_BYTES, MAX_ASSEMBLY_GUESS_BYTES, MAX_FRAME_BYTES, MAX_RECORD_BODY_BYTES, RECORD_OVERHEAD_BYTES, RECORD_TYPE_BYTES, RECORDS_PER_WRITE,
  SEND_BUFFER_BYTES, YIELD_AFTER_BYTES, type ChannelLimits,
} from './limits.js';
import type { ChannelMode } from './preamble.js';
import { decodeRecord, RECORD_TYPES, type RecordType } from './records.js';
import { takeSendBuffer } from './send-buffer-pool.js';
import { onChunks } from './socket-chunks.js';

export { SEND_BUFFER_BYTES };

/** Symbol of the test-only door to the connection's TransportState; not re-exported from the package. */
export const TRANSPORT_FOR_TESTING = Symbol('noise-cfg testing only: transport state');

/** Who is at the other end, as the handshake established it. */
export interface ConnectionInfo {
  /** `xxpsk3`, `nnpsk0`, or `raw` for plain Noise over the framing. */
  mode: ChannelMode | 'raw';
  /** The task id from the preamble; null in raw mode. */
  taskId: string | null;
  /** Final handshake hash, equal on both sides (channel binding). */
  handshakeHash: Buffer;
  /** The peer's static public key, when the pattern carries one. */
  remoteStaticKey: Buffer | null;
  /** Server side: the `context` resolveTask gave with the task's key. */
  taskContext?: unknown;
}

type ReceiveState = 'open' | 'ended' | 'failed';

/** One secure connection after the handshake. Read with `for await (const message of connection)` or receive(). */
export class SecureConnection implements AsyncIterable<Buffer> {
  readonly mode: ChannelMode | 'raw';
  readonly taskId: string | null;
  readonly handshakeHash: Buffer;
  readonly remoteStaticKey: Buffer | null;
  /** Server side: what resolveTask returned as `context` for this connection's task; undefined otherwise. */
  readonly taskContext: unknown;

  readonly #socket: Socket;
  readonly #transport: TransportState;
  readonly #limits: ChannelLimits;
  readonly #isRaw: boolean;
  readonly #now: () => number;
  readonly #decoder: ReaderLeftovers['decoder'];

  readonly #messages: Buffer[] = [];
  #queuedBytes = 0;
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
  /** The decoder's callback, made on the first chunk: an idle connection holds no closure for it. */
  #onFrame: ((frame: Buffer) => void) | null = null;
  #remoteAddress: string | null = null;
  #receiveState: ReceiveState = 'open';
  #failure: NoiseCfgError | null = null;
  #readWaiters: { resolve: (message: Buffer | null) => void; reject: (error: Error) => void }[] = [];

  /** The last send, which the next one waits for; null before the first. */
  #sendChain: Promise<void> | null = null;
  #isSendClosed = false;
  #closing: Promise<void> | null = null;
  #sentUnderKey = 0;
  #keyStartedAt: number;
  #isSocketClosed = false;
  #isCorked = false;
  #closeListeners: (() => void)[] | null = null;
  /** When application data last went either way, in performance.now() milliseconds (the idle timeout's clock). */
  #lastActivityAt = performance.now();
  /** Server side, nnpsk0: told once when the client's first transport message decrypts; null after (or never set). */
  #onFirstDecrypt: (() => void) | null = null;

  // One timer for the idle timeout of every connection of the process (idle-sweep.ts).
  static readonly #idleSweep = new IdleSweep<SecureConnection>({
    deadlineOf: (connection) => connection.#lastActivityAt + connection.#limits.idleTimeoutMs,
    onIdle: (connection) => connection.destroy(new NoiseCfgError('IDLE_TIMEOUT', `no application data either way for ${connection.#limits.idleTimeoutMs} ms (idleTimeoutMs)`)),
  });

  // Socket listeners are shared functions that find their connection through the socket: an open connection
  // then holds no closures of its own (memory per idle connection, bench/).
  static readonly #bySocket = new WeakMap<Socket, SecureConnection>();
  static readonly #onSocketChunk = function (this: Socket, chunk: Buffer): void {
    const connection = SecureConnection.#bySocket.get(this);
    if (connection !== undefined) connection.#receiveChunk(chunk);
  };
  static readonly #onSocketEnd = function (this: Socket): void {
    const connection = SecureConnection.#bySocket.get(this);
    if (connection !== undefined) connection.#onPeerEnd();
  };
  static readonly #onSocketError = function (this: Socket, error: Error): void {
    const connection = SecureConnection.#bySocket.get(this);
    // A reset after the peer's END (it closed without waiting for ours) is no failure: make no error for it.
    if (connection !== undefined && connection.#receiveState === 'open') {
      connection.#fail(new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${error.message}`, { cause: error }));
    }
  };
  static readonly #onSocketClose = function (this: Socket): void {
    const connection = SecureConnection.#bySocket.get(this);
    if (connection !== undefined) connection.#onSocketClosed();
  };

  constructor(socket: Socket, transport: TransportState, leftovers: ReaderLeftovers, options: {
    info: ConnectionInfo;
    limits: ChannelLimits;
    now?: () => number;
    /** Called once, when the first transport message from the peer decrypts (the server's nnpsk0 liveness proof). */
    onFirstDecrypt?: () => void;
  }) {
    this.#socket = socket;
    this.#transport = transport;
    this.#limits = options.limits;
    this.#isRaw = options.info.mode === 'raw';
    this.#now = options.now ?? Date.now;
    this.#keyStartedAt = this.#now();
    this.mode = options.info.mode;
    this.taskId = options.info.taskId;
    this.handshakeHash = options.info.handshakeHash;
    this.remoteStaticKey = options.info.remoteStaticKey;
    this.taskContext = options.info.taskContext;
    this.#decoder = leftovers.decoder;
    this.#decoder.maxFrameBytes = MAX_FRAME_BYTES;
    this.#onFirstDecrypt = options.onFirstDecrypt ?? null;

    SecureConnection.#bySocket.set(socket, this);
    onChunks(socket, SecureConnection.#onSocketChunk);
    socket.on('end', SecureConnection.#onSocketEnd);
    socket.on('error', SecureConnection.#onSocketError);
    socket.on('close', SecureConnection.#onSocketClose);
    if (this.#limits.idleTimeoutMs > 0) SecureConnection.#idleSweep.add(this);
    for (const frame of leftovers.frames) this.#receiveFrame(frame);
    if (leftovers.isEnded) this.#onPeerEnd();
  }

  /** The peer's address and port, for logs. */
  get remoteAddress(): string {
    this.#remoteAddress ??= `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? '?'}`;
    return this.#remoteAddress;
  }

  #onSocketClosed(): void {
    // The address stays readable for logs written after the close.
    void this.remoteAddress;
    this.#isSocketClosed = true;
    SecureConnection.#idleSweep.delete(this);
    this.#onPeerEnd();
    this.#transport.dispose();
    const listeners = this.#closeListeners;
    this.#closeListeners = null;
    if (listeners !== null) for (const listener of listeners) listener();
  }

  /**
   * Sends one application message. Resolves once it is handed to the socket without exceeding its buffer, so
   * awaiting each send respects backpressure. Throws MESSAGE_TOO_LARGE, CONNECTION_CLOSED, NONCE_EXHAUSTED.
   */
  send(message: Uint8Array): Promise<void> {
    if (!(message instanceof Uint8Array)) return Promise.reject(new NoiseCfgError('INVALID_ARGUMENT', 'message must be a Uint8Array'));
    const limit = this.#isRaw ? MAX_TRANSPORT_PLAINTEXT_BYTES : this.#limits.maxSendMessageBytes;
    if (message.byteLength > limit) {
      return Promise.reject(new NoiseCfgError('MESSAGE_TOO_LARGE', `message of ${message.byteLength} bytes exceeds the limit of ${limit}`));
    }
    if (this.#isSendClosed || this.#isSocketClosed) return Promise.reject(new NoiseCfgError('CONNECTION_CLOSED', 'cannot send: the connection is closed'));
    this.#lastActivityAt = performance.now();
    const sending = this.#sendChain === null ? this.#writeMessage(message) : this.#sendChain.then(() => this.#writeMessage(message));
    this.#sendChain = sending.catch(() => undefined);
    return sending;
  }

  /** The next message, or null after the peer's authenticated END. Rejects with the connection's error. */
  receive(): Promise<Buffer | null> {
    const message = this.#messages.shift();
    if (message) {
      this.#queuedBytes -= message.byteLength;
      if (this.#queuedBytes <= this.#limits.receiveHighWaterBytes && !this.#isSocketClosed) this.#socket.resume();
      return Promise.resolve(message);
    }
    if (this.#receiveState === 'ended') return Promise.resolve(null);
    if (this.#receiveState === 'failed') return Promise.reject(this.#failure!);
    return new Promise((resolve, reject) => this.#readWaiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /** Sends the authenticated END (not in raw mode) after pending sends, then half-closes the socket. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#isSendClosed = true;
    this.#closing = (this.#sendChain ?? Promise.resolve()).then(async () => {
      if (this.#isSocketClosed) return;
      if (this.#failure) {
        this.#socket.destroy();
        return;
      }
      if (!this.#isRaw) this.#writeControlRecord('END');
      await new Promise<void>((resolve) => this.#socket.end(resolve));
    });
    return this.#closing;
  }

  /** Closes at once, without END; pending and later reads reject with `error` (CONNECTION_CLOSED by default). */
  destroy(error?: NoiseCfgError): void {
    this.#fail(error ?? new NoiseCfgError('CONNECTION_CLOSED', 'the connection was closed locally'));
    this.#isSendClosed = true;
    // What send() already accepted gets the same one attempt at the kernel it would have had without corking.
    this.#uncork();
    this.#socket.destroy();
  }

  /** Resolves when the socket has closed. */
  waitClosed(): Promise<void> {
    if (this.#isSocketClosed) return Promise.resolve();
    return new Promise((resolve) => this.onClose(resolve));
  }

  /** Calls `listener` once the socket has closed (at once if it has), without making a promise. */
  onClose(listener: () => void): void {
    if (this.#isSocketClosed) {
      listener();
      return;
    }
    (this.#closeListeners ??= []).push(listener);
  }

  /** The error that ended the connection, if any. */
  get failure(): NoiseCfgError | null {
    return this.#failure;
  }

  get [TRANSPORT_FOR_TESTING](): TransportState {
    return this.#transport;
  }

  async #writeMessage(message: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      if (this.#isRaw) {
        const frame = this.#newFrame(message.byteLength);
        frame.set(message, FRAME_HEADER_BYTES);
        this.#sealFrame(frame, message.byteLength);
      } else {
        let offset = 0;
        do {
          const start = offset;
          offset = this.#writeRecords(message, offset);
          // Encrypting ahead of the kernel keeps both busy; waiting at Node's 16 KiB high-water mark would not.
          if (this.#socket.writableLength > SEND_BUFFER_BYTES) {
            await this.#drain();
          } else if (offset - start >= YIELD_AFTER_BYTES) {
            // The kernel took it all: still let the event loop turn, so that finished writes return their buffers
            // and other connections are served while one sends megabytes.
            this.#uncork();
            await new Promise(setImmediate);
          }
        } while (offset < message.byteLength);
      }
      if (this.#socket.writableLength > SEND_BUFFER_BYTES) await this.#drain();
    } catch (error) {
      if (isNoiseCfgError(error) && error.code === 'NONCE_EXHAUSTED') this.destroy(error);
      throw error;
    }
  }

  // Up to RECORDS_PER_WRITE records of `message` from `offset`, encrypted in place in one buffer and written at
  // once: one allocation and one socket write per megabyte instead of per record. Returns the offset reached.
  #writeRecords(message: Uint8Array, offset: number): number {
    if (this.#isRekeyDue()) this.#rekeySend();
    const recordsLeft = Math.max(1, Math.ceil((message.byteLength - offset) / MAX_RECORD_BODY_BYTES));
    // A batch never crosses the message-count rekey point: the next batch starts with REKEY.
    const records = Math.min(recordsLeft, RECORDS_PER_WRITE, this.#limits.rekeyAfterMessages - this.#sentUnderKey);
    const end = Math.min(message.byteLength, offset + records * MAX_RECORD_BODY_BYTES);
    if (this.#isSocketClosed || this.#socket.destroyed) throw new NoiseCfgError('CONNECTION_CLOSED', 'cannot send: the connection is closed');
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
    // A long message in progress is activity, batch by batch; one stalled by a peer that stops reading is not.
    this.#lastActivityAt = performance.now();
    // The socket calls back once the kernel has the bytes (or the write failed): the buffer is free again.
    this.#cork();
    if (release === null) this.#socket.write(batch);
    else this.#socket.write(batch, release);
    return end;
  }

  #rekeySend(): void {
    this.#writeControlRecord('REKEY');
    this.#transport.rekeySend();
    this.#sentUnderKey = 0;
    this.#keyStartedAt = this.#now();
  }

  // A record with no body (END, REKEY); messages go out through #writeRecords.
  #writeControlRecord(type: 'END' | 'REKEY'): void {
    if (type !== 'REKEY' && this.#isRekeyDue()) this.#rekeySend();
    const frame = this.#newFrame(RECORD_TYPE_BYTES);
    frame[FRAME_HEADER_BYTES] = RECORD_TYPES[type];
    this.#sealFrame(frame, RECORD_TYPE_BYTES);
    this.#sentUnderKey += 1;
  }

  #newFrame(plaintextBytes: number): Buffer {
    if (this.#isSocketClosed || this.#socket.destroyed) throw new NoiseCfgError('CONNECTION_CLOSED', 'cannot send: the connection is closed');
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + plaintextBytes + TAG_BYTES);
    frame.writeUInt16BE(plaintextBytes + TAG_BYTES, 0);
    return frame;
  }

  #sealFrame(frame: Buffer, plaintextBytes: number): void {
    this.#transport.encryptInPlace(frame.subarray(FRAME_HEADER_BYTES), plaintextBytes);
    this.#cork();
    this.#socket.write(frame);
  }

  #isRekeyDue(): boolean {
    return this.#sentUnderKey >= this.#limits.rekeyAfterMessages || this.#now() - this.#keyStartedAt >= this.#limits.rekeyAfterMs;
  }

  // Writes made in one turn of the event loop (a burst of sends, or a send and END) leave in one system call:
  // the socket is corked at the first and uncorked once the turn's callbacks and promise jobs have run.
  #cork(): void {
    if (this.#isCorked) return;
    this.#isCorked = true;
    this.#socket.cork();
    process.nextTick(SecureConnection.#uncorkLater, this);
  }

  static #uncorkLater(connection: SecureConnection): void {
    connection.#uncork();
  }

  #uncork(): void {
    if (!this.#isCorked) return;
    this.#isCorked = false;
    this.#socket.uncork();
  }

  #drain(): Promise<void> {
    // Corked bytes never drain.
    this.#uncork();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.#failure ?? new NoiseCfgError('CONNECTION_CLOSED', 'the connection closed while sending'));
      };
      const cleanup = (): void => {
        this.#socket.off('drain', onDrain);
        this.#socket.off('close', onClose);
      };
      this.#socket.on('drain', onDrain);
      this.#socket.on('close', onClose);
    });
  }

  #receiveChunk(chunk: Buffer): void {
    if (this.#receiveState === 'failed') return;
    try {
      this.#onFrame ??= (frame: Buffer): void => this.#receiveFrame(frame);
      this.#decoder.pushEach(chunk, this.#onFrame);
    } catch (error) {
      this.destroy(error as NoiseCfgError);
    }
  }

  // `frame` may be a view of the socket's chunk or of the decoder's reused buffer: it is decrypted out of place at
  // once and not kept.
  #receiveFrame(frame: Buffer): void {
    // A frame can fail the connection; the ones after it are not read.
    if (this.#failure !== null) return;
    try {
      if (this.#receiveState === 'ended') throw new NoiseCfgError('FRAME_INVALID', 'data after the END record');
      if (frame.byteLength < TAG_BYTES) {
        throw new NoiseCfgError('DECRYPT_FAILED', `transport message of ${frame.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
      }
      const plaintextBytes = frame.byteLength - TAG_BYTES;
      if (this.#isRaw) {
        const message = this.#transport.decryptInto(frame, Buffer.allocUnsafe(plaintextBytes));
        this.#lastActivityAt = performance.now();
        this.#deliver(message);
        return;
      }
      if (this.#assembly !== null) {
        this.#receiveIntoAssembly(frame, plaintextBytes);
        return;
      }
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
        if (this.#failure !== null) return;
      }
      const { type, body } = decodeRecord(plaintext);
      if (type === 'FRAGMENT' || type === 'FINAL') this.#lastActivityAt = performance.now();
      if (type === 'FRAGMENT') {
        this.#checkMessageSize(body.byteLength);
        this.#assembly = buffer;
        this.#fragmentBytes = body.byteLength;
      } else if (type === 'FINAL') {
        this.#checkMessageSize(body.byteLength);
        this.#deliver(capacity === plaintextBytes ? body : Buffer.from(body));
      } else {
        this.#receiveControl(type);
      }
    } catch (error) {
      this.destroy(isNoiseCfgError(error) ? error : new NoiseCfgError('FRAME_INVALID', (error as Error).message, { cause: error }));
    }
  }

  #receiveIntoAssembly(frame: Buffer, plaintextBytes: number): void {
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
    if (record.type === 'FRAGMENT' || record.type === 'FINAL') {
      this.#lastActivityAt = performance.now();
      this.#fragmentBytes += record.body.byteLength;
      if (record.type === 'FINAL') {
        const size = this.#fragmentBytes;
        // A guess far above the size is copied out rather than held by the message.
        const message = assembly.byteLength > 2 * (size + 1) ? Buffer.from(assembly.subarray(1, 1 + size)) : assembly.subarray(1, 1 + size);
        this.#assembly = null;
        this.#fragmentBytes = 0;
        this.#lastLongMessageBytes = size;
        this.#deliver(message);
      }
      return;
    }
    this.#receiveControl(record.type);
  }

  #checkMessageSize(bytes: number): void {
    if (bytes > this.#limits.maxReceiveMessageBytes) {
      throw new NoiseCfgError('MESSAGE_TOO_LARGE', `incoming message exceeds the limit of ${this.#limits.maxReceiveMessageBytes} bytes`);
    }
  }

  #receiveControl(type: RecordType): void {
    switch (type) {
      case 'REKEY':
        this.#transport.rekeyReceive();
        return;
      case 'END':
        if (this.#assembly !== null) throw new NoiseCfgError('CONNECTION_TRUNCATED', 'END arrived in the middle of a message');
        this.#receiveState = 'ended';
        this.#wakeReaders();
        return;
      default:
        throw new NoiseCfgError('FRAME_INVALID', `${type} after the handshake`);
    }
  }

  #deliver(message: Buffer): void {
    const waiter = this.#readWaiters.shift();
    if (waiter) {
      waiter.resolve(message);
      return;
    }
    this.#messages.push(message);
    this.#queuedBytes += message.byteLength;
    // A reader that does not keep up stops the socket; TCP flow control then slows the sender.
    if (this.#queuedBytes > this.#limits.receiveHighWaterBytes) this.#socket.pause();
  }

  #onPeerEnd(): void {
    if (this.#receiveState !== 'open') return;
    if (this.#onFirstDecrypt !== null && !this.#isSocketClosed) {
      // Still in the server's handshake (nnpsk0): a peer that gives up frees its place at once.
      this.destroy(new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake'));
      return;
    }
    if (this.#isRaw) {
      if (!this.#decoder.isAtFrameBoundary) {
        this.#fail(new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection in the middle of a frame'));
        return;
      }
      this.#receiveState = 'ended';
      this.#wakeReaders();
      return;
    }
    const partial = this.#assembly !== null ? ' in the middle of a message' : '';
    this.#fail(new NoiseCfgError('CONNECTION_TRUNCATED', `the peer closed the connection before its END record${partial}`));
  }

  #fail(error: NoiseCfgError): void {
    if (this.#receiveState === 'failed') return;
    if (this.#receiveState === 'ended' && error.code === 'CONNECTION_TRUNCATED') return;
    this.#failure = error;
    this.#receiveState = 'failed';
    this.#assembly = null;
    this.#fragmentBytes = 0;
    this.#wakeReaders();
  }

  #wakeReaders(): void {
    for (const waiter of this.#readWaiters.splice(0)) {
      if (this.#receiveState === 'failed') waiter.reject(this.#failure!);
      else waiter.resolve(null);
    }
  }
}

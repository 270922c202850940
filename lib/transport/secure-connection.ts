/**
 * An established channel on its socket (SPEC.md §2.5, §2.7, §2.8): the adapter between a socket and the pure halves
 * of the connection, a MessageWriter and a MessageReader (record-writer.ts and record-reader.ts, or raw-messages.ts
 * in raw mode). It owns the socket mechanics and nothing of the wire format: corked writes (socket-sink.ts), drain
 * and backpressure both ways, the idle timeout (idle-sweep.ts), close and destroy. It is over 300 lines because it
 * is one socket's whole life in one class whose socket listeners are shared statics, so that an idle connection
 * holds no closures and no helper objects beyond its writer, reader and sink (memory per connection, bench/).
 */
import type { Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import type { TransportState } from '../noise/index.js';
import type { ReaderLeftovers } from './frame-reader.js';
import { IdleSweep } from './idle-sweep.js';
import { lend, type LentBytes } from './lent-bytes.js';
import { MAX_FRAME_BYTES, SEND_BUFFER_BYTES, YIELD_AFTER_BYTES, type ChannelLimits } from './limits.js';
import type { ChannelMode } from './preamble.js';
import { RawMessages } from './raw-messages.js';
import { RecordReader, type MessageReader, type ReadEvent } from './record-reader.js';
import { RecordWriter, type MessageWriter } from './record-writer.js';
import { onChunks } from './socket-chunks.js';
import { SocketSink } from './socket-sink.js';

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
}

type ReceiveState = 'open' | 'ended' | 'failed';

/** One secure connection after the handshake. Read with `for await (const message of connection)` or receive(). */
export class SecureConnection implements AsyncIterable<Buffer> {
  readonly mode: ChannelMode | 'raw';
  readonly taskId: string | null;
  readonly handshakeHash: Buffer;
  readonly remoteStaticKey: Buffer | null;

  readonly #socket: Socket;
  readonly #transport: TransportState;
  readonly #limits: ChannelLimits;
  readonly #sink: SocketSink;
  readonly #writer: MessageWriter;
  readonly #reader: MessageReader;
  readonly #decoder: ReaderLeftovers['decoder'];

  readonly #messages: Buffer[] = [];
  #queuedBytes = 0;
  /** The decoder's callback, made on the first chunk: an idle connection holds no closure for it. */
  #onFrame: ((frame: LentBytes) => void) | null = null;
  #remoteAddress: string | null = null;
  #receiveState: ReceiveState = 'open';
  #failure: NoiseCfgError | null = null;
  #readWaiters: { resolve: (message: Buffer | null) => void; reject: (error: Error) => void }[] = [];

  /** The last send, which the next one waits for; null before the first. */
  #sendChain: Promise<void> | null = null;
  #isSendClosed = false;
  #closing: Promise<void> | null = null;
  #isSocketClosed = false;
  #closeListeners: (() => void)[] | null = null;
  /** When application data last went either way, in performance.now() milliseconds (the idle timeout's clock). */
  #lastActivityAt = performance.now();
  /** Server side, nnpsk0: true until the client's first transport message decrypts (the handshake still runs). */
  #isAwaitingFirstDecrypt: boolean;

  // One timer for the idle timeout of every connection of the process (idle-sweep.ts).
  static readonly #idleSweep = new IdleSweep<SecureConnection>({
    deadlineOf: (connection) => connection.#lastActivityAt + connection.#limits.idleTimeoutMs,
    onIdle: (connection) => connection.destroy(new NoiseCfgError('IDLE_TIMEOUT', `no application data either way for ${connection.#limits.idleTimeoutMs} ms (idleTimeoutMs)`)),
  });

  // Socket listeners are shared functions that find their connection through the socket: an open connection
  // then holds no closures of its own (memory per idle connection, bench/).
  static readonly #bySocket = new WeakMap<Socket, SecureConnection>();
  static readonly #onSocketChunk = function (this: Socket, chunk: LentBytes): void {
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
    /** The rekey schedule's clock, in milliseconds; Date.now by default. */
    now?: () => number;
    /** Called once, when the first transport message from the peer decrypts (the server's nnpsk0 liveness proof). */
    onFirstDecrypt?: () => void;
  }) {
    this.#socket = socket;
    this.#transport = transport;
    this.#limits = options.limits;
    this.mode = options.info.mode;
    this.taskId = options.info.taskId;
    this.handshakeHash = options.info.handshakeHash;
    this.remoteStaticKey = options.info.remoteStaticKey;
    this.#decoder = leftovers.decoder;
    this.#decoder.maxFrameBytes = MAX_FRAME_BYTES;
    this.#sink = new SocketSink(socket);
    const onFirstDecrypt = options.onFirstDecrypt;
    this.#isAwaitingFirstDecrypt = onFirstDecrypt !== undefined;
    if (options.info.mode === 'raw') {
      const raw = new RawMessages(transport, this.#sink);
      this.#writer = raw;
      this.#reader = raw;
    } else {
      this.#writer = new RecordWriter(transport, this.#sink, { limits: options.limits, now: options.now ?? Date.now });
      this.#reader = new RecordReader(transport, {
        limits: options.limits,
        ...(onFirstDecrypt === undefined ? {} : {
          onFirstDecrypt: () => {
            this.#isAwaitingFirstDecrypt = false;
            onFirstDecrypt();
          },
        }),
      });
    }

    SecureConnection.#bySocket.set(socket, this);
    onChunks(socket, SecureConnection.#onSocketChunk);
    socket.on('end', SecureConnection.#onSocketEnd);
    socket.on('error', SecureConnection.#onSocketError);
    socket.on('close', SecureConnection.#onSocketClose);
    if (this.#limits.idleTimeoutMs > 0) SecureConnection.#idleSweep.add(this);
    for (const frame of leftovers.frames) this.#receiveFrame(lend(frame));
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
    const limit = this.#writer.maxMessageBytes;
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
      this.#writer.end();
      await new Promise<void>((resolve) => this.#socket.end(resolve));
    });
    return this.#closing;
  }

  /** Closes at once, without END; pending and later reads reject with `error` (CONNECTION_CLOSED by default). */
  destroy(error?: NoiseCfgError): void {
    this.#fail(error ?? new NoiseCfgError('CONNECTION_CLOSED', 'the connection was closed locally'));
    this.#isSendClosed = true;
    // What send() already accepted gets the same one attempt at the kernel it would have had without corking.
    this.#sink.uncork();
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
      let offset = 0;
      do {
        const start = offset;
        offset = this.#writer.write(message, offset);
        // A long message in progress is activity, batch by batch; one stalled by a peer that stops reading is not.
        this.#lastActivityAt = performance.now();
        // Encrypting ahead of the kernel keeps both busy; waiting at Node's 16 KiB high-water mark would not.
        if (this.#socket.writableLength > SEND_BUFFER_BYTES) {
          await this.#drain();
        } else if (offset - start >= YIELD_AFTER_BYTES) {
          // The kernel took it all: still let the event loop turn, so that finished writes return their buffers
          // and other connections are served while one sends megabytes.
          this.#sink.uncork();
          await new Promise(setImmediate);
        }
      } while (offset < message.byteLength);
      if (this.#socket.writableLength > SEND_BUFFER_BYTES) await this.#drain();
    } catch (error) {
      if (isNoiseCfgError(error) && error.code === 'NONCE_EXHAUSTED') this.destroy(error);
      throw error;
    }
  }

  #drain(): Promise<void> {
    // Corked bytes never drain.
    this.#sink.uncork();
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

  #receiveChunk(chunk: LentBytes): void {
    if (this.#receiveState === 'failed') return;
    try {
      this.#onFrame ??= (frame: LentBytes): void => this.#receiveFrame(frame);
      this.#decoder.pushEach(chunk, this.#onFrame);
    } catch (error) {
      this.destroy(error as NoiseCfgError);
    }
  }

  #receiveFrame(frame: LentBytes): void {
    // A frame can fail the connection; the ones after it are not read.
    if (this.#failure !== null) return;
    let read: Buffer | ReadEvent;
    try {
      read = this.#reader.read(frame);
    } catch (error) {
      this.destroy(isNoiseCfgError(error) ? error : new NoiseCfgError('FRAME_INVALID', (error as Error).message, { cause: error }));
      return;
    }
    // The first decrypt (nnpsk0) may have failed the connection, as the server's handshake found no room for it.
    if (this.#failure !== null) {
      this.#reader.discard();
      return;
    }
    if (read === 'control') return;
    if (read === 'end') {
      this.#receiveState = 'ended';
      this.#wakeReaders();
      return;
    }
    this.#lastActivityAt = performance.now();
    if (read !== 'fragment') this.#deliver(read);
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
    if (this.#isAwaitingFirstDecrypt && !this.#isSocketClosed) {
      // Still in the server's handshake (nnpsk0): a peer that gives up frees its place at once.
      this.destroy(new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake'));
      return;
    }
    const failure = this.#reader.peerFinished(this.#decoder.isAtFrameBoundary);
    if (failure !== null) {
      this.#fail(failure);
      return;
    }
    this.#receiveState = 'ended';
    this.#wakeReaders();
  }

  #fail(error: NoiseCfgError): void {
    if (this.#receiveState === 'failed') return;
    if (this.#receiveState === 'ended' && error.code === 'CONNECTION_TRUNCATED') return;
    this.#failure = error;
    this.#receiveState = 'failed';
    this.#reader.discard();
    this.#wakeReaders();
  }

  #wakeReaders(): void {
    for (const waiter of this.#readWaiters.splice(0)) {
      if (this.#receiveState === 'failed') waiter.reject(this.#failure!);
      else waiter.resolve(null);
    }
  }
}

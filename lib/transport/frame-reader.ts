/**
 * Reads the clear preamble and handshake frames from a socket during the handshake (SPEC.md §2.3). It holds at
 * most a few small frames: a peer that has not authenticated cannot make it buffer more.
 */
import type { Socket } from 'node:net';
import { NoiseCfgError } from '../errors.js';
import { FrameDecoder } from './framing.js';
import { onChunks } from './socket-chunks.js';
import { MAX_PREAMBLE_BYTES, parsePreamble, type Preamble } from './preamble.js';

/** Frames a client may have queued at the server during the handshake: it never sends more than one at a time. */
const MAX_HANDSHAKE_FRAMES_QUEUED = 4;

/** What the reader hands to the connection once the handshake is done. */
export interface ReaderLeftovers {
  decoder: FrameDecoder;
  frames: Buffer[];
  isEnded: boolean;
}

/** Frame source for the handshake phase of one socket. */
export class FrameReader {
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  #preambleBytes: Buffer | null;
  #preambleWaiter: { resolve: (value: { preamble: Preamble; bytes: Buffer }) => void; reject: (error: Error) => void } | null = null;
  #preamble: { preamble: Preamble; bytes: Buffer } | null = null;
  readonly #frames: Buffer[] = [];
  #frameWaiter: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | null = null;
  #failure: Error | null = null;
  #isEnded = false;
  readonly #isServer: boolean;
  readonly #stopChunks: () => void;
  readonly #onEnd = (): void => {
    this.#isEnded = true;
    this.#wake();
  };
  readonly #onError = (error: Error): void => this.fail(new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${error.message}`, { cause: error }));
  readonly #onClose = (): void => {
    this.#isEnded = true;
    this.#wake();
  };

  constructor(socket: Socket, options: { maxFrameBytes: number; expectPreamble: boolean }) {
    this.#socket = socket;
    this.#decoder = new FrameDecoder(options.maxFrameBytes);
    this.#preambleBytes = options.expectPreamble ? Buffer.alloc(0) : null;
    this.#isServer = options.expectPreamble;
    this.#stopChunks = onChunks(socket, (chunk) => this.#receive(chunk));
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** The decoder's frame bound, raised once the peer has proved it knows the PSK. */
  set maxFrameBytes(value: number) {
    this.#decoder.maxFrameBytes = value;
  }

  /** Resolves with the client's preamble; rejects with PREAMBLE_INVALID, UNSUPPORTED_VERSION or UNSUPPORTED_MODE. */
  readPreamble(): Promise<{ preamble: Preamble; bytes: Buffer }> {
    if (this.#preamble) return Promise.resolve(this.#preamble);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#preambleWaiter = { resolve, reject };
      this.#wake();
    });
  }

  /** Resolves with the next frame body; rejects when the connection fails or ends first (CONNECTION_TRUNCATED). */
  readFrame(): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    const frame = this.#frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.#isEnded) return Promise.reject(truncated());
    return new Promise((resolve, reject) => {
      this.#frameWaiter = { resolve, reject };
    });
  }

  /** Fails every pending and later read with `error`. */
  fail(error: Error): void {
    if (this.#failure === null) this.#failure = error;
    this.#wake();
  }

  /** Stops listening and hands over what has been read but not consumed. */
  takeOver(): ReaderLeftovers {
    this.#stopChunks();
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('error', this.#onError);
    this.#socket.off('close', this.#onClose);
    return { decoder: this.#decoder, frames: this.#frames.splice(0), isEnded: this.#isEnded };
  }

  #receive(chunk: Buffer): void {
    if (this.#failure) return;
    try {
      let rest = chunk;
      if (this.#preambleBytes !== null) {
        const pending = Buffer.concat([this.#preambleBytes, chunk]);
        const parsed = parsePreamble(pending.subarray(0, MAX_PREAMBLE_BYTES));
        if (parsed.status === 'incomplete') {
          this.#preambleBytes = pending;
          return;
        }
        this.#preambleBytes = null;
        this.#preamble = { preamble: parsed.preamble, bytes: parsed.bytes };
        rest = pending.subarray(parsed.bytes.byteLength);
      }
      // Frames are kept past this call, and the chunk they view may be reused: keep copies.
      for (const frame of this.#decoder.push(rest)) this.#frames.push(frame.buffer === rest.buffer ? Buffer.from(frame) : frame);
      // Only a server bounds this: a client may get READY and the server's first messages in one chunk.
      if (this.#isServer && this.#frames.length > MAX_HANDSHAKE_FRAMES_QUEUED) {
        throw new NoiseCfgError('FRAME_INVALID', `peer sent ${this.#frames.length} frames before the handshake allowed them`);
      }
    } catch (error) {
      this.fail(error as Error);
    }
    this.#wake();
  }

  #wake(): void {
    if (this.#preambleWaiter) {
      const waiter = this.#preambleWaiter;
      if (this.#preamble) {
        this.#preambleWaiter = null;
        waiter.resolve(this.#preamble);
      } else if (this.#failure || this.#isEnded) {
        this.#preambleWaiter = null;
        waiter.reject(this.#failure ?? truncated());
      }
    }
    if (this.#frameWaiter) {
      const waiter = this.#frameWaiter;
      const frame = this.#frames.shift();
      if (frame) {
        this.#frameWaiter = null;
        waiter.resolve(frame);
      } else if (this.#failure || this.#isEnded) {
        this.#frameWaiter = null;
        waiter.reject(this.#failure ?? truncated());
      }
    }
  }
}

function truncated(): NoiseCfgError {
  return new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake');
}

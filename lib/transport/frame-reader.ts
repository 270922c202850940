/**
 * Reads handshake frames from a socket for raw mode, on either side (SPEC.md §2.7). The channel's handshakes are
 * state machines fed straight from the socket instead (client-handshake-socket.ts, server-handshake-socket.ts).
 */
import type { Socket } from 'node:net';
import { NoiseCfgError } from '../errors.js';
import { FrameDecoder } from './framing.js';
import type { LentBytes } from './lent-bytes.js';
import { onChunks } from './socket-chunks.js';

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
  readonly #frames: Buffer[] = [];
  #frameWaiter: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | null = null;
  #failure: Error | null = null;
  #isEnded = false;
  readonly #stopChunks: () => void;
  readonly #onEnd = (): void => {
    this.#isEnded = true;
    this.#wake();
  };
  readonly #onError = (error: Error): void => this.fail(new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${error.message}`, { cause: error }));

  constructor(socket: Socket, options: { maxFrameBytes: number }) {
    this.#socket = socket;
    this.#decoder = new FrameDecoder(options.maxFrameBytes);
    this.#stopChunks = onChunks(socket, (chunk) => this.#receive(chunk));
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onEnd);
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
    this.#socket.off('close', this.#onEnd);
    return { decoder: this.#decoder, frames: this.#frames.splice(0), isEnded: this.#isEnded };
  }

  #receive(chunk: LentBytes): void {
    if (this.#failure) return;
    try {
      // Frames are kept past this call: the decoder copies those that view the lent chunk.
      for (const frame of this.#decoder.pushKept(chunk)) this.#frames.push(frame);
    } catch (error) {
      this.fail(error as Error);
    }
    this.#wake();
  }

  #wake(): void {
    if (this.#frameWaiter === null) return;
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

function truncated(): NoiseCfgError {
  return new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake');
}

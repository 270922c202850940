/**
 * The sending end of a connection's socket (SPEC.md §2.5, §2.8): sealed frames are written corked, so that the
 * writes of one turn of the event loop (a burst of sends, or a send and END) leave in one system call; the socket
 * is uncorked once the turn's callbacks and promise jobs have run, or at once before a drain or a destroy.
 */
import type { Socket } from 'node:net';
import { NoiseCfgError } from '../errors.js';
import type { SealedSink } from './record-writer.js';

/** Corked writes to one socket. */
export class SocketSink implements SealedSink {
  readonly #socket: Socket;
  #isCorked = false;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Throws CONNECTION_CLOSED once the socket is destroyed. */
  writeSealed(bytes: Buffer, release: (() => void) | null): void {
    if (this.#socket.destroyed) throw new NoiseCfgError('CONNECTION_CLOSED', 'cannot send: the connection is closed');
    this.#cork();
    // The socket calls back once the kernel has the bytes (or the write failed): a pooled buffer is free again.
    if (release === null) this.#socket.write(bytes);
    else this.#socket.write(bytes, release);
  }

  /** Hands what is corked to the kernel now. */
  uncork(): void {
    if (!this.#isCorked) return;
    this.#isCorked = false;
    this.#socket.uncork();
  }

  #cork(): void {
    if (this.#isCorked) return;
    this.#isCorked = true;
    this.#socket.cork();
    process.nextTick(uncorkLater, this);
  }
}

// A shared function, not a closure per cork.
function uncorkLater(sink: SocketSink): void {
  sink.uncork();
}

/**
 * The client side of the channel handshake as a state machine with no I/O (SPEC.md §2.2–§2.3): start() gives the
 * first flight (preamble and message 1, with mac1 in xxpsk3); the server's bytes go in, and each call says what to
 * send and whether the handshake is waiting, done or has failed. It tells a rejection frame from message 2 and from
 * READY by its length, checks the server's pin before message 3 reveals the client's static key, and counts the
 * channel open only once READY decrypts. Every failure is final. No socket or timer: the deadline belongs to the
 * socket adapter (client-handshake-socket.ts).
 */
import { NoiseCfgError } from '../errors.js';
import type { HandshakeState, TransportState } from '../noise/index.js';
import { asAuthenticationFailure, asHandshakeError, closedDuringHandshake, createHandshake, type HandshakeResult } from './channel-handshake.js';
import { PROTOCOL_BY_MODE, type ClientChannelOptions } from './channel-options.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import { viewForTheCall, type BytesForTheCall } from './lent-bytes.js';
import { MAX_FRAME_BYTES } from './limits.js';
import { computeMac1, mac1KeyForPsk } from './mac1.js';
import { checkTaskId, decodeRejection, encodePreamble } from './preamble.js';
import { decodeRecord } from './records.js';

/** What one input did to the client handshake, and what to do about it. */
export type ClientHandshakeStep =
  /** More bytes are needed; `send` (message 3 of xxpsk3), when set, is written first. */
  | { status: 'waiting'; send?: Buffer }
  /** READY decrypted: the connection takes over from here. */
  | { status: 'done'; send?: Buffer; result: HandshakeResult }
  /** Final: the socket is closed with nothing more sent. */
  | { status: 'failed'; error: NoiseCfgError };

type Stage = 'start' | 'message2' | 'ready' | 'done' | 'failed';

const WAITING: ClientHandshakeStep = Object.freeze({ status: 'waiting' });

const REJECTION_MESSAGES: Readonly<Record<NonNullable<ReturnType<typeof decodeRejection>>, string>> = {
  UNSUPPORTED_VERSION: 'the server rejected the connection: unsupported version',
  UNSUPPORTED_MODE: 'the server rejected the connection: unsupported mode',
  PREAMBLE_INVALID: 'the server rejected the connection: preamble invalid',
  TOO_MANY_CONNECTIONS: 'server busy: it is at a connection limit and refused this connection; try again later',
};

/** One client handshake. The constructor checks the options; after that nothing throws. */
export class ClientHandshake {
  readonly #options: ClientChannelOptions;
  readonly #isXx: boolean;
  readonly #preamble: Buffer;
  readonly #decoder = new FrameDecoder(MAX_FRAME_BYTES);
  #handshake: HandshakeState | null;
  #transport: TransportState | null = null;
  #stage: Stage = 'start';
  #failure: NoiseCfgError | null = null;

  /** Throws INVALID_ARGUMENT (task id, mode) or KEY_MISSING (xxpsk3 without its keys). */
  constructor(options: ClientChannelOptions) {
    checkTaskId(options.taskId);
    const protocolName = PROTOCOL_BY_MODE[options.mode];
    if (protocolName === undefined) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be xxpsk3 or nnpsk0, got ${String(options.mode)}`);
    this.#isXx = options.mode === 'xxpsk3';
    if (this.#isXx && (!options.staticKeyPair || !options.serverPublicKey)) {
      throw new NoiseCfgError('KEY_MISSING', 'xxpsk3 needs staticKeyPair and serverPublicKey (the pin)');
    }
    this.#options = options;
    this.#preamble = encodePreamble(options.mode, options.taskId);
    this.#handshake = createHandshake({
      protocolName,
      initiator: true,
      prologue: this.#preamble,
      psks: [options.psk],
      ...(this.#isXx ? { staticKeyPair: options.staticKeyPair!, expectedRemoteStaticKey: options.serverPublicKey! } : {}),
    }, options);
  }

  /** The first flight, for one write: preamble || frame(message 1 [|| mac1]). Call once, first. */
  start(): ClientHandshakeStep {
    if (this.#stage !== 'start') return this.#afterEnd();
    try {
      const message1 = this.#handshake!.writeMessage();
      const firstFrame = this.#isXx ? Buffer.concat([message1, computeMac1(mac1KeyForPsk(this.#options.psk), this.#preamble, message1)]) : message1;
      this.#stage = 'message2';
      return { status: 'waiting', send: Buffer.concat([this.#preamble, encodeFrame(firstFrame)]) };
    } catch (error) {
      return this.#fail(error);
    }
  }

  /** Takes the next bytes from the server (any chunking); `chunk` is lent for the call (it may be reused after). */
  receive(chunk: BytesForTheCall): ClientHandshakeStep {
    if (this.#stage !== 'message2' && this.#stage !== 'ready') return this.#afterEnd();
    try {
      let send: Buffer | undefined;
      const bytes = viewForTheCall(chunk);
      const frames = this.#decoder.push(bytes);
      for (let index = 0; index < frames.length; index++) {
        if (this.#stage === 'message2') {
          send = this.#readMessage2(frames[index]!);
          continue;
        }
        this.#readReady(frames[index]!);
        // Frames past READY belong to the connection, and the chunk they view may be reused: keep copies.
        const rest = frames.slice(index + 1).map((frame) => (frame.buffer === bytes.buffer ? Buffer.from(frame) : frame));
        const result: HandshakeResult = { transport: this.#transport!, decoder: this.#decoder, frames: rest };
        this.#transport = null;
        return send === undefined ? { status: 'done', result } : { status: 'done', send, result };
      }
      return send === undefined ? WAITING : { status: 'waiting', send };
    } catch (error) {
      return this.#fail(error);
    }
  }

  /**
   * The server closed the connection (no `error`) or it failed: AUTHENTICATION_FAILED for a clean close (the server
   * refused), CONNECTION_FAILED for a reset (closedDuringHandshake).
   */
  peerClosed(error?: Error): ClientHandshakeStep {
    if (this.#stage === 'done' || this.#stage === 'failed') return this.#afterEnd();
    return this.#fail(closedDuringHandshake(error));
  }

  /** Ends the handshake from outside (the deadline), zeroing its keys; later inputs are ignored. */
  abort(reason: unknown): void {
    if (this.#stage === 'done' || this.#stage === 'failed') return;
    this.#fail(reason);
  }

  // Returns message 3 in xxpsk3.
  #readMessage2(reply: Buffer): Buffer | undefined {
    throwIfRejection(reply);
    const handshake = this.#handshake!;
    asAuthenticationFailure(() => handshake.readMessage(reply));
    const message3 = this.#isXx ? encodeFrame(handshake.writeMessage()) : undefined;
    this.#transport = handshake.finish();
    this.#handshake = null;
    this.#stage = 'ready';
    return message3;
  }

  #readReady(ready: Buffer): void {
    // A server with no room for another established connection says so in place of READY (SPEC.md §2.3).
    throwIfRejection(ready);
    const transport = this.#transport!;
    asAuthenticationFailure(() => {
      if (decodeRecord(transport.decrypt(ready)).type !== 'READY') throw new NoiseCfgError('FRAME_INVALID', 'the server\'s first record is not READY');
    });
    this.#stage = 'done';
  }

  #fail(thrown: unknown): ClientHandshakeStep {
    const error = asHandshakeError(thrown);
    this.#stage = 'failed';
    this.#failure = error;
    this.#handshake?.dispose();
    this.#handshake = null;
    this.#transport?.dispose();
    this.#transport = null;
    return { status: 'failed', error };
  }

  #afterEnd(): ClientHandshakeStep {
    if (this.#stage === 'failed') return { status: 'failed', error: this.#failure! };
    return WAITING;
  }
}

// A rejection frame is 6 bytes, shorter than any handshake or transport message, so it cannot be mistaken for one.
function throwIfRejection(frame: Buffer): void {
  const rejection = decodeRejection(frame);
  if (rejection !== null) throw new NoiseCfgError(rejection, REJECTION_MESSAGES[rejection]);
}

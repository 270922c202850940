/**
 * The server side of the channel handshake as a state machine with no I/O (SPEC.md §2.2–§2.4): bytes from the
 * client go in, and each call says what to send and whether the handshake is waiting, needs the task's key, is
 * done or has failed. It parses the preamble, refuses strangers before any DH (mac1 in xxpsk3, the tag of message
 * 1 in nnpsk0), refuses a replayed message 1, answers, and seals READY. It holds at most a few small frames before
 * the client has authenticated. Every failure is final; toward the client it is silent, except the clear rejection
 * of a version or mode and the busy frame, which the SPEC allows. No socket, timer or clock: the deadlines, and the
 * nnpsk0 wait for the client's first transport message, belong to the socket adapter (server-handshake-socket.ts).
 */
import { NoiseCfgError } from '../errors.js';
import type { HandshakeState, KeyPair } from '../noise/index.js';
import { asAuthenticationFailure, asHandshakeError, createHandshake, sealReady, type HandshakeResult } from './channel-handshake.js';
import { PROTOCOL_BY_MODE, type TaskKey } from './channel-options.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import { EPHEMERAL_KEY_BYTES, MAC1_BYTES, MAX_HANDSHAKE_FRAMES_QUEUED, MAX_PREAMBLE_BYTES, MAX_UNAUTHENTICATED_FRAME_BYTES } from './limits.js';
import { mac1KeyForPsk, verifyMac1 } from './mac1.js';
import { encodeRejection, parsePreamble, type Preamble } from './preamble.js';
import type { ReplayCache } from './replay-cache.js';

/** What the server handshake needs besides the client's bytes. */
export interface ServerHandshakeOptions {
  /** The server's static key pair (used in xxpsk3). */
  staticKeyPair: KeyPair;
  /** Remembers initiator ephemerals so that a replayed message 1 is refused. */
  replayCache: ReplayCache;
  /** True when there is no room for another established connection: the client is told it is busy. */
  isEstablishedFull?: () => boolean;
  /** The cap isEstablishedFull applies, for the failure's message. */
  maxEstablishedConnections?: number;
  /** Only for the transcripts in vectors/: EPHEMERAL_FOR_TESTING and its key pair. */
  testing?: object;
}

/** What a finished server handshake hands over. */
export interface ServerHandshakeResult extends HandshakeResult {
  preamble: Preamble;
  task: TaskKey;
  /**
   * nnpsk0: message 1 can be replayed, so the client is not yet known to hold the session's keys; it is only once
   * its first transport message decrypts (SPEC.md §2.3).
   */
  isConfirmed: boolean;
}

/** How a failed handshake answers the client. */
export type FailureReply =
  /** Nothing: the socket is closed. */
  | 'silent'
  /** `send` holds the clear rejection frame of a version or mode (SPEC.md §2.2): written, then FIN. */
  | 'rejection'
  /** The server has no room for another established connection: the busy frame, then FIN (SPEC.md §2.4). */
  | 'busy';

/** What one input did to the server handshake, and what to do about it. */
export type ServerHandshakeStep =
  /** More bytes are needed; `send` (message 2 of xxpsk3), when set, is written first. */
  | { status: 'waiting'; send?: Buffer; isProven?: boolean }
  /** The key of this task is needed: look it up and pass it to taskFound(). */
  | { status: 'lookup'; taskId: string; isProven?: never }
  /** The handshake's last bytes are in `send`; the connection takes over from here. */
  | { status: 'done'; send: Buffer; isProven?: boolean; result: ServerHandshakeResult }
  /** Final: every later input is ignored. */
  | { status: 'failed'; error: NoiseCfgError; reply: FailureReply; send?: Buffer; isProven?: boolean };

type Stage = 'preamble' | 'lookup' | 'message1' | 'message3' | 'done' | 'failed';

const WAITING: ServerHandshakeStep = Object.freeze({ status: 'waiting' });

/** One server handshake; feed it the client's bytes with receive(). Never throws. */
export class ServerHandshake {
  readonly #options: ServerHandshakeOptions;
  readonly #decoder = new FrameDecoder(MAX_UNAUTHENTICATED_FRAME_BYTES);
  readonly #frames: Buffer[] = [];
  #stage: Stage = 'preamble';
  #preambleBytes: Buffer | null = null;
  #preamble: Preamble | null = null;
  /**
   * A bad frame that came in the preamble's chunk: reported once the task is known, so that a client of an unknown
   * task hears of that first, whatever followed.
   */
  #frameError: unknown = null;
  #prologue: Buffer | null = null;
  #task: TaskKey | null = null;
  #handshake: HandshakeState | null = null;
  #hasFirstFlight = false;
  #isProven = false;
  #failure: NoiseCfgError | null = null;

  constructor(options: ServerHandshakeOptions) {
    this.#options = options;
  }

  /** True once the client's first frame (message 1, sent with the preamble) is complete. */
  get hasFirstFlight(): boolean {
    return this.#hasFirstFlight;
  }

  /** True from message 1's check (mac1, or the nnpsk0 tag) on: the client knows the task PSK, or replays one that did. */
  get isProven(): boolean {
    return this.#isProven;
  }

  /** True once done or failed. */
  get isOver(): boolean {
    return this.#stage === 'done' || this.#stage === 'failed';
  }

  /**
   * Takes the next bytes from the client (any chunking). They are used before this returns, or copied: the caller
   * may reuse `chunk`.
   */
  receive(chunk: Buffer): ServerHandshakeStep {
    if (this.#stage === 'done' || this.#stage === 'failed') return this.#afterEnd();
    try {
      if (this.#stage === 'preamble') {
        const pending = this.#preambleBytes === null ? chunk : Buffer.concat([this.#preambleBytes, chunk]);
        const parsed = parsePreamble(pending.subarray(0, MAX_PREAMBLE_BYTES));
        if (parsed.status === 'incomplete') {
          this.#preambleBytes = Buffer.from(pending);
          return WAITING;
        }
        this.#preambleBytes = null;
        this.#preamble = parsed.preamble;
        this.#prologue = parsed.bytes;
        this.#stage = 'lookup';
        try {
          this.#queueFrames(pending.subarray(parsed.bytes.byteLength));
        } catch (error) {
          this.#frameError = error;
        }
        return { status: 'lookup', taskId: parsed.preamble.taskId };
      }
      if (this.#frameError !== null) throw this.#frameError;
      this.#queueFrames(chunk);
      return this.#advance();
    } catch (error) {
      return this.#fail(error);
    }
  }

  /** The answer to a `lookup` step: the task's key, or null when there is no such active task. */
  taskFound(task: TaskKey | null): ServerHandshakeStep {
    if (this.#stage !== 'lookup') return this.#stage === 'failed' ? this.#afterEnd() : WAITING;
    try {
      const { mode } = this.#preamble!;
      if (task === null || task.mode !== mode) {
        throw new NoiseCfgError('AUTHENTICATION_FAILED', task === null ? 'unknown task (the server does not hold it)' : `task is ${task.mode}, client asked for ${mode}`);
      }
      this.#task = task;
      this.#handshake = createHandshake({
        protocolName: PROTOCOL_BY_MODE[mode],
        initiator: false,
        prologue: this.#prologue!,
        psks: [task.psk],
        ...(mode === 'xxpsk3' ? { staticKeyPair: this.#options.staticKeyPair } : {}),
      }, this.#options.testing ?? {});
      this.#stage = 'message1';
      if (this.#frameError !== null) throw this.#frameError;
      return this.#advance();
    } catch (error) {
      return this.#fail(error);
    }
  }

  /** The client closed or reset the connection: the handshake fails (CONNECTION_TRUNCATED). */
  peerClosed(error?: Error): ServerHandshakeStep {
    if (this.isOver) return this.#afterEnd();
    return this.#fail(error === undefined
      ? new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake')
      : new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${error.message}`, { cause: error }));
  }

  /** Ends the handshake from outside (a deadline, an eviction), zeroing its keys; later inputs are ignored. */
  abort(reason: unknown): void {
    if (this.isOver) return;
    this.#fail(reason);
  }

  #queueFrames(bytes: Buffer): void {
    if (bytes.byteLength === 0) return;
    // Frames may wait for the task's key past this call, and the caller may reuse its chunk: keep copies.
    for (const frame of this.#decoder.pushKept(bytes)) this.#frames.push(frame);
    if (this.#frames.length > 0) this.#hasFirstFlight = true;
    if (this.#frames.length > MAX_HANDSHAKE_FRAMES_QUEUED) {
      throw new NoiseCfgError('FRAME_INVALID', `peer sent ${this.#frames.length} frames before the handshake allowed them`);
    }
  }

  #advance(): ServerHandshakeStep {
    let step = WAITING;
    while (this.#frames.length > 0 && step.status === 'waiting') {
      if (this.#stage === 'message1') step = this.#readMessage1(this.#frames.shift()!);
      else if (this.#stage === 'message3') step = this.#readMessage3(this.#frames.shift()!, step);
      else break;
    }
    return step;
  }

  #readMessage1(firstFrame: Buffer): ServerHandshakeStep {
    const handshake = this.#handshake!;
    const isXx = this.#preamble!.mode === 'xxpsk3';
    let message1 = firstFrame;
    if (isXx) {
      // No DH before the client shows it knows the PSK: mac1 costs one BLAKE2b.
      message1 = firstFrame.subarray(0, Math.max(0, firstFrame.byteLength - MAC1_BYTES));
      const mac = firstFrame.subarray(message1.byteLength);
      if (!verifyMac1(mac1KeyForPsk(this.#task!.psk), this.#prologue!, message1, mac)) {
        throw new NoiseCfgError('AUTHENTICATION_FAILED', 'mac1 did not verify: the client does not know the task PSK');
      }
    }
    // NNpsk0 message 1 carries a tag under the PSK, so reading it is the proof; XX message 1 needs no DH to read.
    asAuthenticationFailure(() => handshake.readMessage(message1));
    if (!this.#options.replayCache.checkAndRemember(message1.subarray(0, EPHEMERAL_KEY_BYTES))) {
      throw new NoiseCfgError('REPLAY_DETECTED', 'handshake message 1 repeats a recent ephemeral key');
    }
    this.#isProven = true;
    if (!isXx && this.#isEstablishedFull()) return this.#refuseAsBusy(true);
    const message2 = encodeFrame(handshake.writeMessage());
    if (isXx) {
      this.#stage = 'message3';
      return { status: 'waiting', send: message2, isProven: true };
    }
    // NNpsk0 ends with message 2: it and READY leave in one write. The client is not yet known to be live.
    const transport = handshake.finish();
    return this.#finish(Buffer.concat([message2, sealReady(transport)]), transport, false, true);
  }

  // `before` is a step of this same input that has not been returned yet (message 2, when message 3 came with it).
  #readMessage3(message3: Buffer, before: ServerHandshakeStep): ServerHandshakeStep {
    const handshake = this.#handshake!;
    asAuthenticationFailure(() => handshake.readMessage(message3));
    // In place of READY, so that the client hears "busy" rather than a close it would take for a wrong token.
    const isProven = before.status === 'waiting' && before.isProven === true;
    if (this.#isEstablishedFull()) return this.#refuseAsBusy(isProven);
    const transport = handshake.finish();
    const ready = sealReady(transport);
    return this.#finish(before.status === 'waiting' && before.send ? Buffer.concat([before.send, ready]) : ready, transport, true, isProven);
  }

  #isEstablishedFull(): boolean {
    return this.#options.isEstablishedFull?.() === true;
  }

  // `isProven`: the proof came with this same input (message 1), so that the step reports it once.
  #finish(send: Buffer, transport: HandshakeResult['transport'], isConfirmed: boolean, isProven: boolean): ServerHandshakeStep {
    this.#stage = 'done';
    this.#handshake = null;
    const result: ServerHandshakeResult = {
      transport, decoder: this.#decoder, frames: this.#frames.splice(0), preamble: this.#preamble!, task: this.#task!, isConfirmed,
    };
    return { status: 'done', send, result, ...(isProven ? { isProven } : {}) };
  }

  #refuseAsBusy(isProven: boolean): ServerHandshakeStep {
    const cap = this.#options.maxEstablishedConnections;
    const step = this.#fail(new NoiseCfgError('TOO_MANY_CONNECTIONS', `no room for another established connection (maxEstablishedConnections${cap === undefined ? '' : ` ${cap}`})`));
    return { ...step, reply: 'busy', ...(isProven ? { isProven } : {}) };
  }

  #fail(thrown: unknown): ServerHandshakeStep & { status: 'failed' } {
    const error = asHandshakeError(thrown);
    const wasReadingPreamble = this.#stage === 'preamble';
    this.#stage = 'failed';
    this.#failure = error;
    this.#frames.length = 0;
    this.#frameError = null;
    this.#handshake?.dispose();
    this.#handshake = null;
    // Version and mode get a clear answer (SPEC.md §2.2); anything else is the usual silent close.
    if (wasReadingPreamble && (error.code === 'UNSUPPORTED_VERSION' || error.code === 'UNSUPPORTED_MODE')) {
      return { status: 'failed', error, reply: 'rejection', send: encodeFrame(encodeRejection(error.code)) };
    }
    return { status: 'failed', error, reply: 'silent' };
  }

  #afterEnd(): ServerHandshakeStep {
    if (this.#stage === 'failed') return { status: 'failed', error: this.#failure!, reply: 'silent' };
    return WAITING;
  }
}

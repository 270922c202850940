/**
 * The server side of the channel handshake (SPEC.md §2.3–§2.4), driven straight from the socket's data events:
 * parse the preamble, find the task's PSK, refuse strangers before any DH (mac1 in xxpsk3, the tag of message 1
 * in nnpsk0), refuse a replayed message 1, answer, and send READY. It holds at most a few small frames before
 * the client has authenticated, and toward the client every failure is the same silent close. The first flight
 * has its own deadline, and an nnpsk0 client counts as authenticated only once its first transport message
 * decrypts (SPEC.md §1.2: message 1 can be replayed).
 * Event-driven rather than a chain of awaits: a server runs this for every connection, and per-step promises,
 * listeners and timers cost as much as the handshake's hashing (bench/, issue 6).
 */
import type { Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { HandshakeState, type HandshakeOptions } from '../noise/handshake-state.js';
import type { KeyPair } from '../noise/dh-functions.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../noise/testing.js';
import type { TransportState } from '../noise/transport-state.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import { EPHEMERAL_KEY_BYTES, MAC1_BYTES, MAX_HANDSHAKE_FRAMES_QUEUED, MAX_PREAMBLE_BYTES, MAX_UNAUTHENTICATED_FRAME_BYTES, type ChannelLimits } from './limits.js';
import { verifyMac1, mac1KeyForPsk } from './mac1.js';
import { encodeRejection, parsePreamble, type Preamble } from './preamble.js';
import { refuseAsBusy } from './busy-refusal.js';
import { encodeRecord } from './records.js';
import type { ReplayCache } from './replay-cache.js';
import { SecureConnection } from './secure-connection.js';
import { PROTOCOL_BY_MODE, type ServerChannelOptions, type TaskKey } from './channel-options.js';

const READY_PLAINTEXT = encodeRecord('READY');

/** Symbol of the option that fixes a side's ephemeral key, for the channel transcripts in vectors/ only. */
export const EPHEMERAL_FOR_TESTING = Symbol('noise-cfg testing only: fixed channel ephemeral');

/** A HandshakeState for the options, with the fixed ephemeral of the transcripts when one is set. */
export function createHandshake(handshakeOptions: HandshakeOptions, channelOptions: object): HandshakeState {
  const fixed = (channelOptions as { [EPHEMERAL_FOR_TESTING]?: KeyPair })[EPHEMERAL_FOR_TESTING];
  return fixed ? createHandshakeStateWithFixedEphemeralForTesting(handshakeOptions, fixed) : new HandshakeState(handshakeOptions);
}

type Stage = 'preamble' | 'task' | 'message1' | 'message3' | 'confirm' | 'done';

/** What a listener learns of, and decides for, its handshakes; one object serves every connection. */
export interface HandshakeHooks {
  /** The client has shown it knows the task PSK (mac1, or the nnpsk0 tag of message 1), though it may be a replay. */
  onProven?: (socket: Socket) => void;
  /** True when the listener has no room for another established connection: the client is told it is busy. */
  isEstablishedFull?: () => boolean;
  /** Sends the busy frame and closes; by default refuseAsBusy. */
  refuse?: (socket: Socket) => void;
}

const NO_HOOKS: HandshakeHooks = {};

/**
 * One server handshake on one accepted socket; calls `resolve` (in a microtask) or `reject` (at once, before the
 * socket is closed, except when an nnpsk0 connection waiting for its first transport message closes) exactly once.
 * In nnpsk0 `resolve` waits for that message to decrypt (SPEC.md §2.3).
 */
export class ServerHandshake {
  readonly #socket: Socket;
  readonly #options: ServerChannelOptions & { replayCache: ReplayCache };
  readonly #limits: ChannelLimits;
  readonly #resolve: (connection: SecureConnection) => void;
  readonly #reject: (error: Error) => void;
  readonly #decoder = new FrameDecoder(MAX_UNAUTHENTICATED_FRAME_BYTES);
  readonly #frames: Buffer[] = [];
  readonly #hooks: HandshakeHooks;
  #timer: NodeJS.Timeout;
  /** True once the first frame (message 1, sent with the preamble) is complete. */
  #hasFirstFlight = false;
  /** nnpsk0: the connection waiting for the client's first transport message. */
  #unconfirmed: SecureConnection | null = null;
  #stage: Stage = 'preamble';
  #preambleBytes: Buffer | null = null;
  #preamble: Preamble | null = null;
  #prologue: Buffer | null = null;
  #task: TaskKey | null = null;
  #handshake: HandshakeState | null = null;

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#receive(chunk);
    } catch (error) {
      this.#fail(error as Error);
    }
  };
  // The client's FIN before READY can only mean it gave up: the handshake fails (a finished one has detached).
  readonly #onEnd = (): void => {
    this.#fail(new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake'));
  };
  readonly #onError = (error: Error): void => {
    this.#fail(new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${error.message}`, { cause: error }));
  };

  readonly #onTimer = (): void => {
    const firstFlightMs = Math.min(this.#limits.firstFlightTimeoutMs, this.#limits.handshakeTimeoutMs);
    if (!this.#hasFirstFlight) {
      this.#fail(new NoiseCfgError('HANDSHAKE_TIMEOUT', `the first flight (preamble and handshake message 1) did not arrive within ${firstFlightMs} ms (firstFlightTimeoutMs)`));
      return;
    }
    const leftMs = this.#limits.handshakeTimeoutMs - firstFlightMs;
    if (leftMs > 0) this.#timer = setTimeout(this.#onHandshakeDeadline, leftMs);
    else this.#onHandshakeDeadline();
  };
  readonly #onHandshakeDeadline = (): void => {
    const waiting = this.#stage === 'confirm' ? ': no transport message from the client decrypted' : '';
    this.#fail(new NoiseCfgError('HANDSHAKE_TIMEOUT', `handshake did not finish within ${this.#limits.handshakeTimeoutMs} ms (handshakeTimeoutMs)${waiting}`));
  };

  constructor(socket: Socket, options: ServerChannelOptions & { replayCache: ReplayCache }, limits: ChannelLimits, resolve: (connection: SecureConnection) => void, reject: (error: Error) => void, hooks: HandshakeHooks = NO_HOOKS) {
    this.#socket = socket;
    this.#options = options;
    this.#limits = limits;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#hooks = hooks;
    // One timer at a time: the first-flight deadline, then what is left of the whole handshake's.
    this.#timer = setTimeout(this.#onTimer, Math.min(limits.firstFlightTimeoutMs, limits.handshakeTimeoutMs));
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onError);
  }

  /**
   * Ends this handshake to make room for a newer connection (SPEC.md §2.4): `reject` gets TOO_MANY_CONNECTIONS and
   * the client the busy frame (an nnpsk0 client past message 2 holds the keys already, and is cut silently).
   */
  evict(reason: string): void {
    if (this.#stage === 'done') return;
    const error = new NoiseCfgError('TOO_MANY_CONNECTIONS', reason);
    if (this.#stage === 'confirm') {
      this.#fail(error);
      return;
    }
    this.#detach();
    this.#handshake?.dispose();
    this.#reject(error);
    (this.#hooks.refuse ?? refuseAsBusy)(this.#socket);
  }

  #receive(chunk: Buffer): void {
    if (this.#stage === 'done' || this.#stage === 'confirm') return;
    let rest = chunk;
    if (this.#stage === 'preamble') {
      const pending = this.#preambleBytes === null ? chunk : Buffer.concat([this.#preambleBytes, chunk]);
      let parsed;
      try {
        parsed = parsePreamble(pending.subarray(0, MAX_PREAMBLE_BYTES));
      } catch (error) {
        // Version and mode get a clear answer (SPEC.md §2.2); anything else is the usual silent close.
        if (isNoiseCfgError(error) && (error.code === 'UNSUPPORTED_VERSION' || error.code === 'UNSUPPORTED_MODE')) {
          this.#socket.write(encodeFrame(encodeRejection(error.code)));
          this.#socket.destroySoon();
        }
        throw error;
      }
      if (parsed.status === 'incomplete') {
        this.#preambleBytes = Buffer.from(pending);
        return;
      }
      this.#preambleBytes = null;
      this.#preamble = parsed.preamble;
      this.#prologue = parsed.bytes;
      rest = pending.subarray(parsed.bytes.byteLength);
      this.#stage = 'task';
      this.#findTask();
    }
    for (const frame of this.#decoder.push(rest)) this.#frames.push(frame);
    if (this.#frames.length > 0) this.#hasFirstFlight = true;
    if (this.#frames.length > MAX_HANDSHAKE_FRAMES_QUEUED) {
      throw new NoiseCfgError('FRAME_INVALID', `peer sent ${this.#frames.length} frames before the handshake allowed them`);
    }
    this.#advance();
  }

  #findTask(): void {
    const { mode, taskId } = this.#preamble!;
    const found = this.#options.resolveTask(taskId);
    if (found !== null && typeof (found as Promise<TaskKey | null>).then === 'function') {
      (found as Promise<TaskKey | null>).then((task) => this.#taskFound(task, mode), (error: Error) => this.#fail(error));
      return;
    }
    this.#taskFound(found as TaskKey | null, mode);
  }

  #taskFound(task: TaskKey | null, mode: Preamble['mode']): void {
    if (this.#stage !== 'task') return;
    try {
      if (task === null || task.mode !== mode) {
        throw new NoiseCfgError('AUTHENTICATION_FAILED', task === null ? 'unknown or inactive task' : `task is ${task.mode}, client asked for ${mode}`);
      }
      this.#task = task;
      this.#handshake = createHandshake({
        protocolName: PROTOCOL_BY_MODE[mode],
        initiator: false,
        prologue: this.#prologue!,
        psks: [task.psk],
        ...(mode === 'xxpsk3' ? { staticKeyPair: this.#options.staticKeyPair } : {}),
      }, this.#options);
      this.#stage = 'message1';
      this.#advance();
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #advance(): void {
    while (this.#frames.length > 0) {
      if (this.#stage === 'message1') this.#readMessage1(this.#frames.shift()!);
      else if (this.#stage === 'message3') this.#readMessage3(this.#frames.shift()!);
      else return;
    }
  }

  #readMessage1(firstFrame: Buffer): void {
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
    this.#hooks.onProven?.(this.#socket);
    if (!isXx && this.#refuseIfEstablishedFull()) return;
    const message2 = handshake.writeMessage();
    if (isXx) {
      this.#socket.write(encodeFrame(message2));
      this.#stage = 'message3';
      return;
    }
    // NNpsk0 ends with message 2: it and READY leave in one write. The client is not yet known to be live.
    const transport = handshake.finish();
    this.#writeLast(Buffer.concat([encodeFrame(message2), sealReady(transport)]));
    this.#awaitFirstTransportMessage(transport);
  }

  #readMessage3(message3: Buffer): void {
    const handshake = this.#handshake!;
    asAuthenticationFailure(() => handshake.readMessage(message3));
    // In place of READY, so that the client hears "busy" rather than a close it would take for a wrong token.
    if (this.#refuseIfEstablishedFull()) return;
    const transport = handshake.finish();
    this.#writeLast(sealReady(transport));
    this.#succeed(transport);
  }

  #refuseIfEstablishedFull(): boolean {
    if (this.#hooks.isEstablishedFull?.() !== true) return false;
    this.#detach();
    this.#handshake?.dispose();
    this.#reject(new NoiseCfgError('TOO_MANY_CONNECTIONS', `no room for another established connection (maxEstablishedConnections ${this.#limits.maxEstablishedConnections})`));
    (this.#hooks.refuse ?? refuseAsBusy)(this.#socket);
    return true;
  }

  // The handshake's last bytes wait until the next tick for what the application sends at once (SPEC.md §2.8).
  #writeLast(bytes: Buffer): void {
    this.#socket.cork();
    this.#socket.write(bytes);
    process.nextTick(uncorkSocket, this.#socket);
  }

  #detach(): void {
    this.#stage = 'done';
    clearTimeout(this.#timer);
    this.#detachSocket();
  }

  #detachSocket(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onError);
  }

  #succeed(transport: TransportState): void {
    this.#detach();
    const connection = this.#newConnection(transport);
    // Outside the data handler's try: an exception in the application's callback must not pass for a failed
    // handshake.
    queueMicrotask(() => this.#resolve(connection));
  }

  #newConnection(transport: TransportState, onFirstDecrypt?: () => void): SecureConnection {
    const { mode, taskId } = this.#preamble!;
    return new SecureConnection(this.#socket, transport, { decoder: this.#decoder, frames: this.#frames.splice(0), isEnded: false }, {
      info: { mode, taskId, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey, taskContext: this.#task!.context },
      limits: this.#limits,
      ...(onFirstDecrypt ? { onFirstDecrypt } : {}),
    });
  }

  // nnpsk0: the connection reads the client's records from here on, but this handshake (its deadline, its place
  // among the unauthenticated connections) lasts until the first of them decrypts: a replayed message 1 gets this
  // far and no further.
  #awaitFirstTransportMessage(transport: TransportState): void {
    this.#stage = 'confirm';
    this.#detachSocket();
    const connection = this.#newConnection(transport, () => this.#confirm());
    this.#unconfirmed = connection;
    connection.onClose(() => {
      if (this.#stage !== 'confirm') return;
      const failure = connection.failure;
      const isCryptographic = failure !== null && (failure.code === 'DECRYPT_FAILED' || failure.code === 'FRAME_INVALID');
      this.#fail(isCryptographic
        ? new NoiseCfgError('AUTHENTICATION_FAILED', `the client's first transport message did not decrypt (${failure.code}): it does not hold this session's keys (a replayed message 1?)`, { cause: failure })
        : failure ?? new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake'));
    });
  }

  #confirm(): void {
    if (this.#stage !== 'confirm') return;
    const connection = this.#unconfirmed;
    if (connection === null) {
      // A frame handed over with the leftovers decrypted while the connection was still being made.
      queueMicrotask(() => this.#confirm());
      return;
    }
    if (this.#hooks.isEstablishedFull?.() === true) {
      // The client holds the keys already, so no clear frame can follow its READY: the cut is silent.
      this.#fail(new NoiseCfgError('TOO_MANY_CONNECTIONS', `no room for another established connection (maxEstablishedConnections ${this.#limits.maxEstablishedConnections})`));
      return;
    }
    this.#stage = 'done';
    clearTimeout(this.#timer);
    this.#unconfirmed = null;
    queueMicrotask(() => this.#resolve(connection));
  }

  #fail(error: Error): void {
    if (this.#stage === 'done') return;
    const unconfirmed = this.#unconfirmed;
    this.#unconfirmed = null;
    this.#detach();
    this.#handshake?.dispose();
    // Told before the close, while the socket still knows its peer's address.
    this.#reject(error);
    if (unconfirmed !== null) {
      unconfirmed.destroy(isNoiseCfgError(error) ? error : undefined);
      return;
    }
    // Silent close toward the peer: no reason is sent for a failed handshake (a clear rejection is already flushing).
    if (!this.#socket.writableEnded) this.#socket.destroy();
  }
}

function uncorkSocket(socket: Socket): void {
  socket.uncork();
}

function sealReady(transport: TransportState): Buffer {
  return encodeFrame(transport.encrypt(READY_PLAINTEXT));
}

// Every cryptographic failure during the handshake is an authentication failure to the caller; the pin keeps its
// own code because the fix (a different token) differs.
const KEPT_CODES = new Set(['REMOTE_STATIC_MISMATCH', 'HANDSHAKE_TIMEOUT', 'INVALID_ARGUMENT']);

/** Runs `step`, turning its failure into AUTHENTICATION_FAILED unless the code says more to the user. */
export function asAuthenticationFailure<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (isNoiseCfgError(error) && KEPT_CODES.has(error.code)) throw error;
    const reason = isNoiseCfgError(error) ? error.code : 'error';
    throw new NoiseCfgError('AUTHENTICATION_FAILED', `handshake failed (${reason})`, { cause: error });
  }
}

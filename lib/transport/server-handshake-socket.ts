/**
 * The server handshake on one accepted socket (SPEC.md §2.3–§2.4): feeds the socket's bytes to the ServerHandshake
 * state machine, writes what it says, looks up the task's key, and owns the two deadlines (the first flight, then
 * the whole handshake) and, in nnpsk0, the wait for the client's first transport message to decrypt.
 * Event-driven rather than a chain of awaits: a server runs this for every connection, and per-step promises,
 * listeners and timers cost as much as the handshake's hashing (bench/, issue 6).
 */
import type { Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { refuseAsBusy } from './busy-refusal.js';
import type { ServerChannelOptions, TaskKey } from './channel-options.js';
import type { ChannelLimits } from './limits.js';
import type { ReplayCache } from './replay-cache.js';
import { SecureConnection } from './secure-connection.js';
import { ServerHandshake, type ServerHandshakeResult, type ServerHandshakeStep } from './server-handshake.js';

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

type Phase = 'handshake' | 'confirm' | 'over';

/**
 * One server handshake on one accepted socket; calls `resolve` (in a microtask) or `reject` (at once, before the
 * socket is closed, except when an nnpsk0 connection waiting for its first transport message closes) exactly once.
 * In nnpsk0 `resolve` waits for that message to decrypt (SPEC.md §2.3).
 */
export class ServerHandshakeSocket {
  readonly #socket: Socket;
  readonly #options: ServerChannelOptions & { replayCache: ReplayCache };
  readonly #limits: ChannelLimits;
  readonly #resolve: (connection: SecureConnection) => void;
  readonly #reject: (error: Error) => void;
  readonly #hooks: HandshakeHooks;
  readonly #machine: ServerHandshake;
  #timer: NodeJS.Timeout;
  #phase: Phase = 'handshake';
  /** nnpsk0: the connection waiting for the client's first transport message. */
  #unconfirmed: SecureConnection | null = null;

  readonly #onData = (chunk: Buffer): void => this.#apply(this.#machine.receive(chunk));
  // The client's FIN before READY can only mean it gave up: the handshake fails (a finished one has detached).
  readonly #onEnd = (): void => this.#apply(this.#machine.peerClosed());
  readonly #onError = (error: Error): void => this.#apply(this.#machine.peerClosed(error));

  readonly #onTimer = (): void => {
    const firstFlightMs = Math.min(this.#limits.firstFlightTimeoutMs, this.#limits.handshakeTimeoutMs);
    if (!this.#machine.hasFirstFlight) {
      this.#fail(new NoiseCfgError('HANDSHAKE_TIMEOUT', `the first flight (preamble and handshake message 1) did not arrive within ${firstFlightMs} ms (firstFlightTimeoutMs)`));
      return;
    }
    const leftMs = this.#limits.handshakeTimeoutMs - firstFlightMs;
    if (leftMs > 0) this.#timer = setTimeout(this.#onHandshakeDeadline, leftMs);
    else this.#onHandshakeDeadline();
  };
  readonly #onHandshakeDeadline = (): void => {
    const waiting = this.#phase === 'confirm' ? ': no transport message from the client decrypted' : '';
    this.#fail(new NoiseCfgError('HANDSHAKE_TIMEOUT', `handshake did not finish within ${this.#limits.handshakeTimeoutMs} ms (handshakeTimeoutMs)${waiting}`));
  };

  constructor(socket: Socket, options: ServerChannelOptions & { replayCache: ReplayCache }, limits: ChannelLimits, resolve: (connection: SecureConnection) => void, reject: (error: Error) => void, hooks: HandshakeHooks = NO_HOOKS) {
    this.#socket = socket;
    this.#options = options;
    this.#limits = limits;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#hooks = hooks;
    this.#machine = new ServerHandshake({
      staticKeyPair: options.staticKeyPair,
      replayCache: options.replayCache,
      maxEstablishedConnections: limits.maxEstablishedConnections,
      ...(hooks.isEstablishedFull ? { isEstablishedFull: hooks.isEstablishedFull } : {}),
      testing: options,
    });
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
    if (this.#phase === 'over') return;
    const error = new NoiseCfgError('TOO_MANY_CONNECTIONS', reason);
    if (this.#phase === 'confirm') {
      this.#fail(error);
      return;
    }
    this.#machine.abort(error);
    this.#refuse(error);
  }

  #apply(step: ServerHandshakeStep): void {
    if (this.#phase !== 'handshake') return;
    try {
      this.#act(step);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #act(step: ServerHandshakeStep): void {
    if (step.isProven === true) this.#hooks.onProven?.(this.#socket);
    switch (step.status) {
      case 'waiting':
        if (step.send !== undefined) this.#socket.write(step.send);
        return;
      case 'lookup':
        this.#lookUp(step.taskId);
        return;
      case 'done':
        this.#writeLast(step.send);
        if (step.result.isConfirmed) this.#succeed(step.result);
        else this.#awaitFirstTransportMessage(step.result);
        return;
      case 'failed':
        if (step.reply === 'busy') {
          this.#refuse(step.error);
          return;
        }
        if (step.send !== undefined) {
          this.#socket.write(step.send);
          this.#socket.destroySoon();
        }
        this.#fail(step.error);
    }
  }

  #lookUp(taskId: string): void {
    let found;
    try {
      found = this.#options.resolveTask(taskId);
    } catch (error) {
      this.#fail(error as Error);
      return;
    }
    if (found !== null && typeof (found as Promise<TaskKey | null>).then === 'function') {
      (found as Promise<TaskKey | null>).then((task) => this.#apply(this.#machine.taskFound(task)), (error: Error) => this.#fail(error));
      return;
    }
    this.#apply(this.#machine.taskFound(found as TaskKey | null));
  }

  #refuse(error: NoiseCfgError): void {
    this.#detach();
    this.#reject(error);
    (this.#hooks.refuse ?? refuseAsBusy)(this.#socket);
  }

  // The handshake's last bytes wait until the next tick for what the application sends at once (SPEC.md §2.8).
  #writeLast(bytes: Buffer): void {
    this.#socket.cork();
    this.#socket.write(bytes);
    process.nextTick(uncorkSocket, this.#socket);
  }

  #detach(): void {
    this.#phase = 'over';
    clearTimeout(this.#timer);
    this.#detachSocket();
  }

  #detachSocket(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onError);
  }

  #succeed(result: ServerHandshakeResult): void {
    this.#detach();
    const connection = this.#newConnection(result);
    // Outside the data handler's work: an exception in the application's callback must not pass for a failed
    // handshake.
    queueMicrotask(() => this.#resolve(connection));
  }

  #newConnection(result: ServerHandshakeResult, onFirstDecrypt?: () => void): SecureConnection {
    const { transport, preamble: { mode, taskId } } = result;
    return new SecureConnection(this.#socket, transport, { decoder: result.decoder, frames: result.frames, isEnded: false }, {
      info: { mode, taskId, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey },
      limits: this.#limits,
      ...(onFirstDecrypt ? { onFirstDecrypt } : {}),
    });
  }

  // nnpsk0: the connection reads the client's records from here on, but this handshake (its deadline, its place
  // among the unauthenticated connections) lasts until the first of them decrypts: a replayed message 1 gets this
  // far and no further.
  #awaitFirstTransportMessage(result: ServerHandshakeResult): void {
    this.#phase = 'confirm';
    this.#detachSocket();
    const connection = this.#newConnection(result, () => this.#confirm());
    this.#unconfirmed = connection;
    connection.onClose(() => {
      if (this.#phase !== 'confirm') return;
      const failure = connection.failure;
      const isCryptographic = failure !== null && (failure.code === 'DECRYPT_FAILED' || failure.code === 'FRAME_INVALID');
      this.#fail(isCryptographic
        ? new NoiseCfgError('AUTHENTICATION_FAILED', `the client's first transport message did not decrypt (${failure.code}): it does not hold this session's keys (a replayed message 1?)`, { cause: failure })
        : failure ?? new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake'));
    });
  }

  #confirm(): void {
    if (this.#phase !== 'confirm') return;
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
    this.#phase = 'over';
    clearTimeout(this.#timer);
    this.#unconfirmed = null;
    queueMicrotask(() => this.#resolve(connection));
  }

  #fail(error: Error): void {
    if (this.#phase === 'over') return;
    const unconfirmed = this.#unconfirmed;
    this.#unconfirmed = null;
    this.#detach();
    this.#machine.abort(error);
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

/**
 * Handshake drivers (SPEC.md §2.3–§2.4): turn a net.Socket plus a key setup into a SecureConnection. The client
 * sends the preamble and message 1 (with mac1 in xxpsk3), checks the server's pin before message 3, and waits
 * for the server's READY. The server parses the preamble, finds the task's PSK, refuses strangers before any DH,
 * and sends READY. Toward the peer every handshake failure is the same silent close.
 */
import net, { type Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import { HandshakeState, type HandshakeOptions } from '../noise/handshake-state.js';
import type { KeyPair } from '../noise/dh-functions.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../noise/protocols.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../noise/testing.js';
import { encodeFrame, MAX_FRAME_BYTES } from './framing.js';
import { FrameReader } from './frame-reader.js';
import { MAX_UNAUTHENTICATED_FRAME_BYTES, resolveLimits, type ChannelLimits } from './limits.js';
import { computeMac1, deriveMac1Key, MAC1_BYTES, verifyMac1 } from './mac1.js';
import { checkTaskId, decodeRejection, encodePreamble, encodeRejection, type ChannelMode } from './preamble.js';
import { decodeRecord, encodeRecord } from './records.js';
import type { ReplayCache } from './replay-cache.js';
import { SecureConnection } from './secure-connection.js';

/** Symbol of the option that fixes a side's ephemeral key, for the channel transcripts in vectors/ only. */
export const EPHEMERAL_FOR_TESTING = Symbol('noise-cfg testing only: fixed channel ephemeral');

function createHandshake(handshakeOptions: HandshakeOptions, channelOptions: object): HandshakeState {
  const fixed = (channelOptions as { [EPHEMERAL_FOR_TESTING]?: KeyPair })[EPHEMERAL_FOR_TESTING];
  return fixed ? createHandshakeStateWithFixedEphemeralForTesting(handshakeOptions, fixed) : new HandshakeState(handshakeOptions);
}

const PROTOCOL_BY_MODE: Readonly<Record<ChannelMode, string>> = { xxpsk3: XXPSK3_PROTOCOL_NAME, nnpsk0: NNPSK0_PROTOCOL_NAME };
const PUBLIC_KEY_BYTES = 32;

/** What a client needs to open a channel to a task. */
export interface ClientChannelOptions {
  mode: ChannelMode;
  taskId: string;
  /** The task's 32-byte PSK. */
  psk: Uint8Array;
  /** xxpsk3: this client's persistent static key pair (its identity). */
  staticKeyPair?: KeyPair;
  /** xxpsk3: the server's static public key, as pinned in the token. */
  serverPublicKey?: Uint8Array;
  limits?: Partial<ChannelLimits>;
}

/** What the server knows of a task, for one connection. */
export interface TaskKey {
  /** The task's 32-byte PSK. */
  psk: Uint8Array;
  /** The mode the task was created with; a client asking for another mode fails authentication. */
  mode: ChannelMode;
}

/** The server side of the channel. */
export interface ServerChannelOptions {
  /** The server's static key pair (used in xxpsk3). */
  staticKeyPair: KeyPair;
  /** Finds the key of a task by id, or null when there is no such active task. */
  resolveTask: (taskId: string) => TaskKey | null | Promise<TaskKey | null>;
  /** Remembers initiator ephemerals so a replayed message 1 is refused. */
  replayCache: ReplayCache;
  limits?: Partial<ChannelLimits>;
}

/** Plain Noise over the 2-byte framing, with no preamble, records, END or rekey schedule (SPEC.md §2.7). */
export interface RawChannelOptions {
  handshake: HandshakeOptions;
  limits?: Partial<ChannelLimits>;
}

/**
 * Opens a TCP connection and runs the client handshake. Throws CONNECTION_FAILED (the socket error's code in the
 * message), HANDSHAKE_TIMEOUT, AUTHENTICATION_FAILED, REMOTE_STATIC_MISMATCH, UNSUPPORTED_VERSION, UNSUPPORTED_MODE.
 */
export async function connectSecure(host: string, port: number, options: ClientChannelOptions): Promise<SecureConnection> {
  const socket = await openSocket(host, port, resolveLimits(options.limits).handshakeTimeoutMs);
  return secureClientSocket(socket, options);
}

/** Opens a plain TCP connection, with allowHalfOpen so the authenticated END can be answered. */
export function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NoiseCfgError('CONNECTION_FAILED', `could not connect to ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new NoiseCfgError('CONNECTION_FAILED', `could not connect to ${host}:${port}: ${error.code ?? error.message}`, { cause: error }));
    });
  });
}

/** Runs the client handshake on a connected socket. Throws as connectSecure does, except CONNECTION_FAILED. */
export async function secureClientSocket(socket: Socket, options: ClientChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  checkTaskId(options.taskId);
  const protocolName = PROTOCOL_BY_MODE[options.mode];
  if (protocolName === undefined) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be xxpsk3 or nnpsk0, got ${String(options.mode)}`);
  const isXx = options.mode === 'xxpsk3';
  if (isXx && (!options.staticKeyPair || !options.serverPublicKey)) {
    throw new NoiseCfgError('KEY_MISSING', 'xxpsk3 needs staticKeyPair and serverPublicKey (the pin)');
  }
  const preamble = encodePreamble(options.mode, options.taskId);
  const handshake = createHandshake({
    protocolName,
    initiator: true,
    prologue: preamble,
    psks: [options.psk],
    ...(isXx ? { staticKeyPair: options.staticKeyPair!, expectedRemoteStaticKey: options.serverPublicKey! } : {}),
  }, options);
  const reader = new FrameReader(socket, { maxFrameBytes: MAX_FRAME_BYTES, expectPreamble: false });
  return withDeadline(socket, reader, limits.handshakeTimeoutMs, async () => {
    const message1 = handshake.writeMessage();
    const firstFrame = isXx ? Buffer.concat([message1, computeMac1(deriveMac1Key(options.psk), preamble, message1)]) : message1;
    socket.write(Buffer.concat([preamble, encodeFrame(firstFrame)]));

    const reply = await readHandshakeFrame(reader);
    const rejection = decodeRejection(reply);
    if (rejection !== null) throw new NoiseCfgError(rejection, `the server rejected the connection: ${rejection.toLowerCase().replace(/_/g, ' ')}`);
    asAuthenticationFailure(() => handshake.readMessage(reply));
    if (isXx) socket.write(encodeFrame(handshake.writeMessage()));
    const transport = handshake.finish();

    const ready = await readHandshakeFrame(reader);
    asAuthenticationFailure(() => {
      if (decodeRecord(transport.decrypt(ready)).type !== 'READY') throw new NoiseCfgError('FRAME_INVALID', 'the server\'s first record is not READY');
    });
    return new SecureConnection(socket, transport, reader.takeOver(), {
      info: { mode: options.mode, taskId: options.taskId, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey },
      limits,
    });
  });
}

/**
 * Runs the server handshake on an accepted socket. On any failure the socket is closed with nothing sent (clear
 * rejections of version and mode excepted) and the promise rejects with the local reason: PREAMBLE_INVALID,
 * UNSUPPORTED_VERSION, UNSUPPORTED_MODE, AUTHENTICATION_FAILED, REPLAY_DETECTED, HANDSHAKE_TIMEOUT, FRAME_INVALID,
 * CONNECTION_TRUNCATED.
 */
export async function acceptSecureSocket(socket: Socket, options: ServerChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  const reader = new FrameReader(socket, { maxFrameBytes: MAX_UNAUTHENTICATED_FRAME_BYTES, expectPreamble: true });
  return withDeadline(socket, reader, limits.handshakeTimeoutMs, async () => {
    let preamble;
    try {
      preamble = await reader.readPreamble();
    } catch (error) {
      if (isNoiseCfgError(error) && (error.code === 'UNSUPPORTED_VERSION' || error.code === 'UNSUPPORTED_MODE')) {
        socket.write(encodeFrame(encodeRejection(error.code)));
        socket.destroySoon();
      }
      throw error;
    }
    const { mode, taskId } = preamble.preamble;
    const task = await options.resolveTask(taskId);
    if (task === null || task.mode !== mode) {
      throw new NoiseCfgError('AUTHENTICATION_FAILED', task === null ? 'unknown or inactive task' : `task is ${task.mode}, client asked for ${mode}`);
    }
    const isXx = mode === 'xxpsk3';
    const handshake = createHandshake({
      protocolName: PROTOCOL_BY_MODE[mode],
      initiator: false,
      prologue: preamble.bytes,
      psks: [task.psk],
      ...(isXx ? { staticKeyPair: options.staticKeyPair } : {}),
    }, options);
    const firstFrame = await reader.readFrame();
    let message1 = firstFrame;
    if (isXx) {
      // No DH before the client shows it knows the PSK: mac1 costs one BLAKE2b.
      message1 = firstFrame.subarray(0, Math.max(0, firstFrame.byteLength - MAC1_BYTES));
      const mac = firstFrame.subarray(message1.byteLength);
      if (!verifyMac1(deriveMac1Key(task.psk), preamble.bytes, message1, mac)) {
        throw new NoiseCfgError('AUTHENTICATION_FAILED', 'mac1 did not verify: the client does not know the task PSK');
      }
    }
    // NNpsk0 message 1 carries a tag under the PSK, so reading it is the proof; XX message 1 needs no DH to read.
    asAuthenticationFailure(() => handshake.readMessage(message1));
    if (!options.replayCache.checkAndRemember(message1.subarray(0, PUBLIC_KEY_BYTES))) {
      throw new NoiseCfgError('REPLAY_DETECTED', 'handshake message 1 repeats a recent ephemeral key');
    }
    socket.write(encodeFrame(handshake.writeMessage()));
    if (isXx) {
      const message3 = await reader.readFrame();
      asAuthenticationFailure(() => handshake.readMessage(message3));
    }
    const transport = handshake.finish();
    socket.write(encodeFrame(transport.encrypt(encodeRecord('READY'))));
    return new SecureConnection(socket, transport, reader.takeOver(), {
      info: { mode, taskId, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey },
      limits,
    });
  });
}

/** Runs a plain Noise handshake over the framing, in either role (SPEC.md §2.7). */
export async function rawSecureSocket(socket: Socket, options: RawChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  const handshake = new HandshakeState(options.handshake);
  const reader = new FrameReader(socket, { maxFrameBytes: MAX_FRAME_BYTES, expectPreamble: false });
  return withDeadline(socket, reader, limits.handshakeTimeoutMs, async () => {
    while (!handshake.isFinished) {
      if (handshake.isMyTurn) {
        socket.write(encodeFrame(handshake.writeMessage()));
      } else {
        const frame = await readHandshakeFrame(reader);
        asAuthenticationFailure(() => handshake.readMessage(frame));
      }
    }
    const transport = handshake.finish();
    return new SecureConnection(socket, transport, reader.takeOver(), {
      info: { mode: 'raw', taskId: null, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey },
      limits,
    });
  });
}

// For the side that waits on the peer's answer, a close during the handshake is the peer refusing it.
async function readHandshakeFrame(reader: FrameReader): Promise<Buffer> {
  try {
    return await reader.readFrame();
  } catch (error) {
    if (isNoiseCfgError(error, 'CONNECTION_TRUNCATED')) {
      throw new NoiseCfgError('AUTHENTICATION_FAILED', 'the server closed the connection during the handshake: wrong token or PSK, the task is unknown or has ended, or the server is overloaded', { cause: error });
    }
    throw error;
  }
}

// Every cryptographic failure during the handshake is an authentication failure to the caller; the pin keeps its
// own code because the fix (a different token) differs.
const KEPT_CODES = new Set<ErrorCode>(['REMOTE_STATIC_MISMATCH', 'HANDSHAKE_TIMEOUT', 'INVALID_ARGUMENT']);

function asAuthenticationFailure<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (isNoiseCfgError(error) && KEPT_CODES.has(error.code)) throw error;
    const reason = isNoiseCfgError(error) ? error.code : 'error';
    throw new NoiseCfgError('AUTHENTICATION_FAILED', `handshake failed (${reason})`, { cause: error });
  }
}

async function withDeadline<T>(socket: Socket, reader: FrameReader, timeoutMs: number, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new NoiseCfgError('HANDSHAKE_TIMEOUT', `handshake did not finish within ${timeoutMs} ms`);
      reader.fail(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([run(), deadline]);
  } catch (error) {
    reader.takeOver();
    // Silent close toward the peer: no reason is sent for a failed handshake (a clear rejection is already flushing).
    if (!socket.writableEnded) socket.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The channel's entry points (SPEC.md §2.3, §2.7, §2.8): connect a socket, or take an accepted one, and run the
 * handshake on it to get a SecureConnection. The handshakes themselves are the state machines of
 * client-handshake.ts and server-handshake.ts, each on its socket adapter; raw mode's plain Noise loop is here.
 */
import net, { type Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { HandshakeState } from '../noise/index.js';
import { asAuthenticationFailure, closedDuringHandshake } from './channel-handshake.js';
import type { ClientChannelOptions, RawChannelOptions, ServerChannelOptions } from './channel-options.js';
import { ClientHandshake } from './client-handshake.js';
import { runClientHandshake } from './client-handshake-socket.js';
import { encodeFrame } from './framing.js';
import { FrameReader } from './frame-reader.js';
import { MAX_FRAME_BYTES, resolveLimits } from './limits.js';
import { SecureConnection } from './secure-connection.js';
import { ServerHandshakeSocket } from './server-handshake-socket.js';
import { connectReadingShared } from './socket-chunks.js';

export type { ClientChannelOptions, RawChannelOptions, ServerChannelOptions, TaskKey } from './channel-options.js';

/**
 * Opens a TCP connection and runs the client handshake. Throws CONNECTION_FAILED (the socket error's code in the
 * message; also a reset during the handshake), HANDSHAKE_TIMEOUT, TOO_MANY_CONNECTIONS (the server's busy frame),
 * AUTHENTICATION_FAILED, REMOTE_STATIC_MISMATCH, UNSUPPORTED_VERSION, UNSUPPORTED_MODE. connectSecureWithRetry
 * retries the ones that may pass.
 */
export async function connectSecure(host: string, port: number, options: ClientChannelOptions): Promise<SecureConnection> {
  // The channel consumes every chunk as it arrives, so its socket can read into the shared buffer.
  const socket = await connectWithin(host, port, resolveLimits(options.limits).handshakeTimeoutMs, connectReadingShared);
  return secureClientSocket(socket, options);
}

/** Opens a plain TCP connection (with 'data' events), with allowHalfOpen so the authenticated END can be answered. */
export function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return connectWithin(host, port, timeoutMs, (toHost, toPort) => net.connect({ host: toHost, port: toPort, allowHalfOpen: true }));
}

function connectWithin(host: string, port: number, timeoutMs: number, connect: (host: string, port: number) => Socket): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(host, port);
    const timer = setTimeout(() => {
      socket.destroy();
      const timedOut: NodeJS.ErrnoException = Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' });
      reject(new NoiseCfgError('CONNECTION_FAILED', `could not connect to ${host}:${port} within ${timeoutMs} ms`, { cause: timedOut }));
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
  const handshake = new ClientHandshake(options);
  return runClientHandshake(socket, handshake, limits.handshakeTimeoutMs, ({ transport, decoder, frames }) => new SecureConnection(socket, transport, { decoder, frames, isEnded: false }, {
    info: { mode: options.mode, taskId: options.taskId, handshakeHash: transport.handshakeHash, remoteStaticKey: transport.remoteStaticKey },
    limits,
  }));
}

/**
 * Runs the server handshake on an accepted socket, with the first-flight and handshake deadlines. On any failure
 * the socket is closed with nothing sent (clear rejections of version and mode excepted) and the promise rejects
 * with the local reason: PREAMBLE_INVALID, UNSUPPORTED_VERSION, UNSUPPORTED_MODE, AUTHENTICATION_FAILED,
 * REPLAY_DETECTED, HANDSHAKE_TIMEOUT, FRAME_INVALID, CONNECTION_TRUNCATED. In nnpsk0 it resolves only once the
 * client's first transport message has decrypted (SPEC.md §2.3). The connection caps are SecureServer's.
 */
export function acceptSecureSocket(socket: Socket, options: ServerChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  return new Promise((resolve, reject) => {
    new ServerHandshakeSocket(socket, options, limits, resolve, reject);
  });
}

/** Runs a plain Noise handshake over the framing, in either role (SPEC.md §2.7). */
export async function rawSecureSocket(socket: Socket, options: RawChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  const handshake = new HandshakeState(options.handshake);
  const reader = new FrameReader(socket, { maxFrameBytes: MAX_FRAME_BYTES });
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

// For raw mode, as for the channel's client: a clean close while waiting for the peer is a refusal, a reset is not.
async function readHandshakeFrame(reader: FrameReader): Promise<Buffer> {
  try {
    return await reader.readFrame();
  } catch (error) {
    if (isNoiseCfgError(error, 'CONNECTION_TRUNCATED')) throw closedDuringHandshake(error.cause as Error | undefined);
    throw error;
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

/**
 * Handshake drivers (SPEC.md §2.3–§2.4): turn a net.Socket plus a key setup into a SecureConnection. The client
 * sends the preamble and message 1 (with mac1 in xxpsk3), checks the server's pin before message 3, and waits
 * for the server's READY. The server parses the preamble, finds the task's PSK, refuses strangers before any DH,
 * and sends READY. Toward the peer every handshake failure is the same silent close.
 */
import net, { type Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { HandshakeState } from '../noise/handshake-state.js';
import { PROTOCOL_BY_MODE, type ClientChannelOptions, type RawChannelOptions, type ServerChannelOptions } from './channel-options.js';
import { encodeFrame, MAX_FRAME_BYTES } from './framing.js';
import { FrameReader } from './frame-reader.js';
import { resolveLimits } from './limits.js';
import { computeMac1, mac1KeyForPsk } from './mac1.js';
import { checkTaskId, decodeRejection, encodePreamble } from './preamble.js';
import { decodeRecord } from './records.js';
import { SecureConnection } from './secure-connection.js';
import { connectReadingShared } from './socket-chunks.js';
import { asAuthenticationFailure, createHandshake, EPHEMERAL_FOR_TESTING, ServerHandshake } from './server-handshake.js';

export { EPHEMERAL_FOR_TESTING };
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
  const reader = new FrameReader(socket, { maxFrameBytes: MAX_FRAME_BYTES });
  return withDeadline(socket, reader, limits.handshakeTimeoutMs, async () => {
    const message1 = handshake.writeMessage();
    const firstFrame = isXx ? Buffer.concat([message1, computeMac1(mac1KeyForPsk(options.psk), preamble, message1)]) : message1;
    socket.write(Buffer.concat([preamble, encodeFrame(firstFrame)]));

    const reply = await readHandshakeFrame(reader);
    throwIfRejection(reply);
    asAuthenticationFailure(() => handshake.readMessage(reply));
    if (isXx) socket.write(encodeFrame(handshake.writeMessage()));
    const transport = handshake.finish();

    const ready = await readHandshakeFrame(reader);
    // A server with no room for another established connection says so in place of READY (SPEC.md §2.3).
    throwIfRejection(ready);
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
 * Runs the server handshake on an accepted socket, with the first-flight and handshake deadlines. On any failure
 * the socket is closed with nothing sent (clear rejections of version and mode excepted) and the promise rejects
 * with the local reason: PREAMBLE_INVALID, UNSUPPORTED_VERSION, UNSUPPORTED_MODE, AUTHENTICATION_FAILED,
 * REPLAY_DETECTED, HANDSHAKE_TIMEOUT, FRAME_INVALID, CONNECTION_TRUNCATED. In nnpsk0 it resolves only once the
 * client's first transport message has decrypted (SPEC.md §2.3). The connection caps are SecureServer's.
 */
export function acceptSecureSocket(socket: Socket, options: ServerChannelOptions): Promise<SecureConnection> {
  const limits = resolveLimits(options.limits);
  return new Promise((resolve, reject) => {
    new ServerHandshake(socket, options, limits, resolve, reject);
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

const REJECTION_MESSAGES: Readonly<Record<NonNullable<ReturnType<typeof decodeRejection>>, string>> = {
  UNSUPPORTED_VERSION: 'the server rejected the connection: unsupported version',
  UNSUPPORTED_MODE: 'the server rejected the connection: unsupported mode',
  PREAMBLE_INVALID: 'the server rejected the connection: preamble invalid',
  TOO_MANY_CONNECTIONS: 'server busy: it is at a connection limit and refused this connection; try again later',
};

// A rejection frame is 6 bytes, shorter than any handshake or transport message, so it cannot be mistaken for one.
function throwIfRejection(frame: Buffer): void {
  const rejection = decodeRejection(frame);
  if (rejection !== null) throw new NoiseCfgError(rejection, REJECTION_MESSAGES[rejection]);
}

/** Socket errors that mean the peer reset the connection rather than closed it. */
const RESET_ERRNO_CODES = new Set(['ECONNRESET', 'EPIPE']);

// For the side that waits on the peer's answer, a clean close (FIN) during the handshake is the peer refusing it.
// A reset is not: a server that refuses sends a FIN after reading what the client sent, so a reset means a server
// that was cut off or overloaded, and is worth another try.
async function readHandshakeFrame(reader: FrameReader): Promise<Buffer> {
  try {
    return await reader.readFrame();
  } catch (error) {
    if (isNoiseCfgError(error, 'CONNECTION_TRUNCATED')) {
      const errno = (error.cause as NodeJS.ErrnoException | undefined)?.code;
      if (errno !== undefined && RESET_ERRNO_CODES.has(errno)) {
        throw new NoiseCfgError('CONNECTION_FAILED', `the server reset the connection during the handshake (${errno}): it may be overloaded or restarting`, { cause: error.cause });
      }
      throw new NoiseCfgError('AUTHENTICATION_FAILED', 'the server closed the connection during the handshake: wrong PSK, or the server does not serve this task id', { cause: error });
    }
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

/**
 * What both sides of the channel handshake share (SPEC.md §2.3): the HandshakeState of a mode, with the fixed
 * ephemeral of the transcripts in vectors/ when a test sets one; the READY frame; the mapping of every failed
 * handshake read to AUTHENTICATION_FAILED; and the shape of a step of either side's state machine.
 */
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import { HandshakeState, type HandshakeOptions, type KeyPair, type TransportState } from '../noise/index.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../noise/testing.js';
import { encodeFrame, type FrameDecoder } from './framing.js';
import { encodeRecord } from './records.js';

/** Symbol of the option that fixes a side's ephemeral key, for the channel transcripts in vectors/ only. */
export const EPHEMERAL_FOR_TESTING = Symbol('noise-cfg testing only: fixed channel ephemeral');

/** A HandshakeState for the options, with the fixed ephemeral of the transcripts when `channelOptions` sets one. */
export function createHandshake(handshakeOptions: HandshakeOptions, channelOptions: object): HandshakeState {
  const fixed = (channelOptions as { [EPHEMERAL_FOR_TESTING]?: KeyPair })[EPHEMERAL_FOR_TESTING];
  return fixed ? createHandshakeStateWithFixedEphemeralForTesting(handshakeOptions, fixed) : new HandshakeState(handshakeOptions);
}

const READY_PLAINTEXT = encodeRecord('READY');

/** The server's first transport message, framed: the READY record under `transport`'s send key. */
export function sealReady(transport: TransportState): Buffer {
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

/** Socket errors that mean the peer reset the connection rather than closed it. */
const RESET_ERRNO_CODES = new Set(['ECONNRESET', 'EPIPE']);

/**
 * What it means when the server closes (no `socketError`) or the connection fails while the client waits for the
 * server's answer. A clean close is the server refusing the handshake: AUTHENTICATION_FAILED. A reset is not: a
 * server that refuses sends a FIN after reading what the client sent, so a reset means a server cut off or
 * overloaded, and is worth another try: CONNECTION_FAILED.
 */
export function closedDuringHandshake(socketError?: Error): NoiseCfgError {
  const errno = (socketError as NodeJS.ErrnoException | undefined)?.code;
  if (errno !== undefined && RESET_ERRNO_CODES.has(errno)) {
    return new NoiseCfgError('CONNECTION_FAILED', `the server reset the connection during the handshake (${errno}): it may be overloaded or restarting`, { cause: socketError });
  }
  const closed = socketError === undefined
    ? new NoiseCfgError('CONNECTION_TRUNCATED', 'the peer closed the connection during the handshake')
    : new NoiseCfgError('CONNECTION_TRUNCATED', `connection error: ${socketError.message}`, { cause: socketError });
  return new NoiseCfgError('AUTHENTICATION_FAILED', 'the server closed the connection during the handshake: wrong PSK, or the server does not serve this task id', { cause: closed });
}

/** The error a handshake state machine fails with: a NoiseCfgError as it is, anything else as FRAME_INVALID. */
export function asHandshakeError(error: unknown): NoiseCfgError {
  return isNoiseCfgError(error) ? error : new NoiseCfgError('FRAME_INVALID', (error as Error).message, { cause: error });
}

/** What a finished handshake hands to the connection: the keys, and the bytes read past the last handshake frame. */
export interface HandshakeResult {
  transport: TransportState;
  /** The frame decoder, holding any partial frame that followed. */
  decoder: FrameDecoder;
  /** Complete frames that followed the handshake's last, copied out of the chunk they arrived in. */
  frames: Buffer[];
}

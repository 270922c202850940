/**
 * The channel's limits with their units and defaults (SPEC.md §2.6). Each is configurable; hitting one closes
 * only the connection concerned.
 */
import { NoiseCfgError } from '../errors.js';

/** Limits of one channel endpoint. */
export interface ChannelLimits {
  /** The whole handshake, from TCP accept or connect to the last handshake message, in milliseconds. */
  handshakeTimeoutMs: number;
  /** An established connection with no traffic either way for this long is closed, in milliseconds (0 = never). */
  idleTimeoutMs: number;
  /** The largest application message this side sends, in bytes. */
  maxSendMessageBytes: number;
  /**
   * The largest application message this side accepts, in bytes, checked on every record while its fragments are
   * reassembled (so a peer can never make a receiver hold more than this for one message).
   */
  maxReceiveMessageBytes: number;
  /** Received application messages held for a reader that has not taken them, in bytes, before the socket pauses. */
  receiveHighWaterBytes: number;
  /** Server only: connections that have not yet proved they know the PSK, at once. */
  maxUnauthenticatedConnections: number;
  /** Send side: a REKEY record is sent after this many transport messages under one key. */
  rekeyAfterMessages: number;
  /** Send side: a REKEY record is sent when a key has been in use this long, in milliseconds. */
  rekeyAfterMs: number;
}

/** Defaults, named with units. */
export const DEFAULT_LIMITS: Readonly<ChannelLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxSendMessageBytes: 64 * 1024 * 1024,
  maxReceiveMessageBytes: 64 * 1024 * 1024,
  receiveHighWaterBytes: 1024 * 1024,
  maxUnauthenticatedConnections: 1024,
  rekeyAfterMessages: 1_048_576,
  rekeyAfterMs: 3_600_000,
});

/** The largest frame a peer may send before it has proved it knows the PSK, in bytes (SPEC.md §2.4). */
export const MAX_UNAUTHENTICATED_FRAME_BYTES = 1024;

/** Merges `overrides` over the defaults, checking each value. Throws INVALID_ARGUMENT naming the limit. */
export function resolveLimits(overrides: Partial<ChannelLimits> = {}): ChannelLimits {
  for (const name of Object.keys(overrides)) {
    // A misspelt or retired limit (maxMessageBytes) must not pass for a setting that took effect.
    if (!(name in DEFAULT_LIMITS)) throw new NoiseCfgError('INVALID_ARGUMENT', `unknown limit ${name}`);
  }
  const limits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    const isZeroAllowed = name === 'idleTimeoutMs';
    if (!Number.isSafeInteger(value) || value < (isZeroAllowed ? 0 : 1)) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `limit ${name} must be a whole number ${isZeroAllowed ? '>= 0' : '>= 1'}, got ${String(value)}`);
    }
  }
  return limits;
}

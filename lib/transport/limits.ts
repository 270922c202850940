/**
 * The channel's limits with their units and defaults (SPEC.md §2.6). Each is configurable; hitting one closes
 * only the connection concerned.
 */
import { readFileSync } from 'node:fs';
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
  /**
   * Server only: the client's first flight (preamble and handshake message 1, sent together) must have arrived this
   * long after accept, in milliseconds; the whole handshake still has handshakeTimeoutMs.
   */
  firstFlightTimeoutMs: number;
  /**
   * Server only: connections still in the handshake, at once. Past it the oldest is evicted for a newcomer,
   * preferring one that has not yet shown it knows a PSK.
   */
  maxUnauthenticatedConnections: number;
  /**
   * Server only: connections still in the handshake from one source at once (an IPv4 address, an IPv6 /64; an
   * IPv4-mapped IPv6 address counts as its IPv4 address). A newcomer past it is refused.
   */
  maxUnauthenticatedPerSource: number;
  /** Server only: authenticated connections open at once; a newcomer at the cap is refused. */
  maxEstablishedConnections: number;
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
  firstFlightTimeoutMs: 5_000,
  maxUnauthenticatedConnections: 1024,
  maxUnauthenticatedPerSource: 64,
  maxEstablishedConnections: 4096,
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

/**
 * File descriptors a server keeps out of its connection caps, for everything else it opens: the store, logs, the
 * REST API, commands, and the refused sockets that linger briefly so that their busy frame arrives (SPEC.md §2.4).
 */
export const RESERVED_FILE_DESCRIPTORS = 256;

/** What a server chose for its connection caps, and why (SecureServer.connectionCaps). */
export interface ConnectionCaps {
  maxUnauthenticatedConnections: number;
  maxEstablishedConnections: number;
  /** The process's soft limit on open files (RLIMIT_NOFILE), or null where it is unknown (not Linux). */
  openFilesLimit: number | null;
  /** True when the defaults were lowered to fit `openFilesLimit`. */
  isLoweredForOpenFiles: boolean;
}

/** The soft RLIMIT_NOFILE of this process from /proc/self/limits; null when unreadable or unlimited. */
export function readOpenFilesLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const soft = /^Max open files\s+(\d+)\s/m.exec(text)?.[1];
  return soft === undefined ? null : Number(soft);
}

/**
 * Fits the two connection caps into `openFilesLimit`: when unauthenticated + established + RESERVED_FILE_DESCRIPTORS
 * exceeds it, the caps the caller did not set (`explicit`) are lowered in proportion, each to at least 1. Caps the
 * caller set are kept as given. Pure.
 */
export function fitConnectionCaps(limits: ChannelLimits, explicit: Partial<ChannelLimits>, openFilesLimit: number | null): ConnectionCaps {
  const caps = {
    maxUnauthenticatedConnections: limits.maxUnauthenticatedConnections,
    maxEstablishedConnections: limits.maxEstablishedConnections,
  };
  const names = Object.keys(caps) as (keyof typeof caps)[];
  const budget = openFilesLimit === null ? Number.POSITIVE_INFINITY : Math.max(2, openFilesLimit - RESERVED_FILE_DESCRIPTORS);
  const total = caps.maxUnauthenticatedConnections + caps.maxEstablishedConnections;
  const free = names.filter((name) => explicit[name] === undefined);
  if (total <= budget || free.length === 0) return { ...caps, openFilesLimit, isLoweredForOpenFiles: false };
  const fixed = names.filter((name) => explicit[name] !== undefined).reduce((sum, name) => sum + caps[name], 0);
  const room = Math.max(free.length, budget - fixed);
  const freeTotal = free.reduce((sum, name) => sum + caps[name], 0);
  for (const name of free) caps[name] = Math.max(1, Math.floor((caps[name] * room) / freeTotal));
  return { ...caps, openFilesLimit, isLoweredForOpenFiles: true };
}

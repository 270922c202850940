/**
 * Every limit and sized constant of the channel, with its unit (SPEC.md §2.1–§2.6): the configurable ChannelLimits
 * with their defaults, then the fixed sizes, deadlines and caps that the other transport files use. A value that
 * follows from another is computed from it here, so that the two cannot drift apart. Each configurable limit closes
 * only the connection concerned when hit.
 */
import { readFileSync } from 'node:fs';
import { NoiseCfgError } from '../errors.js';
import { DH_BYTES, MAX_MESSAGE_BYTES, MAX_TRANSPORT_PLAINTEXT_BYTES, TAG_BYTES } from '../noise/index.js';

// ---- Wire sizes (SPEC.md §2.1, §2.2, §2.4, §2.5) ----

/** Bytes in a frame's big-endian length prefix. */
export const FRAME_HEADER_BYTES = 2;
/** The largest frame body, in bytes: one Noise message (Noise rev. 34 §3), all that the 2-byte prefix can say. */
export const MAX_FRAME_BYTES = MAX_MESSAGE_BYTES;
/** The largest frame a peer may send before it has proved it knows the PSK, in bytes (SPEC.md §2.4). */
export const MAX_UNAUTHENTICATED_FRAME_BYTES = 1024;
/** Bytes of the type that opens every record's plaintext. */
export const RECORD_TYPE_BYTES = 1;
/** The most application bytes one record carries: a full transport plaintext less the type byte (65 518). */
export const MAX_RECORD_BODY_BYTES = MAX_TRANSPORT_PLAINTEXT_BYTES - RECORD_TYPE_BYTES;
/** Bytes a record adds to its body on the wire: frame length, type byte and tag (19). */
export const RECORD_OVERHEAD_BYTES = FRAME_HEADER_BYTES + RECORD_TYPE_BYTES + TAG_BYTES;
/** Bytes of one full record on the wire, length prefix included (65 537). */
export const FULL_RECORD_WIRE_BYTES = RECORD_OVERHEAD_BYTES + MAX_RECORD_BODY_BYTES;
/** Bytes of the mac1 tag appended to xxpsk3 message 1 (SPEC.md §2.4). */
export const MAC1_BYTES = 16;
/** Bytes of the key mac1 is computed under. */
export const MAC1_KEY_BYTES = 32;
/** Bytes of the initiator's ephemeral public key that opens message 1, the replay cache's key. */
export const EPHEMERAL_KEY_BYTES = DH_BYTES;
/** Bytes of the preamble before the task id: magic (4), version (1), mode (1), task id length (1). */
export const PREAMBLE_HEADER_BYTES = 7;
/** The longest task id, in bytes (ASCII, so also in characters). */
export const MAX_TASK_ID_BYTES = 64;
/** The longest preamble, in bytes (71). */
export const MAX_PREAMBLE_BYTES = PREAMBLE_HEADER_BYTES + MAX_TASK_ID_BYTES;
/** The clear rejection frame's body, in bytes: magic, version, reason. Shorter than any handshake message. */
export const REJECTION_FRAME_BYTES = 6;

// ---- The server's handshake (SPEC.md §2.3, §2.4) ----

/** Frames a client may have queued at the server during the handshake: it never sends more than one at a time. */
export const MAX_HANDSHAKE_FRAMES_QUEUED = 4;
/** How long a refused socket may stay open for its peer to read the busy frame and close, in milliseconds. */
export const REFUSAL_LINGER_MS = 1000;
/** Refused sockets allowed to linger for their busy frame at once; past it a refusal closes at once. */
export const MAX_LINGERING_REFUSALS = 128;
/** How long an ephemeral key is remembered, at least, in milliseconds (at most twice this). */
export const REPLAY_WINDOW_MS = 120_000;
/** Keys remembered per replay-cache generation; a full generation rotates early, shortening the window under a flood. */
export const REPLAY_CACHE_MAX_KEYS = 100_000;
/** Connections the kernel queues for accept: a burst of connects waits there instead of a 1 s SYN retransmit. */
export const LISTEN_BACKLOG_CONNECTIONS = 4096;
/** Events of one kind the rate-limited log passes one by one per interval, by default (SPEC.md §2.6). */
export const LOG_EVENTS_PER_INTERVAL = 10;
/** The rate-limited log's interval, in milliseconds, by default. */
export const LOG_INTERVAL_MS = 1000;

// ---- The client's retries (SPEC.md §2.3) ----

/** How long connectSecureWithRetry keeps trying by default, in milliseconds. */
export const DEFAULT_RETRY_FOR_MS = 30_000;
/** The first backoff's upper bound, in milliseconds; it doubles with each retry. */
export const RETRY_BASE_DELAY_MS = 100;
/** The largest backoff bound, in milliseconds. */
export const RETRY_MAX_DELAY_MS = 5_000;

// ---- Established connections: sending, receiving, idling (SPEC.md §2.5) ----

/** Encrypted bytes a sender lets queue in its socket before send() waits for the socket to drain. */
export const SEND_BUFFER_BYTES = 1024 * 1024;
/** Records of one message encrypted into one buffer and handed to the socket in one write. */
export const RECORDS_PER_WRITE = 16;
/** Bytes of one such batch of full records, about 1 MiB: the larger of the send pool's buffers. */
export const BATCH_WIRE_BYTES = RECORDS_PER_WRITE * FULL_RECORD_WIRE_BYTES;
/** Bytes sent in one batch after which a sender yields to the event loop even when its socket is not full. */
export const YIELD_AFTER_BYTES = 512 * 1024;
/**
 * The most a receiver sets aside for a message before it knows the message's size, in bytes: it guesses the size
 * of the last long message, and grows past this by doubling.
 */
export const MAX_ASSEMBLY_GUESS_BYTES = 4 * 1024 * 1024;
/** A pooled buffer serves requests of at least this fraction of its size: smaller ones would waste most of it. */
export const POOLED_FROM_FRACTION = 1 / 4;
/** The smallest send buffer taken from the full-record pool, in bytes (16 384). */
export const POOLED_RECORD_FROM_BYTES = Math.floor(FULL_RECORD_WIRE_BYTES * POOLED_FROM_FRACTION);
/** The smallest send buffer taken from the batch pool, in bytes (262 148). */
export const POOLED_BATCH_FROM_BYTES = Math.floor(BATCH_WIRE_BYTES * POOLED_FROM_FRACTION);
/** Buffers kept for reuse per pooled size, at most. */
export const MAX_POOLED_BUFFERS = 16;
/** Bytes per read into the buffer shared by the sockets a client connects: Node's own read size. */
export const SHARED_READ_BYTES = 64 * 1024;
/** Idle sweeps run at least this far apart, in milliseconds: an idle close may come this much after its deadline. */
export const IDLE_SWEEP_SPACING_MS = 50;

// ---- Configurable limits (SPEC.md §2.6) ----

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

// ---- Connection caps and the open-files limit (SPEC.md §2.4) ----

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

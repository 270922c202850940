/** What each side of the channel needs to open or accept a connection (SPEC.md §2.3–§2.4, §2.7). */
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME, type HandshakeOptions, type KeyPair } from '../noise/index.js';
import type { ChannelLimits } from './limits.js';
import type { ChannelMode } from './preamble.js';
import type { ReplayCache } from './replay-cache.js';

/** The Noise protocol each channel mode runs. */
export const PROTOCOL_BY_MODE: Readonly<Record<ChannelMode, string>> = { xxpsk3: XXPSK3_PROTOCOL_NAME, nnpsk0: NNPSK0_PROTOCOL_NAME };

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

/**
 * The clear connection preamble (SPEC.md §2.2): magic, version, mode and task id, sent by the client before the
 * first handshake frame and used whole as the Noise prologue. Also the server's clear rejection frame. Pure.
 */
import { NoiseCfgError } from '../errors.js';
import { MAX_PREAMBLE_BYTES, MAX_TASK_ID_BYTES, PREAMBLE_HEADER_BYTES, REJECTION_FRAME_BYTES } from './limits.js';

export { MAX_PREAMBLE_BYTES, MAX_TASK_ID_BYTES, PREAMBLE_HEADER_BYTES, REJECTION_FRAME_BYTES };

/** "NCFG". */
export const PREAMBLE_MAGIC = Buffer.from('NCFG', 'ascii');
/** The only channel version this build speaks. */
export const CHANNEL_VERSION = 1;

/** Channel modes (CONTRACT.md). */
export type ChannelMode = 'xxpsk3' | 'nnpsk0';

/** Mode byte values on the wire. */
export const MODE_BYTES: Readonly<Record<ChannelMode, number>> = { xxpsk3: 1, nnpsk0: 2 };

/**
 * Reason bytes of the clear rejection frame; each key is the error code the client raises. TOO_MANY_CONNECTIONS
 * (the server is busy) is sent before the client's first flight is read, so it proves nothing and costs nothing.
 */
export const REJECTION_REASONS = { UNSUPPORTED_VERSION: 1, UNSUPPORTED_MODE: 2, PREAMBLE_INVALID: 3, TOO_MANY_CONNECTIONS: 4 } as const;
const TASK_ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${MAX_TASK_ID_BYTES}}$`);

/** What the preamble carries. */
export interface Preamble {
  version: number;
  mode: ChannelMode;
  taskId: string;
}

/** Throws INVALID_ARGUMENT unless `taskId` is 1 to 64 characters of [A-Za-z0-9_-]. */
export function checkTaskId(taskId: string): string {
  if (typeof taskId !== 'string' || !TASK_ID_PATTERN.test(taskId)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `taskId must be 1 to ${MAX_TASK_ID_BYTES} characters of A-Z, a-z, 0-9, _ and -`);
  }
  return taskId;
}

/** The preamble bytes for a mode and task id. */
export function encodePreamble(mode: ChannelMode, taskId: string): Buffer {
  checkTaskId(taskId);
  const modeByte = MODE_BYTES[mode];
  if (modeByte === undefined) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be xxpsk3 or nnpsk0, got ${String(mode)}`);
  return Buffer.concat([PREAMBLE_MAGIC, Uint8Array.of(CHANNEL_VERSION, modeByte, taskId.length), Buffer.from(taskId, 'ascii')]);
}

/** The result of feeding bytes to the preamble parser. */
export type PreambleParse =
  | { status: 'incomplete' }
  | { status: 'complete'; preamble: Preamble; bytes: Buffer; rest: Buffer };

/**
 * Parses a preamble from the start of `bytes`. Returns `incomplete` when more bytes are needed. Throws
 * PREAMBLE_INVALID (bad magic, bad task id), UNSUPPORTED_VERSION or UNSUPPORTED_MODE, each checked as soon as the
 * byte that decides it has arrived.
 */
export function parsePreamble(bytes: Buffer): PreambleParse {
  const magicBytes = Math.min(bytes.byteLength, PREAMBLE_MAGIC.byteLength);
  if (!bytes.subarray(0, magicBytes).equals(PREAMBLE_MAGIC.subarray(0, magicBytes))) {
    throw new NoiseCfgError('PREAMBLE_INVALID', 'the connection does not start with the noise-cfg preamble');
  }
  if (bytes.byteLength >= 5 && bytes[4] !== CHANNEL_VERSION) {
    throw new NoiseCfgError('UNSUPPORTED_VERSION', `channel version ${bytes[4]} is not supported (this build speaks ${CHANNEL_VERSION})`);
  }
  let mode: ChannelMode | undefined;
  if (bytes.byteLength >= 6) {
    mode = (Object.keys(MODE_BYTES) as ChannelMode[]).find((name) => MODE_BYTES[name] === bytes[5]);
    if (mode === undefined) throw new NoiseCfgError('UNSUPPORTED_MODE', `mode byte ${bytes[5]} is not xxpsk3 (1) or nnpsk0 (2)`);
  }
  if (bytes.byteLength < PREAMBLE_HEADER_BYTES) return { status: 'incomplete' };
  const taskIdLength = bytes[6]!;
  if (taskIdLength < 1 || taskIdLength > MAX_TASK_ID_BYTES) {
    throw new NoiseCfgError('PREAMBLE_INVALID', `task id length ${taskIdLength} is outside 1 to ${MAX_TASK_ID_BYTES}`);
  }
  const end = PREAMBLE_HEADER_BYTES + taskIdLength;
  if (bytes.byteLength < end) return { status: 'incomplete' };
  const taskId = bytes.subarray(PREAMBLE_HEADER_BYTES, end).toString('latin1');
  if (!TASK_ID_PATTERN.test(taskId)) throw new NoiseCfgError('PREAMBLE_INVALID', 'task id has characters outside A-Z, a-z, 0-9, _ and -');
  return {
    status: 'complete',
    preamble: { version: CHANNEL_VERSION, mode: mode!, taskId },
    bytes: Buffer.from(bytes.subarray(0, end)),
    rest: bytes.subarray(end),
  };
}

/** The server's clear rejection frame body for a preamble error code. */
export function encodeRejection(reason: keyof typeof REJECTION_REASONS): Buffer {
  return Buffer.concat([PREAMBLE_MAGIC, Uint8Array.of(CHANNEL_VERSION, REJECTION_REASONS[reason])]);
}

/** The error code a rejection frame body stands for, or null when the body is not a rejection frame. */
export function decodeRejection(body: Uint8Array): keyof typeof REJECTION_REASONS | null {
  if (body.byteLength !== REJECTION_FRAME_BYTES || !Buffer.from(body.subarray(0, 4)).equals(PREAMBLE_MAGIC)) return null;
  const entry = Object.entries(REJECTION_REASONS).find(([, value]) => value === body[5]);
  return entry ? (entry[0] as keyof typeof REJECTION_REASONS) : 'PREAMBLE_INVALID';
}

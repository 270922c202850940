/**
 * Task ids (SPEC.md §3.1): 80 random bits, written as 16 characters of lowercase Crockford base32 (no i, l, o,
 * u), so an id is safe in a URL, a file name and the channel preamble. The token carries the 10 raw bytes. Pure.
 */
import { randomBytes } from 'node:crypto';
import { NoiseCfgError } from '../errors.js';

/** Raw bytes in a task id. */
export const TASK_ID_BYTES = 10;
/** Characters in a task id's text form. */
export const TASK_ID_LENGTH = 16;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TASK_ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{16}$/;

/** A fresh random task id. */
export function generateTaskId(): string {
  return taskIdFromBytes(randomBytes(TASK_ID_BYTES));
}

/** True when `text` is a well-formed task id. */
export function isTaskId(text: unknown): text is string {
  return typeof text === 'string' && TASK_ID_PATTERN.test(text);
}

/** The text form of 10 raw bytes. */
export function taskIdFromBytes(bytes: Uint8Array): string {
  let bits = 0n;
  for (const byte of bytes) bits = (bits << 8n) | BigInt(byte);
  let text = '';
  for (let i = 0; i < TASK_ID_LENGTH; i++) {
    text = ALPHABET[Number(bits & 31n)]! + text;
    bits >>= 5n;
  }
  return text;
}

/** The 10 raw bytes of a task id. Throws INVALID_ARGUMENT for a malformed id. */
export function taskIdToBytes(taskId: string): Buffer {
  if (!isTaskId(taskId)) throw new NoiseCfgError('INVALID_ARGUMENT', `task id must be ${TASK_ID_LENGTH} characters of ${ALPHABET}`);
  let bits = 0n;
  for (const symbol of taskId) bits = (bits << 5n) | BigInt(ALPHABET.indexOf(symbol));
  const bytes = Buffer.alloc(TASK_ID_BYTES);
  for (let i = TASK_ID_BYTES - 1; i >= 0; i--) {
    bytes[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return bytes;
}

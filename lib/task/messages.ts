/**
 * The update protocol's messages (SPEC.md §4.5), each one channel message: a type byte, then a UTF-8 JSON object
 * (or, for CHUNK, raw file bytes). Decoders check every field and the size limits and throw PROTOCOL_ERROR,
 * never anything else. Pure.
 */
import { NoiseCfgError } from '../errors.js';
import { checkTaskPath } from './paths.js';
import { hasUnprintableCharacters } from './printable.js';
import type { FileEntry } from './digests.js';

/** The update protocol version this build speaks. */
export const UPDATE_PROTOCOL_VERSION = 1;
/** Message type bytes. */
export const MESSAGE_TYPES = { HELLO: 1, OFFER: 2, CHUNK: 3, UP_TO_DATE: 4, REJECT: 5, RESULT: 6, ACK: 7, CHECKED: 8 } as const;
/** A message type name. */
export type MessageType = keyof typeof MESSAGE_TYPES;
/** The largest JSON body of an OFFER (the file list), in bytes. */
export const MAX_OFFER_JSON_BYTES = 4 * 1024 * 1024;
/** The largest JSON body of any other message, in bytes. */
export const MAX_JSON_BYTES = 64 * 1024;
/** The largest CHUNK body, in bytes. */
export const MAX_CHUNK_BYTES = 1024 * 1024;
/** Files in one OFFER, at most. */
export const MAX_OFFER_FILES = 10_000;
/**
 * The largest message a client sends (a HELLO or a RESULT: the type byte and a JSON body), in bytes. The update
 * server's channel accepts nothing larger from a client, so a token holder cannot make it hold more per message.
 */
export const MAX_CLIENT_MESSAGE_BYTES = 1 + MAX_JSON_BYTES;
/** The largest message a server sends (an OFFER: the type byte and its JSON body; a CHUNK is smaller), in bytes. */
export const MAX_SERVER_MESSAGE_BYTES = 1 + MAX_OFFER_JSON_BYTES;

/** The longest REJECT `message`, in characters (UTF-16 code units). */
export const MAX_REJECT_MESSAGE_LENGTH = 1024;
/** Why a server refuses a pull. */
export type RejectReason = 'expired' | 'cancelled' | 'completed' | 'full' | 'revoked' | 'unsupported-version' | 'bad-request' | 'busy';
const REJECT_REASONS = new Set<RejectReason>(['expired', 'cancelled', 'completed', 'full', 'revoked', 'unsupported-version', 'bad-request', 'busy']);

/** What the client wants. */
export type PullIntent = 'pull' | 'dry-run' | 'check';

export interface Hello { protocol: number; software: string; name: string; clientId: string | null; have: string | null; intent: PullIntent }
export interface Offer { digest: string; totalBytes: number; files: FileEntry[]; hasContent: boolean }
export interface UpToDate { digest: string }
export interface Reject { reason: RejectReason; message: string }
export interface Result { status: 'applied' | 'failed'; exitCode: number | null; message: string; digest: string }
export interface Ack { status: 'applied' | 'failed' }
export interface Checked { state: 'active'; files: number; totalBytes: number; expiresAt: string }

/** A decoded message. */
export type UpdateMessage =
  | { type: 'HELLO'; body: Hello }
  | { type: 'OFFER'; body: Offer }
  | { type: 'CHUNK'; body: Buffer }
  | { type: 'UP_TO_DATE'; body: UpToDate }
  | { type: 'REJECT'; body: Reject }
  | { type: 'RESULT'; body: Result }
  | { type: 'ACK'; body: Ack }
  | { type: 'CHECKED'; body: Checked };

const TYPE_BY_BYTE = new Map<number, MessageType>(Object.entries(MESSAGE_TYPES).map(([name, byte]) => [byte, name as MessageType]));
const HEX_DIGEST = /^[0-9a-f]{64}$/;
const CLIENT_ID = /^[A-Za-z0-9_.-]{1,64}$/;

function fail(message: string): never {
  throw new NoiseCfgError('PROTOCOL_ERROR', message);
}

/** Encodes a message. */
export function encodeMessage(message: UpdateMessage): Buffer {
  const type = Uint8Array.of(MESSAGE_TYPES[message.type]);
  if (message.type === 'CHUNK') return Buffer.concat([type, message.body]);
  return Buffer.concat([type, Buffer.from(JSON.stringify(message.body), 'utf8')]);
}

type Json = Record<string, unknown>;

function field<T>(object: Json, name: string, check: (value: unknown) => value is T, what: string): T {
  const value = object[name];
  if (!check(value)) fail(`field "${name}" must be ${what}`);
  return value;
}

const isString = (maxLength: number) => (value: unknown): value is string => typeof value === 'string' && value.length <= maxLength;
// A name reaches the server's log and `task show`: nothing in it may move a cursor, recolour or reorder a line.
const isPrintableString = (maxLength: number) => (value: unknown): value is string => isString(maxLength)(value) && !hasUnprintableCharacters(value);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isDigest = (value: unknown): value is string => typeof value === 'string' && HEX_DIGEST.test(value);
const isDigestOrNull = (value: unknown): value is string | null => value === null || isDigest(value);
const isExitCode = (value: unknown): value is number | null => value === null || (Number.isInteger(value) && (value as number) >= -1 && (value as number) <= 255);

function decodeFile(value: unknown, index: number): FileEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`files[${index}] must be an object`);
  const object = value as Json;
  const path = field(object, 'path', isString(4096), 'a string');
  try {
    checkTaskPath(path);
  } catch (error) {
    fail(`files[${index}]: ${(error as Error).message}`);
  }
  const mode = field(object, 'mode', (v): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o777, 'permission bits 0 to 511');
  return { path, mode, size: field(object, 'size', isCount, 'a byte count'), digest: field(object, 'digest', isDigest, '64 hex characters') };
}

/**
 * Decodes one message. Throws PROTOCOL_ERROR for an unknown type, bad JSON, a missing or bad field (a HELLO name
 * with an unprintable character among them), or a body over its limit.
 */
export function decodeMessage(bytes: Buffer): UpdateMessage {
  if (bytes.byteLength === 0) fail('empty message');
  const type = TYPE_BY_BYTE.get(bytes[0]!);
  if (type === undefined) fail(`unknown message type ${bytes[0]}`);
  const body = bytes.subarray(1);
  if (type === 'CHUNK') {
    if (body.byteLength === 0) fail('empty CHUNK (a CHUNK carries 1 byte to 1 MiB)');
    if (body.byteLength > MAX_CHUNK_BYTES) fail(`CHUNK of ${body.byteLength} bytes exceeds ${MAX_CHUNK_BYTES}`);
    return { type, body };
  }
  const limit = type === 'OFFER' ? MAX_OFFER_JSON_BYTES : MAX_JSON_BYTES;
  if (body.byteLength > limit) fail(`${type} of ${body.byteLength} bytes exceeds ${limit}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    fail(`${type} body is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail(`${type} body must be a JSON object`);
  const object = parsed as Json;
  switch (type) {
    case 'HELLO':
      return { type, body: {
        protocol: field(object, 'protocol', isCount, 'a version number'),
        software: field(object, 'software', isString(100), 'a string of at most 100 characters'),
        name: field(object, 'name', isPrintableString(128), 'a string of at most 128 printable characters (no control, format or line-separator characters)'),
        clientId: field(object, 'clientId', (v): v is string | null => v === null || (typeof v === 'string' && CLIENT_ID.test(v)), 'null or 1 to 64 of [A-Za-z0-9_.-]'),
        have: field(object, 'have', isDigestOrNull, 'null or 64 hex characters'),
        intent: field(object, 'intent', (v): v is PullIntent => v === 'pull' || v === 'dry-run' || v === 'check', '"pull", "dry-run" or "check"'),
      } };
    case 'OFFER': {
      const files = field(object, 'files', (v): v is unknown[] => Array.isArray(v) && v.length <= MAX_OFFER_FILES, `an array of at most ${MAX_OFFER_FILES} files`);
      return { type, body: {
        digest: field(object, 'digest', isDigest, '64 hex characters'),
        totalBytes: field(object, 'totalBytes', isCount, 'a byte count'),
        files: files.map(decodeFile),
        hasContent: field(object, 'hasContent', (v): v is boolean => typeof v === 'boolean', 'true or false'),
      } };
    }
    case 'UP_TO_DATE':
      return { type, body: { digest: field(object, 'digest', isDigest, '64 hex characters') } };
    case 'REJECT':
      return { type, body: {
        reason: field(object, 'reason', (v): v is RejectReason => REJECT_REASONS.has(v as RejectReason), 'a known reason'),
        message: field(object, 'message', isString(MAX_REJECT_MESSAGE_LENGTH), `a string of at most ${MAX_REJECT_MESSAGE_LENGTH} characters`),
      } };
    case 'RESULT':
      return { type, body: {
        status: field(object, 'status', (v): v is 'applied' | 'failed' => v === 'applied' || v === 'failed', '"applied" or "failed"'),
        exitCode: field(object, 'exitCode', isExitCode, 'null or an exit code'),
        message: field(object, 'message', isString(1024), 'a string of at most 1024 characters'),
        digest: field(object, 'digest', isDigest, '64 hex characters'),
      } };
    case 'ACK':
      return { type, body: { status: field(object, 'status', (v): v is 'applied' | 'failed' => v === 'applied' || v === 'failed', '"applied" or "failed"') } };
    case 'CHECKED':
      return { type, body: {
        state: field(object, 'state', (v): v is 'active' => v === 'active', '"active"'),
        files: field(object, 'files', isCount, 'a count'),
        totalBytes: field(object, 'totalBytes', isCount, 'a byte count'),
        expiresAt: field(object, 'expiresAt', isString(40), 'an ISO-8601 time'),
      } };
  }
}

/** Decodes and checks that the message is one of `expected`. Throws PROTOCOL_ERROR otherwise. */
export function expectMessage<T extends MessageType>(bytes: Buffer | null, expected: readonly T[]): Extract<UpdateMessage, { type: T }> {
  if (bytes === null) fail(`the peer ended the session where ${expected.join(' or ')} was expected`);
  const message = decodeMessage(bytes);
  if (!(expected as readonly MessageType[]).includes(message.type)) fail(`got ${message.type} where ${expected.join(' or ')} was expected`);
  return message as Extract<UpdateMessage, { type: T }>;
}

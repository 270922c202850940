/**
 * The task token (SPEC.md §3): `ncfg1` followed by base58 of a compact binary record holding the mode, the
 * server's address, the task id, the expiry, the PSK, the server key pin (xxpsk3) and a 32-bit checksum. Pure.
 */
import { isIP } from 'node:net';
import sodium from 'sodium-native';
import { NoiseCfgError } from '../errors.js';
import { decodeBase58, encodeBase58 } from './base58.js';
import { TASK_ID_BYTES, taskIdFromBytes, taskIdToBytes } from './task-id.js';

/** Every token starts with this: the format name and version 1. */
export const TOKEN_PREFIX = 'ncfg1';
const PSK_BYTES = 32;
const PIN_BYTES = 32;
const CHECKSUM_BYTES = 4;
const MAX_HOSTNAME_BYTES = 253;
const MODE_BITS = { xxpsk3: 1, nnpsk0: 2 } as const;
/** Longer than any token (a hostname of 253 characters gives about 470). */
const MAX_TOKEN_CHARACTERS = 600;
const ADDRESS_BITS = { ipv4: 0, ipv6: 1, hostname: 2 } as const;
const HOSTNAME_PATTERN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The modes a token can name. */
export type TokenMode = keyof typeof MODE_BITS;

/** Everything a token carries. */
export interface TokenFields {
  mode: TokenMode;
  /** Hostname, IPv4 address, or IPv6 address (without brackets). */
  host: string;
  port: number;
  taskId: string;
  /** Expiry, whole seconds since the Unix epoch. */
  expiresAtSeconds: number;
  /** The task's 32-byte PSK. */
  psk: Buffer;
  /** xxpsk3: the server's 32-byte static public key; null in nnpsk0. */
  serverPublicKey: Buffer | null;
}

function fail(code: 'TOKEN_MALFORMED' | 'TOKEN_CHECKSUM_MISMATCH' | 'TOKEN_VERSION_UNSUPPORTED', message: string): never {
  throw new NoiseCfgError(code, message);
}

function checksum(body: Uint8Array): Buffer {
  const digest = Buffer.alloc(16);
  sodium.crypto_generichash(digest, Buffer.concat([Buffer.from(TOKEN_PREFIX, 'ascii'), body]));
  return digest.subarray(0, CHECKSUM_BYTES);
}

function encodeAddress(host: string): { kind: keyof typeof ADDRESS_BITS; bytes: Buffer } {
  const version = isIP(host);
  if (version === 4) return { kind: 'ipv4', bytes: Buffer.from(host.split('.').map(Number)) };
  if (version === 6) return { kind: 'ipv6', bytes: ipv6ToBytes(host) };
  if (!HOSTNAME_PATTERN.test(host)) throw new NoiseCfgError('INVALID_ARGUMENT', `host "${host}" is not a hostname, IPv4 or IPv6 address`);
  return { kind: 'hostname', bytes: Buffer.concat([Uint8Array.of(host.length), Buffer.from(host, 'ascii')]) };
}

function ipv6ToBytes(host: string): Buffer {
  const [head, tail] = host.includes('::') ? host.split('::') as [string, string] : [host, undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').flatMap((group) => {
    if (group.includes('.')) {
      const octets = group.split('.').map(Number);
      return [(octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!];
    }
    return [parseInt(group, 16)];
  }));
  const headGroups = parse(head);
  const tailGroups = tail === undefined ? [] : parse(tail);
  const groups = [...headGroups, ...new Array<number>(8 - headGroups.length - tailGroups.length).fill(0), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

function ipv6FromBytes(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, index) => bytes.readUInt16BE(index * 2).toString(16));
  // The longest run of zero groups becomes "::" (RFC 5952).
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === '0') length++;
    if (length > bestLength && length >= 2) {
      bestStart = start;
      bestLength = length;
    }
  }
  if (bestStart === -1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

/** Encodes the fields as a token. Throws INVALID_ARGUMENT naming the field at fault. */
export function encodeToken(fields: TokenFields): string {
  if (MODE_BITS[fields.mode] === undefined) throw new NoiseCfgError('INVALID_ARGUMENT', `mode must be xxpsk3 or nnpsk0, got ${String(fields.mode)}`);
  if (!Number.isInteger(fields.port) || fields.port < 1 || fields.port > 65535) throw new NoiseCfgError('INVALID_ARGUMENT', `port must be 1 to 65535, got ${fields.port}`);
  if (!Number.isInteger(fields.expiresAtSeconds) || fields.expiresAtSeconds < 0 || fields.expiresAtSeconds > 0xffffffff) {
    throw new NoiseCfgError('INVALID_ARGUMENT', 'expiresAtSeconds must be whole seconds from 0 to 2^32-1');
  }
  if (!(fields.psk instanceof Uint8Array) || fields.psk.byteLength !== PSK_BYTES) throw new NoiseCfgError('PSK_INVALID_LENGTH', `psk must be ${PSK_BYTES} bytes`);
  const needsPin = fields.mode === 'xxpsk3';
  if (needsPin && (!(fields.serverPublicKey instanceof Uint8Array) || fields.serverPublicKey.byteLength !== PIN_BYTES)) {
    throw new NoiseCfgError('INVALID_KEY', `serverPublicKey must be ${PIN_BYTES} bytes in xxpsk3`);
  }
  const address = encodeAddress(fields.host);
  const header = Uint8Array.of(MODE_BITS[fields.mode] | (ADDRESS_BITS[address.kind] << 2));
  const port = Buffer.alloc(2);
  port.writeUInt16BE(fields.port);
  const expiry = Buffer.alloc(4);
  expiry.writeUInt32BE(fields.expiresAtSeconds);
  const body = Buffer.concat([header, address.bytes, port, taskIdToBytes(fields.taskId), expiry, fields.psk, needsPin ? fields.serverPublicKey! : Buffer.alloc(0)]);
  return TOKEN_PREFIX + encodeBase58(Buffer.concat([body, checksum(body)]));
}

/**
 * Decodes a token without judging its expiry. Throws TOKEN_VERSION_UNSUPPORTED (another `ncfgN`),
 * TOKEN_MALFORMED (not a token, bad characters, wrong length or fields), TOKEN_CHECKSUM_MISMATCH (mistyped or
 * truncated). Surrounding white space is ignored; the message never repeats the token.
 */
export function decodeToken(text: string): TokenFields {
  if (typeof text !== 'string') fail('TOKEN_MALFORMED', 'the token must be a string');
  const token = text.trim();
  // Base58 decoding is quadratic; no real token is near this long, so a huge input is refused before it.
  if (token.length > MAX_TOKEN_CHARACTERS) fail('TOKEN_MALFORMED', `the text is ${token.length} characters long; a token has at most ${MAX_TOKEN_CHARACTERS}`);
  // The version is the one character after "ncfg"; the base58 payload may itself start with a digit.
  const versionMatch = /^ncfg([0-9])/.exec(token);
  if (!versionMatch) fail('TOKEN_MALFORMED', 'this is not a noise-cfg token: it must start with "ncfg1"');
  if (versionMatch[1] !== '1') fail('TOKEN_VERSION_UNSUPPORTED', `token version ${versionMatch[1]} is not supported (this build reads ncfg1)`);
  const bytes = decodeBase58(token.slice(TOKEN_PREFIX.length));
  if (bytes === null) {
    const bad = [...token.slice(TOKEN_PREFIX.length)].find((symbol) => !/[1-9A-HJ-NP-Za-km-z]/.test(symbol));
    fail('TOKEN_MALFORMED', `the token has a character that cannot appear in it (${JSON.stringify(bad)}); was it copied whole?`);
  }
  if (bytes.byteLength < 1 + CHECKSUM_BYTES) fail('TOKEN_CHECKSUM_MISMATCH', 'the token is too short: it was truncated');
  const body = bytes.subarray(0, bytes.byteLength - CHECKSUM_BYTES);
  if (!checksum(body).equals(bytes.subarray(body.byteLength))) {
    fail('TOKEN_CHECKSUM_MISMATCH', 'the token\'s checksum does not match: it was mistyped or truncated');
  }
  return parseBody(body);
}

function parseBody(body: Buffer): TokenFields {
  let offset = 0;
  const take = (count: number, what: string): Buffer => {
    if (offset + count > body.byteLength) fail('TOKEN_MALFORMED', `the token ends inside ${what}`);
    const slice = body.subarray(offset, offset + count);
    offset += count;
    return Buffer.from(slice);
  };
  const header = take(1, 'the header')[0]!;
  const modeBits = header & 0b11;
  const addressBits = (header >> 2) & 0b11;
  const mode = (Object.keys(MODE_BITS) as TokenMode[]).find((name) => MODE_BITS[name] === modeBits);
  if (header >> 4 !== 0) fail('TOKEN_MALFORMED', `the token header ${header} has bits 4-7 set, which must be zero`);
  if (mode === undefined) fail('TOKEN_MALFORMED', `the token header ${header} names no known mode`);
  let host: string;
  if (addressBits === ADDRESS_BITS.ipv4) host = [...take(4, 'the IPv4 address')].join('.');
  else if (addressBits === ADDRESS_BITS.ipv6) host = ipv6FromBytes(take(16, 'the IPv6 address'));
  else if (addressBits === ADDRESS_BITS.hostname) {
    const length = take(1, 'the hostname length')[0]!;
    host = take(length, 'the hostname').toString('latin1');
    if (length > MAX_HOSTNAME_BYTES || !HOSTNAME_PATTERN.test(host)) fail('TOKEN_MALFORMED', 'the token\'s hostname is not valid');
  } else fail('TOKEN_MALFORMED', 'the token names an unknown address type');
  const port = take(2, 'the port').readUInt16BE(0);
  if (port === 0) fail('TOKEN_MALFORMED', 'the token\'s port is 0');
  const taskId = taskIdFromBytes(take(TASK_ID_BYTES, 'the task id'));
  const expiresAtSeconds = take(4, 'the expiry').readUInt32BE(0);
  const psk = take(PSK_BYTES, 'the PSK');
  const serverPublicKey = mode === 'xxpsk3' ? take(PIN_BYTES, 'the server key pin') : null;
  if (offset !== body.byteLength) fail('TOKEN_MALFORMED', `the token has ${body.byteLength - offset} bytes more than its fields`);
  return { mode, host, port, taskId, expiresAtSeconds, psk, serverPublicKey };
}

/** Throws TOKEN_EXPIRED when the token's expiry is at or before `nowSeconds`. */
export function checkTokenExpiry(fields: TokenFields, nowSeconds: number): void {
  if (nowSeconds >= fields.expiresAtSeconds) {
    throw new NoiseCfgError('TOKEN_EXPIRED', `the token expired at ${new Date(fields.expiresAtSeconds * 1000).toISOString()}`);
  }
}

/** What `token inspect` shows: every field but the PSK. */
export function describeToken(fields: TokenFields, nowSeconds: number): {
  version: number; mode: TokenMode; host: string; port: number; address: string; taskId: string; expiresAt: string; isExpired: boolean; pin: string | null;
} {
  return {
    version: 1,
    mode: fields.mode,
    host: fields.host,
    port: fields.port,
    address: `${fields.host.includes(':') ? `[${fields.host}]` : fields.host}:${fields.port}`,
    taskId: fields.taskId,
    expiresAt: new Date(fields.expiresAtSeconds * 1000).toISOString(),
    isExpired: nowSeconds >= fields.expiresAtSeconds,
    pin: fields.serverPublicKey ? fields.serverPublicKey.toString('hex') : null,
  };
}

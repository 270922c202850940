/**
 * Token vectors for vectors/noise-cfg-token.json (SPEC.md §3): valid fields with the exact token they encode to,
 * and invalid strings with the error code each must give. Invalid cases of the field stage carry their body in hex:
 * the checksum over it is right, so only the fields are at fault. Deterministic.
 */
import sodium from 'sodium-native';
import { encodeBase58 } from '../../lib/token/base58.js';
import { taskIdToBytes } from '../../lib/token/task-id.js';
import { encodeToken, TOKEN_PREFIX, type TokenFields } from '../../lib/token/token.js';
import { labelledBytes } from './core-vectors.js';

interface ValidCase {
  comment: string;
  fields: { mode: string; host: string; port: number; task_id: string; expires_at_seconds: number; psk: string; server_public_key: string | null };
  token: string;
}

interface InvalidCase {
  comment: string;
  token: string;
  error: string;
  /** Field-stage cases: the body (before the checksum) in hex. */
  body?: string;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function fields(label: string, mode: 'xxpsk3' | 'nnpsk0', host: string, port: number): TokenFields {
  return {
    mode,
    host,
    port,
    taskId: '0123456789abcdef'.slice(0, 16),
    expiresAtSeconds: 1_800_000_000,
    psk: labelledBytes(`token/${label}/psk`, 32),
    serverPublicKey: mode === 'xxpsk3' ? labelledBytes(`token/${label}/pin`, 32) : null,
  };
}

// Written from SPEC.md §3.2 rather than taken from lib/token, so that the vectors check the decoder against the
// text: BLAKE2b with a 16-byte output (not a longer digest cut short), its first 4 bytes, after the body.
function tokenOfBody(body: Buffer): string {
  const digest = Buffer.alloc(16);
  sodium.crypto_generichash(digest, Buffer.concat([Buffer.from(TOKEN_PREFIX, 'ascii'), body]));
  return TOKEN_PREFIX + encodeBase58(Buffer.concat([body, digest.subarray(0, 4)]));
}

const u16 = (value: number): Buffer => Buffer.of(value >> 8, value & 0xff);

/** A body from its parts: header, address bytes, port, then the task id, expiry, PSK and (xxpsk3) pin. */
function body(header: number, address: Buffer, port: number, rest: { hasPin: boolean; extra?: Buffer; cutAfter?: number }): Buffer {
  const psk = labelledBytes('token/fields/psk', 32);
  const pin = labelledBytes('token/fields/pin', 32);
  const whole = Buffer.concat([
    Buffer.of(header), address, u16(port), taskIdToBytes('0123456789abcdef'), Buffer.of(0x6b, 0x49, 0xd2, 0x00), psk,
    rest.hasPin ? pin : Buffer.alloc(0), rest.extra ?? Buffer.alloc(0),
  ]);
  return rest.cutAfter === undefined ? whole : whole.subarray(0, rest.cutAfter);
}

function fieldCases(): InvalidCase[] {
  const ipv4 = Buffer.of(203, 0, 113, 10);
  const hostname = (name: Buffer): Buffer => Buffer.concat([Buffer.of(name.byteLength), name]);
  const cases: [string, Buffer][] = [
    ['header bits 4-7 not zero (0x11)', body(0x11, ipv4, 7447, { hasPin: true })],
    ['header mode bits 0 (0x00; the body starts with a zero byte, a leading "1")', body(0x00, ipv4, 7447, { hasPin: true })],
    ['header mode bits 3 (0x03)', body(0x03, ipv4, 7447, { hasPin: true })],
    ['header address type 3 (0x0d)', body(0x0d, ipv4, 7447, { hasPin: true })],
    ['port 0', body(0x01, ipv4, 0, { hasPin: true })],
    ['hostname with an underscore', body(0x09, hostname(Buffer.from('bad_host.example', 'ascii')), 7447, { hasPin: true })],
    ['hostname starting with a hyphen', body(0x09, hostname(Buffer.from('-host.example', 'ascii')), 7447, { hasPin: true })],
    ['hostname with a byte outside ASCII (0xe9)', body(0x09, hostname(Buffer.from([0x68, 0xe9, 0x73, 0x74])), 7447, { hasPin: true })],
    ['hostname of length 0', body(0x09, hostname(Buffer.alloc(0)), 7447, { hasPin: true })],
    ['one byte more than the fields (trailing 0x00)', body(0x01, ipv4, 7447, { hasPin: true, extra: Buffer.of(0) })],
    ['nnpsk0 with a 32-byte pin after the PSK (trailing bytes)', body(0x02, ipv4, 7447, { hasPin: true })],
    ['xxpsk3 without its pin (ends inside the pin)', body(0x01, ipv4, 7447, { hasPin: false })],
    ['ends inside the PSK', body(0x01, ipv4, 7447, { hasPin: true, cutAfter: 1 + 4 + 2 + 10 + 4 + 16 })],
  ];
  return cases.map(([comment, bytes]) => ({ comment: `field stage: ${comment}`, token: tokenOfBody(bytes), error: 'TOKEN_MALFORMED', body: bytes.toString('hex') }));
}

/** The contents of vectors/noise-cfg-token.json. */
export function tokenVectors(): { valid: ValidCase[]; invalid: InvalidCase[] } {
  const cases: [string, TokenFields][] = [
    ['xxpsk3, IPv4', fields('ipv4', 'xxpsk3', '203.0.113.10', 7447)],
    ['nnpsk0, IPv4', fields('ipv4-nn', 'nnpsk0', '192.0.2.1', 7447)],
    ['xxpsk3, IPv6', fields('ipv6', 'xxpsk3', '2001:db8::7', 443)],
    ['xxpsk3, hostname', fields('hostname', 'xxpsk3', 'config.example.net', 7447)],
  ];
  const valid = cases.map(([comment, value]) => ({
    comment,
    fields: {
      mode: value.mode, host: value.host, port: value.port, task_id: value.taskId, expires_at_seconds: value.expiresAtSeconds,
      psk: hex(value.psk), server_public_key: value.serverPublicKey ? hex(value.serverPublicKey) : null,
    },
    token: encodeToken(value),
  }));
  const good = valid[0]!.token;
  const swapAt = 20;
  const invalid: InvalidCase[] = [
    { comment: 'not a token', token: 'hello', error: 'TOKEN_MALFORMED' },
    { comment: 'another version', token: `ncfg2${good.slice(5)}`, error: 'TOKEN_VERSION_UNSUPPORTED' },
    { comment: 'truncated by one character', token: good.slice(0, -1), error: 'TOKEN_CHECKSUM_MISMATCH' },
    { comment: 'one character changed', token: `${good.slice(0, swapAt)}${good[swapAt] === 'a' ? 'b' : 'a'}${good.slice(swapAt + 1)}`, error: 'TOKEN_CHECKSUM_MISMATCH' },
    { comment: 'two characters transposed', token: `${good.slice(0, swapAt)}${good[swapAt + 1]}${good[swapAt]}${good.slice(swapAt + 2)}`, error: 'TOKEN_CHECKSUM_MISMATCH' },
    { comment: 'a look-alike character that base58 excludes (0)', token: `${good.slice(0, swapAt)}0${good.slice(swapAt + 1)}`, error: 'TOKEN_MALFORMED' },
    { comment: 'white space inside', token: `${good.slice(0, swapAt)} ${good.slice(swapAt)}`, error: 'TOKEN_MALFORMED' },
    { comment: 'prefix only', token: 'ncfg1', error: 'TOKEN_CHECKSUM_MISMATCH' },
    ...fieldCases(),
  ];
  return { valid, invalid };
}

/** The file text. */
export function tokenVectorsText(): string {
  return `${JSON.stringify(tokenVectors(), null, 2)}\n`;
}

/**
 * Token vectors for vectors/noise-cfg-token.json (SPEC.md §3): valid fields with the exact token they encode to,
 * and invalid strings with the error code each must give. Deterministic.
 */
import { encodeToken, type TokenFields } from '../../lib/token/token.js';
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
  ];
  return { valid, invalid };
}

/** The file text. */
export function tokenVectorsText(): string {
  return `${JSON.stringify(tokenVectors(), null, 2)}\n`;
}

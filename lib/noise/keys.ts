/**
 * Static key helpers for users of the core: X25519 key pairs (Noise rev. 34 §12.1) and hex conversion of keys.
 */
import { NoiseCfgError } from '../errors.js';
import { DH_BYTES, generateKeyPair, keyPairFromSecretKey, type KeyPair } from './dh-functions.js';

export { generateKeyPair, keyPairFromSecretKey, type KeyPair };

/** Parses a 32-byte key written as 64 hex characters. Throws INVALID_KEY naming `what`. */
export function keyFromHex(hex: string, what = 'key'): Buffer {
  const trimmed = typeof hex === 'string' ? hex.trim() : '';
  if (!/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    throw new NoiseCfgError('INVALID_KEY', `${what} must be ${DH_BYTES * 2} hex characters`);
  }
  return Buffer.from(trimmed, 'hex');
}

/**
 * The 25519 DH functions (Noise rev. 34 §4.1, §12.1): X25519 from libsodium through noise-handshake's `dh.js`,
 * which meets the spec. An all-zero DH output (a low-order public key) is rejected, as §12.1 allows.
 */
import { dh as x25519, generateKeyPair as x25519KeyPair } from 'noise-handshake/dh.js';
import { NoiseCfgError } from '../errors.js';

/** DHLEN for 25519: public keys, secret keys and DH outputs are all 32 bytes. */
export const DH_BYTES = 32;

/** An X25519 key pair. */
export interface KeyPair {
  /** 32-byte public key. */
  publicKey: Buffer;
  /** 32-byte secret key: zero it when done. */
  secretKey: Buffer;
}

/** The DH names of protocol names that this build supports. */
export type DhName = '25519';

/** A fresh random X25519 key pair (GENERATE_KEYPAIR). */
export function generateKeyPair(): KeyPair {
  return x25519KeyPair();
}

/** The key pair for a given 32-byte secret key. Throws INVALID_KEY on a wrong length. */
export function keyPairFromSecretKey(secretKey: Uint8Array): KeyPair {
  if (secretKey.byteLength !== DH_BYTES) {
    throw new NoiseCfgError('INVALID_KEY', `secretKey must be ${DH_BYTES} bytes, got ${secretKey.byteLength}`);
  }
  return x25519KeyPair(Buffer.from(secretKey));
}

/** DH(keyPair, publicKey). Throws INVALID_KEY when the public key is malformed or of low order. */
export function dh(keyPair: KeyPair, publicKey: Uint8Array): Buffer {
  if (publicKey.byteLength !== DH_BYTES) {
    throw new NoiseCfgError('INVALID_KEY', `public key must be ${DH_BYTES} bytes, got ${publicKey.byteLength}`);
  }
  try {
    return x25519(publicKey, keyPair);
  } catch (cause) {
    throw new NoiseCfgError('INVALID_KEY', 'DH gave the all-zero output: the remote public key has low order', { cause });
  }
}

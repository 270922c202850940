/**
 * The Noise DH functions (Noise rev. 34 §4.1, §12.1–§12.2). 25519 is libsodium's X25519 through
 * noise-handshake's `dh.js`, which meets the spec. 448 is OpenSSL's X448 through node:crypto (libsodium has no
 * X448). An all-zero DH output (a low-order public key) is rejected for both, as §12.1 and §12.2 allow.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dh as x25519, generateKeyPair as x25519KeyPair } from 'noise-handshake/dh.js';
import { NoiseCfgError } from '../errors.js';
import { wipe } from './wipe.js';

/** DHLEN for 25519, the product's curve: public keys, secret keys and DH outputs are all 32 bytes. */
export const DH_BYTES = 32;
/** DHLEN for 448 (§12.2). */
const X448_BYTES = 56;

/** A DH key pair. */
export interface KeyPair {
  /** DHLEN-byte public key. */
  publicKey: Buffer;
  /** DHLEN-byte secret key: zero it when done. */
  secretKey: Buffer;
}

/** The DH names of protocol names. */
export type DhName = '25519' | '448';

/** A Noise DH function: GENERATE_KEYPAIR, DH and DHLEN of §4.1, and a key pair from its secret key. */
export interface DhFunction {
  readonly name: DhName;
  /** DHLEN: the length of public keys, secret keys and DH outputs, in bytes. */
  readonly dhLength: number;
  generateKeyPair(): KeyPair;
  /** Throws INVALID_KEY on a wrong length. */
  keyPairFromSecretKey(secretKey: Uint8Array): KeyPair;
  /** DH(keyPair, publicKey). Throws INVALID_KEY when the public key is malformed or of low order. */
  dh(keyPair: KeyPair, publicKey: Uint8Array): Buffer;
}

function checkLength(key: Uint8Array, dhLength: number, what: string): void {
  if (key.byteLength !== dhLength) throw new NoiseCfgError('INVALID_KEY', `${what} must be ${dhLength} bytes, got ${key.byteLength}`);
}

function lowOrder(cause?: unknown): NoiseCfgError {
  return new NoiseCfgError('INVALID_KEY', 'DH gave the all-zero output: the remote public key has low order', cause === undefined ? undefined : { cause });
}

const dh25519: DhFunction = {
  name: '25519',
  dhLength: DH_BYTES,
  generateKeyPair: () => x25519KeyPair(),
  keyPairFromSecretKey(secretKey) {
    checkLength(secretKey, DH_BYTES, 'secretKey');
    return x25519KeyPair(Buffer.from(secretKey));
  },
  dh(keyPair, publicKey) {
    checkLength(publicKey, DH_BYTES, 'public key');
    try {
      return x25519(publicKey, keyPair);
    } catch (cause) {
      throw lowOrder(cause);
    }
  },
};

// X448 keys as node:crypto takes them: the fixed DER header of RFC 8410's structures, then the raw 56 bytes.
const X448_PKCS8_HEADER = Buffer.from('3046020100300506032b656f043a0438', 'hex');
const X448_SPKI_HEADER = Buffer.from('3042300506032b656f033900', 'hex');

function x448PrivateKey(secretKey: Uint8Array): KeyObject {
  const der = Buffer.concat([X448_PKCS8_HEADER, secretKey]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    wipe(der);
  }
}

function x448PublicKeyOf(privateKey: KeyObject): Buffer {
  return Buffer.from(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(X448_SPKI_HEADER.byteLength));
}

// 448 serves the public vectors only, so each call imports its keys afresh rather than caching KeyObjects.
const dh448: DhFunction = {
  name: '448',
  dhLength: X448_BYTES,
  generateKeyPair() {
    const { privateKey } = generateKeyPairSync('x448');
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    const secretKey = Buffer.from(der.subarray(X448_PKCS8_HEADER.byteLength));
    wipe(der);
    return { publicKey: x448PublicKeyOf(privateKey), secretKey };
  },
  keyPairFromSecretKey(secretKey) {
    checkLength(secretKey, X448_BYTES, 'secretKey');
    return { publicKey: x448PublicKeyOf(x448PrivateKey(secretKey)), secretKey: Buffer.from(secretKey) };
  },
  dh(keyPair, publicKey) {
    checkLength(publicKey, X448_BYTES, 'public key');
    let shared: Buffer;
    try {
      const remote = createPublicKey({ key: Buffer.concat([X448_SPKI_HEADER, publicKey]), format: 'der', type: 'spki' });
      shared = diffieHellman({ privateKey: x448PrivateKey(keyPair.secretKey), publicKey: remote });
    } catch (cause) {
      // OpenSSL refuses to derive from a low-order point; node:crypto reports it as a failed derivation.
      throw lowOrder(cause);
    }
    if (shared.every((byte) => byte === 0)) throw lowOrder();
    return shared;
  },
};

/** The DH functions by protocol-name spelling. */
export const DH_FUNCTIONS: Readonly<Record<DhName, DhFunction>> = { 25519: dh25519, 448: dh448 };

/** A fresh random X25519 key pair (GENERATE_KEYPAIR). */
export function generateKeyPair(): KeyPair {
  return dh25519.generateKeyPair();
}

/** The X25519 key pair for a given 32-byte secret key. Throws INVALID_KEY on a wrong length. */
export function keyPairFromSecretKey(secretKey: Uint8Array): KeyPair {
  return dh25519.keyPairFromSecretKey(secretKey);
}

/** X25519 DH(keyPair, publicKey). Throws INVALID_KEY when the public key is malformed or of low order. */
export function dh(keyPair: KeyPair, publicKey: Uint8Array): Buffer {
  return dh25519.dh(keyPair, publicKey);
}

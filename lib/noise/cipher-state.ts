/**
 * CipherState (Noise rev. 34 §5.1) with rekey (§11.3). Ours, not noise-handshake's: that one keeps 32 bits of the
 * nonce and wraps silently after 2^32 messages. Here the counter is a full 64 bits held as two exact 32-bit halves;
 * 2^64-1 is reserved, and reaching it is NONCE_EXHAUSTED, never a wrap.
 */
import { NoiseCfgError } from '../errors.js';
import { KEY_BYTES, type CipherFunction } from './cipher-functions.js';
import { wipe } from './wipe.js';

const HALF_MAX = 0xffffffff;
const EMPTY = Buffer.alloc(0);
const REKEY_PLAINTEXT = Buffer.alloc(KEY_BYTES);

/** Symbol of the test-only door that moves the nonce; not re-exported from the package. */
export const SET_NONCE_FOR_TESTING = Symbol('noise-cfg testing only: set nonce');
/** Symbol of the test-only door to the key buffer, to check that it ends zeroed; not re-exported. */
export const KEY_BUFFER_FOR_TESTING = Symbol('noise-cfg testing only: key buffer');

/** An AEAD key with its 64-bit nonce counter. */
export class CipherState {
  readonly #cipher: CipherFunction;
  /** k: the 32-byte key, or null before InitializeKey. */
  #k: Buffer | null = null;
  /** The caller's buffer for k, reused by initializeKey after a dispose. */
  readonly #keyStorage: Buffer | null;
  /** n, high 32 bits. */
  #nonceHigh = 0;
  /** n, low 32 bits. */
  #nonceLow = 0;

  /**
   * `keyStorage`, if given, is the KEY_BYTES buffer the key is kept in (so that several states can share one
   * allocation); by default the state allocates its own.
   */
  constructor(cipher: CipherFunction, k: Uint8Array | null = null, keyStorage: Buffer | null = null) {
    this.#cipher = cipher;
    if (keyStorage !== null && keyStorage.byteLength !== KEY_BYTES) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `keyStorage must be ${KEY_BYTES} bytes, got ${keyStorage.byteLength}`);
    }
    this.#keyStorage = keyStorage;
    if (k !== null) this.initializeKey(k);
  }

  /** InitializeKey(k): sets the key (copied) and resets n to 0. */
  initializeKey(k: Uint8Array): void {
    if (k.byteLength !== KEY_BYTES) throw new NoiseCfgError('INVALID_KEY', `cipher key must be ${KEY_BYTES} bytes, got ${k.byteLength}`);
    // The key buffer is reused: a handshake rekeys its CipherState at every MixKey.
    if (this.#k === null) this.#k = this.#keyStorage ?? Buffer.alloc(KEY_BYTES);
    this.#k.set(k);
    this.#nonceHigh = 0;
    this.#nonceLow = 0;
  }

  /** HasKey(). */
  get hasKey(): boolean {
    return this.#k !== null;
  }

  /** n, the number of messages this key has processed. */
  get nonce(): bigint {
    return (BigInt(this.#nonceHigh) << 32n) | BigInt(this.#nonceLow);
  }

  /**
   * EncryptWithAd(ad, plaintext); plaintext is returned as is (copied) when there is no key. `output`, if given,
   * receives the ciphertext (plaintext length + 16 bytes, or the plaintext length without a key; it may begin at
   * the plaintext). Throws NONCE_EXHAUSTED.
   */
  encryptWithAd(additionalData: Uint8Array, plaintext: Uint8Array, output?: Buffer): Buffer {
    if (this.#k === null) {
      if (output === undefined) return Buffer.from(plaintext);
      output.set(plaintext);
      return output;
    }
    this.#assertNonceLeft();
    const ciphertext = this.#cipher.encrypt(this.#k, this.#nonceHigh, this.#nonceLow, additionalData, plaintext, output);
    this.#incrementNonce();
    return ciphertext;
  }

  /**
   * DecryptWithAd(ad, ciphertext). Throws DECRYPT_FAILED when the tag does not verify; n does not advance then, so
   * the state stays usable (§5.1). `output`, if given, receives the plaintext (it may be the ciphertext's start).
   * Throws NONCE_EXHAUSTED.
   */
  decryptWithAd(additionalData: Uint8Array, ciphertext: Uint8Array, output?: Buffer): Buffer {
    if (this.#k === null) return Buffer.from(ciphertext);
    this.#assertNonceLeft();
    const plaintext = this.#cipher.decrypt(this.#k, this.#nonceHigh, this.#nonceLow, additionalData, ciphertext, output);
    this.#incrementNonce();
    return plaintext;
  }

  /** Rekey() of §11.3: k = first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zero bytes); n is unchanged. */
  rekey(): void {
    if (this.#k === null) throw new NoiseCfgError('CIPHER_UNAVAILABLE', 'cannot rekey a cipher state that has no key');
    const next = this.#cipher.encrypt(this.#k, HALF_MAX, HALF_MAX, EMPTY, REKEY_PLAINTEXT);
    this.#k.set(next.subarray(0, KEY_BYTES));
    wipe(next);
  }

  /** Zeroes the key; the state has no key afterwards. */
  dispose(): void {
    if (this.#k !== null) wipe(this.#k);
    this.#k = null;
  }

  [SET_NONCE_FOR_TESTING](nonce: bigint): void {
    this.#nonceHigh = Number((nonce >> 32n) & 0xffffffffn);
    this.#nonceLow = Number(nonce & 0xffffffffn);
  }

  [KEY_BUFFER_FOR_TESTING](): Buffer | null {
    return this.#k;
  }

  #assertNonceLeft(): void {
    if (this.#nonceHigh === HALF_MAX && this.#nonceLow === HALF_MAX) {
      throw new NoiseCfgError('NONCE_EXHAUSTED', 'nonce reached 2^64-1, which is reserved: end this session');
    }
  }

  #incrementNonce(): void {
    if (this.#nonceLow === HALF_MAX) {
      this.#nonceLow = 0;
      this.#nonceHigh += 1;
    } else {
      this.#nonceLow += 1;
    }
  }
}

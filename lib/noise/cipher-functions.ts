/**
 * The Noise cipher functions (Noise rev. 34 §4.2, §12.3–§12.4), as libsodium implements them.
 * ChaChaPoly is always present. AESGCM needs libsodium's crypto_aead_aes256gcm, which needs hardware AES and a
 * binding that exposes it: sodium-native 5.x has none, so AESGCM is reported unavailable and its vectors skip.
 */
import sodium from 'sodium-native';
import { NoiseCfgError } from '../errors.js';

/** The cipher names of protocol names. */
export type CipherName = 'ChaChaPoly' | 'AESGCM';

/** AEAD tag length in bytes, the same for both Noise ciphers. */
export const TAG_BYTES = 16;
/** Key length in bytes. */
export const KEY_BYTES = 32;

/** A Noise cipher function. `nonce` is the 64-bit counter as two 32-bit halves so it stays exact. */
export interface CipherFunction {
  readonly name: CipherName;
  /**
   * ENCRYPT(k, n, ad, plaintext): ciphertext || tag, written into `output` when given (plaintext length + 16
   * bytes; it may start at the plaintext itself, for encryption in place).
   */
  encrypt(key: Uint8Array, nonceHigh: number, nonceLow: number, additionalData: Uint8Array, plaintext: Uint8Array, output?: Buffer): Buffer;
  /**
   * DECRYPT(k, n, ad, ciphertext): the plaintext, written into `output` when given (ciphertext length − 16 bytes;
   * it may be the ciphertext's own start). Throws DECRYPT_FAILED, and then `output` is zeroed, never plaintext.
   */
  decrypt(key: Uint8Array, nonceHigh: number, nonceLow: number, additionalData: Uint8Array, ciphertext: Uint8Array, output?: Buffer): Buffer;
}

// The 96-bit ChaChaPoly nonce: 32 zero bits, then the 64-bit counter little-endian (§12.3). One buffer serves every
// call: calls are synchronous and libsodium reads the nonce before it returns; a nonce is not secret.
const chachaNonceBuffer = Buffer.alloc(12);
function chachaNonce(nonceHigh: number, nonceLow: number): Buffer {
  chachaNonceBuffer.writeUInt32LE(nonceLow, 4);
  chachaNonceBuffer.writeUInt32LE(nonceHigh, 8);
  return chachaNonceBuffer;
}

const chachaPoly: CipherFunction = {
  name: 'ChaChaPoly',
  encrypt(key, nonceHigh, nonceLow, additionalData, plaintext, output) {
    // libsodium's ChaCha20-Poly1305 allows the ciphertext to overlap the message exactly (in place).
    const ciphertext = output ?? Buffer.allocUnsafe(plaintext.byteLength + TAG_BYTES);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(ciphertext, plaintext, additionalData, null, chachaNonce(nonceHigh, nonceLow), key);
    return ciphertext;
  },
  decrypt(key, nonceHigh, nonceLow, additionalData, ciphertext, output) {
    if (ciphertext.byteLength < TAG_BYTES) {
      throw new NoiseCfgError('DECRYPT_FAILED', `ciphertext of ${ciphertext.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
    }
    // libsodium checks the tag before decrypting; on a forgery it zeroes the output, which in place is the input.
    const plaintext = output ?? Buffer.allocUnsafe(ciphertext.byteLength - TAG_BYTES);
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plaintext, null, ciphertext, additionalData, chachaNonce(nonceHigh, nonceLow), key);
    } catch (cause) {
      throw new NoiseCfgError('DECRYPT_FAILED', 'authentication tag did not verify', { cause });
    }
    return plaintext;
  },
};

/** Whether libsodium, as bound here, can run AESGCM on this machine. */
export function isAesGcmAvailable(): boolean {
  return typeof sodium.crypto_aead_aes256gcm_is_available === 'function' && sodium.crypto_aead_aes256gcm_is_available();
}

/** The cipher function for `name`, or null when this build cannot run it (see isAesGcmAvailable). */
export function findCipherFunction(name: CipherName): CipherFunction | null {
  return name === 'ChaChaPoly' ? chachaPoly : null;
}

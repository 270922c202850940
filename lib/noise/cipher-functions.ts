/**
 * The Noise cipher functions (Noise rev. 34 §4.2, §12.3–§12.4). ChaChaPoly is libsodium's. AESGCM is OpenSSL's,
 * through node:crypto: sodium-native 5.x binds no crypto_aead_aes256gcm, and OpenSSL's AES-256-GCM runs on every
 * CPU (with AES instructions where there are some), constant-time either way.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
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

// The 96-bit AESGCM nonce: 32 zero bits, then the 64-bit counter big-endian (§12.4). node:crypto copies it into
// the cipher context when the context is made, so one buffer serves every call.
const aesGcmNonceBuffer = Buffer.alloc(12);
function aesGcmNonce(nonceHigh: number, nonceLow: number): Buffer {
  aesGcmNonceBuffer.writeUInt32BE(nonceHigh, 4);
  aesGcmNonceBuffer.writeUInt32BE(nonceLow, 8);
  return aesGcmNonceBuffer;
}

const aesGcm: CipherFunction = {
  name: 'AESGCM',
  encrypt(key, nonceHigh, nonceLow, additionalData, plaintext, output) {
    const cipher = createCipheriv('aes-256-gcm', key, aesGcmNonce(nonceHigh, nonceLow), { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData);
    // update() reads all of the plaintext before anything is written to `output`, so in place is safe.
    const body = cipher.update(plaintext);
    cipher.final();
    const ciphertext = output ?? Buffer.allocUnsafe(plaintext.byteLength + TAG_BYTES);
    ciphertext.set(body);
    ciphertext.set(cipher.getAuthTag(), plaintext.byteLength);
    body.fill(0);
    return ciphertext;
  },
  decrypt(key, nonceHigh, nonceLow, additionalData, ciphertext, output) {
    if (ciphertext.byteLength < TAG_BYTES) {
      throw new NoiseCfgError('DECRYPT_FAILED', `ciphertext of ${ciphertext.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
    }
    const bodyBytes = ciphertext.byteLength - TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', key, aesGcmNonce(nonceHigh, nonceLow), { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData);
    decipher.setAuthTag(ciphertext.subarray(bodyBytes));
    // OpenSSL hands out plaintext before final() checks the tag: it reaches `output` only once the tag verified.
    const body = decipher.update(ciphertext.subarray(0, bodyBytes));
    try {
      decipher.final();
    } catch (cause) {
      body.fill(0);
      if (output) output.fill(0, 0, bodyBytes);
      throw new NoiseCfgError('DECRYPT_FAILED', 'authentication tag did not verify', { cause });
    }
    if (!output) return body;
    output.set(body);
    body.fill(0);
    return output;
  },
};

/** The cipher function for `name`. */
export function findCipherFunction(name: CipherName): CipherFunction {
  return name === 'ChaChaPoly' ? chachaPoly : aesGcm;
}

/**
 * The Noise cipher functions (Noise rev. 34 §4.2, §12.3–§12.4). ChaChaPoly is libsodium's (OpenSSL's is measured
 * against it, see chachaPoly below). AESGCM is OpenSSL's: sodium-native 5.x binds no crypto_aead_aes256gcm, and OpenSSL's AES-256-GCM runs on every CPU
 * (with AES instructions where there are some), constant-time either way.
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

// libsodium's ChaCha20-Poly1305: cheapest per call (no context to set up), and it works in place.
const chachaPolyLibsodium: CipherFunction = {
  name: 'ChaChaPoly',
  encrypt(key, nonceHigh, nonceLow, additionalData, plaintext, output) {
    // libsodium's ChaCha20-Poly1305 allows the ciphertext to overlap the message exactly (in place).
    const ciphertext = output ?? Buffer.allocUnsafe(plaintext.byteLength + TAG_BYTES);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(ciphertext, plaintext, additionalData, null, chachaNonce(nonceHigh, nonceLow), key);
    return ciphertext;
  },
  decrypt(key, nonceHigh, nonceLow, additionalData, ciphertext, output) {
    checkTagFits(ciphertext);
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

function checkTagFits(ciphertext: Uint8Array): void {
  if (ciphertext.byteLength < TAG_BYTES) {
    throw new NoiseCfgError('DECRYPT_FAILED', `ciphertext of ${ciphertext.byteLength} bytes is shorter than the ${TAG_BYTES}-byte tag`);
  }
}

/**
 * An AEAD from OpenSSL through node:crypto. A cipher context is made per call (node:crypto has no reusable one),
 * which costs a few microseconds, and update() returns a new buffer that is then copied to `output`: so in place
 * works, and the decrypted plaintext reaches `output` only after final() has verified the tag.
 */
interface OpenSslAeadCalls {
  cipher(key: Uint8Array, nonce: Buffer): { setAAD(data: Uint8Array, options: { plaintextLength: number }): unknown; update(data: Uint8Array): Buffer; final(): Buffer; getAuthTag(): Buffer };
  decipher(key: Uint8Array, nonce: Buffer): { setAAD(data: Uint8Array, options: { plaintextLength: number }): unknown; setAuthTag(tag: Uint8Array): unknown; update(data: Uint8Array): Buffer; final(): Buffer };
}

function openSslAead(name: CipherName, calls: OpenSslAeadCalls, nonceOf: (nonceHigh: number, nonceLow: number) => Buffer): CipherFunction {
  return {
    name,
    encrypt(key, nonceHigh, nonceLow, additionalData, plaintext, output) {
      const cipher = calls.cipher(key, nonceOf(nonceHigh, nonceLow));
      cipher.setAAD(additionalData, { plaintextLength: plaintext.byteLength });
      const body = cipher.update(plaintext);
      cipher.final();
      const ciphertext = output ?? Buffer.allocUnsafe(plaintext.byteLength + TAG_BYTES);
      ciphertext.set(body);
      ciphertext.set(cipher.getAuthTag(), plaintext.byteLength);
      return ciphertext;
    },
    decrypt(key, nonceHigh, nonceLow, additionalData, ciphertext, output) {
      checkTagFits(ciphertext);
      const bodyBytes = ciphertext.byteLength - TAG_BYTES;
      const decipher = calls.decipher(key, nonceOf(nonceHigh, nonceLow));
      decipher.setAAD(additionalData, { plaintextLength: bodyBytes });
      decipher.setAuthTag(ciphertext.subarray(bodyBytes));
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
      // The temporary copy of the plaintext is zeroed: a config may hold secrets, and this copy is nobody's to wipe.
      body.fill(0);
      return output;
    },
  };
}

// The 96-bit AESGCM nonce: 32 zero bits, then the 64-bit counter big-endian (§12.4). node:crypto copies it into
// the cipher context when the context is made, so one buffer serves every call.
const aesGcmNonceBuffer = Buffer.alloc(12);
function aesGcmNonce(nonceHigh: number, nonceLow: number): Buffer {
  aesGcmNonceBuffer.writeUInt32BE(nonceHigh, 4);
  aesGcmNonceBuffer.writeUInt32BE(nonceLow, 8);
  return aesGcmNonceBuffer;
}

const aesGcm = openSslAead('AESGCM', {
  cipher: (key, nonce) => createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES }),
  decipher: (key, nonce) => createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES }),
}, aesGcmNonce);
const chachaPolyOpenSsl = openSslAead('ChaChaPoly', {
  cipher: (key, nonce) => createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES }),
  decipher: (key, nonce) => createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES }),
}, chachaNonce);

/**
 * ChaChaPoly is libsodium's at every size. OpenSSL's is the same AEAD (RFC 8439, §12.3's nonce; test/noise/
 * cipher-backends.test.ts checks every size to 65535) and faster per byte in isolation, seal MB/s libsodium vs
 * OpenSSL on this project's machine: 1 KiB 970 vs 246, 16 KiB 1655 vs 2142, a full record 1692 vs 2740; the
 * bench prints these and the crossover (16 KiB). In the server it is not a gain: with OpenSSL from 16 KiB a
 * whole 64 KiB pull cost the server more CPU, not less (5000 pulls at c=100, three interleaved rounds: 833 / 811 /
 * 744 µs against 608 / 698 / 773 µs with libsodium only), while bulk gained about 5 %. node:crypto has no
 * in-place call: each record costs a new cipher object, a new output buffer of the record's size and a copy, and
 * the garbage the server then collects outweighs the faster rounds. So OpenSSL's ChaChaPoly is kept measured and
 * proven, not used; a binding with in-place calls and a reusable context would change that.
 */
const chachaPoly: CipherFunction = chachaPolyLibsodium;

/** Each ChaChaPoly backend on its own, for the test that they agree and for the bench's crossover. */
export const CHACHAPOLY_BACKENDS = { libsodium: chachaPolyLibsodium, openssl: chachaPolyOpenSsl } as const;

/** The cipher function for `name`. */
export function findCipherFunction(name: CipherName): CipherFunction {
  return name === 'ChaChaPoly' ? chachaPoly : aesGcm;
}

// ChaChaPoly from libsodium (what the core uses) and from OpenSSL (measured against it, SPEC.md §1.3) must be one
// AEAD: every size a Noise message can carry, 0 to 65535 bytes, is sealed by each and opened by the other.
import t from 'tap';
import { CHACHAPOLY_BACKENDS, findCipherFunction, TAG_BYTES } from '../../lib/noise/cipher-functions.js';

const { libsodium, openssl } = CHACHAPOLY_BACKENDS;
const MAX_PLAINTEXT_BYTES = 65535;
const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const additionalData = Buffer.from('noise-cfg cipher backends');
const source = Buffer.alloc(MAX_PLAINTEXT_BYTES);
for (let i = 0; i < source.length; i++) source[i] = (i * 131 + 7) & 0xff;

t.test('libsodium and OpenSSL give the same ciphertext at every size from 0 to 65535 and open each other\'s', async (t) => {
  const opened = Buffer.alloc(MAX_PLAINTEXT_BYTES);
  const mismatches: string[] = [];
  for (let size = 0; size <= MAX_PLAINTEXT_BYTES; size++) {
    const plaintext = source.subarray(0, size);
    // The counter varies with the size so that both halves of the nonce are exercised.
    const nonceHigh = size & 0xff;
    const nonceLow = (size * 2654435761) >>> 0;
    const bySodium = libsodium.encrypt(key, nonceHigh, nonceLow, additionalData, plaintext);
    const byOpenSsl = openssl.encrypt(key, nonceHigh, nonceLow, additionalData, plaintext);
    if (!bySodium.equals(byOpenSsl)) mismatches.push(`${size}: ciphertexts differ`);
    if (!openssl.decrypt(key, nonceHigh, nonceLow, additionalData, bySodium, opened.subarray(0, size)).equals(plaintext)) mismatches.push(`${size}: OpenSSL did not open libsodium's`);
    if (!libsodium.decrypt(key, nonceHigh, nonceLow, additionalData, byOpenSsl, opened.subarray(0, size)).equals(plaintext)) mismatches.push(`${size}: libsodium did not open OpenSSL's`);
  }
  t.same(mismatches, [], `${MAX_PLAINTEXT_BYTES + 1} sizes, sealed by both and opened crosswise`);
});

t.test('the core\'s ChaChaPoly is libsodium\'s, in place as out of place', async (t) => {
  const chachaPoly = findCipherFunction('ChaChaPoly');
  for (const size of [0, 16384, MAX_PLAINTEXT_BYTES - TAG_BYTES]) {
    const plaintext = source.subarray(0, size);
    const sealed = chachaPoly.encrypt(key, 0, 9, additionalData, plaintext);
    t.same(sealed, libsodium.encrypt(key, 0, 9, additionalData, plaintext), `${size} bytes: libsodium's bytes`);
    const inPlace = Buffer.alloc(size + TAG_BYTES);
    plaintext.copy(inPlace);
    chachaPoly.encrypt(key, 0, 9, additionalData, inPlace.subarray(0, size), inPlace);
    t.same(inPlace, sealed, `${size} bytes: in place`);
    chachaPoly.decrypt(key, 0, 9, additionalData, inPlace, inPlace.subarray(0, size));
    t.same(inPlace.subarray(0, size), plaintext, `${size} bytes: opened in place`);
  }
});

t.test('a forgery is DECRYPT_FAILED on either backend, and the output holds zeros, never plaintext', async (t) => {
  for (const [name, chachaPoly] of Object.entries(CHACHAPOLY_BACKENDS)) for (const size of [100, 20000]) {
    const plaintext = source.subarray(0, size);
    const sealed = chachaPoly.encrypt(key, 0, 1, additionalData, plaintext);
    sealed[size + TAG_BYTES - 1]! ^= 1;
    const output = Buffer.alloc(size, 0xee);
    t.throws(() => chachaPoly.decrypt(key, 0, 1, additionalData, sealed, output), { code: 'DECRYPT_FAILED' }, `${name}, ${size} bytes: the forged tag is refused`);
    t.same(output, Buffer.alloc(size), `${name}, ${size} bytes: the output is zeroed`);
    t.throws(() => chachaPoly.decrypt(key, 0, 1, additionalData, sealed, sealed.subarray(0, size)), { code: 'DECRYPT_FAILED' }, `${name}, ${size} bytes: in place too`);
    t.same(sealed.subarray(0, size), Buffer.alloc(size), `${name}, ${size} bytes: in place, the buffer holds zeros`);
  }
});

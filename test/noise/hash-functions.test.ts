// HMAC and HKDF of Noise rev. 34 §4.3 against node:crypto (OpenSSL), an implementation that shares no code with
// ours: §4.3's HKDF is RFC 5869's with the chaining key as salt and an empty info.
import t from 'tap';
import { createHmac, hkdfSync } from 'node:crypto';
import sodium from 'sodium-native';
import { HASH_FUNCTIONS, createHashFunction, type HashFunction, type HashName } from '../../lib/noise/hash-functions.js';

const OPENSSL_NAMES: Record<HashName, string> = { BLAKE2b: 'blake2b512', BLAKE2s: 'blake2s256', SHA256: 'sha256', SHA512: 'sha512' };
const BLOCK_BYTES: Record<HashName, number> = { BLAKE2b: 128, BLAKE2s: 64, SHA256: 64, SHA512: 128 };

const bytes = (length: number, seed: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff));

// BLAKE2b without its own HMAC: the generic construction over the same hash.
const genericBlake2b = createHashFunction({
  name: 'BLAKE2b',
  hashLength: 64,
  blockLength: 128,
  hashInto: (output, parts) => sodium.crypto_generichash_batch(output, parts as Uint8Array[]),
});

const cases: [string, HashFunction][] = [
  ...Object.values(HASH_FUNCTIONS).map((hash): [string, HashFunction] => [hash.name, hash]),
  ['BLAKE2b (generic HMAC)', genericBlake2b],
];

for (const [label, hash] of cases) {
  const opensslName = OPENSSL_NAMES[hash.name];
  const block = BLOCK_BYTES[hash.name];

  t.test(`${label}: HMAC equals node:crypto's for short, block-sized and long keys and messages`, async (t) => {
    for (const keyBytes of [0, 32, hash.hashLength, block, block + 1, 300]) {
      for (const messageBytes of [0, 1, 65, 1024, 1025, 5000]) {
        const key = bytes(keyBytes, 1);
        const message = bytes(messageBytes, 2);
        const output = Buffer.alloc(hash.hashLength);
        hash.hmacInto(key, message, output);
        const expected = createHmac(opensslName, key).update(message).digest();
        t.equal(output.toString('hex'), expected.toString('hex'), `key ${keyBytes} bytes, message ${messageBytes} bytes`);
      }
    }
  });

  t.test(`${label}: HKDF with 2 and 3 outputs equals RFC 5869's`, async (t) => {
    for (const inputBytes of [0, 32, 64, 200]) {
      const chainingKey = bytes(hash.hashLength, 3);
      const inputKeyMaterial = bytes(inputBytes, 4);
      for (const count of [2, 3] as const) {
        const outputs = hash.hkdf(chainingKey, inputKeyMaterial, count);
        const expected = Buffer.from(hkdfSync(opensslName, inputKeyMaterial, chainingKey, Buffer.alloc(0), count * hash.hashLength));
        t.equal(Buffer.concat(outputs).toString('hex'), expected.toString('hex'), `input ${inputBytes} bytes, ${count} outputs`);
      }
    }
  });

  t.test(`${label}: HKDF may write its first output over the chaining key`, async (t) => {
    const chainingKey = bytes(hash.hashLength, 5);
    const inputKeyMaterial = bytes(32, 6);
    const expected = hash.hkdf(chainingKey, inputKeyMaterial, 3);
    const second = Buffer.alloc(hash.hashLength);
    const third = Buffer.alloc(hash.hashLength);
    hash.hkdfInto(chainingKey, inputKeyMaterial, [chainingKey, second, third]);
    t.same([chainingKey, second, third], expected);
  });

  t.test(`${label}: HKDF gives only 2 or 3 outputs`, async (t) => {
    const chainingKey = bytes(hash.hashLength, 7);
    for (const count of [0, 1, 4]) {
      const outputs = Array.from({ length: count }, () => Buffer.alloc(hash.hashLength));
      t.throws(() => hash.hkdfInto(chainingKey, Buffer.alloc(0), outputs), RangeError, `${count} outputs`);
    }
  });
}

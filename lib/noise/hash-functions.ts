/**
 * The Noise hash functions BLAKE2b, SHA256 and SHA512 with their HMAC and HKDF (Noise rev. 34 §4.3, §12.5–§12.8).
 * Hash primitives are libsodium's. HMAC-BLAKE2b, for the product suite, is noise-handshake's `hmac.js`, which meets
 * §4.3. The package has no SHA-2 HMAC, so this file adds a small one (RFC 2104) over libsodium's SHA-2. HKDF is
 * ours for all three: noise-handshake's `hkdf.js` leaves its temporary key unzeroed. The public vectors check all.
 */
import sodium from 'sodium-native';
import blake2bHmac from 'noise-handshake/hmac.js';

/** The hash names this build supports, spelled as in protocol names. */
export type HashName = 'BLAKE2b' | 'SHA256' | 'SHA512';

/** A Noise hash function with its HKDF. */
export interface HashFunction {
  readonly name: HashName;
  /** HASHLEN in bytes. */
  readonly hashLength: number;
  /** HASH(parts[0] || parts[1] || …), written into `output` (which may alias an input). */
  hashInto(output: Uint8Array, parts: readonly Uint8Array[]): void;
  /** HKDF(chainingKey, inputKeyMaterial, numOutputs) of §4.3: `numOutputs` fresh buffers of HASHLEN bytes. */
  hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2 | 3): Buffer[];
}

const BLAKE2B_HASH_BYTES = 64;

type Hmac = (key: Uint8Array, parts: readonly Uint8Array[]) => Buffer;

// HKDF(chainingKey, inputKeyMaterial, numOutputs) exactly as §4.3 spells it out.
function noiseHkdf(hmac: Hmac, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2 | 3): Buffer[] {
  const tempKey = hmac(chainingKey, [inputKeyMaterial]);
  const outputs: Buffer[] = [];
  let previous: Uint8Array = Buffer.alloc(0);
  for (let i = 1; i <= numOutputs; i++) {
    previous = hmac(tempKey, [previous, Uint8Array.of(i)]);
    outputs.push(previous as Buffer);
  }
  sodium.sodium_memzero(tempKey);
  return outputs;
}

const hmacBlake2b: Hmac = (key, parts) => {
  const output = Buffer.alloc(BLAKE2B_HASH_BYTES);
  blake2bHmac(output, parts, key);
  return output;
};

const blake2b: HashFunction = {
  name: 'BLAKE2b',
  hashLength: BLAKE2B_HASH_BYTES,
  hashInto(output, parts) {
    sodium.crypto_generichash_batch(output, parts as Uint8Array[]);
  },
  hkdf: (chainingKey, inputKeyMaterial, numOutputs) => noiseHkdf(hmacBlake2b, chainingKey, inputKeyMaterial, numOutputs),
};

interface Sha2Primitive {
  stateBytes: number;
  init(state: Uint8Array): void;
  update(state: Uint8Array, input: Uint8Array): void;
  final(state: Uint8Array, output: Uint8Array): void;
}

function sha2HashFunction(name: 'SHA256' | 'SHA512', hashLength: number, blockLength: number, primitive: Sha2Primitive): HashFunction {
  const state = Buffer.alloc(primitive.stateBytes);

  function hashInto(output: Uint8Array, parts: readonly Uint8Array[]): void {
    primitive.init(state);
    for (const part of parts) primitive.update(state, part);
    primitive.final(state, output);
  }

  // HMAC per RFC 2104, as §4.3 defines it for Noise's HKDF.
  function hmac(key: Uint8Array, parts: readonly Uint8Array[]): Buffer {
    const paddedKey = Buffer.alloc(blockLength);
    if (key.byteLength > blockLength) hashInto(paddedKey.subarray(0, hashLength), [key]);
    else paddedKey.set(key);
    const innerPad = Buffer.alloc(blockLength);
    const outerPad = Buffer.alloc(blockLength);
    for (let i = 0; i < blockLength; i++) {
      innerPad[i] = paddedKey[i]! ^ 0x36;
      outerPad[i] = paddedKey[i]! ^ 0x5c;
    }
    const output = Buffer.alloc(hashLength);
    hashInto(output, [innerPad, ...parts]);
    hashInto(output, [outerPad, output]);
    sodium.sodium_memzero(paddedKey);
    sodium.sodium_memzero(innerPad);
    sodium.sodium_memzero(outerPad);
    return output;
  }

  return {
    name,
    hashLength,
    hashInto,
    hkdf: (chainingKey, inputKeyMaterial, numOutputs) => noiseHkdf(hmac, chainingKey, inputKeyMaterial, numOutputs),
  };
}

const sha256 = sha2HashFunction('SHA256', 32, 64, {
  stateBytes: sodium.crypto_hash_sha256_STATEBYTES,
  init: (state) => sodium.crypto_hash_sha256_init(state),
  update: (state, input) => sodium.crypto_hash_sha256_update(state, input),
  final: (state, output) => sodium.crypto_hash_sha256_final(state, output),
});

const sha512 = sha2HashFunction('SHA512', 64, 128, {
  stateBytes: sodium.crypto_hash_sha512_STATEBYTES,
  init: (state) => sodium.crypto_hash_sha512_init(state),
  update: (state, input) => sodium.crypto_hash_sha512_update(state, input),
  final: (state, output) => sodium.crypto_hash_sha512_final(state, output),
});

/** The supported hash functions by protocol-name spelling. */
export const HASH_FUNCTIONS: Readonly<Record<HashName, HashFunction>> = { BLAKE2b: blake2b, SHA256: sha256, SHA512: sha512 };

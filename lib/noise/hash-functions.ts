/**
 * The Noise hash functions BLAKE2b, SHA256 and SHA512 with their HMAC and HKDF (Noise rev. 34 §4.3, §12.5–§12.8).
 * Hash primitives are libsodium's; HMAC (RFC 2104) and HKDF are ours for all three. noise-handshake's `hkdf.js`
 * leaves its temporary key unzeroed, and its `hmac.js` makes five native calls per HMAC (three of them memzero)
 * where two suffice: on the handshake path that overhead exceeded the hashing (see bench/, SPEC.md §1.3). The
 * public vectors check every suite byte for byte, and the interop tests run against noise-handshake itself.
 */
import sodium from 'sodium-native';
import { wipe } from './wipe.js';

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
  wipe(tempKey);
  return outputs;
}

const BLAKE2B_BLOCK_BYTES = 128;
// Inner and outer pads share one scratch buffer, wiped after every HMAC; calls are synchronous, so it is never shared.
const blake2bPads = Buffer.alloc(2 * BLAKE2B_BLOCK_BYTES);
const blake2bInnerPad = blake2bPads.subarray(0, BLAKE2B_BLOCK_BYTES);
const blake2bOuterPad = blake2bPads.subarray(BLAKE2B_BLOCK_BYTES);

const hmacBlake2b: Hmac = (givenKey, parts) => {
  // A key longer than the block is hashed first (RFC 2104); Noise's own keys are HASHLEN bytes and never are.
  let key = givenKey;
  if (key.byteLength > BLAKE2B_BLOCK_BYTES) {
    key = Buffer.allocUnsafe(BLAKE2B_HASH_BYTES);
    sodium.crypto_generichash(key, givenKey);
  }
  for (let i = 0; i < BLAKE2B_BLOCK_BYTES; i++) {
    const byte = i < key.byteLength ? key[i]! : 0;
    blake2bInnerPad[i] = byte ^ 0x36;
    blake2bOuterPad[i] = byte ^ 0x5c;
  }
  const output = Buffer.allocUnsafe(BLAKE2B_HASH_BYTES);
  sodium.crypto_generichash_batch(output, parts.length === 1 ? [blake2bInnerPad, parts[0]!] : [blake2bInnerPad, ...parts]);
  sodium.crypto_generichash_batch(output, [blake2bOuterPad, output]);
  wipe(blake2bPads);
  if (key !== givenKey) wipe(key);
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
    wipe(paddedKey);
    wipe(innerPad);
    wipe(outerPad);
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

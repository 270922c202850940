/**
 * The Noise hash functions BLAKE2b, SHA256 and SHA512 with their HMAC and HKDF (Noise rev. 34 §4.3, §12.5–§12.8).
 * Hash primitives are libsodium's; HMAC (RFC 2104) and HKDF are ours for all three. noise-handshake's `hkdf.js`
 * leaves its temporary key unzeroed, and its `hmac.js` makes five native calls per HMAC (three of them memzero)
 * where two suffice: on the handshake path the native-call count, not the hashing, is the cost (see bench/,
 * SPEC.md §1.3). So BLAKE2b, the product's hash, lays every hash input out contiguously in one scratch area and
 * makes exactly one single-input libsodium call per hash, writing outputs straight into the caller's buffers.
 * The public vectors check every suite byte for byte, and the interop tests run against noise-handshake itself.
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
  /** MixHash's step h = HASH(h || data), in place; `h` is HASHLEN bytes. */
  mixHashInPlace(h: Uint8Array, data: Uint8Array): void;
  /**
   * HKDF(chainingKey, inputKeyMaterial, 2 or 3) of §4.3, writing output i into `outputs[i]` (each HASHLEN
   * bytes); with fewer outputs given, only those first ones are computed. An output may be the chaining key
   * itself: the chaining key is read before any output is written.
   */
  hkdfInto(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: readonly Uint8Array[]): void;
  /** HKDF(chainingKey, inputKeyMaterial, numOutputs) of §4.3: `numOutputs` fresh buffers of HASHLEN bytes. */
  hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2 | 3): Buffer[];
}

// HKDF gives 2 or 3 outputs (§4.3); asking for fewer computes only the first ones, for a caller that would throw
// the rest away unread (symmetric-state.ts).
function checkOutputCount(outputs: readonly Uint8Array[]): void {
  if (outputs.length < 1 || outputs.length > 3) throw new RangeError(`HKDF gives 1 to 3 outputs, ${outputs.length} asked`);
}

function allocatingHkdf(hkdfInto: HashFunction['hkdfInto'], hashLength: number): HashFunction['hkdf'] {
  return (chainingKey, inputKeyMaterial, numOutputs) => {
    const outputs = Array.from({ length: numOutputs }, () => Buffer.alloc(hashLength));
    hkdfInto(chainingKey, inputKeyMaterial, outputs);
    return outputs;
  };
}

const BLAKE2B_HASH_BYTES = 64;
const BLAKE2B_BLOCK_BYTES = 128;
/** Longest HMAC message laid out in the scratch area; longer ones (never on the handshake path) are hashed in parts. */
const BLAKE2B_SCRATCH_MESSAGE_BYTES = 1024;
const INNER_PAD_WORD = 0x36363636;
const OUTER_PAD_WORD = 0x5c5c5c5c;

/**
 * One module-wide scratch area: calls are synchronous, so it is never shared between two computations, and every
 * key-dependent byte in it is wiped before a call returns. Word views make the pad XOR 32 steps instead of 128.
 * Layout: key (128) | inner input = ipad (128) + message (≤ 1024) | outer input = opad (128) + inner hash (64).
 */
const blake2bScratch = new ArrayBuffer(BLAKE2B_BLOCK_BYTES * 3 + BLAKE2B_SCRATCH_MESSAGE_BYTES + BLAKE2B_HASH_BYTES);
const scratchBytes = new Uint8Array(blake2bScratch);
const keyBlock = new Uint8Array(blake2bScratch, 0, BLAKE2B_BLOCK_BYTES);
const keyWords = new Uint32Array(blake2bScratch, 0, BLAKE2B_BLOCK_BYTES / 4);
const innerInput = new Uint8Array(blake2bScratch, BLAKE2B_BLOCK_BYTES, BLAKE2B_BLOCK_BYTES + BLAKE2B_SCRATCH_MESSAGE_BYTES);
const innerPadWords = new Uint32Array(blake2bScratch, BLAKE2B_BLOCK_BYTES, BLAKE2B_BLOCK_BYTES / 4);
const outerInput = new Uint8Array(blake2bScratch, BLAKE2B_BLOCK_BYTES * 2 + BLAKE2B_SCRATCH_MESSAGE_BYTES, BLAKE2B_BLOCK_BYTES + BLAKE2B_HASH_BYTES);
const outerPadWords = new Uint32Array(blake2bScratch, BLAKE2B_BLOCK_BYTES * 2 + BLAKE2B_SCRATCH_MESSAGE_BYTES, BLAKE2B_BLOCK_BYTES / 4);
const innerMessage = innerInput.subarray(BLAKE2B_BLOCK_BYTES);
const innerHash = outerInput.subarray(BLAKE2B_BLOCK_BYTES);
/** Exact-length views of the inner input for HKDF's output steps: pad || 0x01 and pad || T(i-1) || i. */
const innerInputFirstOutput = innerInput.subarray(0, BLAKE2B_BLOCK_BYTES + 1);
const innerInputNextOutput = innerInput.subarray(0, BLAKE2B_BLOCK_BYTES + BLAKE2B_HASH_BYTES + 1);
const innerInputPrevious = innerInput.subarray(BLAKE2B_BLOCK_BYTES, BLAKE2B_BLOCK_BYTES + BLAKE2B_HASH_BYTES);
/** HKDF's temp_key, between the extract and the expand steps. */
const tempKey = new Uint8Array(BLAKE2B_HASH_BYTES);
/** h || data for MixHash when data is short. */
const mixHashInput = new Uint8Array(BLAKE2B_HASH_BYTES + BLAKE2B_SCRATCH_MESSAGE_BYTES);

// Both pads of `key` (RFC 2104): a key longer than the block is hashed first; Noise's keys are HASHLEN bytes.
function setBlake2bPads(key: Uint8Array): void {
  keyBlock.fill(0);
  if (key.byteLength > BLAKE2B_BLOCK_BYTES) sodium.crypto_generichash(keyBlock.subarray(0, BLAKE2B_HASH_BYTES), key);
  else keyBlock.set(key);
  for (let i = 0; i < BLAKE2B_BLOCK_BYTES / 4; i++) {
    const word = keyWords[i]!;
    innerPadWords[i] = word ^ INNER_PAD_WORD;
    outerPadWords[i] = word ^ OUTER_PAD_WORD;
  }
}

// HMAC(key, message) with the pads already set: two libsodium calls.
function blake2bHmacWithPads(message: Uint8Array, output: Uint8Array): void {
  if (message.byteLength <= BLAKE2B_SCRATCH_MESSAGE_BYTES) {
    innerMessage.set(message);
    sodium.crypto_generichash(innerHash, innerInput.subarray(0, BLAKE2B_BLOCK_BYTES + message.byteLength));
  } else {
    sodium.crypto_generichash_batch(innerHash, [innerInput.subarray(0, BLAKE2B_BLOCK_BYTES), message]);
  }
  sodium.crypto_generichash(output, outerInput);
}

function blake2bHkdfInto(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: readonly Uint8Array[]): void {
  checkOutputCount(outputs);
  setBlake2bPads(chainingKey);
  blake2bHmacWithPads(inputKeyMaterial, tempKey);
  setBlake2bPads(tempKey);
  // output1 = HMAC(temp_key, 0x01); output(i) = HMAC(temp_key, output(i-1) || i). Each output is hashed straight
  // into the inner input, where the next step needs it, and copied out from there.
  innerMessage[0] = 1;
  sodium.crypto_generichash(innerHash, innerInputFirstOutput);
  sodium.crypto_generichash(innerInputPrevious, outerInput);
  outputs[0]!.set(innerInputPrevious);
  for (let i = 1; i < outputs.length; i++) {
    innerMessage[BLAKE2B_HASH_BYTES] = i + 1;
    sodium.crypto_generichash(innerHash, innerInputNextOutput);
    sodium.crypto_generichash(innerInputPrevious, outerInput);
    outputs[i]!.set(innerInputPrevious);
  }
  wipe(scratchBytes);
  wipe(tempKey);
}

function blake2bMixHashInPlace(h: Uint8Array, data: Uint8Array): void {
  if (data.byteLength > BLAKE2B_SCRATCH_MESSAGE_BYTES) {
    sodium.crypto_generichash_batch(h, [h, data]);
    return;
  }
  // h is public (§5.2 sends it as associated data), so the scratch copy needs no wiping.
  mixHashInput.set(h);
  mixHashInput.set(data, BLAKE2B_HASH_BYTES);
  sodium.crypto_generichash(h, mixHashInput.subarray(0, BLAKE2B_HASH_BYTES + data.byteLength));
}

const blake2b: HashFunction = {
  name: 'BLAKE2b',
  hashLength: BLAKE2B_HASH_BYTES,
  hashInto(output, parts) {
    sodium.crypto_generichash_batch(output, parts as Uint8Array[]);
  },
  mixHashInPlace: blake2bMixHashInPlace,
  hkdfInto: blake2bHkdfInto,
  hkdf: allocatingHkdf(blake2bHkdfInto, BLAKE2B_HASH_BYTES),
};

interface Sha2Primitive {
  stateBytes: number;
  init(state: Uint8Array): void;
  update(state: Uint8Array, input: Uint8Array): void;
  final(state: Uint8Array, output: Uint8Array): void;
}

// SHA-256 and SHA-512 serve the public vectors only; they keep the plain, allocating form of §4.3.
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

  function hkdfInto(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: readonly Uint8Array[]): void {
    checkOutputCount(outputs);
    const temporaryKey = hmac(chainingKey, [inputKeyMaterial]);
    let previous: Uint8Array = Buffer.alloc(0);
    for (let i = 0; i < outputs.length; i++) {
      const next = hmac(temporaryKey, [previous, Uint8Array.of(i + 1)]);
      wipe(previous);
      outputs[i]!.set(next);
      previous = next;
    }
    wipe(previous);
    wipe(temporaryKey);
  }

  return {
    name,
    hashLength,
    hashInto,
    mixHashInPlace: (h, data) => hashInto(h, [h, data]),
    hkdfInto,
    hkdf: allocatingHkdf(hkdfInto, hashLength),
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

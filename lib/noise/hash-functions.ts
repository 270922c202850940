/**
 * The Noise hash functions BLAKE2b, BLAKE2s, SHA256 and SHA512 with HMAC and HKDF (Noise rev. 34 §4.3, §12.5–§12.8).
 * The hashes are libsodium's, except BLAKE2s, which libsodium does not offer and OpenSSL (node:crypto `blake2s256`,
 * the 32-byte unkeyed BLAKE2s of RFC 7693) does. HMAC (RFC 2104) and HKDF are ours, one construction for all four, because
 * noise-handshake's `hkdf.js` leaves its temporary key unzeroed and its `hmac.js` is BLAKE2b-only. A hash may bring
 * a faster HMAC of its own (BLAKE2b does, see blake2bHmacInto); HKDF then calls that one, nothing else changes.
 */
import { createHash } from 'node:crypto';
import sodium from 'sodium-native';
import { wipe } from './wipe.js';

/** The hash names this build supports, spelled as in protocol names. */
export type HashName = 'BLAKE2b' | 'BLAKE2s' | 'SHA256' | 'SHA512';

/** HMAC-HASH(key, message), written into `output` (HASHLEN bytes, which must not alias `key` or `message`). */
export type HmacInto = (key: Uint8Array, message: Uint8Array, output: Uint8Array) => void;

/** A hash primitive: what HMAC and HKDF are built from. */
export interface HashPrimitive {
  readonly name: HashName;
  /** HASHLEN in bytes. */
  readonly hashLength: number;
  /** BLOCKLEN in bytes: HMAC's pad length. */
  readonly blockLength: number;
  /** HASH(parts[0] || parts[1] || …), written into `output` (which may alias an input). */
  hashInto(output: Uint8Array, parts: readonly Uint8Array[]): void;
  /** A faster HMAC that gives the generic one's bytes; when absent the generic RFC 2104 HMAC is used. */
  readonly hmacInto?: HmacInto;
}

/** A Noise hash function with its HMAC and HKDF. */
export interface HashFunction {
  readonly name: HashName;
  /** HASHLEN in bytes. */
  readonly hashLength: number;
  /** HASH(parts[0] || parts[1] || …), written into `output` (which may alias an input). */
  hashInto(output: Uint8Array, parts: readonly Uint8Array[]): void;
  /** MixHash's step h = HASH(h || data), in place; `h` is HASHLEN bytes. */
  mixHashInPlace(h: Uint8Array, data: Uint8Array): void;
  /** HMAC-HASH(key, message) into `output` (HASHLEN bytes, not aliasing an input). */
  hmacInto: HmacInto;
  /**
   * HKDF(chainingKey, inputKeyMaterial, 2 or 3) of §4.3, writing output i into `outputs[i]` (each HASHLEN bytes).
   * An output may be the chaining key itself: the chaining key is read before any output is written.
   */
  hkdfInto(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: readonly Uint8Array[]): void;
  /** HKDF(chainingKey, inputKeyMaterial, numOutputs) of §4.3: `numOutputs` fresh buffers of HASHLEN bytes. */
  hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2 | 3): Buffer[];
}

const INNER_PAD_BYTE = 0x36;
const OUTER_PAD_BYTE = 0x5c;

// HMAC of RFC 2104 over any hash, as §4.3 uses it. Its scratch buffers are the closure's (calls are synchronous, so
// no two computations share them) and every key-dependent byte in them is zeroed before it returns.
function genericHmac(primitive: HashPrimitive): HmacInto {
  const { hashLength, blockLength } = primitive;
  const keyBlock = Buffer.alloc(blockLength);
  const innerPad = Buffer.alloc(blockLength);
  const outerPad = Buffer.alloc(blockLength);
  const innerHash = Buffer.alloc(hashLength);
  return (key, message, output) => {
    if (key.byteLength > blockLength) primitive.hashInto(keyBlock.subarray(0, hashLength), [key]);
    else keyBlock.set(key);
    for (let i = 0; i < blockLength; i++) {
      innerPad[i] = keyBlock[i]! ^ INNER_PAD_BYTE;
      outerPad[i] = keyBlock[i]! ^ OUTER_PAD_BYTE;
    }
    primitive.hashInto(innerHash, [innerPad, message]);
    primitive.hashInto(output, [outerPad, innerHash]);
    wipe(keyBlock);
    wipe(innerPad);
    wipe(outerPad);
    wipe(innerHash);
  };
}

/** The hash function of a primitive: HMAC (the primitive's own when it has one, else RFC 2104's) and §4.3's HKDF. */
export function createHashFunction(primitive: HashPrimitive): HashFunction {
  const { name, hashLength } = primitive;
  const hmacInto = primitive.hmacInto ?? genericHmac(primitive);
  const tempKey = Buffer.alloc(hashLength);
  /** output(i-1) || byte(i), the message of HKDF's output steps; the first step's is its first byte alone. */
  const stepMessage = Buffer.alloc(hashLength + 1);
  const firstStepMessage = stepMessage.subarray(0, 1);

  function hkdfInto(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: readonly Uint8Array[]): void {
    if (outputs.length !== 2 && outputs.length !== 3) throw new RangeError(`HKDF gives 2 or 3 outputs, ${outputs.length} asked`);
    hmacInto(chainingKey, inputKeyMaterial, tempKey);
    stepMessage[0] = 1;
    hmacInto(tempKey, firstStepMessage, outputs[0]!);
    for (let i = 1; i < outputs.length; i++) {
      stepMessage.set(outputs[i - 1]!);
      stepMessage[hashLength] = i + 1;
      hmacInto(tempKey, stepMessage, outputs[i]!);
    }
    wipe(tempKey);
    wipe(stepMessage);
  }

  return {
    name,
    hashLength,
    hashInto: (output, parts) => primitive.hashInto(output, parts),
    mixHashInPlace: (h, data) => primitive.hashInto(h, [h, data]),
    hmacInto,
    hkdfInto,
    hkdf(chainingKey, inputKeyMaterial, numOutputs) {
      const outputs = Array.from({ length: numOutputs }, () => Buffer.alloc(hashLength));
      hkdfInto(chainingKey, inputKeyMaterial, outputs);
      return outputs;
    },
  };
}

const BLAKE2B_HASH_BYTES = 64;
const BLAKE2B_BLOCK_BYTES = 128;
/** Longest HMAC message laid out in the scratch area; HKDF's are at most 65 bytes, a DH output or a PSK 32. */
const BLAKE2B_SCRATCH_MESSAGE_BYTES = 1024;
const INNER_PAD_WORD = 0x36363636;
const OUTER_PAD_WORD = 0x5c5c5c5c;

/**
 * The BLAKE2b HMAC's scratch area, wiped before every call returns. Layout: key block (128) | inner input = ipad
 * (128) + message (≤ 1024) | outer input = opad (128) + inner hash (64). Word views make the pad XOR 32 steps.
 */
const blake2bScratch = new ArrayBuffer(BLAKE2B_BLOCK_BYTES * 3 + BLAKE2B_SCRATCH_MESSAGE_BYTES + BLAKE2B_HASH_BYTES);
const blake2bScratchBytes = new Uint8Array(blake2bScratch);
const keyBlock = new Uint8Array(blake2bScratch, 0, BLAKE2B_BLOCK_BYTES);
const keyWords = new Uint32Array(blake2bScratch, 0, BLAKE2B_BLOCK_BYTES / 4);
const innerInput = new Uint8Array(blake2bScratch, BLAKE2B_BLOCK_BYTES, BLAKE2B_BLOCK_BYTES + BLAKE2B_SCRATCH_MESSAGE_BYTES);
const innerPadWords = new Uint32Array(blake2bScratch, BLAKE2B_BLOCK_BYTES, BLAKE2B_BLOCK_BYTES / 4);
const innerMessage = innerInput.subarray(BLAKE2B_BLOCK_BYTES);
const outerInputOffset = BLAKE2B_BLOCK_BYTES * 2 + BLAKE2B_SCRATCH_MESSAGE_BYTES;
const outerInput = new Uint8Array(blake2bScratch, outerInputOffset, BLAKE2B_BLOCK_BYTES + BLAKE2B_HASH_BYTES);
const outerPadWords = new Uint32Array(blake2bScratch, outerInputOffset, BLAKE2B_BLOCK_BYTES / 4);
const innerHash = outerInput.subarray(BLAKE2B_BLOCK_BYTES);
/**
 * The inner input's view for each message length, made once: a handshake side asks for four lengths about 16 times,
 * and a view is an object. With the first HKDF step's view kept too: in-process handshakes 3 % faster (paired rounds
 * of 4,000 against the tree before, NNpsk0 median 1.029–1.034, XXpsk3 1.030; the same tree against itself 0.997).
 */
const innerInputViews: (Uint8Array | undefined)[] = [];
function innerInputOf(messageBytes: number): Uint8Array {
  return (innerInputViews[messageBytes] ??= innerInput.subarray(0, BLAKE2B_BLOCK_BYTES + messageBytes));
}

/**
 * HMAC-BLAKE2b with each hash input laid out in one buffer, so each hash is one single-input crypto_generichash
 * call and the pads are XORed a word at a time. Measured against the generic HMAC over crypto_generichash_batch
 * (HKDF with 2 outputs, 10 interleaved rounds of 1 s, Node 20, a shared 2-core machine): 349k vs 224k calls/s,
 * median of the paired ratios 1.56 (1.43–1.57), so 2.9 µs instead of 4.5 µs per HKDF; a handshake side runs 5
 * (NNpsk0) to 7 (XXpsk3) HKDFs.
 */
function blake2bHmacInto(key: Uint8Array, message: Uint8Array, output: Uint8Array): void {
  if (key.byteLength > BLAKE2B_BLOCK_BYTES) sodium.crypto_generichash(keyBlock.subarray(0, BLAKE2B_HASH_BYTES), key);
  else keyBlock.set(key);
  for (let i = 0; i < BLAKE2B_BLOCK_BYTES / 4; i++) {
    const word = keyWords[i]!;
    innerPadWords[i] = word ^ INNER_PAD_WORD;
    outerPadWords[i] = word ^ OUTER_PAD_WORD;
  }
  if (message.byteLength <= BLAKE2B_SCRATCH_MESSAGE_BYTES) {
    innerMessage.set(message);
    sodium.crypto_generichash(innerHash, innerInputOf(message.byteLength));
  } else {
    sodium.crypto_generichash_batch(innerHash, [innerInput.subarray(0, BLAKE2B_BLOCK_BYTES), message]);
  }
  sodium.crypto_generichash(output, outerInput);
  wipe(blake2bScratchBytes);
}

const blake2b = createHashFunction({
  name: 'BLAKE2b',
  hashLength: BLAKE2B_HASH_BYTES,
  blockLength: BLAKE2B_BLOCK_BYTES,
  hashInto: (output, parts) => sodium.crypto_generichash_batch(output, parts as Uint8Array[]),
  hmacInto: blake2bHmacInto,
});

interface Sha2Calls {
  stateBytes: number;
  init(state: Uint8Array): void;
  update(state: Uint8Array, input: Uint8Array): void;
  final(state: Uint8Array, output: Uint8Array): void;
}

// The SHA-2 hashes serve the public vectors; their streaming state is not secret beyond the call (HMAC's inputs are
// wiped by the caller), but it is zeroed anyway so no key-dependent byte outlives a call.
function sha2Primitive(name: 'SHA256' | 'SHA512', hashLength: number, blockLength: number, calls: Sha2Calls): HashPrimitive {
  const state = Buffer.alloc(calls.stateBytes);
  return {
    name,
    hashLength,
    blockLength,
    hashInto(output, parts) {
      calls.init(state);
      for (const part of parts) calls.update(state, part);
      calls.final(state, output);
      wipe(state);
    },
  };
}

const sha256 = createHashFunction(sha2Primitive('SHA256', 32, 64, {
  stateBytes: sodium.crypto_hash_sha256_STATEBYTES,
  init: (state) => sodium.crypto_hash_sha256_init(state),
  update: (state, input) => sodium.crypto_hash_sha256_update(state, input),
  final: (state, output) => sodium.crypto_hash_sha256_final(state, output),
}));

const sha512 = createHashFunction(sha2Primitive('SHA512', 64, 128, {
  stateBytes: sodium.crypto_hash_sha512_STATEBYTES,
  init: (state) => sodium.crypto_hash_sha512_init(state),
  update: (state, input) => sodium.crypto_hash_sha512_update(state, input),
  final: (state, output) => sodium.crypto_hash_sha512_final(state, output),
}));

// BLAKE2s serves the public vectors only. node:crypto's hash objects are one-shot, so each call makes one; its
// internal state is OpenSSL's and freed with the object (HMAC's key-dependent inputs are wiped by the caller).
const blake2s = createHashFunction({
  name: 'BLAKE2s',
  hashLength: 32,
  blockLength: 64,
  hashInto(output, parts) {
    const hash = createHash('blake2s256');
    for (const part of parts) hash.update(part);
    const digest = hash.digest();
    output.set(digest);
    digest.fill(0);
  },
});

/** The supported hash functions by protocol-name spelling. */
export const HASH_FUNCTIONS: Readonly<Record<HashName, HashFunction>> = { BLAKE2b: blake2b, BLAKE2s: blake2s, SHA256: sha256, SHA512: sha512 };

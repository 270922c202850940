/**
 * SymmetricState (Noise rev. 34 §5.2): the chaining key, the handshake hash and the handshake's CipherState.
 * Ours, because noise-handshake's is BLAKE2b-only and inherits its 32-bit nonce. HKDF outputs are written into
 * buffers this state owns (ck in place), so a handshake step allocates nothing for its keys.
 */
import { KEY_BYTES } from './cipher-functions.js';
import { CipherState, KEY_BUFFER_FOR_TESTING } from './cipher-state.js';
import type { NoiseProtocol } from './protocols.js';
import { copyOutOfPool, wipe } from './wipe.js';

const EMPTY = Buffer.alloc(0);

/** Symbol of the test-only door to the buffers holding secrets, to check that they end zeroed; not re-exported. */
export const SECRET_BUFFERS_FOR_TESTING = Symbol('noise-cfg testing only: secret buffers');

/** The symmetric part of a handshake. */
export class SymmetricState {
  readonly #protocol: NoiseProtocol;
  /** ck, h and the two HKDF outputs below, in one buffer. */
  readonly #fields: Buffer;
  /** ck: the chaining key, HASHLEN bytes. */
  readonly #ck: Buffer;
  /** h: the handshake hash, HASHLEN bytes. */
  readonly #h: Buffer;
  /** HKDF's second and third outputs, HASHLEN bytes each; wiped after every use. */
  readonly #output2: Buffer;
  readonly #output3: Buffer;
  /** The first KEY_BYTES of output 2 and of output 3: the cipher keys they give. */
  readonly #output2Key: Buffer;
  readonly #output3Key: Buffer;
  /** The CipherState keyed by MixKey and MixKeyAndHash. */
  readonly #cipherState: CipherState;

  /** InitializeSymmetric(protocolName). */
  constructor(protocol: NoiseProtocol) {
    this.#protocol = protocol;
    const hashLength = protocol.hash.hashLength;
    // One allocation for the four HASHLEN fields.
    const fields = Buffer.alloc(4 * hashLength);
    this.#fields = fields;
    this.#ck = fields.subarray(0, hashLength);
    this.#h = fields.subarray(hashLength, 2 * hashLength);
    this.#output2 = fields.subarray(2 * hashLength, 3 * hashLength);
    this.#output3 = fields.subarray(3 * hashLength);
    this.#output2Key = this.#output2.subarray(0, KEY_BYTES);
    this.#output3Key = this.#output3.subarray(0, KEY_BYTES);
    this.#h.set(protocol.initialHash);
    this.#ck.set(protocol.initialHash);
    this.#cipherState = new CipherState(protocol.cipher);
  }

  /** MixKey(inputKeyMaterial): ck, temp_k = HKDF(ck, inputKeyMaterial, 2); InitializeKey(temp_k truncated to 32). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    this.#protocol.hash.hkdfInto(this.#ck, inputKeyMaterial, [this.#ck, this.#output2]);
    this.#cipherState.initializeKey(this.#output2Key);
    wipe(this.#output2);
  }

  /** MixHash(data). */
  mixHash(data: Uint8Array): void {
    this.#protocol.hash.mixHashInPlace(this.#h, data);
  }

  /**
   * MixKeyAndHash(inputKeyMaterial), used for psk tokens (§9.1): ck, temp_h, temp_k = HKDF(ck, inputKeyMaterial, 3);
   * MixHash(temp_h); InitializeKey(temp_k truncated to 32).
   */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    this.#protocol.hash.hkdfInto(this.#ck, inputKeyMaterial, [this.#ck, this.#output2, this.#output3]);
    this.mixHash(this.#output2);
    this.#cipherState.initializeKey(this.#output3Key);
    wipe(this.#output2);
    wipe(this.#output3);
  }

  /** HasKey() of the inner CipherState. */
  get hasKey(): boolean {
    return this.#cipherState.hasKey;
  }

  /** GetHandshakeHash(): a copy of h, into `output` (HASHLEN bytes) when given. */
  getHandshakeHash(output?: Buffer): Buffer {
    if (output === undefined) return copyOutOfPool(this.#h);
    output.set(this.#h);
    return output;
  }

  /**
   * EncryptAndHash(plaintext). With `output` (plaintext length + 16 bytes, or the plaintext length without a
   * key) the ciphertext is written there; otherwise into a new buffer.
   */
  encryptAndHash(plaintext: Uint8Array, output?: Buffer): Buffer {
    const ciphertext = this.#cipherState.encryptWithAd(this.#h, plaintext, output);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext). Throws DECRYPT_FAILED. */
  decryptAndHash(ciphertext: Uint8Array): Buffer {
    const plaintext = this.#cipherState.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): the initiator-to-responder and responder-to-initiator CipherStates. Zeroes ck, h and k after. */
  split(): [CipherState, CipherState] {
    this.#protocol.hash.hkdfInto(this.#ck, EMPTY, [this.#output2, this.#output3]);
    // Both transport keys in one allocation: a server keeps these for every open connection.
    const keys = Buffer.alloc(2 * KEY_BYTES);
    const initiatorToResponder = new CipherState(this.#protocol.cipher, this.#output2Key, keys.subarray(0, KEY_BYTES));
    const responderToInitiator = new CipherState(this.#protocol.cipher, this.#output3Key, keys.subarray(KEY_BYTES));
    this.dispose();
    return [initiatorToResponder, responderToInitiator];
  }

  /** ck, h, the HKDF outputs (one buffer) and the handshake key, when it has one. */
  [SECRET_BUFFERS_FOR_TESTING](): Buffer[] {
    const key = this.#cipherState[KEY_BUFFER_FOR_TESTING]();
    return key === null ? [this.#fields] : [this.#fields, key];
  }

  /** Zeroes ck, h, the HKDF outputs and the handshake key. */
  dispose(): void {
    wipe(this.#fields);
    this.#cipherState.dispose();
  }
}

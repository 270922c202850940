/**
 * SymmetricState (Noise rev. 34 §5.2): the chaining key, the handshake hash and the handshake's CipherState.
 * Ours, because noise-handshake's is BLAKE2b-only and inherits its 32-bit nonce; it uses the package's HKDF
 * through hash-functions.ts.
 */
import { KEY_BYTES } from './cipher-functions.js';
import { CipherState } from './cipher-state.js';
import type { NoiseProtocol } from './protocols.js';
import { wipe } from './wipe.js';

const EMPTY = Buffer.alloc(0);

/** The symmetric part of a handshake. */
export class SymmetricState {
  readonly #protocol: NoiseProtocol;
  /** ck: the chaining key, HASHLEN bytes. */
  #ck: Buffer;
  /** h: the handshake hash, HASHLEN bytes. */
  readonly #h: Buffer;
  /** The CipherState keyed by MixKey and MixKeyAndHash. */
  readonly #cipherState: CipherState;

  /** InitializeSymmetric(protocolName). */
  constructor(protocol: NoiseProtocol) {
    this.#protocol = protocol;
    const hashLength = protocol.hash.hashLength;
    const nameBytes = Buffer.from(protocol.name, 'ascii');
    this.#h = Buffer.alloc(hashLength);
    if (nameBytes.byteLength <= hashLength) nameBytes.copy(this.#h);
    else protocol.hash.hashInto(this.#h, [nameBytes]);
    this.#ck = Buffer.from(this.#h);
    this.#cipherState = new CipherState(protocol.cipher);
  }

  /** MixKey(inputKeyMaterial). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = this.#protocol.hash.hkdf(this.#ck, inputKeyMaterial, 2) as [Buffer, Buffer];
    this.#replaceChainingKey(ck);
    this.#cipherState.initializeKey(tempK.subarray(0, KEY_BYTES));
    wipe(tempK);
  }

  /** MixHash(data). */
  mixHash(data: Uint8Array): void {
    this.#protocol.hash.hashInto(this.#h, [this.#h, data]);
  }

  /** MixKeyAndHash(inputKeyMaterial), used for psk tokens (§9.1). */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = this.#protocol.hash.hkdf(this.#ck, inputKeyMaterial, 3) as [Buffer, Buffer, Buffer];
    this.#replaceChainingKey(ck);
    this.mixHash(tempH);
    this.#cipherState.initializeKey(tempK.subarray(0, KEY_BYTES));
    wipe(tempH);
    wipe(tempK);
  }

  /** HasKey() of the inner CipherState. */
  get hasKey(): boolean {
    return this.#cipherState.hasKey;
  }

  /** GetHandshakeHash(): a copy of h. */
  getHandshakeHash(): Buffer {
    return Buffer.from(this.#h);
  }

  /** EncryptAndHash(plaintext). */
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const ciphertext = this.#cipherState.encryptWithAd(this.#h, plaintext);
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
    const [tempK1, tempK2] = this.#protocol.hash.hkdf(this.#ck, EMPTY, 2) as [Buffer, Buffer];
    const initiatorToResponder = new CipherState(this.#protocol.cipher, tempK1.subarray(0, KEY_BYTES));
    const responderToInitiator = new CipherState(this.#protocol.cipher, tempK2.subarray(0, KEY_BYTES));
    wipe(tempK1);
    wipe(tempK2);
    this.dispose();
    return [initiatorToResponder, responderToInitiator];
  }

  /** Zeroes ck, h and the handshake key. */
  dispose(): void {
    wipe(this.#ck);
    wipe(this.#h);
    this.#cipherState.dispose();
  }

  #replaceChainingKey(ck: Buffer): void {
    wipe(this.#ck);
    this.#ck = ck;
  }
}

/**
 * The result of a finished handshake (Noise rev. 34 §5.3 Split, §11.2 channel binding, §11.3 rekey): a send
 * cipher, a receive cipher, the handshake hash and the remote static key. Nothing here can write a handshake message.
 */
import { NoiseCfgError } from '../errors.js';
import { TAG_BYTES } from './cipher-functions.js';
import { KEY_BUFFER_FOR_TESTING, type CipherState } from './cipher-state.js';

/** The largest Noise message, in bytes (§3). */
export const MAX_MESSAGE_BYTES = 65535;
/** The largest transport plaintext that fits one Noise message, in bytes. */
export const MAX_TRANSPORT_PLAINTEXT_BYTES = MAX_MESSAGE_BYTES - TAG_BYTES;

const EMPTY = Buffer.alloc(0);

/** Symbol of the test-only door to a direction's CipherState (testing.ts); not re-exported. */
export const CIPHER_FOR_TESTING = Symbol('noise-cfg testing only: cipher state');

/** Transport-phase keys of one side. */
export class TransportState {
  /** The protocol name the handshake ran. */
  readonly protocolName: string;
  /** h at the end of the handshake: the same on both sides, unique to this session (channel binding, §11.2). */
  readonly handshakeHash: Buffer;
  /** The peer's static public key, or null when the pattern gives none. */
  readonly remoteStaticKey: Buffer | null;
  /** Encrypts what this side sends; null for the responder of a one-way pattern (§7.4). */
  readonly #sendCipher: CipherState | null;
  /** Decrypts what this side receives; null for the initiator of a one-way pattern. */
  readonly #receiveCipher: CipherState | null;

  constructor(fields: {
    protocolName: string;
    handshakeHash: Buffer;
    remoteStaticKey: Buffer | null;
    sendCipher: CipherState | null;
    receiveCipher: CipherState | null;
  }) {
    this.protocolName = fields.protocolName;
    this.handshakeHash = fields.handshakeHash;
    this.remoteStaticKey = fields.remoteStaticKey;
    this.#sendCipher = fields.sendCipher;
    this.#receiveCipher = fields.receiveCipher;
  }

  /** n of the send cipher: how many messages this side has encrypted. Throws CIPHER_UNAVAILABLE. */
  get sendNonce(): bigint {
    return this.#requireSend().nonce;
  }

  /** n of the receive cipher: how many messages this side has decrypted. Throws CIPHER_UNAVAILABLE. */
  get receiveNonce(): bigint {
    return this.#requireReceive().nonce;
  }

  /**
   * Encrypts one transport message of at most MAX_TRANSPORT_PLAINTEXT_BYTES.
   * Throws MESSAGE_TOO_LONG, NONCE_EXHAUSTED, or CIPHER_UNAVAILABLE on the receiving side of a one-way pattern.
   */
  encrypt(plaintext: Uint8Array, additionalData: Uint8Array = EMPTY): Buffer {
    if (plaintext.byteLength > MAX_TRANSPORT_PLAINTEXT_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `plaintext of ${plaintext.byteLength} bytes exceeds ${MAX_TRANSPORT_PLAINTEXT_BYTES}`);
    }
    return this.#requireSend().encryptWithAd(additionalData, plaintext);
  }

  /**
   * Decrypts one transport message. Throws MESSAGE_TOO_LONG, DECRYPT_FAILED (the state stays usable: a forged
   * message does not advance the nonce), NONCE_EXHAUSTED, or CIPHER_UNAVAILABLE.
   */
  decrypt(ciphertext: Uint8Array, additionalData: Uint8Array = EMPTY): Buffer {
    if (ciphertext.byteLength > MAX_MESSAGE_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `message of ${ciphertext.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    }
    return this.#requireReceive().decryptWithAd(additionalData, ciphertext);
  }

  /**
   * Encrypts `plaintext` in place: `buffer` holds the plaintext in its first `plaintextBytes` bytes and has room
   * for the 16-byte tag after it; on return it holds the ciphertext. Saves a copy per message on bulk paths.
   * Throws as encrypt() does.
   */
  encryptInPlace(buffer: Buffer, plaintextBytes: number): Buffer {
    if (plaintextBytes > MAX_TRANSPORT_PLAINTEXT_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `plaintext of ${plaintextBytes} bytes exceeds ${MAX_TRANSPORT_PLAINTEXT_BYTES}`);
    }
    if (buffer.byteLength !== plaintextBytes + TAG_BYTES) throw new NoiseCfgError('INVALID_ARGUMENT', 'buffer must be the plaintext length + 16 bytes');
    return this.#requireSend().encryptWithAd(EMPTY, buffer.subarray(0, plaintextBytes), buffer);
  }

  /** Decrypts `ciphertext` in place and returns the plaintext as its leading part. Throws as decrypt() does. */
  decryptInPlace(ciphertext: Buffer): Buffer {
    if (ciphertext.byteLength > MAX_MESSAGE_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `message of ${ciphertext.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    }
    if (ciphertext.byteLength < TAG_BYTES) return this.#requireReceive().decryptWithAd(EMPTY, ciphertext);
    return this.#requireReceive().decryptWithAd(EMPTY, ciphertext, ciphertext.subarray(0, ciphertext.byteLength - TAG_BYTES));
  }

  /**
   * Decrypts `ciphertext` into `output`, which must be its length − 16 bytes and must not overlap it unless it
   * starts at the same byte. Lets a receiver decrypt a frame straight to where the message is assembled.
   * Throws as decrypt() does, and INVALID_ARGUMENT for a wrong output length.
   */
  decryptInto(ciphertext: Uint8Array, output: Buffer): Buffer {
    if (ciphertext.byteLength > MAX_MESSAGE_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `message of ${ciphertext.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    }
    if (ciphertext.byteLength < TAG_BYTES) return this.#requireReceive().decryptWithAd(EMPTY, ciphertext);
    if (output.byteLength !== ciphertext.byteLength - TAG_BYTES) throw new NoiseCfgError('INVALID_ARGUMENT', 'output must be the ciphertext length - 16 bytes');
    return this.#requireReceive().decryptWithAd(EMPTY, ciphertext, output);
  }

  /** Rekeys the send cipher (§11.3); the peer must rekey its receive cipher at the same point. */
  rekeySend(): void {
    this.#requireSend().rekey();
  }

  /** Rekeys the receive cipher (§11.3). */
  rekeyReceive(): void {
    this.#requireReceive().rekey();
  }

  /** Zeroes both keys. */
  dispose(): void {
    this.#sendCipher?.dispose();
    this.#receiveCipher?.dispose();
  }

  [CIPHER_FOR_TESTING](direction: 'send' | 'receive'): CipherState {
    return direction === 'send' ? this.#requireSend() : this.#requireReceive();
  }

  [KEY_BUFFER_FOR_TESTING](): Buffer[] {
    return [this.#sendCipher, this.#receiveCipher].flatMap((cipher) => cipher?.[KEY_BUFFER_FOR_TESTING]() ?? []);
  }

  #requireSend(): CipherState {
    if (this.#sendCipher === null || !this.#sendCipher.hasKey) {
      throw new NoiseCfgError('CIPHER_UNAVAILABLE', 'this side has no send cipher (one-way pattern responder, or disposed)');
    }
    return this.#sendCipher;
  }

  #requireReceive(): CipherState {
    if (this.#receiveCipher === null || !this.#receiveCipher.hasKey) {
      throw new NoiseCfgError('CIPHER_UNAVAILABLE', 'this side has no receive cipher (one-way pattern initiator, or disposed)');
    }
    return this.#receiveCipher;
  }
}

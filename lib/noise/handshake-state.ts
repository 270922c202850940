/**
 * HandshakeState (Noise rev. 34 §5.3) driven by pattern data, with the PSK processing of §9.2: every e token also
 * calls MixKey in a PSK handshake, and psk tokens call MixKeyAndHash. A failed read ends the handshake for good.
 * Finishing returns a TransportState; the handshake object keeps nothing that could write another message.
 * Over 300 lines on purpose: §5.3 is one object, and its token processing, key checks and zeroing share its
 * private fields; split, each part would need the others' secrets passed around.
 */
import sodium from 'sodium-native';
import { NoiseCfgError } from '../errors.js';
import { TAG_BYTES } from './cipher-functions.js';
import type { CipherState } from './cipher-state.js';
import type { DhFunction, KeyPair } from './dh-functions.js';
import type { MessageToken } from './patterns.js';
import { resolveProtocol, type NoiseProtocol } from './protocols.js';
import { SECRET_BUFFERS_FOR_TESTING, SymmetricState } from './symmetric-state.js';
import { MAX_MESSAGE_BYTES, TransportState } from './transport-state.js';
import { copyOutOfPool, wipe } from './wipe.js';

/** Length of every PSK, in bytes (§9). */
export const PSK_BYTES = 32;

const EMPTY = Buffer.alloc(0);

/** Symbol of the option that fixes the local ephemeral key, for test vectors only; not re-exported. */
export const FIXED_EPHEMERAL_FOR_TESTING = Symbol('noise-cfg testing only: fixed ephemeral key pair');

/** What a handshake needs; which keys are required depends on the pattern. */
export interface HandshakeOptions {
  /** Full protocol name, e.g. `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b`. */
  protocolName: string;
  /** True for the side that sends the first message. */
  initiator: boolean;
  /** Bytes both sides must agree on, mixed into h before the first message (§6). Default: empty. */
  prologue?: Uint8Array;
  /** Our static key pair (s), when the pattern sends or pre-shares it. */
  staticKeyPair?: KeyPair;
  /** The peer's static public key (rs), when the pattern pre-shares it (`<- s ...`). */
  remoteStaticKey?: Uint8Array;
  /** When set, a static key received in a handshake message must equal this (constant-time check): a pin. */
  expectedRemoteStaticKey?: Uint8Array;
  /** The 32-byte PSKs, in the order of the pattern's psk tokens. */
  psks?: readonly Uint8Array[];
}

type Phase = 'running' | 'finished' | 'taken' | 'aborted';

/** One side of a Noise handshake. */
export class HandshakeState {
  readonly #protocol: NoiseProtocol;
  readonly #dh: DhFunction;
  readonly #isInitiator: boolean;
  readonly #symmetric: SymmetricState;
  /** s: our static key pair. */
  readonly #s: KeyPair | null;
  /** e: our ephemeral key pair, once generated. */
  #e: KeyPair | null = null;
  /** rs: the peer's static public key. */
  #rs: Buffer | null;
  /** re: the peer's ephemeral public key. */
  #re: Buffer | null = null;
  readonly #psks: Buffer[];
  readonly #expectedRemoteStaticKey: Buffer | null;
  readonly #fixedEphemeral: KeyPair | null;
  #messageIndex = 0;
  #pskIndex = 0;
  #phase: Phase = 'running';
  #transport: TransportState | null = null;

  /**
   * Initialize(): checks that the pattern has every key it needs and runs the pre-messages.
   * Throws UNSUPPORTED_PROTOCOL, INVALID_PATTERN, KEY_MISSING, INVALID_KEY, PSK_MISSING, PSK_INVALID_LENGTH or
   * INVALID_ARGUMENT, each naming the argument.
   */
  constructor(options: HandshakeOptions) {
    if (options === null || typeof options !== 'object') throw new NoiseCfgError('INVALID_ARGUMENT', 'options must be an object');
    if (typeof options.initiator !== 'boolean') throw new NoiseCfgError('INVALID_ARGUMENT', 'initiator must be true or false');
    const protocol = resolveProtocol(options.protocolName);
    const pattern = protocol.pattern;
    this.#protocol = protocol;
    this.#dh = protocol.dh;
    this.#isInitiator = options.initiator;

    const prologue = options.prologue ?? EMPTY;
    if (!(prologue instanceof Uint8Array)) throw new NoiseCfgError('INVALID_ARGUMENT', 'prologue must be a Uint8Array');
    this.#s = options.staticKeyPair ? checkKeyPair(options.staticKeyPair, this.#dh, 'staticKeyPair') : null;
    this.#rs = options.remoteStaticKey ? checkPublicKey(options.remoteStaticKey, this.#dh, 'remoteStaticKey') : null;
    this.#expectedRemoteStaticKey = options.expectedRemoteStaticKey
      ? checkPublicKey(options.expectedRemoteStaticKey, this.#dh, 'expectedRemoteStaticKey')
      : null;
    const fixed = (options as { [FIXED_EPHEMERAL_FOR_TESTING]?: KeyPair })[FIXED_EPHEMERAL_FOR_TESTING];
    this.#fixedEphemeral = fixed ? checkKeyPair(fixed, this.#dh, 'ephemeral key pair') : null;

    const pskTokenCount = pattern.pskCount;
    const psks = options.psks ?? [];
    if (!Array.isArray(psks)) throw new NoiseCfgError('INVALID_ARGUMENT', 'psks must be an array of 32-byte keys');
    if (psks.length < pskTokenCount) {
      throw new NoiseCfgError('PSK_MISSING', `${pattern.name} needs ${pskTokenCount} PSK(s), got ${psks.length}`);
    }
    if (psks.length > pskTokenCount) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `${pattern.name} takes ${pskTokenCount} PSK(s), got ${psks.length}`);
    }
    this.#psks = psks.map((psk, index) => {
      if (!(psk instanceof Uint8Array) || psk.byteLength !== PSK_BYTES) {
        const length = psk instanceof Uint8Array ? psk.byteLength : typeof psk;
        throw new NoiseCfgError('PSK_INVALID_LENGTH', `psks[${index}] must be ${PSK_BYTES} bytes, got ${length}`);
      }
      return Buffer.from(psk);
    });

    const ourSide = this.#isInitiator ? 'initiator' : 'responder';
    const ourPreMessage = this.#isInitiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const theirPreMessage = this.#isInitiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const weSendStatic = this.#isInitiator ? pattern.initiatorSendsStatic : pattern.responderSendsStatic;
    if ((weSendStatic || ourPreMessage.includes('s')) && this.#s === null) {
      throw new NoiseCfgError('KEY_MISSING', `${pattern.name} ${ourSide} needs staticKeyPair`);
    }
    if (theirPreMessage.includes('s') && this.#rs === null) {
      throw new NoiseCfgError('KEY_MISSING', `${pattern.name} ${ourSide} needs remoteStaticKey`);
    }
    if (pattern.initiatorPreMessage.includes('e') || pattern.responderPreMessage.includes('e')) {
      throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `${pattern.name}: pre-shared ephemeral keys are not supported`);
    }

    this.#symmetric = new SymmetricState(protocol);
    this.#symmetric.mixHash(prologue);
    // Pre-messages: the initiator's keys first, then the responder's (§7.1).
    if (pattern.initiatorPreMessage.includes('s')) this.#symmetric.mixHash(this.#isInitiator ? this.#s!.publicKey : this.#rs!);
    if (pattern.responderPreMessage.includes('s')) this.#symmetric.mixHash(this.#isInitiator ? this.#rs! : this.#s!.publicKey);
  }

  /** The protocol name this handshake runs. */
  get protocolName(): string {
    return this.#protocol.name;
  }

  /** True for the side that sent the first message. */
  get isInitiator(): boolean {
    return this.#isInitiator;
  }

  /** True when every message of the pattern has been written or read. */
  get isFinished(): boolean {
    return this.#phase === 'finished' || this.#phase === 'taken';
  }

  /** True when the next step is writeMessage, false when it is readMessage or the handshake is over. */
  get isMyTurn(): boolean {
    const message = this.#protocol.pattern.messages[this.#messageIndex];
    return this.#phase === 'running' && message !== undefined && message.fromInitiator === this.#isInitiator;
  }

  /** The peer's static public key once known (pre-shared or received), else null. */
  get remoteStaticKey(): Buffer | null {
    return this.#rs === null ? null : copyOutOfPool(this.#rs);
  }

  /**
   * WriteMessage(payload): the next handshake message. Throws HANDSHAKE_OUT_OF_ORDER when it is not our turn,
   * HANDSHAKE_ABORTED after a failure, MESSAGE_TOO_LONG when the message would exceed 65535 bytes (checked before
   * any state changes), INVALID_KEY when a DH gives the all-zero output.
   */
  writeMessage(payload: Uint8Array = EMPTY): Buffer {
    if (!(payload instanceof Uint8Array)) throw new NoiseCfgError('INVALID_ARGUMENT', 'payload must be a Uint8Array');
    const tokens = this.#nextTokens(true);
    const dhLength = this.#dh.dhLength;
    const length = this.#messageLength(tokens, payload.byteLength);
    if (length > MAX_MESSAGE_BYTES) {
      throw new NoiseCfgError('MESSAGE_TOO_LONG', `handshake message would be ${length} bytes, over ${MAX_MESSAGE_BYTES}`);
    }
    try {
      // One buffer of the exact length; every byte of it is written below.
      const message = Buffer.allocUnsafe(length);
      let offset = 0;
      for (let index = 0; index < tokens.length; index++) {
        const token = tokens[index]!;
        if (token === 'e') {
          this.#e = this.#fixedEphemeral ? copyKeyPair(this.#fixedEphemeral) : this.#dh.generateKeyPair();
          message.set(this.#e.publicKey, offset);
          offset += dhLength;
          this.#mixEphemeral(this.#e.publicKey);
        } else if (token === 's') {
          const sealedBytes = dhLength + (this.#symmetric.hasKey ? TAG_BYTES : 0);
          this.#symmetric.encryptAndHash(this.#s!.publicKey, message.subarray(offset, offset + sealedBytes));
          offset += sealedBytes;
        } else {
          this.#processKeyToken(token);
        }
      }
      this.#symmetric.encryptAndHash(payload, message.subarray(offset));
      this.#advance();
      return message;
    } catch (error) {
      this.#abort();
      throw error;
    }
  }

  /**
   * ReadMessage(message): checks and consumes the peer's next handshake message and returns its payload.
   * Any failure of the message itself ends the handshake (HANDSHAKE_ABORTED from then on); a call out of turn
   * (HANDSHAKE_OUT_OF_ORDER) changes nothing. Throws HANDSHAKE_OUT_OF_ORDER,
   * MESSAGE_TOO_LONG, MESSAGE_TRUNCATED, DECRYPT_FAILED (wrong PSK or key, or tampering), REMOTE_STATIC_MISMATCH,
   * INVALID_KEY.
   */
  readMessage(message: Uint8Array): Buffer {
    if (!(message instanceof Uint8Array)) throw new NoiseCfgError('INVALID_ARGUMENT', 'message must be a Uint8Array');
    const tokens = this.#nextTokens(false);
    const dhLength = this.#dh.dhLength;
    try {
      if (message.byteLength > MAX_MESSAGE_BYTES) {
        throw new NoiseCfgError('MESSAGE_TOO_LONG', `handshake message of ${message.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`);
      }
      let offset = 0;
      for (let index = 0; index < tokens.length; index++) {
        const token = tokens[index]!;
        if (token === 'e') {
          checkRemaining(message, offset, dhLength, 'the ephemeral key');
          this.#re = Buffer.copyBytesFrom(message, offset, dhLength);
          offset += dhLength;
          this.#mixEphemeral(this.#re);
        } else if (token === 's') {
          const sealedBytes = dhLength + (this.#symmetric.hasKey ? TAG_BYTES : 0);
          checkRemaining(message, offset, sealedBytes, 'the static key');
          const remoteStatic = this.#symmetric.decryptAndHash(message.subarray(offset, offset + sealedBytes));
          offset += sealedBytes;
          if (this.#expectedRemoteStaticKey !== null && !sodium.sodium_memcmp(remoteStatic, this.#expectedRemoteStaticKey)) {
            throw new NoiseCfgError('REMOTE_STATIC_MISMATCH', 'the peer\'s static key is not the expected (pinned) key');
          }
          this.#rs = remoteStatic;
        } else {
          this.#processKeyToken(token);
        }
      }
      if (this.#symmetric.hasKey && message.byteLength - offset < TAG_BYTES) {
        throw new NoiseCfgError('MESSAGE_TRUNCATED', `handshake message of ${message.byteLength} bytes ends inside the payload tag`);
      }
      const payload = this.#symmetric.decryptAndHash(message.subarray(offset));
      this.#advance();
      return payload;
    } catch (error) {
      this.#abort();
      throw error;
    }
  }

  /**
   * The transport keys, once isFinished. Callable once; afterwards this object holds no key material.
   * Throws HANDSHAKE_OUT_OF_ORDER before the last message, HANDSHAKE_ABORTED after a failure.
   */
  finish(): TransportState {
    if (this.#phase === 'aborted') throw new NoiseCfgError('HANDSHAKE_ABORTED', 'the handshake failed earlier and cannot finish');
    if (this.#phase !== 'finished' || this.#transport === null) {
      throw new NoiseCfgError('HANDSHAKE_OUT_OF_ORDER', this.#phase === 'taken' ? 'finish() was already called' : 'the handshake is not finished');
    }
    const transport = this.#transport;
    this.#transport = null;
    this.#phase = 'taken';
    return transport;
  }

  /** Ends the handshake and zeroes every secret it holds. */
  dispose(): void {
    if (this.#phase === 'running') this.#phase = 'aborted';
    this.#symmetric.dispose();
    this.#zeroSecrets();
    this.#transport?.dispose();
    this.#transport = null;
  }

  // Our copies of s and the PSKs, e, and the symmetric state's ck, h, HKDF outputs and k, as they are now.
  [SECRET_BUFFERS_FOR_TESTING](): Buffer[] {
    const keyPairs = [this.#s, this.#e, this.#fixedEphemeral].filter((keyPair): keyPair is KeyPair => keyPair !== null);
    return [...keyPairs.map((keyPair) => keyPair.secretKey), ...this.#psks, ...this.#symmetric[SECRET_BUFFERS_FOR_TESTING]()];
  }

  #nextTokens(isWrite: boolean): readonly MessageToken[] {
    if (this.#phase === 'aborted') throw new NoiseCfgError('HANDSHAKE_ABORTED', 'the handshake failed earlier and cannot continue');
    const message = this.#protocol.pattern.messages[this.#messageIndex];
    if (this.#phase !== 'running' || message === undefined) {
      throw new NoiseCfgError('HANDSHAKE_OUT_OF_ORDER', 'the handshake is already finished');
    }
    if ((message.fromInitiator === this.#isInitiator) !== isWrite) {
      throw new NoiseCfgError('HANDSHAKE_OUT_OF_ORDER', isWrite ? 'it is the peer\'s turn to send' : 'it is our turn to send');
    }
    return message.tokens;
  }

  // The exact length writeMessage will produce, so an over-long payload is refused before state changes.
  #messageLength(tokens: readonly MessageToken[], payloadBytes: number): number {
    const dhLength = this.#dh.dhLength;
    let hasKey = this.#symmetric.hasKey;
    let length = payloadBytes;
    for (const token of tokens) {
      if (token === 'e') {
        length += dhLength;
        if (this.#protocol.pattern.isPskHandshake) hasKey = true;
      } else if (token === 's') {
        length += dhLength + (hasKey ? TAG_BYTES : 0);
      } else {
        hasKey = true;
      }
    }
    return length + (hasKey ? TAG_BYTES : 0);
  }

  #mixEphemeral(publicKey: Buffer): void {
    this.#symmetric.mixHash(publicKey);
    if (this.#protocol.pattern.isPskHandshake) this.#symmetric.mixKey(publicKey);
  }

  #processKeyToken(token: Exclude<MessageToken, 'e' | 's'>): void {
    if (token === 'psk') {
      const psk = this.#psks[this.#pskIndex++]!;
      this.#symmetric.mixKeyAndHash(psk);
      return;
    }
    // The first letter names the initiator's key, the second the responder's (§7.1).
    const localKind = this.#isInitiator ? token[0] : token[1];
    const remoteKind = this.#isInitiator ? token[1] : token[0];
    const localKeyPair = localKind === 'e' ? this.#e : this.#s;
    const remoteKey = remoteKind === 'e' ? this.#re : this.#rs;
    if (localKeyPair === null || remoteKey === null) {
      throw new NoiseCfgError('KEY_MISSING', `"${token}" needs a key this side does not have`);
    }
    const shared = this.#dh.dh(localKeyPair, remoteKey);
    this.#symmetric.mixKey(shared);
    wipe(shared);
  }

  #advance(): void {
    this.#messageIndex += 1;
    if (this.#messageIndex < this.#protocol.pattern.messages.length) return;
    // The handshake hash and the peer's static key in one allocation, out of Node's pool: both live as long as
    // the connection.
    const hashLength = this.#protocol.hash.hashLength;
    const kept = Buffer.alloc(hashLength + (this.#rs === null ? 0 : this.#dh.dhLength));
    const handshakeHash = this.#symmetric.getHandshakeHash(kept.subarray(0, hashLength));
    let remoteStaticKey: Buffer | null = null;
    if (this.#rs !== null) {
      remoteStaticKey = kept.subarray(hashLength);
      remoteStaticKey.set(this.#rs);
    }
    const [initiatorToResponder, responderToInitiator] = this.#symmetric.split();
    let sendCipher: CipherState | null = this.#isInitiator ? initiatorToResponder : responderToInitiator;
    let receiveCipher: CipherState | null = this.#isInitiator ? responderToInitiator : initiatorToResponder;
    if (this.#protocol.pattern.isOneWay) {
      // Only the initiator sends after a one-way handshake; the other CipherState is discarded (§7.4).
      const unused = this.#isInitiator ? receiveCipher : sendCipher;
      unused.dispose();
      if (this.#isInitiator) receiveCipher = null;
      else sendCipher = null;
    }
    this.#transport = new TransportState({ protocolName: this.#protocol.name, handshakeHash, remoteStaticKey, sendCipher, receiveCipher });
    this.#zeroSecrets();
    this.#phase = 'finished';
  }

  // Our copies of e, s and the PSKs; the caller's own key objects are left alone.
  #zeroSecrets(): void {
    if (this.#e !== null) wipe(this.#e.secretKey);
    this.#e = null;
    if (this.#fixedEphemeral !== null) wipe(this.#fixedEphemeral.secretKey);
    this.#re = null;
    if (this.#s !== null) wipe(this.#s.secretKey);
    for (const psk of this.#psks) wipe(psk);
  }

  // A failed message ends the handshake for good (SPEC.md §1.3).
  #abort(): void {
    this.dispose();
    this.#phase = 'aborted';
  }
}

function checkRemaining(message: Uint8Array, offset: number, count: number, what: string): void {
  if (offset + count > message.byteLength) {
    throw new NoiseCfgError('MESSAGE_TRUNCATED', `handshake message of ${message.byteLength} bytes ends inside ${what}`);
  }
}

function checkPublicKey(key: Uint8Array, dhFunction: DhFunction, name: string): Buffer {
  const { dhLength } = dhFunction;
  if (!(key instanceof Uint8Array) || key.byteLength !== dhLength) {
    throw new NoiseCfgError('INVALID_KEY', `${name} must be ${dhLength} bytes, got ${key instanceof Uint8Array ? key.byteLength : typeof key}`);
  }
  return Buffer.from(key);
}

function checkKeyPair(keyPair: KeyPair, dhFunction: DhFunction, name: string): KeyPair {
  if (keyPair === null || typeof keyPair !== 'object') throw new NoiseCfgError('INVALID_ARGUMENT', `${name} must be { publicKey, secretKey }`);
  return {
    publicKey: checkPublicKey(keyPair.publicKey, dhFunction, `${name}.publicKey`),
    secretKey: checkPublicKey(keyPair.secretKey, dhFunction, `${name}.secretKey`),
  };
}

function copyKeyPair(keyPair: KeyPair): KeyPair {
  return { publicKey: Buffer.from(keyPair.publicKey), secretKey: Buffer.from(keyPair.secretKey) };
}

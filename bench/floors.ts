/**
 * The floor of one handshake side: its key exchange plus the symmetric calls the spec itself asks for (HKDFs,
 * MixHashes, AEAD calls of §5.2–§5.3 and §9.2, counted from the pattern), each timed through this library's own
 * functions and nothing else. A handshake cannot cost less with these primitives, so a goal above the share (or the
 * ratio) this floor gives cannot be met by the handshake code around them, only by cheaper primitive calls.
 */
import { generateKeyPair } from '../lib/index.js';
import { findCipherFunction } from '../lib/noise/cipher-functions.js';
import { HASH_FUNCTIONS } from '../lib/noise/hash-functions.js';
import { patternFromName, type HandshakePattern } from '../lib/noise/patterns.js';
import sodium from 'sodium-native';
import { rate } from './primitives.js';

/** What one side of a handshake asks of its primitives. */
export interface SideOperations {
  keypairs: number;
  dh: number;
  /** HKDF with two outputs (MixKey, and Split). */
  hkdf2: number;
  /** HKDF with three outputs (MixKeyAndHash of a psk token). */
  hkdf3: number;
  mixHash: number;
  /** EncryptAndHash or DecryptAndHash under a key: one AEAD call (its MixHash is counted in mixHash). */
  aead: number;
}

/**
 * The operations of one side (`initiator` or not) of `pattern`, by the spec's rules: the prologue and each
 * pre-message key are mixed into h (an `e` in a PSK handshake also MixKey), `e` makes a keypair when written and is
 * MixHashed (plus MixKey in a PSK handshake), `s` and each payload go through EncryptAndHash (an AEAD call once
 * there is a key), each DH token is a DH and a MixKey, a `psk` token is MixKeyAndHash, and Split is one HKDF.
 */
export function sideOperations(pattern: HandshakePattern, initiator: boolean): SideOperations {
  const operations: SideOperations = { keypairs: 0, dh: 0, hkdf2: 0, hkdf3: 0, mixHash: 1, aead: 0 };
  for (const token of [...pattern.initiatorPreMessage, ...pattern.responderPreMessage]) {
    operations.mixHash++;
    if (token === 'e' && pattern.isPskHandshake) operations.hkdf2++;
  }
  let hasKey = false;
  const encryptAndHash = (): void => {
    if (hasKey) operations.aead++;
    operations.mixHash++;
  };
  for (const message of pattern.messages) {
    const writing = message.fromInitiator === initiator;
    for (const token of message.tokens) {
      if (token === 'e') {
        if (writing) operations.keypairs++;
        operations.mixHash++;
        if (pattern.isPskHandshake) {
          operations.hkdf2++;
          hasKey = true;
        }
      } else if (token === 's') {
        encryptAndHash();
      } else if (token === 'psk') {
        operations.hkdf3++;
        operations.mixHash++;
        hasKey = true;
      } else {
        operations.dh++;
        operations.hkdf2++;
        hasKey = true;
      }
    }
    encryptAndHash();
  }
  operations.hkdf2++;
  return operations;
}

/** Seconds per call of each operation, timed here. */
export type OperationSeconds = Record<keyof SideOperations, number>;

/**
 * Times each operation as the product's handshakes make it (25519, ChaChaPoly, BLAKE2b; a DH output or a public key
 * as the input keying material and MixHash data, a 32-byte static key or an empty payload under AEAD), each over
 * about `budgetMs`.
 */
export function timeOperations(budgetMs: number): OperationSeconds {
  const hash = HASH_FUNCTIONS.BLAKE2b;
  const cipher = findCipherFunction('ChaChaPoly');
  const local = generateKeyPair();
  const remote = generateKeyPair();
  const shared = Buffer.alloc(32);
  const chainingKey = Buffer.alloc(hash.hashLength, 1);
  const outputs = [Buffer.alloc(hash.hashLength), Buffer.alloc(hash.hashLength), Buffer.alloc(hash.hashLength)];
  const h = Buffer.alloc(hash.hashLength, 2);
  const key = Buffer.alloc(32, 3);
  // A static key (32 bytes) and an empty payload, the two things a handshake seals, alternately.
  const sealed = [Buffer.alloc(32 + 16), Buffer.alloc(16)];
  let nonce = 0;
  return {
    keypairs: 1 / rate(() => generateKeyPair(), budgetMs),
    dh: 1 / rate(() => sodium.crypto_scalarmult(shared, local.secretKey, remote.publicKey), budgetMs),
    hkdf2: 1 / rate(() => hash.hkdfInto(chainingKey, shared, [outputs[0]!, outputs[1]!]), budgetMs),
    hkdf3: 1 / rate(() => hash.hkdfInto(chainingKey, shared, outputs), budgetMs),
    mixHash: 1 / rate(() => hash.mixHashInPlace(h, remote.publicKey), budgetMs),
    aead: 1 / rate(() => {
      const output = sealed[nonce & 1]!;
      cipher.encrypt(key, 0, nonce++, h, output.subarray(0, output.byteLength - 16), output);
    }, budgetMs),
  };
}

/** Seconds a side making `operations` costs at its floor, with each operation at `seconds`. */
export function floorSeconds(operations: SideOperations, seconds: OperationSeconds): number {
  return (Object.keys(operations) as (keyof SideOperations)[]).reduce((sum, name) => sum + operations[name] * seconds[name], 0);
}

/** The key exchange's share of the floor: the share of the key-exchange ceiling a side reaches at best. */
export function ceilingShareAtFloor(operations: SideOperations, seconds: OperationSeconds): number {
  return (operations.keypairs * seconds.keypairs + operations.dh * seconds.dh) / floorSeconds(operations, seconds);
}

/** The responder's operations in the two product patterns. */
export const PRODUCT_RESPONDER_OPERATIONS: Readonly<Record<'xxpsk3' | 'nnpsk0', SideOperations>> = {
  xxpsk3: sideOperations(patternFromName('XXpsk3'), false),
  nnpsk0: sideOperations(patternFromName('NNpsk0'), false),
};

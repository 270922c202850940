/**
 * Protocol names (Noise rev. 34 §8): `Noise_<pattern>_<dh>_<cipher>_<hash>` parsed into the pattern and the
 * functions that run it, and the two protocols the product uses.
 */
import { NoiseCfgError } from '../errors.js';
import { findCipherFunction, type CipherFunction, type CipherName } from './cipher-functions.js';
import { DH_FUNCTIONS, type DhFunction, type DhName } from './dh-functions.js';
import { HASH_FUNCTIONS, type HashFunction, type HashName } from './hash-functions.js';
import { patternFromName, type HandshakePattern } from './patterns.js';

/** The default product protocol: pinned server key, per-client identity keys, PSK. */
export const XXPSK3_PROTOCOL_NAME = 'Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b';
/** The PSK-only product protocol: no long-term keys, one round trip. */
export const NNPSK0_PROTOCOL_NAME = 'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b';

/** A parsed, runnable protocol. */
export interface NoiseProtocol {
  /** The exact protocol name, hashed into h at the start of the handshake. */
  name: string;
  pattern: HandshakePattern;
  dh: DhFunction;
  cipher: CipherFunction;
  hash: HashFunction;
  /** h (and ck) after InitializeSymmetric: the name padded to HASHLEN, or its hash when longer (§5.2). */
  initialHash: Buffer;
}

const HASH_NAMES = new Set<string>(Object.keys(HASH_FUNCTIONS));
// Parsing and validating a pattern costs more than a hash; every handshake of a server asks for the same names.
const RESOLVED = new Map<string, NoiseProtocol>();
const MAX_RESOLVED = 256;

/**
 * Parses and resolves a protocol name. Throws UNSUPPORTED_PROTOCOL, with the unsupported part named, for a
 * malformed name, an unknown curve, cipher or hash, or the fallback or hfs modifiers.
 */
export function resolveProtocol(name: string): NoiseProtocol {
  if (typeof name !== 'string') throw new NoiseCfgError('INVALID_ARGUMENT', 'protocol name must be a string');
  const cached = RESOLVED.get(name);
  if (cached) return cached;
  const protocol = parseProtocol(name);
  if (RESOLVED.size < MAX_RESOLVED) RESOLVED.set(name, protocol);
  return protocol;
}

function parseProtocol(name: string): NoiseProtocol {
  const parts = name.split('_');
  if (parts.length !== 5 || parts[0] !== 'Noise') {
    throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `"${name}" is not of the form Noise_<pattern>_<dh>_<cipher>_<hash>`);
  }
  const [, patternName, dhName, cipherName, hashName] = parts as [string, string, string, string, string];
  if (dhName !== '25519' && dhName !== '448') throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `DH "${dhName}" is not supported (25519 or 448)`);
  if (cipherName !== 'ChaChaPoly' && cipherName !== 'AESGCM') {
    throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `cipher "${cipherName}" is not supported`);
  }
  const cipher = findCipherFunction(cipherName as CipherName);
  if (!HASH_NAMES.has(hashName)) throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `hash "${hashName}" is not supported`);
  const hash = HASH_FUNCTIONS[hashName as HashName];
  const nameBytes = Buffer.from(name, 'ascii');
  const initialHash = Buffer.alloc(hash.hashLength);
  if (nameBytes.byteLength <= hash.hashLength) nameBytes.copy(initialHash);
  else hash.hashInto(initialHash, [nameBytes]);
  return { name, pattern: patternFromName(patternName), dh: DH_FUNCTIONS[dhName], cipher, hash, initialHash };
}

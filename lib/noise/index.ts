/**
 * The Noise layer's public face (SPEC.md §1): what the transport and task layers and users of the core need.
 * The test-only doors stay in testing.ts, imported by name where a test hook is wired, and are not re-exported.
 */
export { XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME, resolveProtocol, type NoiseProtocol } from './protocols.js';
export { HandshakeState, PSK_BYTES, type HandshakeOptions } from './handshake-state.js';
export { TransportState, MAX_MESSAGE_BYTES, MAX_TRANSPORT_PLAINTEXT_BYTES } from './transport-state.js';
export { TAG_BYTES } from './cipher-functions.js';
export { DH_BYTES } from './dh-functions.js';
export { generateKeyPair, keyPairFromSecretKey, keyFromHex, type KeyPair } from './keys.js';
// HKDF (§4.3) by hash name: the task layer derives each task's PSK with HKDF over BLAKE2b (SPEC.md §4.1).
export { HASH_FUNCTIONS, type HashFunction, type HashName } from './hash-functions.js';

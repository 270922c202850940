/**
 * Test-only doors into the Noise core: fixed ephemeral keys (for test vectors) and a movable nonce (for nonce
 * exhaustion tests). Deliberately not re-exported from lib/index.ts and not part of the documented API.
 */
import { SET_NONCE_FOR_TESTING } from './cipher-state.js';
import type { KeyPair } from './dh-functions.js';
import { FIXED_EPHEMERAL_FOR_TESTING, HandshakeState, type HandshakeOptions } from './handshake-state.js';
import { CIPHER_FOR_TESTING, type TransportState } from './transport-state.js';

/** A HandshakeState whose `e` is the given key pair instead of a fresh random one. Never use outside tests. */
export function createHandshakeStateWithFixedEphemeralForTesting(options: HandshakeOptions, ephemeralKeyPair: KeyPair): HandshakeState {
  return new HandshakeState({ ...options, [FIXED_EPHEMERAL_FOR_TESTING]: ephemeralKeyPair } as HandshakeOptions);
}

/**
 * Moves the nonce counter of one direction of a TransportState, to reach 2^64-1 without 2^64 messages.
 * Throws CIPHER_UNAVAILABLE when that direction has no cipher. Never use outside tests.
 */
export function setNonceForTesting(transport: TransportState, direction: 'send' | 'receive', nonce: bigint): void {
  transport[CIPHER_FOR_TESTING](direction)[SET_NONCE_FOR_TESTING](nonce);
}

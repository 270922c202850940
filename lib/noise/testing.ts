/**
 * Test-only doors into the Noise core: fixed ephemeral keys (for test vectors), a movable nonce (for nonce
 * exhaustion tests) and the buffers that hold secrets (for the zeroing test of SPEC.md §1.3). Deliberately not
 * re-exported from lib/index.ts and not part of the documented API.
 */
import { KEY_BUFFER_FOR_TESTING, SET_NONCE_FOR_TESTING } from './cipher-state.js';
import type { KeyPair } from './dh-functions.js';
import { FIXED_EPHEMERAL_FOR_TESTING, HandshakeState, type HandshakeOptions } from './handshake-state.js';
import { SECRET_BUFFERS_FOR_TESTING } from './symmetric-state.js';
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

/**
 * The buffers that hold a handshake's secrets at this moment: its copies of s, e and the PSKs, and ck, h, the HKDF
 * outputs and k. Take them mid-handshake and check later that they were zeroed. Never use outside tests.
 */
export function secretBuffersOfHandshakeForTesting(handshake: HandshakeState): Buffer[] {
  return handshake[SECRET_BUFFERS_FOR_TESTING]();
}

/** The buffers that hold a TransportState's keys, to check later that they were zeroed. Never use outside tests. */
export function keyBuffersOfTransportForTesting(transport: TransportState): Buffer[] {
  return transport[KEY_BUFFER_FOR_TESTING]();
}

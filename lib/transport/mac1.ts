/**
 * The xxpsk3 pre-filter (SPEC.md §2.4), in the style of WireGuard's mac1: a MAC over the preamble and handshake
 * message 1, keyed from the task PSK. It lets the server refuse a stranger before any DH, since in XXpsk3 the PSK
 * itself enters only at message 3. Pure; BLAKE2b from libsodium.
 */
import sodium from 'sodium-native';
import { MAC1_BYTES, MAC1_KEY_BYTES } from './limits.js';

export { MAC1_BYTES };
const MAC1_KEY_LABEL = Buffer.from('noise-cfg/1 mac1', 'ascii');

/** mac1Key = BLAKE2b-256(key = psk, message = "noise-cfg/1 mac1"). */
export function deriveMac1Key(psk: Uint8Array): Buffer {
  const key = Buffer.alloc(MAC1_KEY_BYTES);
  sodium.crypto_generichash(key, MAC1_KEY_LABEL, psk);
  return key;
}

// A server derives the key for every connection to a task, from the same PSK buffer: derived once per buffer.
const mac1Keys = new WeakMap<Uint8Array, Buffer>();

/** deriveMac1Key(psk), remembered for as long as this `psk` buffer lives. `psk` must not change afterwards. */
export function mac1KeyForPsk(psk: Uint8Array): Buffer {
  let key = mac1Keys.get(psk);
  if (key === undefined) {
    key = deriveMac1Key(psk);
    mac1Keys.set(psk, key);
  }
  return key;
}

/** mac1 = BLAKE2b-128(key = mac1Key, message = preamble || message1). */
export function computeMac1(mac1Key: Uint8Array, preamble: Uint8Array, message1: Uint8Array): Buffer {
  const mac = Buffer.alloc(MAC1_BYTES);
  sodium.crypto_generichash_batch(mac, [preamble, message1], mac1Key);
  return mac;
}

/** Constant-time check of a received mac1. */
export function verifyMac1(mac1Key: Uint8Array, preamble: Uint8Array, message1: Uint8Array, receivedMac: Uint8Array): boolean {
  if (receivedMac.byteLength !== MAC1_BYTES) return false;
  return sodium.sodium_memcmp(computeMac1(mac1Key, preamble, message1), receivedMac);
}

/**
 * Test-only doors into the channel: the connection's TransportState (for nonce exhaustion) and fixed ephemeral
 * keys (for the transcripts in vectors/). Not re-exported from the package.
 */
export { EPHEMERAL_FOR_TESTING } from './channel-handshake.js';
import type { TransportState } from '../noise/index.js';
import { TRANSPORT_FOR_TESTING, type SecureConnection } from './secure-connection.js';

/** The TransportState under a SecureConnection. Never use outside tests. */
export function transportOfConnectionForTesting(connection: SecureConnection): TransportState {
  return connection[TRANSPORT_FOR_TESTING];
}

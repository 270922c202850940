/** Section 2: in-process handshakes per second, each side timed on its own, as a share of the key-exchange ceiling. */
import { HandshakeState, generateKeyPair, NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../lib/index.js';
import { ceilingNow } from './primitives.js';

/** Handshakes per second of the responder and of the initiator, from `count` complete handshakes. */
export function handshakeRates(protocol: 'xxpsk3' | 'nnpsk0', count: number): { responder: number; initiator: number } {
  const protocolName = protocol === 'xxpsk3' ? XXPSK3_PROTOCOL_NAME : NNPSK0_PROTOCOL_NAME;
  const isXx = protocol === 'xxpsk3';
  const psk = Buffer.alloc(32, 9);
  const initiatorStatic = generateKeyPair();
  const responderStatic = generateKeyPair();
  let responderNs = 0n;
  let initiatorNs = 0n;
  for (let i = 0; i < count; i++) {
    let mark = process.hrtime.bigint();
    const initiator = new HandshakeState({ protocolName, initiator: true, psks: [psk], ...(isXx ? { staticKeyPair: initiatorStatic, expectedRemoteStaticKey: responderStatic.publicKey } : {}) });
    const message1 = initiator.writeMessage();
    let next = process.hrtime.bigint();
    initiatorNs += next - mark;
    mark = next;
    const responder = new HandshakeState({ protocolName, initiator: false, psks: [psk], ...(isXx ? { staticKeyPair: responderStatic } : {}) });
    responder.readMessage(message1);
    const message2 = responder.writeMessage();
    if (!isXx) responder.finish();
    next = process.hrtime.bigint();
    responderNs += next - mark;
    mark = next;
    initiator.readMessage(message2);
    const message3 = isXx ? initiator.writeMessage() : null;
    initiator.finish();
    next = process.hrtime.bigint();
    initiatorNs += next - mark;
    mark = next;
    if (message3) {
      responder.readMessage(message3);
      responder.finish();
      responderNs += process.hrtime.bigint() - mark;
    }
  }
  return { responder: count / (Number(responderNs) / 1e9), initiator: count / (Number(initiatorNs) / 1e9) };
}

/** Slices a paired run is cut into: the machine's speed drifts within a second, so the two are interleaved. */
const PAIRING_SLICES = 10;

/**
 * Handshake rates and the key-exchange ceiling measured in alternating slices (handshakes, ceiling, handshakes,
 * …), so that a ratio of the two is not skewed by the machine's speed drifting between them.
 */
export function pairedHandshakeRates(protocol: 'xxpsk3' | 'nnpsk0', count: number, ceilingMs: number): { responder: number; initiator: number; ceiling: number } {
  let responderSeconds = 0;
  let initiatorSeconds = 0;
  let ceilingSeconds = 0;
  const perSlice = Math.max(1, Math.round(count / PAIRING_SLICES));
  for (let slice = 0; slice < PAIRING_SLICES; slice++) {
    const rates = handshakeRates(protocol, perSlice);
    responderSeconds += perSlice / rates.responder;
    initiatorSeconds += perSlice / rates.initiator;
    ceilingSeconds += 1 / ceilingNow(protocol, Math.max(1, ceilingMs / PAIRING_SLICES));
  }
  const total = perSlice * PAIRING_SLICES;
  return { responder: total / responderSeconds, initiator: total / initiatorSeconds, ceiling: PAIRING_SLICES / ceilingSeconds };
}

/** Section 2: in-process handshakes per second, each side timed on its own, as a share of the key-exchange ceiling. */
import { HandshakeState, generateKeyPair, NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../lib/index.js';

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

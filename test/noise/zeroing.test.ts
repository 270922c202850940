/**
 * SPEC.md §1.3 "Zeroing": which secret buffers of the core are zeroed, and when. The buffers are taken through the
 * testing doors while they hold secrets, and checked after the step that must have zeroed them.
 */
import t, { type Test } from 'tap';
import { keyPairFromSecretKey, type KeyPair } from '../../lib/noise/dh-functions.js';
import { HandshakeState } from '../../lib/noise/handshake-state.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import { keyBuffersOfTransportForTesting, secretBuffersOfHandshakeForTesting } from '../../lib/noise/testing.js';

const INITIATOR_STATIC = keyPairFromSecretKey(Buffer.alloc(32, 0x11));
const RESPONDER_STATIC = keyPairFromSecretKey(Buffer.alloc(32, 0x22));
const PSK = Buffer.alloc(32, 0xa5);

const isZero = (buffer: Uint8Array): boolean => buffer.every((byte) => byte === 0);

function pair(protocolName: string, psk: Buffer = PSK): { initiator: HandshakeState; responder: HandshakeState } {
  const isXx = protocolName === XXPSK3_PROTOCOL_NAME;
  const staticOf = (keyPair: KeyPair): { staticKeyPair?: KeyPair } => (isXx ? { staticKeyPair: keyPair } : {});
  return {
    initiator: new HandshakeState({ protocolName, initiator: true, psks: [psk], ...staticOf(INITIATOR_STATIC) }),
    responder: new HandshakeState({ protocolName, initiator: false, psks: [PSK], ...staticOf(RESPONDER_STATIC) }),
  };
}

/** Every secret buffer either side held at any point of the handshake, gathered after each message. */
function runHandshake(initiator: HandshakeState, responder: HandshakeState): Set<Buffer> {
  const seen = new Set<Buffer>();
  const gather = (): void => {
    for (const side of [initiator, responder]) for (const buffer of secretBuffersOfHandshakeForTesting(side)) seen.add(buffer);
  };
  gather();
  let [writer, reader] = [initiator, responder];
  while (!writer.isFinished) {
    reader.readMessage(writer.writeMessage(Buffer.from('payload')));
    gather();
    [writer, reader] = [reader, writer];
  }
  return seen;
}

function checkZeroed(t: Test, buffers: Iterable<Buffer>, what: string): void {
  const list = [...buffers];
  t.ok(list.length > 0, `${what}: there are buffers to check`);
  t.ok(list.every(isZero), `${what}: every one is all zeros`);
}

for (const protocolName of [XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME]) {
  t.test(`${protocolName}: mid-handshake the gathered buffers hold secrets, so the checks below can fail`, async (t) => {
    const { initiator, responder } = pair(protocolName);
    initiator.writeMessage();
    const buffers = [...secretBuffersOfHandshakeForTesting(initiator), ...secretBuffersOfHandshakeForTesting(responder)];
    t.ok(buffers.some((buffer) => !isZero(buffer)), 'some buffer is not zero');
    t.ok(secretBuffersOfHandshakeForTesting(initiator).filter((buffer) => !isZero(buffer)).length >= 3, 'the initiator\'s e, PSK and ck at least');
  });

  t.test(`${protocolName}: after Split the handshake's secrets are zeroed, before finish() is called`, async (t) => {
    const { initiator, responder } = pair(protocolName);
    const buffers = runHandshake(initiator, responder);
    t.ok(initiator.isFinished && responder.isFinished, 'both sides finished');
    checkZeroed(t, buffers, 'static and ephemeral secrets, PSK copies, ck, h, HKDF outputs, handshake k');
    t.notOk(isZero(INITIATOR_STATIC.secretKey), 'the caller\'s static key pair is left alone');
    t.notOk(isZero(PSK), 'and so is the caller\'s PSK');
  });

  t.test(`${protocolName}: TransportState.dispose() zeroes both transport keys`, async (t) => {
    const { initiator, responder } = pair(protocolName);
    runHandshake(initiator, responder);
    for (const [side, handshake] of [['initiator', initiator], ['responder', responder]] as const) {
      const transport = handshake.finish();
      const keys = keyBuffersOfTransportForTesting(transport);
      t.equal(keys.length, 2, `${side}: a send and a receive key`);
      t.ok(keys.every((key) => !isZero(key)), `${side}: both hold a key before dispose`);
      transport.dispose();
      checkZeroed(t, keys, `${side}: after dispose`);
      t.throws(() => transport.encrypt(Buffer.from('x')), { code: 'CIPHER_UNAVAILABLE' }, `${side}: and the keys are gone`);
    }
  });

  t.test(`${protocolName}: a failed read zeroes the reader's handshake secrets`, async (t) => {
    const { initiator, responder } = pair(protocolName, Buffer.alloc(32, 0x5a));
    let message = initiator.writeMessage();
    if (protocolName === XXPSK3_PROTOCOL_NAME) {
      // XXpsk3 mixes the PSK last: the responder gets as far as its own e and s before message 3 fails.
      responder.readMessage(message);
      initiator.readMessage(responder.writeMessage());
      message = initiator.writeMessage();
    }
    const buffers = secretBuffersOfHandshakeForTesting(responder);
    t.ok(buffers.some((buffer) => !isZero(buffer)), 'the responder holds secrets before the read');
    t.throws(() => responder.readMessage(message), { code: 'DECRYPT_FAILED' }, 'the wrong PSK fails the read');
    checkZeroed(t, buffers, 'the responder after the failure');
    t.throws(() => responder.writeMessage(), { code: 'HANDSHAKE_ABORTED' }, 'and the handshake is over');
  });

  t.test(`${protocolName}: HandshakeState.dispose() mid-handshake zeroes its secrets`, async (t) => {
    const { initiator } = pair(protocolName);
    initiator.writeMessage();
    const buffers = secretBuffersOfHandshakeForTesting(initiator);
    initiator.dispose();
    checkZeroed(t, buffers, 'the initiator after dispose');
    t.throws(() => initiator.readMessage(Buffer.alloc(48)), { code: 'HANDSHAKE_ABORTED' }, 'and the handshake is over');
  });
}

/**
 * Builds the project's published vectors for the two product protocols (SPEC.md §1.4), in cacophony format.
 * Every key and payload is derived from a label with BLAKE2b, so the output is the same on every run.
 */
import sodium from 'sodium-native';
import { keyPairFromSecretKey } from '../../lib/noise/dh-functions.js';
import type { HandshakeOptions } from '../../lib/noise/handshake-state.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME, resolveProtocol } from '../../lib/noise/protocols.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../../lib/noise/testing.js';
import type { TransportState } from '../../lib/noise/transport-state.js';

/** Deterministic bytes for a label: BLAKE2b-512 in counter mode, cut to `length`. */
export function labelledBytes(label: string, length: number): Buffer {
  const output = Buffer.alloc(length);
  for (let offset = 0, block = 0; offset < length; offset += 64, block++) {
    const digest = Buffer.alloc(64);
    sodium.crypto_generichash(digest, Buffer.from(`noise-cfg vectors/${label}/${block}`));
    digest.copy(output, offset, 0, Math.min(64, length - offset));
  }
  return output;
}

interface CaseSpec {
  comment: string;
  prologueBytes: number;
  payloadBytes: readonly number[];
}

const CASES: readonly CaseSpec[] = [
  { comment: 'empty prologue, empty payloads', prologueBytes: 0, payloadBytes: [0, 0, 0, 0, 0, 0] },
  { comment: 'short prologue, short payloads', prologueBytes: 16, payloadBytes: [5, 17, 1, 33, 64, 100] },
  { comment: 'long prologue, mixed payloads', prologueBytes: 300, payloadBytes: [0, 1000, 31, 4096, 1, 65519] },
];

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function buildVector(protocolName: string, caseIndex: number, spec: CaseSpec): Record<string, unknown> {
  const { pattern } = resolveProtocol(protocolName);
  const label = `${protocolName}/${caseIndex}`;
  const prologue = labelledBytes(`${label}/prologue`, spec.prologueBytes);
  const psk = labelledBytes(`${label}/psk`, 32);
  const initiatorEphemeral = keyPairFromSecretKey(labelledBytes(`${label}/init_ephemeral`, 32));
  const responderEphemeral = keyPairFromSecretKey(labelledBytes(`${label}/resp_ephemeral`, 32));
  const usesStatics = pattern.messages.some((message) => message.tokens.includes('s'));
  const initiatorStatic = usesStatics ? keyPairFromSecretKey(labelledBytes(`${label}/init_static`, 32)) : undefined;
  const responderStatic = usesStatics ? keyPairFromSecretKey(labelledBytes(`${label}/resp_static`, 32)) : undefined;

  const options = (initiator: boolean): HandshakeOptions => {
    const staticKeyPair = initiator ? initiatorStatic : responderStatic;
    return { protocolName, initiator, prologue, psks: [psk], ...(staticKeyPair ? { staticKeyPair } : {}) };
  };
  const initiator = createHandshakeStateWithFixedEphemeralForTesting(options(true), initiatorEphemeral);
  const responder = createHandshakeStateWithFixedEphemeralForTesting(options(false), responderEphemeral);

  const messages: { payload: string; ciphertext: string }[] = [];
  let transports: [TransportState, TransportState] | null = null;
  spec.payloadBytes.forEach((size, index) => {
    const fromInitiator = index % 2 === 0;
    const payload = labelledBytes(`${label}/payload/${index}`, size);
    let ciphertext: Buffer;
    if (transports === null) {
      const [sender, receiver] = fromInitiator ? [initiator, responder] : [responder, initiator];
      ciphertext = sender.writeMessage(payload);
      receiver.readMessage(ciphertext);
      if (initiator.isFinished && responder.isFinished) transports = [initiator.finish(), responder.finish()];
    } else {
      const [sender, receiver] = fromInitiator ? transports : [transports[1], transports[0]];
      ciphertext = sender.encrypt(payload);
      receiver.decrypt(ciphertext);
    }
    messages.push({ payload: hex(payload), ciphertext: hex(ciphertext) });
  });
  const finished = transports as [TransportState, TransportState] | null;
  if (finished === null) throw new Error(`${label}: the handshake did not finish`);

  return {
    protocol_name: protocolName,
    comment: spec.comment,
    init_prologue: hex(prologue),
    init_psks: [hex(psk)],
    ...(initiatorStatic ? { init_static: hex(initiatorStatic.secretKey) } : {}),
    init_ephemeral: hex(initiatorEphemeral.secretKey),
    resp_prologue: hex(prologue),
    resp_psks: [hex(psk)],
    ...(responderStatic ? { resp_static: hex(responderStatic.secretKey) } : {}),
    resp_ephemeral: hex(responderEphemeral.secretKey),
    handshake_hash: hex(finished[0].handshakeHash),
    messages,
  };
}

/** The contents of vectors/noise-cfg-core.json. */
export function buildCoreVectors(): { vectors: Record<string, unknown>[] } {
  const vectors: Record<string, unknown>[] = [];
  for (const protocolName of [XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME]) {
    CASES.forEach((spec, index) => vectors.push(buildVector(protocolName, index, spec)));
  }
  return { vectors };
}

/** The file text, as written and as checked by the tests. */
export function coreVectorsText(): string {
  return `${JSON.stringify(buildCoreVectors(), null, 2)}\n`;
}

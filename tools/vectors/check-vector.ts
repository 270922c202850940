/**
 * Checks one test vector in cacophony format (or noise-c's, which names the protocol in `name`) against the
 * Noise core: drives both roles with the vector's fixed keys and compares every handshake message, every
 * transport message and the handshake hash byte for byte. Pure: no files, no output.
 */
import { isNoiseCfgError } from '../../lib/errors.js';
import type { KeyPair } from '../../lib/noise/dh-functions.js';
import type { HandshakeOptions, HandshakeState } from '../../lib/noise/handshake-state.js';
import { resolveProtocol } from '../../lib/noise/protocols.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../../lib/noise/testing.js';
import type { TransportState } from '../../lib/noise/transport-state.js';
import { HandshakeState as Handshake } from '../../lib/noise/handshake-state.js';

/** A vector as parsed from JSON. */
export type Vector = Record<string, unknown>;

/** The outcome of one vector. */
export type VectorOutcome =
  | { status: 'passed'; protocolName: string }
  | { status: 'skipped'; protocolName: string; reason: string }
  | { status: 'failed'; protocolName: string; reason: string };

/** The protocol name of a vector, from `protocol_name` (cacophony, snow) or `name` (noise-c). */
export function vectorProtocolName(vector: Vector): string {
  const name = vector['protocol_name'] ?? vector['name'];
  return typeof name === 'string' ? name : '(no protocol name)';
}

function hexField(vector: Vector, field: string): Buffer | undefined {
  const value = vector[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(value)) throw new Error(`field ${field} is not hex`);
  return Buffer.from(value, 'hex');
}

function psksField(vector: Vector, side: 'init' | 'resp'): Buffer[] {
  const list = vector[`${side}_psks`];
  if (Array.isArray(list)) return list.map((psk) => Buffer.from(String(psk), 'hex'));
  const single = hexField(vector, `${side}_psk`);
  return single === undefined ? [] : [single];
}

/** Why a vector is out of this core's scope, or null when it is in scope. */
export function outOfScopeReason(vector: Vector): string | null {
  const name = vectorProtocolName(vector);
  if (vector['hybrid'] !== undefined) return 'hybrid forward secrecy (hfs: an extension, not revision 34)';
  if (vector['fallback'] === true || vector['fallback_pattern'] !== undefined) return 'compound protocol (Noise Pipes fallback)';
  if (name.startsWith('NoisePSK_')) return 'pre-rev-31 NoisePSK_ naming';
  try {
    resolveProtocol(name);
    return null;
  } catch (error) {
    if (isNoiseCfgError(error, 'UNSUPPORTED_PROTOCOL')) return error.message;
    throw error;
  }
}

function compare(what: string, expected: Uint8Array, actual: Uint8Array): string | null {
  if (Buffer.compare(Buffer.from(expected), Buffer.from(actual)) === 0) return null;
  return `${what} differs\n  expected ${Buffer.from(expected).toString('hex')}\n  actual   ${Buffer.from(actual).toString('hex')}`;
}

function sideOptions(vector: Vector, side: 'init' | 'resp', protocolName: string): { options: HandshakeOptions; ephemeral: KeyPair | undefined } {
  const staticSecret = hexField(vector, `${side}_static`);
  const ephemeralSecret = hexField(vector, `${side}_ephemeral`);
  const remoteStatic = hexField(vector, `${side}_remote_static`);
  const options: HandshakeOptions = {
    protocolName,
    initiator: side === 'init',
    prologue: hexField(vector, `${side}_prologue`) ?? Buffer.alloc(0),
    psks: psksField(vector, side),
  };
  // The key pairs are the protocol's curve's: a 448 vector gives 56-byte secret keys.
  const { dh } = resolveProtocol(protocolName);
  if (staticSecret) options.staticKeyPair = dh.keyPairFromSecretKey(staticSecret);
  if (remoteStatic) options.remoteStaticKey = remoteStatic;
  return { options, ephemeral: ephemeralSecret ? dh.keyPairFromSecretKey(ephemeralSecret) : undefined };
}

function createSide(vector: Vector, side: 'init' | 'resp', protocolName: string): HandshakeState {
  const { options, ephemeral } = sideOptions(vector, side, protocolName);
  return ephemeral ? createHandshakeStateWithFixedEphemeralForTesting(options, ephemeral) : new Handshake(options);
}

/** Runs one vector through both roles. Never throws for a bad vector: it reports it as failed. */
export function checkVector(vector: Vector): VectorOutcome {
  const protocolName = vectorProtocolName(vector);
  const reason = outOfScopeReason(vector);
  if (reason !== null) return { status: 'skipped', protocolName, reason };
  try {
    const failure = runVector(vector, protocolName);
    return failure === null ? { status: 'passed', protocolName } : { status: 'failed', protocolName, reason: failure };
  } catch (error) {
    const code = isNoiseCfgError(error) ? `${error.code}: ` : '';
    return { status: 'failed', protocolName, reason: `${code}${(error as Error).message}` };
  }
}

function runVector(vector: Vector, protocolName: string): string | null {
  const { pattern } = resolveProtocol(protocolName);
  const initiator = createSide(vector, 'init', protocolName);
  const responder = createSide(vector, 'resp', protocolName);
  const messages = vector['messages'];
  if (!Array.isArray(messages) || messages.length === 0) return 'vector has no messages';
  let transports: { initiator: TransportState; responder: TransportState } | null = null;

  for (const [index, entry] of messages.entries()) {
    const payload = hexField(entry as Vector, 'payload') ?? Buffer.alloc(0);
    const ciphertext = hexField(entry as Vector, 'ciphertext') ?? Buffer.alloc(0);
    const label = `message ${index}`;
    if (transports === null) {
      const senderIsInitiator = pattern.messages[index]!.fromInitiator;
      const [sender, receiver] = senderIsInitiator ? [initiator, responder] : [responder, initiator];
      const mismatch = compare(`${label} (handshake) ciphertext`, ciphertext, sender.writeMessage(payload))
        ?? compare(`${label} (handshake) payload`, payload, receiver.readMessage(ciphertext));
      if (mismatch) return mismatch;
      if (initiator.isFinished && responder.isFinished) {
        transports = { initiator: initiator.finish(), responder: responder.finish() };
        const expectedHash = hexField(vector, 'handshake_hash');
        if (expectedHash) {
          const hashMismatch = compare('initiator handshake hash', expectedHash, transports.initiator.handshakeHash)
            ?? compare('responder handshake hash', expectedHash, transports.responder.handshakeHash);
          if (hashMismatch) return hashMismatch;
        }
      }
    } else {
      // Transport messages alternate like handshake ones; after a one-way pattern only the initiator sends.
      const senderIsInitiator = pattern.isOneWay || index % 2 === 0;
      const [sender, receiver] = senderIsInitiator ? [transports.initiator, transports.responder] : [transports.responder, transports.initiator];
      const mismatch = compare(`${label} (transport) ciphertext`, ciphertext, sender.encrypt(payload))
        ?? compare(`${label} (transport) payload`, payload, receiver.decrypt(ciphertext));
      if (mismatch) return mismatch;
    }
  }
  if (transports === null) return 'the vector ends before the handshake does';
  return null;
}

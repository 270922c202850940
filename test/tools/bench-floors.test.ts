// bench/floors.ts counts, from a pattern, the primitive calls one handshake side makes. The counts are held to the
// spec worked by hand for the two product patterns, and to what a real HandshakeState calls, side by side, for
// those and a few patterns with pre-messages and several psk tokens.
import t from 'tap';
import { ceilingShareAtFloor, floorSeconds, sideOperations, type SideOperations } from '../../bench/floors.js';
import { generateKeyPair, HandshakeState } from '../../lib/index.js';
import { resolveProtocol } from '../../lib/noise/protocols.js';
import { patternFromName } from '../../lib/noise/patterns.js';

t.test('the product patterns, counted by hand from §5.3 and §9.2', async (t) => {
  // XXpsk3 responder: -> e (MixHash, MixKey as a PSK handshake), payload under that key; <- e, ee, s, es, payload;
  // -> s, se, psk, payload; Split.
  t.same(sideOperations(patternFromName('XXpsk3'), false), { keypairs: 1, dh: 3, hkdf2: 6, hkdf3: 1, mixHash: 9, aead: 5 });
  t.same(sideOperations(patternFromName('XXpsk3'), true), { keypairs: 1, dh: 3, hkdf2: 6, hkdf3: 1, mixHash: 9, aead: 5 });
  // NNpsk0: -> psk, e, payload; <- e, ee, payload; Split.
  t.same(sideOperations(patternFromName('NNpsk0'), false), { keypairs: 1, dh: 1, hkdf2: 4, hkdf3: 1, mixHash: 6, aead: 2 });
});

t.test('the counts are what a real handshake calls', async (t) => {
  for (const patternName of ['XXpsk3', 'NNpsk0', 'NN', 'XX', 'IK', 'KKpsk0', 'NKpsk2', 'XXpsk0+psk3']) {
    const protocol = resolveProtocol(`Noise_${patternName}_25519_ChaChaPoly_BLAKE2b`);
    const { pattern } = protocol;
    const counted = { initiator: zero(), responder: zero() };
    let side: 'initiator' | 'responder' = 'initiator';
    // The static keys are made before the counting starts: they are long-term, not a handshake's work.
    const initiatorStatic = generateKeyPair();
    const responderStatic = generateKeyPair();
    const restore = instrument(protocol, () => counted[side]);
    try {
      const needsStatic = (isInitiator: boolean): boolean => (isInitiator ? pattern.initiatorSendsStatic || pattern.initiatorPreMessage.includes('s') : pattern.responderSendsStatic || pattern.responderPreMessage.includes('s'));
      const psks = Array.from({ length: pattern.pskCount }, (_, index) => Buffer.alloc(32, index + 1));
      const make = (isInitiator: boolean): HandshakeState => {
        side = isInitiator ? 'initiator' : 'responder';
        const own = isInitiator ? initiatorStatic : responderStatic;
        const peer = isInitiator ? responderStatic : initiatorStatic;
        const peerPreMessage = isInitiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
        return new HandshakeState({
          protocolName: protocol.name, initiator: isInitiator, prologue: Buffer.from('floors'), psks,
          ...(needsStatic(isInitiator) ? { staticKeyPair: own } : {}),
          ...(peerPreMessage.includes('s') ? { remoteStaticKey: peer.publicKey } : {}),
        });
      };
      const initiator = make(true);
      const responder = make(false);
      for (const message of pattern.messages) {
        const [writer, reader, writerSide, readerSide] = message.fromInitiator ? [initiator, responder, 'initiator', 'responder'] as const : [responder, initiator, 'responder', 'initiator'] as const;
        side = writerSide;
        const bytes = writer.writeMessage();
        side = readerSide;
        reader.readMessage(bytes);
      }
      side = 'initiator';
      initiator.finish();
      side = 'responder';
      responder.finish();
    } finally {
      restore();
    }
    t.same(counted.initiator, sideOperations(pattern, true), `${patternName} initiator`);
    t.same(counted.responder, sideOperations(pattern, false), `${patternName} responder`);
  }
});

t.test('the floor is the sum of each count at its cost', async (t) => {
  const operations: SideOperations = { keypairs: 1, dh: 3, hkdf2: 6, hkdf3: 1, mixHash: 9, aead: 5 };
  const seconds = { keypairs: 13e-6, dh: 29e-6, hkdf2: 3e-6, hkdf3: 4e-6, mixHash: 0.5e-6, aead: 0.8e-6 };
  t.equal(Math.round(floorSeconds(operations, seconds) * 1e7) / 10, 13 + 87 + 18 + 4 + 4.5 + 4, 'µs, to a tenth');
  t.equal(Math.round(ceilingShareAtFloor(operations, seconds) * 1000) / 1000, Math.round((100 / 130.5) * 1000) / 1000, 'the key exchange\'s share of it');
});

function zero(): SideOperations {
  return { keypairs: 0, dh: 0, hkdf2: 0, hkdf3: 0, mixHash: 0, aead: 0 };
}

// Wraps the protocol's hash, DH and cipher functions so that each call counts against the side `current()` names;
// returns what puts the originals back.
function instrument(protocol: ReturnType<typeof resolveProtocol>, current: () => SideOperations): () => void {
  const hash = protocol.hash as unknown as Record<string, (...args: unknown[]) => unknown>;
  const dh = protocol.dh as unknown as Record<string, (...args: unknown[]) => unknown>;
  const cipher = protocol.cipher as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = { hkdfInto: hash['hkdfInto']!, mixHashInPlace: hash['mixHashInPlace']!, generateKeyPair: dh['generateKeyPair']!, dh: dh['dh']!, encrypt: cipher['encrypt']!, decrypt: cipher['decrypt']! };
  hash['hkdfInto'] = (...args: unknown[]) => {
    current()[(args[2] as unknown[]).length === 3 ? 'hkdf3' : 'hkdf2']++;
    return originals.hkdfInto(...args);
  };
  hash['mixHashInPlace'] = (...args: unknown[]) => {
    current().mixHash++;
    return originals.mixHashInPlace(...args);
  };
  dh['generateKeyPair'] = (...args: unknown[]) => {
    current().keypairs++;
    return originals.generateKeyPair(...args);
  };
  dh['dh'] = (...args: unknown[]) => {
    current().dh++;
    return originals.dh(...args);
  };
  for (const name of ['encrypt', 'decrypt'] as const) {
    cipher[name] = (...args: unknown[]) => {
      current().aead++;
      return originals[name](...args);
    };
  }
  return () => {
    hash['hkdfInto'] = originals.hkdfInto;
    hash['mixHashInPlace'] = originals.mixHashInPlace;
    dh['generateKeyPair'] = originals.generateKeyPair;
    dh['dh'] = originals.dh;
    cipher['encrypt'] = originals.encrypt;
    cipher['decrypt'] = originals.decrypt;
  };
}

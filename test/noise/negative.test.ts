/**
 * Adversarial and misuse cases for the Noise core (Noise rev. 34 §5.1, §5.3, §7.3, §9, §11.3, §12.1), for the two
 * product protocols: every failure is asserted by its NoiseCfgError code, and where the spec says the state survives
 * a failure (a transport decrypt, an over-long write) the test shows it still works afterwards.
 */
import t, { type Test } from 'tap';
import { keyPairFromSecretKey, type KeyPair } from '../../lib/noise/dh-functions.js';
import { CipherState } from '../../lib/noise/cipher-state.js';
import { HandshakeState, type HandshakeOptions } from '../../lib/noise/handshake-state.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME, resolveProtocol } from '../../lib/noise/protocols.js';
import { createHandshakeStateWithFixedEphemeralForTesting, setNonceForTesting } from '../../lib/noise/testing.js';
import { MAX_MESSAGE_BYTES, MAX_TRANSPORT_PLAINTEXT_BYTES, type TransportState } from '../../lib/noise/transport-state.js';

// Fixed keys make every run produce the same bytes, so a failing byte position can be reproduced.
const key = (fill: number): KeyPair => keyPairFromSecretKey(Buffer.alloc(32, fill));
const INITIATOR_STATIC = key(0x11);
const RESPONDER_STATIC = key(0x22);
const OTHER_STATIC = key(0x33);
const INITIATOR_EPHEMERAL = key(0x44);
const RESPONDER_EPHEMERAL = key(0x55);
const PSK = Buffer.alloc(32, 0xa5);
const WRONG_PSK = Buffer.alloc(32, 0x5a);
const PROLOGUE = Buffer.from('noise-cfg negative tests');

// Low-order X25519 points: X25519 with any of them gives the all-zero output (§12.1).
const LOW_ORDER_POINTS: Record<string, Buffer> = {
  zero: Buffer.alloc(32),
  one: Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]),
  'order 8': Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'),
};

const payloadFor = (index: number): Buffer => Buffer.from(`payload ${index + 1}`);

interface Product {
  name: string;
  messageCount: number;
  /** Bytes a handshake message adds to its payload, per message. */
  overheadBytes: readonly number[];
  /** The message (0-based) whose reader first uses the PSK to check a tag. */
  pskCheckedAt: number;
  /** Messages (0-based) whose reader does a DH with the ephemeral key it just received (bytes 0..31). */
  readerUsesReceivedEphemeral: ReadonlySet<number>;
  /** [length, code] pairs per message, for the payloads of payloadFor. */
  truncations: readonly (readonly (readonly [number, string])[])[];
}

// Message layouts with a 9-byte payload. XXpsk3: e+tag (57), e+s+tag+tag (105), s+tag+tag (73).
// NNpsk0: psk,e+tag (57), e+tag (57). In a psk handshake e calls MixKey, so message 1's payload is encrypted.
const XXPSK3: Product = {
  name: XXPSK3_PROTOCOL_NAME,
  messageCount: 3,
  overheadBytes: [48, 96, 64],
  pskCheckedAt: 2,
  readerUsesReceivedEphemeral: new Set([1]),
  truncations: [
    [[0, 'MESSAGE_TRUNCATED'], [10, 'MESSAGE_TRUNCATED'], [31, 'MESSAGE_TRUNCATED'], [32, 'MESSAGE_TRUNCATED'], [47, 'MESSAGE_TRUNCATED'], [48, 'DECRYPT_FAILED'], [56, 'DECRYPT_FAILED']],
    [[10, 'MESSAGE_TRUNCATED'], [31, 'MESSAGE_TRUNCATED'], [32, 'MESSAGE_TRUNCATED'], [79, 'MESSAGE_TRUNCATED'], [80, 'MESSAGE_TRUNCATED'], [95, 'MESSAGE_TRUNCATED'], [96, 'DECRYPT_FAILED'], [104, 'DECRYPT_FAILED']],
    [[10, 'MESSAGE_TRUNCATED'], [47, 'MESSAGE_TRUNCATED'], [48, 'MESSAGE_TRUNCATED'], [63, 'MESSAGE_TRUNCATED'], [64, 'DECRYPT_FAILED'], [72, 'DECRYPT_FAILED']],
  ],
};
const NNPSK0: Product = {
  name: NNPSK0_PROTOCOL_NAME,
  messageCount: 2,
  overheadBytes: [48, 48],
  pskCheckedAt: 0,
  readerUsesReceivedEphemeral: new Set([1]),
  truncations: [
    [[0, 'MESSAGE_TRUNCATED'], [10, 'MESSAGE_TRUNCATED'], [31, 'MESSAGE_TRUNCATED'], [32, 'MESSAGE_TRUNCATED'], [47, 'MESSAGE_TRUNCATED'], [48, 'DECRYPT_FAILED'], [56, 'DECRYPT_FAILED']],
    [[10, 'MESSAGE_TRUNCATED'], [31, 'MESSAGE_TRUNCATED'], [32, 'MESSAGE_TRUNCATED'], [47, 'MESSAGE_TRUNCATED'], [48, 'DECRYPT_FAILED'], [56, 'DECRYPT_FAILED']],
  ],
};
const PRODUCTS = [XXPSK3, NNPSK0];

interface Pair {
  initiator: HandshakeState;
  responder: HandshakeState;
}

/** Options for one side of any supported protocol: statics where the pattern uses them, pre-shared rs, the PSK. */
function optionsFor(protocolName: string, initiator: boolean, extra: Partial<HandshakeOptions> = {}): HandshakeOptions {
  const pattern = resolveProtocol(protocolName).pattern;
  const pskCount = pattern.messages.reduce((count, message) => count + message.tokens.filter((token) => token === 'psk').length, 0);
  const theirPreMessage = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
  return {
    protocolName,
    initiator,
    prologue: PROLOGUE,
    staticKeyPair: initiator ? INITIATOR_STATIC : RESPONDER_STATIC,
    ...(theirPreMessage.includes('s') ? { remoteStaticKey: (initiator ? RESPONDER_STATIC : INITIATOR_STATIC).publicKey } : {}),
    psks: Array.from({ length: pskCount }, () => PSK),
    ...extra,
  };
}

function makePair(protocolName: string, initiatorExtra: Partial<HandshakeOptions> = {}, responderExtra: Partial<HandshakeOptions> = {}): Pair {
  return {
    initiator: createHandshakeStateWithFixedEphemeralForTesting(optionsFor(protocolName, true, initiatorExtra), INITIATOR_EPHEMERAL),
    responder: createHandshakeStateWithFixedEphemeralForTesting(optionsFor(protocolName, false, responderExtra), RESPONDER_EPHEMERAL),
  };
}

/** [writer, reader] of message `index` (0-based); every supported pattern alternates, starting with the initiator. */
function sides(pair: Pair, index: number): [HandshakeState, HandshakeState] {
  return index % 2 === 0 ? [pair.initiator, pair.responder] : [pair.responder, pair.initiator];
}

/** Runs messages 0..count-1 honestly. */
function runMessages(pair: Pair, count: number): void {
  for (let i = 0; i < count; i++) {
    const [writer, reader] = sides(pair, i);
    reader.readMessage(writer.writeMessage(payloadFor(i)));
  }
}

/** Runs messages 0..index-1 honestly, then writes message `index` and returns it unread. */
function writeUpTo(pair: Pair, index: number): Buffer {
  runMessages(pair, index);
  return sides(pair, index)[0].writeMessage(payloadFor(index));
}

function completeHandshake(protocolName: string): { initiator: TransportState; responder: TransportState } {
  const pair = makePair(protocolName);
  runMessages(pair, resolveProtocol(protocolName).pattern.messages.length);
  return { initiator: pair.initiator.finish(), responder: pair.responder.finish() };
}

function flipBit(message: Buffer, position: number): Buffer {
  const copy = Buffer.from(message);
  copy[position] = copy[position]! ^ (1 << (position % 8));
  return copy;
}

/** After a failure, every further step of the handshake is HANDSHAKE_ABORTED, even with the genuine message. */
function assertAborted(t: Test, state: HandshakeState, genuineMessage: Buffer): void {
  t.throws(() => state.readMessage(genuineMessage), { code: 'HANDSHAKE_ABORTED' }, 'readMessage after the failure');
  t.throws(() => state.writeMessage(Buffer.from('more')), { code: 'HANDSHAKE_ABORTED' }, 'writeMessage after the failure');
  t.throws(() => state.finish(), { code: 'HANDSHAKE_ABORTED' }, 'finish after the failure');
  t.equal(state.isFinished, false, 'not finished');
  t.equal(state.isMyTurn, false, 'never our turn again');
}

for (const product of PRODUCTS) {
  t.test(`${product.name}: an honest handshake completes (control for the cases below)`, async (t) => {
    const pair = makePair(product.name);
    for (let i = 0; i < product.messageCount; i++) {
      const [writer, reader] = sides(pair, i);
      const message = writer.writeMessage(payloadFor(i));
      t.equal(message.byteLength, product.overheadBytes[i]! + payloadFor(i).byteLength, `message ${i + 1} length`);
      t.equal(reader.readMessage(message).toString(), payloadFor(i).toString(), `message ${i + 1} payload`);
    }
    const initiator = pair.initiator.finish();
    const responder = pair.responder.finish();
    t.equal(initiator.handshakeHash.toString('hex'), responder.handshakeHash.toString('hex'), 'same handshake hash');
  });

  t.test(`${product.name}: a wrong PSK fails with DECRYPT_FAILED on the reader of message ${product.pskCheckedAt + 1}`, async (t) => {
    for (const wrongSide of ['initiator', 'responder'] as const) {
      const pair = wrongSide === 'initiator' ? makePair(product.name, { psks: [WRONG_PSK] }) : makePair(product.name, {}, { psks: [WRONG_PSK] });
      for (let i = 0; i < product.pskCheckedAt; i++) {
        const [writer, reader] = sides(pair, i);
        t.equal(reader.readMessage(writer.writeMessage(payloadFor(i))).toString(), payloadFor(i).toString(), `${wrongSide} has the wrong PSK: message ${i + 1} still passes`);
      }
      const [writer, reader] = sides(pair, product.pskCheckedAt);
      const message = writer.writeMessage(payloadFor(product.pskCheckedAt));
      t.throws(() => reader.readMessage(message), { code: 'DECRYPT_FAILED' }, `${wrongSide} has the wrong PSK: message ${product.pskCheckedAt + 1} fails`);
      assertAborted(t, reader, message);
    }
  });

  for (let index = 0; index < product.messageCount; index++) {
    t.test(`${product.name}: one flipped bit in each byte of handshake message ${index + 1} fails the read`, async (t) => {
      const genuine = writeUpTo(makePair(product.name), index);
      for (let position = 0; position < genuine.byteLength; position++) {
        const pair = makePair(product.name);
        const message = writeUpTo(pair, index);
        t.equal(message.toString('hex'), genuine.toString('hex'), 'fixed keys give the same message every time');
        const reader = sides(pair, index)[1];
        // Only a DH with a tampered ephemeral key could hit a low-order point. Byte 31 gets bit 7 flipped, which
        // X25519 ignores, yet the key was hashed into h, so the tag must still fail.
        const mayBeLowOrder = product.readerUsesReceivedEphemeral.has(index) && position < 31;
        const wanted = mayBeLowOrder ? /^(DECRYPT_FAILED|INVALID_KEY)$/ : 'DECRYPT_FAILED';
        t.throws(() => reader.readMessage(flipBit(message, position)), { code: wanted }, `byte ${position} bit ${position % 8}`);
      }
    });

    t.test(`${product.name}: truncated handshake message ${index + 1}`, async (t) => {
      const fullLength = product.overheadBytes[index]! + payloadFor(index).byteLength;
      const lengths = product.truncations[index]!;
      t.ok(lengths.some(([length]) => length === fullLength - 1), 'the table covers one byte short of full');
      for (const [length, code] of lengths) {
        const pair = makePair(product.name);
        const message = writeUpTo(pair, index);
        t.equal(message.byteLength, fullLength, 'full length');
        const reader = sides(pair, index)[1];
        t.throws(() => reader.readMessage(message.subarray(0, length)), { code }, `${length} of ${fullLength} bytes`);
        assertAborted(t, reader, message);
      }
    });
  }

  t.test(`${product.name}: after a failed read the handshake is over on that side`, async (t) => {
    for (let index = 0; index < product.messageCount; index++) {
      const pair = makePair(product.name);
      const message = writeUpTo(pair, index);
      const reader = sides(pair, index)[1];
      t.throws(() => reader.readMessage(flipBit(message, message.byteLength - 1)), { code: 'DECRYPT_FAILED' }, `message ${index + 1} tampered`);
      assertAborted(t, reader, message);
    }
  });

  t.test(`${product.name}: readMessage of 65536 bytes is MESSAGE_TOO_LONG and ends the handshake`, async (t) => {
    for (let index = 0; index < product.messageCount; index++) {
      const pair = makePair(product.name);
      const message = writeUpTo(pair, index);
      const reader = sides(pair, index)[1];
      const oversize = Buffer.concat([message, Buffer.alloc(MAX_MESSAGE_BYTES + 1 - message.byteLength)]);
      t.throws(() => reader.readMessage(oversize), { code: 'MESSAGE_TOO_LONG' }, `message ${index + 1}`);
      assertAborted(t, reader, message);
    }
  });

  t.test(`${product.name}: PSK arguments are checked at construction`, async (t) => {
    for (const initiator of [true, false]) {
      const side = initiator ? 'initiator' : 'responder';
      const base = optionsFor(product.name, initiator);
      const { psks: _unused, ...withoutPsks } = base;
      t.doesNotThrow(() => new HandshakeState(base), `${side}: one 32-byte PSK is accepted`);
      t.throws(() => new HandshakeState(withoutPsks), { code: 'PSK_MISSING' }, `${side}: psks omitted`);
      t.throws(() => new HandshakeState({ ...base, psks: [] }), { code: 'PSK_MISSING' }, `${side}: psks empty`);
      t.throws(() => new HandshakeState({ ...base, psks: [Buffer.alloc(31)] }), { code: 'PSK_INVALID_LENGTH' }, `${side}: 31-byte PSK`);
      t.throws(() => new HandshakeState({ ...base, psks: [Buffer.alloc(33)] }), { code: 'PSK_INVALID_LENGTH' }, `${side}: 33-byte PSK`);
      t.throws(() => new HandshakeState({ ...base, psks: [PSK, PSK] }), { code: 'INVALID_ARGUMENT' }, `${side}: two PSKs for one psk token`);
    }
  });

  t.test(`${product.name}: a low-order ephemeral key in message 1 is caught by the PSK tag`, async (t) => {
    for (const [pointName, point] of Object.entries(LOW_ORDER_POINTS)) {
      const pair = makePair(product.name);
      const message = writeUpTo(pair, 0);
      const forged = Buffer.concat([point, message.subarray(32)]);
      t.throws(() => pair.responder.readMessage(forged), { code: 'DECRYPT_FAILED' }, pointName);
    }
  });

  t.test(`${product.name}: a low-order ephemeral key in message 2 is INVALID_KEY at the initiator's ee`, async (t) => {
    for (const [pointName, point] of Object.entries(LOW_ORDER_POINTS)) {
      const pair = makePair(product.name);
      const message = writeUpTo(pair, 1);
      const forged = Buffer.concat([point, message.subarray(32)]);
      t.throws(() => pair.initiator.readMessage(forged), { code: 'INVALID_KEY' }, pointName);
      assertAborted(t, pair.initiator, message);
    }
  });

  t.test(`${product.name}: one flipped bit in each byte of a transport message, in each direction`, async (t) => {
    const transports = completeHandshake(product.name);
    for (const [senderName, sender, receiver] of [
      ['initiator', transports.initiator, transports.responder],
      ['responder', transports.responder, transports.initiator],
    ] as const) {
      const plaintext = Buffer.from(`transport message from the ${senderName}`);
      const ciphertext = sender.encrypt(plaintext);
      for (let position = 0; position < ciphertext.byteLength; position++) {
        t.throws(() => receiver.decrypt(flipBit(ciphertext, position)), { code: 'DECRYPT_FAILED' }, `${senderName}: byte ${position}`);
      }
      t.throws(() => receiver.decrypt(ciphertext.subarray(0, ciphertext.byteLength - 1)), { code: 'DECRYPT_FAILED' }, `${senderName}: one byte short`);
      t.throws(() => receiver.decrypt(ciphertext.subarray(0, 15)), { code: 'DECRYPT_FAILED' }, `${senderName}: shorter than a tag`);
      t.throws(() => receiver.decrypt(ciphertext, Buffer.from('other ad')), { code: 'DECRYPT_FAILED' }, `${senderName}: wrong additional data`);
      t.equal(receiver.receiveNonce, 0n, `${senderName}: failed decrypts did not advance the nonce`);
      t.equal(receiver.decrypt(ciphertext).toString(), plaintext.toString(), `${senderName}: the original still decrypts`);
      t.equal(receiver.receiveNonce, 1n, `${senderName}: the nonce advanced once`);
      const next = Buffer.from('and the next one');
      t.equal(receiver.decrypt(sender.encrypt(next)).toString(), next.toString(), `${senderName}: the session stays in step`);
    }
  });

  t.test(`${product.name}: a replayed or reflected transport message fails`, async (t) => {
    const { initiator, responder } = completeHandshake(product.name);
    const first = initiator.encrypt(Buffer.from('first'));
    t.equal(responder.decrypt(first).toString(), 'first');
    t.throws(() => responder.decrypt(first), { code: 'DECRYPT_FAILED' }, 'replay');
    const second = initiator.encrypt(Buffer.from('second'));
    const third = initiator.encrypt(Buffer.from('third'));
    t.throws(() => responder.decrypt(third), { code: 'DECRYPT_FAILED' }, 'out of order');
    t.equal(responder.decrypt(second).toString(), 'second');
    t.equal(responder.decrypt(third).toString(), 'third');
    const own = responder.encrypt(Buffer.from('reflected'));
    t.throws(() => responder.decrypt(own), { code: 'DECRYPT_FAILED' }, 'reflected back to its sender');
    t.equal(initiator.decrypt(own).toString(), 'reflected', 'the real receiver is unaffected');
  });

  t.test(`${product.name}: transport size limits`, async (t) => {
    const { initiator, responder } = completeHandshake(product.name);
    t.equal(MAX_TRANSPORT_PLAINTEXT_BYTES, 65519);
    t.throws(() => initiator.encrypt(Buffer.alloc(65520)), { code: 'MESSAGE_TOO_LONG' }, 'encrypt 65520 bytes');
    t.equal(initiator.sendNonce, 0n, 'the refused encrypt did not use a nonce');
    const largest = Buffer.alloc(65519, 7);
    const ciphertext = initiator.encrypt(largest);
    t.equal(ciphertext.byteLength, MAX_MESSAGE_BYTES, 'encrypt 65519 bytes gives a 65535-byte message');
    t.throws(() => responder.decrypt(Buffer.alloc(65536)), { code: 'MESSAGE_TOO_LONG' }, 'decrypt 65536 bytes');
    t.equal(responder.receiveNonce, 0n, 'the refused decrypt did not use a nonce');
    t.ok(responder.decrypt(ciphertext).equals(largest), 'the 65535-byte message decrypts');
  });

  t.test(`${product.name}: nonce exhaustion at 2^64-1, on both sides`, async (t) => {
    const { initiator, responder } = completeHandshake(product.name);
    const last = 2n ** 64n - 2n;
    setNonceForTesting(initiator, 'send', last);
    setNonceForTesting(responder, 'receive', last);
    t.equal(initiator.sendNonce, last, 'send nonce reads back as a bigint');
    t.equal(responder.receiveNonce, last, 'receive nonce reads back as a bigint');
    const ciphertext = initiator.encrypt(Buffer.from('last message'));
    t.equal(initiator.sendNonce, 2n ** 64n - 1n, 'send nonce is now the reserved value');
    t.throws(() => initiator.encrypt(Buffer.from('one too many')), { code: 'NONCE_EXHAUSTED' }, 'encrypt at 2^64-1');
    t.equal(initiator.sendNonce, 2n ** 64n - 1n, 'the send nonce does not wrap');
    t.equal(responder.decrypt(ciphertext).toString(), 'last message', 'the message at 2^64-2 decrypts');
    t.equal(responder.receiveNonce, 2n ** 64n - 1n, 'receive nonce is now the reserved value');
    t.throws(() => responder.decrypt(ciphertext), { code: 'NONCE_EXHAUSTED' }, 'decrypt at 2^64-1');
    t.equal(responder.receiveNonce, 2n ** 64n - 1n, 'the receive nonce does not wrap');
  });

  t.test(`${product.name}: the nonce crosses 2^32 in step and is not reused`, async (t) => {
    const { initiator, responder } = completeHandshake(product.name);
    const plaintext = Buffer.from('same plaintext');
    const atZero = initiator.encrypt(plaintext);
    t.equal(responder.decrypt(atZero).toString(), plaintext.toString());
    setNonceForTesting(initiator, 'send', 2n ** 32n - 1n);
    setNonceForTesting(responder, 'receive', 2n ** 32n - 1n);
    const below = initiator.encrypt(Buffer.from('at 2^32-1'));
    const at = initiator.encrypt(plaintext);
    t.equal(initiator.sendNonce, 2n ** 32n + 1n, 'send nonce after two messages');
    // A counter that kept only 32 bits would encrypt at 2^32 with nonce 0: the same bytes as atZero.
    t.not(at.toString('hex'), atZero.toString('hex'), 'nonce 2^32 is not nonce 0');
    t.equal(responder.decrypt(below).toString(), 'at 2^32-1');
    t.equal(responder.decrypt(at).toString(), plaintext.toString(), 'the message at 2^32 decrypts');
    t.equal(responder.receiveNonce, 2n ** 32n + 1n, 'receive nonce after two messages');
    const after = initiator.encrypt(Buffer.from('after'));
    t.equal(responder.decrypt(after).toString(), 'after', 'still in step');
  });

  t.test(`${product.name}: rekey`, async (t) => {
    const { initiator, responder } = completeHandshake(product.name);
    t.equal(responder.decrypt(initiator.encrypt(Buffer.from('before'))).toString(), 'before');
    const sendNonce = initiator.sendNonce;
    initiator.rekeySend();
    t.equal(initiator.sendNonce, sendNonce, 'rekey does not change the send nonce');
    const afterRekey = initiator.encrypt(Buffer.from('after rekey'));
    t.throws(() => responder.decrypt(afterRekey), { code: 'DECRYPT_FAILED' }, 'only the sender rekeyed');
    const receiveNonce = responder.receiveNonce;
    responder.rekeyReceive();
    t.equal(responder.receiveNonce, receiveNonce, 'rekey does not change the receive nonce');
    t.equal(responder.decrypt(afterRekey).toString(), 'after rekey', 'both sides rekeyed');
    t.equal(initiator.decrypt(responder.encrypt(Buffer.from('other way'))).toString(), 'other way', 'the other direction is unaffected');

    responder.rekeySend();
    initiator.rekeyReceive();
    t.equal(initiator.decrypt(responder.encrypt(Buffer.from('back'))).toString(), 'back', 'responder to initiator after rekey');
    t.equal(responder.decrypt(initiator.encrypt(Buffer.from('forth'))).toString(), 'forth', 'initiator to responder after rekey');

    initiator.rekeyReceive();
    t.throws(() => initiator.decrypt(responder.encrypt(Buffer.from('mismatch'))), { code: 'DECRYPT_FAILED' }, 'only the receiver rekeyed');
  });
}

t.test('handshake message size limits, for psk and non-psk patterns', async (t) => {
  // Overheads per message, from the token lists: e 32, s 32 (+16 once a key exists), payload tag 16 once a key exists.
  const cases: [string, number[]][] = [
    [XXPSK3_PROTOCOL_NAME, [48, 96, 64]],
    [NNPSK0_PROTOCOL_NAME, [48, 48]],
    ['Noise_NN_25519_ChaChaPoly_BLAKE2b', [32, 48]],
    ['Noise_XX_25519_ChaChaPoly_BLAKE2b', [32, 96, 64]],
    ['Noise_IK_25519_ChaChaPoly_BLAKE2b', [96, 48]],
  ];
  for (const [protocolName, overheads] of cases) {
    overheads.forEach((overhead, index) => {
      const pair = makePair(protocolName);
      runMessages(pair, index);
      const [writer, reader] = sides(pair, index);
      const what = `${protocolName} message ${index + 1}`;
      t.throws(() => writer.writeMessage(Buffer.alloc(MAX_MESSAGE_BYTES + 1 - overhead)), { code: 'MESSAGE_TOO_LONG' }, `${what}: 65536 bytes refused`);
      t.equal(writer.isMyTurn, true, `${what}: the refused write changed nothing`);
      const payload = Buffer.alloc(MAX_MESSAGE_BYTES - overhead, index + 1);
      const message = writer.writeMessage(payload);
      t.equal(message.byteLength, MAX_MESSAGE_BYTES, `${what}: exactly 65535 bytes written`);
      t.ok(reader.readMessage(message).equals(payload), `${what}: and read`);
    });
    const pair = makePair(protocolName);
    runMessages(pair, overheads.length);
    t.equal(pair.initiator.finish().handshakeHash.toString('hex'), pair.responder.finish().handshakeHash.toString('hex'), `${protocolName}: completes`);
  }
});

t.test(`${XXPSK3_PROTOCOL_NAME}: the initiator pins the responder's static key (message 2)`, async (t) => {
  const wrong = makePair(XXPSK3_PROTOCOL_NAME, { expectedRemoteStaticKey: OTHER_STATIC.publicKey });
  const message = writeUpTo(wrong, 1);
  t.throws(() => wrong.initiator.readMessage(message), { code: 'REMOTE_STATIC_MISMATCH' }, 'another key is pinned');
  assertAborted(t, wrong.initiator, message);

  const right = makePair(XXPSK3_PROTOCOL_NAME, { expectedRemoteStaticKey: RESPONDER_STATIC.publicKey });
  runMessages(right, 3);
  const transport = right.initiator.finish();
  t.equal(transport.remoteStaticKey?.toString('hex'), RESPONDER_STATIC.publicKey.toString('hex'), 'the pinned key passes');
});

t.test(`${XXPSK3_PROTOCOL_NAME}: the responder pins the initiator's static key (message 3)`, async (t) => {
  const wrong = makePair(XXPSK3_PROTOCOL_NAME, {}, { expectedRemoteStaticKey: OTHER_STATIC.publicKey });
  const message = writeUpTo(wrong, 2);
  t.throws(() => wrong.responder.readMessage(message), { code: 'REMOTE_STATIC_MISMATCH' }, 'another key is pinned');
  assertAborted(t, wrong.responder, message);

  const right = makePair(XXPSK3_PROTOCOL_NAME, {}, { expectedRemoteStaticKey: INITIATOR_STATIC.publicKey });
  runMessages(right, 3);
  const transport = right.responder.finish();
  t.equal(transport.remoteStaticKey?.toString('hex'), INITIATOR_STATIC.publicKey.toString('hex'), 'the pinned key passes');
});

t.test(`${XXPSK3_PROTOCOL_NAME}: static key arguments are checked at construction`, async (t) => {
  for (const initiator of [true, false]) {
    const side = initiator ? 'initiator' : 'responder';
    const { staticKeyPair, ...withoutStatic } = optionsFor(XXPSK3_PROTOCOL_NAME, initiator);
    const keyPair = staticKeyPair!;
    t.throws(() => new HandshakeState(withoutStatic), { code: 'KEY_MISSING' }, `${side}: no staticKeyPair`);
    t.throws(() => new HandshakeState({ ...withoutStatic, staticKeyPair: { publicKey: keyPair.publicKey.subarray(0, 31), secretKey: keyPair.secretKey } }), { code: 'INVALID_KEY' }, `${side}: 31-byte public key`);
    t.throws(() => new HandshakeState({ ...withoutStatic, staticKeyPair: { publicKey: keyPair.publicKey, secretKey: Buffer.alloc(33, 1) } }), { code: 'INVALID_KEY' }, `${side}: 33-byte secret key`);
    t.throws(() => new HandshakeState({ ...withoutStatic, staticKeyPair: keyPair, expectedRemoteStaticKey: Buffer.alloc(31) }), { code: 'INVALID_KEY' }, `${side}: 31-byte pin`);
  }
  const { remoteStaticKey: _unused, ...withoutRemote } = optionsFor('Noise_IK_25519_ChaChaPoly_BLAKE2b', true);
  t.throws(() => new HandshakeState(withoutRemote), { code: 'KEY_MISSING' }, 'IK initiator without the pre-shared remote static key');
  t.throws(() => new HandshakeState({ ...optionsFor('Noise_XX_25519_ChaChaPoly_BLAKE2b', true), psks: [PSK] }), { code: 'INVALID_ARGUMENT' }, 'a PSK for a pattern with no psk token');
});

t.test('unsupported or invalid protocol names', async (t) => {
  const base = optionsFor(XXPSK3_PROTOCOL_NAME, true);
  const unsupported = [
    'Noise_XX_P256_ChaChaPoly_BLAKE2b',
    'Noise_XX_25519_ChaChaPoly_BLAKE3',
    'Noise_XXfallback_25519_ChaChaPoly_BLAKE2b',
    'Noise_XXhfs_25519_ChaChaPoly_BLAKE2b',
    'Noise_XXhfs_25519+Kyber1024_ChaChaPoly_BLAKE2b',
    'Noise_ZZ_25519_ChaChaPoly_BLAKE2b',
    'Noise_XX_25519_ChaChaPoly',
    'Noise_XX_25519_ChaChaPoly_BLAKE2b_extra',
    'Noisy_XX_25519_ChaChaPoly_BLAKE2b',
    'Noise_XXpsk3_25519_Salsa20_BLAKE2b',
    'garbage',
    '',
  ];
  for (const protocolName of unsupported) {
    t.throws(() => new HandshakeState({ ...base, protocolName }), { code: 'UNSUPPORTED_PROTOCOL' }, JSON.stringify(protocolName));
  }
  t.throws(() => new HandshakeState({ ...optionsFor(NNPSK0_PROTOCOL_NAME, true), protocolName: 'Noise_NNpsk3_25519_ChaChaPoly_BLAKE2b' }), { code: 'INVALID_PATTERN' }, 'NNpsk3: NN has 2 messages');
  t.doesNotThrow(() => new HandshakeState(base), 'the product name itself is accepted');
});

t.test('handshake steps out of order', async (t) => {
  for (const product of PRODUCTS) {
    const first = makePair(product.name);
    t.throws(() => first.responder.writeMessage(payloadFor(0)), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: responder writes first`);
    t.throws(() => first.initiator.readMessage(Buffer.alloc(64)), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: initiator reads first`);

    const twice = makePair(product.name);
    twice.initiator.writeMessage(payloadFor(0));
    t.throws(() => twice.initiator.writeMessage(payloadFor(1)), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: initiator writes twice in a row`);

    for (let done = 0; done < product.messageCount; done++) {
      const early = makePair(product.name);
      runMessages(early, done);
      t.throws(() => early.initiator.finish(), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: initiator finish() after ${done} messages`);
      t.throws(() => early.responder.finish(), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: responder finish() after ${done} messages`);
    }

    const done = makePair(product.name);
    runMessages(done, product.messageCount);
    for (const [side, state] of [['initiator', done.initiator], ['responder', done.responder]] as const) {
      t.equal(state.isFinished, true, `${product.name}: ${side} is finished`);
      t.throws(() => state.writeMessage(), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: ${side} writes after the end`);
      t.throws(() => state.readMessage(Buffer.alloc(64)), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: ${side} reads after the end`);
      t.ok(state.finish(), `${product.name}: ${side} finishes once`);
      t.throws(() => state.finish(), { code: 'HANDSHAKE_OUT_OF_ORDER' }, `${product.name}: ${side} finish() twice`);
    }
  }
});

t.test('one-way pattern N: the responder cannot send', async (t) => {
  const { initiator, responder } = completeHandshake('Noise_N_25519_ChaChaPoly_BLAKE2b');
  t.equal(responder.decrypt(initiator.encrypt(Buffer.from('one way'))).toString(), 'one way', 'the initiator sends');
  t.throws(() => responder.sendNonce, { code: 'CIPHER_UNAVAILABLE' }, 'the responder has no send cipher');
  t.throws(() => initiator.receiveNonce, { code: 'CIPHER_UNAVAILABLE' }, 'the initiator has no receive cipher');
  t.throws(() => responder.encrypt(Buffer.from('back')), { code: 'CIPHER_UNAVAILABLE' }, 'responder encrypt');
  t.throws(() => responder.rekeySend(), { code: 'CIPHER_UNAVAILABLE' }, 'responder rekeySend');
  t.throws(() => initiator.decrypt(Buffer.alloc(32)), { code: 'CIPHER_UNAVAILABLE' }, 'initiator decrypt');
  t.throws(() => initiator.rekeyReceive(), { code: 'CIPHER_UNAVAILABLE' }, 'initiator rekeyReceive');
});

t.test('NN: a low-order ephemeral key is INVALID_KEY at the first DH', async (t) => {
  const protocolName = 'Noise_NN_25519_ChaChaPoly_BLAKE2b';
  for (const [pointName, point] of Object.entries(LOW_ORDER_POINTS)) {
    const toResponder = makePair(protocolName);
    const message1 = writeUpTo(toResponder, 0);
    const forged1 = Buffer.concat([point, message1.subarray(32)]);
    // NN message 1 has no DH and no key, so the forged e is only seen at the responder's ee in message 2.
    t.equal(toResponder.responder.readMessage(forged1).toString(), payloadFor(0).toString(), `${pointName}: message 1 reads`);
    t.throws(() => toResponder.responder.writeMessage(payloadFor(1)), { code: 'INVALID_KEY' }, `${pointName}: responder's ee`);
    t.throws(() => toResponder.responder.writeMessage(payloadFor(1)), { code: 'HANDSHAKE_ABORTED' }, `${pointName}: and the responder is done`);

    const toInitiator = makePair(protocolName);
    const message2 = writeUpTo(toInitiator, 1);
    const forged2 = Buffer.concat([point, message2.subarray(32)]);
    t.throws(() => toInitiator.initiator.readMessage(forged2), { code: 'INVALID_KEY' }, `${pointName}: initiator's ee`);
    assertAborted(t, toInitiator.initiator, message2);
  }
});

t.test('random ephemeral keys: the product handshakes differ each run and still agree', async (t) => {
  for (const product of PRODUCTS) {
    const runs = [0, 1].map(() => {
      const initiator = new HandshakeState(optionsFor(product.name, true));
      const responder = new HandshakeState(optionsFor(product.name, false));
      runMessages({ initiator, responder }, product.messageCount);
      const a = initiator.finish();
      const b = responder.finish();
      t.equal(a.handshakeHash.toString('hex'), b.handshakeHash.toString('hex'), `${product.name}: hashes agree`);
      return a.handshakeHash.toString('hex');
    });
    t.not(runs[0], runs[1], `${product.name}: fresh ephemerals give a fresh session`);
  }
});

t.test('HasKey() is true exactly while the cipher state holds a key', async (t) => {
  const protocol = resolveProtocol(XXPSK3_PROTOCOL_NAME);
  const cipherState = new CipherState(protocol.cipher);
  t.notOk(cipherState.hasKey, 'no key before InitializeKey');
  t.same(cipherState.encryptWithAd(Buffer.alloc(0), Buffer.from('x')), Buffer.from('x'), 'without a key the plaintext passes as is');
  t.throws(() => cipherState.rekey(), { code: 'CIPHER_UNAVAILABLE' }, 'no rekey without a key');
  cipherState.initializeKey(Buffer.alloc(32, 1));
  t.ok(cipherState.hasKey, 'a key after InitializeKey');
  t.equal(cipherState.encryptWithAd(Buffer.alloc(0), Buffer.from('x')).byteLength, 17, 'and it encrypts with a tag');
  cipherState.dispose();
  t.notOk(cipherState.hasKey, 'no key after dispose');
});

t.test('argument checks of the in-place entry points: key storage and decryptInto output sizes', async (t) => {
  const protocol = resolveProtocol(XXPSK3_PROTOCOL_NAME);
  t.throws(() => new CipherState(protocol.cipher, null, Buffer.alloc(31)), { code: 'INVALID_ARGUMENT' }, 'key storage of 31 bytes');
  const storage = Buffer.alloc(32);
  const cipherState = new CipherState(protocol.cipher, Buffer.alloc(32, 7), storage);
  t.same(storage, Buffer.alloc(32, 7), 'the key is kept in the storage given');
  cipherState.dispose();
  t.same(storage, Buffer.alloc(32), 'and zeroed there on dispose');

  const { initiator, responder } = completeHandshake(NNPSK0_PROTOCOL_NAME);
  const ciphertext = initiator.encrypt(Buffer.from('hello'));
  t.throws(() => responder.decryptInto(ciphertext, Buffer.alloc(4)), { code: 'INVALID_ARGUMENT' }, 'an output one byte short');
  t.equal(responder.decryptInto(ciphertext, Buffer.alloc(5)).toString(), 'hello', 'the right size decrypts, the state unharmed');
});

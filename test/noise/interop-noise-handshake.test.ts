/**
 * Interop with an independent peer: the npm package noise-handshake runs the other side of NN, NNpsk0, XX, XXpsk0,
 * IK and XK (Noise rev. 34 §5.3, §7.5, §9) in both roles. Its transport keys are then used with its own cipher.js
 * and with libsodium directly, to check our 64-bit nonce encoding (§12.3) and rekey (§11.3) against the spec.
 */
import { randomBytes } from 'node:crypto';
import NoiseHandshake from 'noise-handshake';
import NoiseHandshakeCipher from 'noise-handshake/cipher.js';
import sodium from 'sodium-native';
import t, { type Test } from 'tap';
import { generateKeyPair } from '../../lib/noise/dh-functions.js';
import { HandshakeState } from '../../lib/noise/handshake-state.js';
import { setNonceForTesting } from '../../lib/noise/testing.js';
import type { TransportState } from '../../lib/noise/transport-state.js';

const PROLOGUE = Buffer.from('noise-cfg interop prologue');

interface PatternCase {
  pattern: string;
  messageCount: number;
  hasPsk: boolean;
  /** True when each side ends up knowing the other's static key. */
  hasStatics: boolean;
  /** True when the initiator must know the responder's static key beforehand (`<- s` pre-message). */
  initiatorKnowsResponder: boolean;
}

const CASES: PatternCase[] = [
  { pattern: 'NN', messageCount: 2, hasPsk: false, hasStatics: false, initiatorKnowsResponder: false },
  { pattern: 'NNpsk0', messageCount: 2, hasPsk: true, hasStatics: false, initiatorKnowsResponder: false },
  { pattern: 'XX', messageCount: 3, hasPsk: false, hasStatics: true, initiatorKnowsResponder: false },
  { pattern: 'XXpsk0', messageCount: 3, hasPsk: true, hasStatics: true, initiatorKnowsResponder: false },
  { pattern: 'IK', messageCount: 2, hasPsk: false, hasStatics: true, initiatorKnowsResponder: true },
  { pattern: 'XK', messageCount: 3, hasPsk: false, hasStatics: true, initiatorKnowsResponder: true },
];

const protocolNameOf = (pattern: string): string => `Noise_${pattern}_25519_ChaChaPoly_BLAKE2b`;

interface Session {
  ours: TransportState;
  theirs: NoiseHandshake;
}

/** Runs a full handshake between our HandshakeState and noise-handshake, checking every payload on the way. */
function handshake(t: Test, patternCase: PatternCase, isOursInitiator: boolean, theirPsk?: Buffer): Session {
  const ourStatic = generateKeyPair();
  const theirStatic = generateKeyPair();
  const psk = randomBytes(32);
  const ours = new HandshakeState({
    protocolName: protocolNameOf(patternCase.pattern),
    initiator: isOursInitiator,
    prologue: PROLOGUE,
    staticKeyPair: ourStatic,
    ...(isOursInitiator && patternCase.initiatorKnowsResponder ? { remoteStaticKey: theirStatic.publicKey } : {}),
    ...(patternCase.hasPsk ? { psks: [psk] } : {}),
  });
  const theirs = new NoiseHandshake(patternCase.pattern, !isOursInitiator, theirStatic, patternCase.hasPsk ? { psk: theirPsk ?? psk } : undefined);
  theirs.initialise(PROLOGUE, !isOursInitiator && patternCase.initiatorKnowsResponder ? ourStatic.publicKey : undefined);

  let count = 0;
  while (!ours.isFinished && count < 10) {
    if (ours.isMyTurn) {
      const payload = Buffer.from(`${patternCase.pattern} message ${count + 1} from noise-cfg`);
      const received = theirs.recv(ours.writeMessage(payload));
      t.equal(Buffer.from(received).toString(), payload.toString(), `message ${count + 1}: noise-handshake reads our payload`);
    } else {
      const payload = Buffer.from(`${patternCase.pattern} message ${count + 1} from noise-handshake`);
      t.equal(ours.readMessage(theirs.send(payload)).toString(), payload.toString(), `message ${count + 1}: we read their payload`);
    }
    count += 1;
  }
  t.equal(count, patternCase.messageCount, 'message count');
  t.equal(theirs.complete, true, 'noise-handshake finished too');
  const transport = ours.finish();
  t.equal(transport.handshakeHash.toString('hex'), Buffer.from(theirs.hash!).toString('hex'), 'same handshake hash');
  if (patternCase.hasStatics) {
    t.equal(transport.remoteStaticKey?.toString('hex'), theirStatic.publicKey.toString('hex'), 'we know their static key');
    t.equal(Buffer.from(theirs.rs!).toString('hex'), ourStatic.publicKey.toString('hex'), 'they know our static key');
  } else {
    t.equal(transport.remoteStaticKey, null, 'no static key in this pattern');
  }
  return { ours: transport, theirs };
}

/** ChaChaPoly's 96-bit nonce for counter n: 32 zero bits, then n as 64 bits little-endian (§12.3). */
function specNonce(counter: bigint): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(counter, 4);
  return nonce;
}

function sodiumDecrypt(keyBytes: Uint8Array, counter: bigint, ciphertext: Buffer): Buffer {
  const plaintext = Buffer.alloc(ciphertext.byteLength - 16);
  sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plaintext, null, ciphertext, Buffer.alloc(0), specNonce(counter), keyBytes);
  return plaintext;
}

for (const patternCase of CASES) {
  for (const isOursInitiator of [true, false]) {
    const roles = isOursInitiator ? 'noise-cfg initiator, noise-handshake responder' : 'noise-handshake initiator, noise-cfg responder';
    t.test(`${protocolNameOf(patternCase.pattern)}: ${roles}`, async (t) => {
      const { ours, theirs } = handshake(t, patternCase, isOursInitiator);
      // noise-handshake's tx is its sending key and rx its receiving key, whatever its README says.
      const theirSender = new NoiseHandshakeCipher(theirs.tx!);
      const theirReceiver = new NoiseHandshakeCipher(theirs.rx!);
      for (let i = 0; i < 3; i++) {
        const additionalData = i === 2 ? Buffer.from('associated data') : Buffer.alloc(0);
        const ourPlaintext = Buffer.from(`transport ${i + 1} from noise-cfg`);
        const fromUs = ours.encrypt(ourPlaintext, additionalData);
        t.equal(Buffer.from(theirReceiver.decrypt(fromUs, additionalData)).toString(), ourPlaintext.toString(), `transport ${i + 1}: they decrypt ours`);
        const theirPlaintext = Buffer.from(`transport ${i + 1} from noise-handshake`);
        const fromThem = theirSender.encrypt(theirPlaintext, additionalData);
        t.equal(ours.decrypt(fromThem, additionalData).toString(), theirPlaintext.toString(), `transport ${i + 1}: we decrypt theirs`);
      }
      t.equal(ours.sendNonce, 3n, 'our send nonce');
      t.equal(ours.receiveNonce, 3n, 'our receive nonce');
    });
  }
}

for (const pattern of ['NNpsk0', 'XXpsk0']) {
  t.test(`${protocolNameOf(pattern)}: a wrong PSK fails on our side with DECRYPT_FAILED`, async (t) => {
    const ourStatic = generateKeyPair();
    const ours = new HandshakeState({ protocolName: protocolNameOf(pattern), initiator: false, prologue: PROLOGUE, staticKeyPair: ourStatic, psks: [randomBytes(32)] });
    const theirs = new NoiseHandshake(pattern, true, generateKeyPair(), { psk: randomBytes(32) });
    theirs.initialise(PROLOGUE);
    const message = theirs.send(Buffer.from('hello'));
    t.throws(() => ours.readMessage(message), { code: 'DECRYPT_FAILED' }, 'message 1 with another PSK');
    t.throws(() => ours.writeMessage(), { code: 'HANDSHAKE_ABORTED' }, 'and the handshake is over');
  });
}

t.test('a different prologue fails on our side with DECRYPT_FAILED', async (t) => {
  const ours = new HandshakeState({ protocolName: protocolNameOf('NN'), initiator: true, prologue: PROLOGUE });
  const theirs = new NoiseHandshake('NN', false, generateKeyPair());
  theirs.initialise(Buffer.from('another prologue'));
  theirs.recv(ours.writeMessage());
  t.throws(() => ours.readMessage(theirs.send(Buffer.from('hi'))), { code: 'DECRYPT_FAILED' }, 'message 2 payload tag');
});

t.test('our nonce past 2^32 is the spec encoding: 64 bits little-endian after 32 zero bits', async (t) => {
  const { ours, theirs } = handshake(t, CASES[0]!, true);
  const receiveKey = Buffer.from(theirs.rx!);
  for (const counter of [2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 5n, 2n ** 48n + 3n, 2n ** 64n - 2n]) {
    setNonceForTesting(ours, 'send', counter);
    const plaintext = Buffer.from(`at nonce ${counter}`);
    const ciphertext = ours.encrypt(plaintext);
    t.equal(sodiumDecrypt(receiveKey, counter, ciphertext).toString(), plaintext.toString(), `nonce ${counter}`);
    if (counter >= 2n ** 32n) t.throws(() => sodiumDecrypt(receiveKey, counter & 0xffffffffn, ciphertext), `nonce ${counter}: not the counter cut to 32 bits`);
  }
});

t.test('our rekey is the spec rekey: k = ENCRYPT(k, 2^64-1, "", 32 zero bytes)[0..32]', async (t) => {
  const { ours, theirs } = handshake(t, CASES[0]!, true);
  const oldKey = Buffer.from(theirs.rx!);
  const sealed = Buffer.alloc(48);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(sealed, Buffer.alloc(32), Buffer.alloc(0), null, specNonce(2n ** 64n - 1n), oldKey);
  const newKey = sealed.subarray(0, 32);

  t.equal(sodiumDecrypt(oldKey, 0n, ours.encrypt(Buffer.from('before'))).toString(), 'before', 'before the rekey');
  ours.rekeySend();
  const ciphertext = ours.encrypt(Buffer.from('after'));
  t.equal(sodiumDecrypt(newKey, 1n, ciphertext).toString(), 'after', 'new key, nonce carried on');
  t.throws(() => sodiumDecrypt(oldKey, 1n, ciphertext), 'not the old key');
});

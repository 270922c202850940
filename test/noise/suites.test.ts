// The suites beyond the product's (SPEC.md §1.3): AESGCM and X448 through node:crypto, BLAKE2s through
// node:crypto. The public vectors check them in whole handshakes; this checks each primitive on its own, against
// its RFC's examples, and the failure rules the vectors cannot show.
import t from 'tap';
import { createCipheriv } from 'node:crypto';
import { findCipherFunction, TAG_BYTES } from '../../lib/noise/cipher-functions.js';
import { DH_FUNCTIONS } from '../../lib/noise/dh-functions.js';
import { HASH_FUNCTIONS } from '../../lib/noise/hash-functions.js';
import { HandshakeState, resolveProtocol } from '../../lib/noise/index.js';

const aesGcm = findCipherFunction('AESGCM');
const key = Buffer.alloc(32, 7);
const additionalData = Buffer.from('ad');

t.test('AESGCM: the nonce is 32 zero bits then the counter big-endian (§12.4)', async (t) => {
  const plaintext = Buffer.from('noise-cfg');
  const nonce = Buffer.from('00000000' + '0000000100000002', 'hex');
  const reference = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 }).setAAD(additionalData);
  const expected = Buffer.concat([reference.update(plaintext), reference.final(), reference.getAuthTag()]);
  t.same(aesGcm.encrypt(key, 1, 2, additionalData, plaintext), expected, 'counter 2^32 + 2');
  t.notSame(aesGcm.encrypt(key, 2, 1, additionalData, plaintext), expected, 'the halves are not interchangeable');
});

t.test('AESGCM: in place and out of place give the same bytes, and open again', async (t) => {
  for (const size of [0, 1, 15, 16, 17, 1000, 65519]) {
    const plaintext = Buffer.alloc(size, 0xab);
    const sealed = aesGcm.encrypt(key, 0, size, additionalData, plaintext);
    const inPlace = Buffer.alloc(size + TAG_BYTES);
    plaintext.copy(inPlace);
    aesGcm.encrypt(key, 0, size, additionalData, inPlace.subarray(0, size), inPlace);
    t.same(inPlace, sealed, `${size} bytes: in place`);
    t.same(aesGcm.decrypt(key, 0, size, additionalData, sealed), plaintext, `${size} bytes: opens`);
    aesGcm.decrypt(key, 0, size, additionalData, inPlace, inPlace);
    t.same(inPlace.subarray(0, size), plaintext, `${size} bytes: opens in place`);
  }
});

t.test('AESGCM: a forgery is DECRYPT_FAILED and no plaintext reaches the output', async (t) => {
  const plaintext = Buffer.from('a secret config line');
  const sealed = aesGcm.encrypt(key, 0, 5, additionalData, plaintext);
  for (const [what, tampered, ad, low] of [
    ['a flipped body bit', Buffer.from(sealed).fill(sealed[0]! ^ 1, 0, 1), additionalData, 5],
    ['a flipped tag bit', Buffer.from(sealed).fill(sealed.at(-1)! ^ 1, sealed.length - 1), additionalData, 5],
    ['other additional data', Buffer.from(sealed), Buffer.from('da'), 5],
    ['another nonce', Buffer.from(sealed), additionalData, 6],
  ] as const) {
    const output = Buffer.alloc(plaintext.length, 0xee);
    t.throws(() => aesGcm.decrypt(key, 0, low, ad, tampered, output), { code: 'DECRYPT_FAILED' }, what);
    t.same(output, Buffer.alloc(plaintext.length), `${what}: the output is zeroed`);
    t.throws(() => aesGcm.decrypt(key, 0, low, ad, tampered, tampered), { code: 'DECRYPT_FAILED' }, `${what}, in place`);
    t.same(tampered.subarray(0, plaintext.length), Buffer.alloc(plaintext.length), `${what}, in place: zeroed, never plaintext`);
  }
  t.throws(() => aesGcm.decrypt(key, 0, 0, additionalData, Buffer.alloc(15)), { code: 'DECRYPT_FAILED', message: /shorter than the 16-byte tag/ });
});

t.test('BLAKE2s is RFC 7693\'s BLAKE2s-256 (Appendix B), and its HMAC is RFC 2104\'s over a 64-byte block', async (t) => {
  const blake2s = HASH_FUNCTIONS.BLAKE2s;
  t.equal(blake2s.hashLength, 32);
  const output = Buffer.alloc(32);
  blake2s.hashInto(output, [Buffer.from('a'), Buffer.from('bc')]);
  t.equal(output.toString('hex'), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982', 'BLAKE2s-256("abc"), given in parts');
  const h = Buffer.from(output);
  blake2s.mixHashInPlace(h, Buffer.from('x'));
  const expected = Buffer.alloc(32);
  blake2s.hashInto(expected, [output, Buffer.from('x')]);
  t.same(h, expected, 'MixHash in place is HASH(h || data)');
  const [first, second] = blake2s.hkdf(Buffer.alloc(32, 1), Buffer.alloc(32, 2), 2);
  t.equal(first!.length, 32);
  t.notSame(first, second, 'HKDF gives two different 32-byte outputs');
});

// RFC 7748 §6.2: Alice's and Bob's X448 keys and their shared secret.
const RFC7748 = {
  alicePrivate: '9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b',
  alicePublic: '9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0',
  bobPrivate: '1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d',
  bobPublic: '3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609',
  shared: '07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d',
};

t.test('448 is RFC 7748\'s X448: the §6.2 example keys and shared secret', async (t) => {
  const x448 = DH_FUNCTIONS[448];
  t.equal(x448.dhLength, 56);
  const alice = x448.keyPairFromSecretKey(Buffer.from(RFC7748.alicePrivate, 'hex'));
  const bob = x448.keyPairFromSecretKey(Buffer.from(RFC7748.bobPrivate, 'hex'));
  t.equal(alice.publicKey.toString('hex'), RFC7748.alicePublic, 'Alice\'s public key');
  t.equal(bob.publicKey.toString('hex'), RFC7748.bobPublic, 'Bob\'s public key');
  t.equal(x448.dh(alice, bob.publicKey).toString('hex'), RFC7748.shared, 'DH(Alice, Bob)');
  t.equal(x448.dh(bob, alice.publicKey).toString('hex'), RFC7748.shared, 'DH(Bob, Alice)');
  const fresh = x448.generateKeyPair();
  t.equal(fresh.publicKey.length, 56);
  t.equal(fresh.secretKey.length, 56);
  t.same(x448.keyPairFromSecretKey(fresh.secretKey).publicKey, fresh.publicKey, 'a generated pair is consistent');
});

t.test('448: a low-order or wrong-length key is INVALID_KEY', async (t) => {
  const x448 = DH_FUNCTIONS[448];
  const alice = x448.keyPairFromSecretKey(Buffer.from(RFC7748.alicePrivate, 'hex'));
  t.throws(() => x448.dh(alice, Buffer.alloc(56)), { code: 'INVALID_KEY', message: /low order/ }, 'the zero point');
  const one = Buffer.alloc(56);
  one[0] = 1;
  t.throws(() => x448.dh(alice, one), { code: 'INVALID_KEY', message: /low order/ }, 'the point u = 1');
  t.throws(() => x448.dh(alice, Buffer.alloc(32, 9)), { code: 'INVALID_KEY', message: 'public key must be 56 bytes, got 32' });
  t.throws(() => x448.keyPairFromSecretKey(Buffer.alloc(32)), { code: 'INVALID_KEY', message: 'secretKey must be 56 bytes, got 32' });
});

t.test('a whole XX handshake on 448, AESGCM and BLAKE2s with fresh keys, and key lengths checked against the curve', async (t) => {
  const protocolName = 'Noise_XX_448_AESGCM_BLAKE2s';
  const protocol = resolveProtocol(protocolName);
  t.equal(protocol.dh.name, '448');
  const initiator = new HandshakeState({ protocolName, initiator: true, staticKeyPair: protocol.dh.generateKeyPair() });
  const responderStatic = protocol.dh.generateKeyPair();
  const responder = new HandshakeState({ protocolName, initiator: false, staticKeyPair: responderStatic });
  const first = initiator.writeMessage(Buffer.alloc(0));
  t.equal(first.length, 56, 'message 1 is the 56-byte ephemeral');
  responder.readMessage(first);
  initiator.readMessage(responder.writeMessage(Buffer.from('hi')));
  responder.readMessage(initiator.writeMessage(Buffer.alloc(0)));
  const [a, b] = [initiator.finish(), responder.finish()];
  t.same(a.handshakeHash, b.handshakeHash, 'both sides agree');
  t.equal(a.handshakeHash.length, 32, 'BLAKE2s: a 32-byte handshake hash');
  t.same(a.remoteStaticKey, responderStatic.publicKey, 'the 56-byte static key arrived');
  t.equal(b.decrypt(a.encrypt(Buffer.from('config'))).toString(), 'config');
  t.throws(
    () => new HandshakeState({ protocolName, initiator: true, staticKeyPair: DH_FUNCTIONS[25519].generateKeyPair() }),
    { code: 'INVALID_KEY', message: 'staticKeyPair.publicKey must be 56 bytes, got 32' },
    'a 25519 key on a 448 protocol',
  );
});

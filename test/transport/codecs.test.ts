/**
 * The pure codecs of the channel (SPEC.md §2.2, §2.4, §2.5): the clear preamble and the rejection frame, the
 * records inside transport messages, mac1, and the replay cache with an injected clock.
 */
import t from 'tap';
import { deriveMac1Key, computeMac1, MAC1_BYTES, verifyMac1 } from '../../lib/transport/mac1.js';
import {
  decodeRejection,
  encodePreamble,
  encodeRejection,
  parsePreamble,
  REJECTION_FRAME_BYTES,
  type PreambleParse,
} from '../../lib/transport/preamble.js';
import { decodeRecord, encodeRecord, MAX_RECORD_BODY_BYTES, RECORD_TYPES, type RecordType } from '../../lib/transport/records.js';
import { ReplayCache } from '../../lib/transport/replay-cache.js';
import { flipBit, patternedMessage } from './helpers.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

t.test('encodePreamble writes magic, version, mode, task id length and task id', async (t) => {
  t.equal(encodePreamble('xxpsk3', 'task-1').toString('hex'), '4e434647' + '01' + '01' + '06' + Buffer.from('task-1').toString('hex'));
  t.equal(encodePreamble('nnpsk0', 'A').toString('hex'), '4e434647' + '01' + '02' + '01' + '41');
  const longest = 'x'.repeat(64);
  t.equal(encodePreamble('nnpsk0', longest).byteLength, 7 + 64, 'a 64-character task id fits');
  for (const bad of ['', 'x'.repeat(65), 'has space', 'dot.ted', 'slash/', 'é', 'tab\t']) {
    t.throws(() => encodePreamble('xxpsk3', bad), { code: 'INVALID_ARGUMENT' }, `task id ${JSON.stringify(bad)} is refused`);
  }
  t.throws(() => encodePreamble('nn' as 'nnpsk0', 'task'), { code: 'INVALID_ARGUMENT' }, 'unknown mode');
});

t.test('parsePreamble: complete, incomplete at every prefix length, with the rest passed on', async (t) => {
  for (const [mode, taskId] of [['xxpsk3', 'task-1'], ['nnpsk0', 'Z'], ['xxpsk3', 'a_B-9'.repeat(12) + 'abcd']] as const) {
    const bytes = encodePreamble(mode, taskId);
    for (let length = 0; length < bytes.byteLength; length += 1) {
      const parsed = parsePreamble(bytes.subarray(0, length));
      if (parsed.status !== 'incomplete') t.fail(`prefix of ${length} bytes should be incomplete, got ${parsed.status}`);
    }
    t.pass(`every proper prefix of the ${bytes.byteLength}-byte ${mode} preamble is incomplete`);
    const parsed = parsePreamble(bytes) as Extract<PreambleParse, { status: 'complete' }>;
    t.equal(parsed.status, 'complete');
    t.same(parsed.preamble, { version: 1, mode, taskId });
    t.ok(parsed.bytes.equals(bytes), 'bytes are the preamble exactly (the prologue)');
    t.equal(parsed.rest.byteLength, 0);
    const withFrame = parsePreamble(Buffer.concat([bytes, hex('0003 aabbcc')])) as Extract<PreambleParse, { status: 'complete' }>;
    t.equal(withFrame.status, 'complete');
    t.ok(withFrame.bytes.equals(bytes), 'trailing bytes are not part of the preamble');
    t.equal(withFrame.rest.toString('hex'), '0003aabbcc', 'trailing bytes are handed on');
  }
});

t.test('parsePreamble refuses bad magic, version, mode and task id as soon as the deciding byte arrives', async (t) => {
  t.throws(() => parsePreamble(Buffer.from('X')), { code: 'PREAMBLE_INVALID' }, 'first byte wrong');
  t.throws(() => parsePreamble(Buffer.from('NCFX')), { code: 'PREAMBLE_INVALID' }, 'fourth byte wrong');
  t.throws(() => parsePreamble(hex('16030100')), { code: 'PREAMBLE_INVALID' }, 'a TLS ClientHello');
  t.throws(() => parsePreamble(Buffer.from('GET / HTTP/1.1\r\n')), { code: 'PREAMBLE_INVALID' }, 'an HTTP request');

  t.throws(() => parsePreamble(hex('4e434647 02')), { code: 'UNSUPPORTED_VERSION' }, 'version 2, judged at byte 5');
  t.throws(() => parsePreamble(hex('4e434647 00 01 04 74657374')), { code: 'UNSUPPORTED_VERSION' }, 'version 0');
  t.throws(() => parsePreamble(hex('4e434647 ff 01 04 74657374')), { code: 'UNSUPPORTED_VERSION' }, 'version 255');

  t.throws(() => parsePreamble(hex('4e434647 01 09')), { code: 'UNSUPPORTED_MODE' }, 'mode 9, judged at byte 6');
  t.throws(() => parsePreamble(hex('4e434647 01 00 04 74657374')), { code: 'UNSUPPORTED_MODE' }, 'mode 0');
  t.throws(() => parsePreamble(hex('4e434647 01 03 04 74657374')), { code: 'UNSUPPORTED_MODE' }, 'mode 3');

  t.throws(() => parsePreamble(hex('4e434647 01 01 00')), { code: 'PREAMBLE_INVALID' }, 'task id length 0');
  t.throws(() => parsePreamble(hex('4e434647 01 01 41')), { code: 'PREAMBLE_INVALID' }, 'task id length 65, before the task id arrives');
  t.throws(() => parsePreamble(hex('4e434647 01 01 ff')), { code: 'PREAMBLE_INVALID' }, 'task id length 255');
  const tooLong = Buffer.concat([hex('4e434647 01 01 41'), Buffer.alloc(65, 0x61)]);
  t.throws(() => parsePreamble(tooLong), { code: 'PREAMBLE_INVALID' }, 'task id length 65 with 65 good characters');
  t.equal(parsePreamble(Buffer.concat([hex('4e434647 01 01 40'), Buffer.alloc(64, 0x61)])).status, 'complete', 'length 64 is fine');

  for (const bad of [' ', '.', '/', '\0', '\x7f', '\xff', '\xe9', '+', '=', ':']) {
    const bytes = Buffer.concat([hex('4e434647 01 02 03'), Buffer.from(`a${bad}b`, 'latin1')]);
    t.throws(() => parsePreamble(bytes), { code: 'PREAMBLE_INVALID' }, `task id with byte 0x${bad.charCodeAt(0).toString(16)}`);
  }
  // Version is judged before mode, mode before the task id.
  t.throws(() => parsePreamble(hex('4e434647 02 09 00')), { code: 'UNSUPPORTED_VERSION' });
  t.throws(() => parsePreamble(hex('4e434647 01 09 00')), { code: 'UNSUPPORTED_MODE' });
});

t.test('the rejection frame: 6 bytes of magic, version and reason, and nothing else decodes as one', async (t) => {
  t.equal(REJECTION_FRAME_BYTES, 6);
  t.equal(encodeRejection('UNSUPPORTED_VERSION').toString('hex'), '4e434647' + '01' + '01');
  t.equal(encodeRejection('UNSUPPORTED_MODE').toString('hex'), '4e434647' + '01' + '02');
  t.equal(encodeRejection('PREAMBLE_INVALID').toString('hex'), '4e434647' + '01' + '03');
  for (const reason of ['UNSUPPORTED_VERSION', 'UNSUPPORTED_MODE', 'PREAMBLE_INVALID'] as const) {
    t.equal(decodeRejection(encodeRejection(reason)), reason, `${reason} round trips`);
  }
  t.equal(decodeRejection(hex('4e434647 01 01')), 'UNSUPPORTED_VERSION', 'from hand-written bytes');
  t.equal(decodeRejection(hex('4e434647 01 02')), 'UNSUPPORTED_MODE');
  t.equal(decodeRejection(hex('4e434647 01 07')), 'PREAMBLE_INVALID', 'an unknown reason is a rejection all the same');
  t.equal(decodeRejection(hex('4e434647 01')), null, '5 bytes: not a rejection');
  t.equal(decodeRejection(hex('4e434647 01 01 00')), null, '7 bytes: not a rejection');
  t.equal(decodeRejection(hex('4e434648 01 01')), null, 'wrong magic: not a rejection');
  t.equal(decodeRejection(Buffer.alloc(48)), null, 'a handshake message is not a rejection');
  t.equal(decodeRejection(Buffer.alloc(0)), null);
});

t.test('records: type byte then body, round trip for every type', async (t) => {
  t.same(RECORD_TYPES, { FRAGMENT: 0, FINAL: 1, END: 2, REKEY: 3, READY: 4 }, 'type bytes of SPEC.md §2.5');
  t.equal(MAX_RECORD_BODY_BYTES, 65518);
  for (const type of ['FRAGMENT', 'FINAL'] as const) {
    for (const length of [0, 1, 1000, MAX_RECORD_BODY_BYTES]) {
      const body = patternedMessage(length, length);
      const plaintext = encodeRecord(type, body);
      t.equal(plaintext[0], RECORD_TYPES[type]);
      t.equal(plaintext.byteLength, 1 + length);
      const decoded = decodeRecord(plaintext);
      t.equal(decoded.type, type);
      t.ok(decoded.body.equals(body), `${type} with ${length} bytes round trips`);
    }
    t.throws(() => encodeRecord(type, Buffer.alloc(MAX_RECORD_BODY_BYTES + 1)), { code: 'MESSAGE_TOO_LONG' }, `${type} body of 65519 bytes`);
  }
  for (const type of ['END', 'REKEY', 'READY'] as const) {
    const plaintext = encodeRecord(type);
    t.same([...plaintext], [RECORD_TYPES[type]], `${type} is a single byte`);
    t.same(decodeRecord(plaintext), { type, body: Buffer.alloc(0) });
  }
});

t.test('records: unknown types, empty plaintexts and bodies where none belong are FRAME_INVALID', async (t) => {
  t.throws(() => decodeRecord(Buffer.alloc(0)), { code: 'FRAME_INVALID' }, 'empty plaintext');
  for (const type of [0x05, 0x06, 0x7f, 0x80, 0xff]) {
    t.throws(() => decodeRecord(Buffer.from([type])), { code: 'FRAME_INVALID' }, `type 0x${type.toString(16)}`);
    t.throws(() => decodeRecord(Buffer.from([type, 1, 2, 3])), { code: 'FRAME_INVALID' }, `type 0x${type.toString(16)} with a body`);
  }
  for (const type of ['END', 'REKEY', 'READY'] as RecordType[]) {
    t.throws(() => decodeRecord(Buffer.from([RECORD_TYPES[type], 0])), { code: 'FRAME_INVALID' }, `${type} with a 1-byte body`);
    t.throws(() => decodeRecord(Buffer.concat([Buffer.from([RECORD_TYPES[type]]), Buffer.alloc(100)])), { code: 'FRAME_INVALID' }, `${type} with a 100-byte body`);
  }
});

t.test('mac1 verifies only the exact preamble, message 1 and PSK it was made for', async (t) => {
  const preamble = encodePreamble('xxpsk3', 'task-mac');
  const message1 = patternedMessage(48, 9);
  const key = deriveMac1Key(Buffer.alloc(32, 0xa1));
  const mac = computeMac1(key, preamble, message1);
  t.equal(mac.byteLength, MAC1_BYTES);
  t.equal(MAC1_BYTES, 16);
  t.ok(verifyMac1(key, preamble, message1, mac), 'the right mac verifies');
  t.ok(computeMac1(key, preamble, message1).equals(mac), 'deterministic');
  t.equal(deriveMac1Key(Buffer.alloc(32, 0xa1)).byteLength, 32);
  t.notOk(deriveMac1Key(Buffer.alloc(32, 0xa2)).equals(key), 'another PSK gives another key');
  t.notOk(verifyMac1(deriveMac1Key(Buffer.alloc(32, 0xa2)), preamble, message1, mac), 'wrong PSK');

  let accepted = 0;
  let tried = 0;
  for (let position = 0; position < preamble.byteLength; position += 1) {
    for (let bit = 0; bit < 8; bit += 1) {
      tried += 1;
      if (verifyMac1(key, flipBit(preamble, position, bit), message1, mac)) accepted += 1;
    }
  }
  for (let position = 0; position < message1.byteLength; position += 1) {
    for (let bit = 0; bit < 8; bit += 1) {
      tried += 1;
      if (verifyMac1(key, preamble, flipBit(message1, position, bit), mac)) accepted += 1;
    }
  }
  for (let position = 0; position < mac.byteLength; position += 1) {
    for (let bit = 0; bit < 8; bit += 1) {
      tried += 1;
      if (verifyMac1(key, preamble, message1, flipBit(mac, position, bit))) accepted += 1;
    }
  }
  t.equal(accepted, 0, `none of ${tried} single-bit flips in preamble, message 1 or mac verifies`);

  // SPEC.md §2.4: the MAC is over preamble || msg1, a plain concatenation (the preamble delimits itself).
  t.ok(computeMac1(key, Buffer.alloc(0), Buffer.concat([preamble, message1])).equals(mac), 'mac1 is over preamble || msg1');
  t.notOk(verifyMac1(key, preamble, message1, mac.subarray(0, 15)), '15-byte mac');
  t.notOk(verifyMac1(key, preamble, message1, Buffer.concat([mac, Buffer.alloc(1)])), '17-byte mac');
  t.notOk(verifyMac1(key, preamble, message1, Buffer.alloc(0)), 'empty mac');
  t.notOk(verifyMac1(key, preamble, message1, Buffer.alloc(16)), 'all-zero mac');
});

t.test('ReplayCache refuses a key seen within the window and forgets it after two windows', async (t) => {
  let now = 1_000_000;
  const cache = new ReplayCache({ now: () => now, windowMs: 1000 });
  const a = Buffer.alloc(32, 1);
  const b = Buffer.alloc(32, 2);
  t.ok(cache.checkAndRemember(a), 'new key accepted');
  t.notOk(cache.checkAndRemember(a), 'same key at once: refused');
  t.notOk(cache.checkAndRemember(Buffer.from(a)), 'an equal copy: refused');
  now += 999;
  t.notOk(cache.checkAndRemember(a), 'just inside one window: refused');
  t.ok(cache.checkAndRemember(b), 'another key accepted');
  now += 1;
  t.notOk(cache.checkAndRemember(a), 'after the first rotation the key is still remembered');
  t.notOk(cache.checkAndRemember(b), 'and so is the other');
  now += 999;
  t.notOk(cache.checkAndRemember(b), 'b, seen 1999 ms ago, is still inside its two windows');
  now += 1001;
  t.ok(cache.checkAndRemember(a), 'after two whole windows the key is forgotten');
  t.ok(cache.checkAndRemember(b));
  t.notOk(cache.checkAndRemember(a), 'and remembered again');

  let later = 0;
  const quiet = new ReplayCache({ now: () => later, windowMs: 1000 });
  t.ok(quiet.checkAndRemember(a));
  later = 2000;
  t.ok(quiet.checkAndRemember(a), 'exactly two windows later with no traffic in between: forgotten');
  later = 2500;
  t.notOk(quiet.checkAndRemember(a));
  t.equal(quiet.size, 1);
});

t.test('ReplayCache rotates a full generation early and never holds more than two generations', async (t) => {
  const now = 0;
  const cache = new ReplayCache({ now: () => now, windowMs: 1_000_000, maxKeys: 3 });
  const key = (index: number): Buffer => Buffer.alloc(32, index);
  for (const index of [1, 2, 3]) t.ok(cache.checkAndRemember(key(index)));
  t.equal(cache.size, 3);
  t.ok(cache.checkAndRemember(key(4)), 'a fourth key rotates the full generation');
  t.notOk(cache.checkAndRemember(key(1)), 'the rotated generation is still checked');
  t.ok(cache.checkAndRemember(key(5)));
  t.ok(cache.checkAndRemember(key(6)));
  t.ok(cache.checkAndRemember(key(7)), 'a second rotation');
  t.ok(cache.checkAndRemember(key(1)), 'key 1 is forgotten after two rotations, long before the window ends');
  t.notOk(cache.checkAndRemember(key(5)), 'key 5 is in the previous generation');

  const flood = new ReplayCache({ now: () => now, maxKeys: 100 });
  let maxSize = 0;
  for (let index = 0; index < 5000; index += 1) {
    const unique = Buffer.alloc(32);
    unique.writeUInt32BE(index, 0);
    flood.checkAndRemember(unique);
    maxSize = Math.max(maxSize, flood.size);
  }
  t.ok(maxSize <= 200, `a flood of 5000 keys holds at most ${maxSize} (two generations of 100)`);
});

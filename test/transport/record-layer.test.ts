// The pure halves of a connection, without sockets (SPEC.md §2.5, §2.7): RecordWriter seals and fragments, on a
// rekey schedule driven by a fake clock; RecordReader decrypts, reassembles and refuses what it must; RawMessages
// is one transport message per message.
import t from 'tap';
import { HandshakeState, NNPSK0_PROTOCOL_NAME, TAG_BYTES, type TransportState } from '../../lib/noise/index.js';
import { FrameDecoder } from '../../lib/transport/framing.js';
import { lend } from '../../lib/transport/lent-bytes.js';
import { DEFAULT_LIMITS, FRAME_HEADER_BYTES, MAX_RECORD_BODY_BYTES, RECORDS_PER_WRITE } from '../../lib/transport/limits.js';
import { RawMessages } from '../../lib/transport/raw-messages.js';
import { RecordReader, type ReadEvent } from '../../lib/transport/record-reader.js';
import { RecordWriter, type SealedSink } from '../../lib/transport/record-writer.js';
import { RECORD_TYPES, type RecordType } from '../../lib/transport/records.js';

const PSK = Buffer.alloc(32, 7);

/** Two ends of a finished NNpsk0 handshake: `sender` seals what `receiver` opens. */
function transportPair(): { sender: TransportState; receiver: TransportState } {
  const initiator = new HandshakeState({ protocolName: NNPSK0_PROTOCOL_NAME, initiator: true, psks: [PSK] });
  const responder = new HandshakeState({ protocolName: NNPSK0_PROTOCOL_NAME, initiator: false, psks: [PSK] });
  responder.readMessage(initiator.writeMessage());
  initiator.readMessage(responder.writeMessage());
  return { sender: initiator.finish(), receiver: responder.finish() };
}

/** A sink that keeps what it is given, as the frames in it, and gives pooled buffers back at once. */
class CollectingSink implements SealedSink {
  readonly writes: Buffer[] = [];
  writeSealed(bytes: Buffer, release: (() => void) | null): void {
    this.writes.push(Buffer.from(bytes));
    release?.();
  }

  /** Every frame written since the last call, in order. */
  takeFrames(): Buffer[] {
    const decoder = new FrameDecoder();
    return this.writes.splice(0).flatMap((bytes) => decoder.push(bytes));
  }
}

interface Fixture {
  writer: RecordWriter;
  reader: RecordReader;
  sink: CollectingSink;
  clock: { nowMs: number };
  sender: TransportState;
  /** The reader's transport, for tests that open frames by hand instead (then the reader is not used). */
  receiver: TransportState;
}

function fixture(limits: Partial<typeof DEFAULT_LIMITS> = {}, onFirstDecrypt?: () => void): Fixture {
  const { sender, receiver } = transportPair();
  const sink = new CollectingSink();
  const clock = { nowMs: 1_000_000 };
  const resolved = { ...DEFAULT_LIMITS, ...limits };
  const writer = new RecordWriter(sender, sink, { limits: resolved, now: () => clock.nowMs });
  const reader = new RecordReader(receiver, { limits: resolved, ...(onFirstDecrypt ? { onFirstDecrypt } : {}) });
  return { writer, reader, sink, clock, sender, receiver };
}

/** Writes all of `message`, returning the offset after each write() call. */
function writeAll(writer: RecordWriter, message: Uint8Array): number[] {
  const offsets: number[] = [];
  let offset = 0;
  do {
    offset = writer.write(message, offset);
    offsets.push(offset);
  } while (offset < message.byteLength);
  return offsets;
}

function readAll(reader: RecordReader, frames: Buffer[]): (Buffer | ReadEvent)[] {
  return frames.map((frame) => reader.read(lend(frame)));
}

/** Seals `plaintext` as one frame body with `sender`, bypassing the writer (for records it would never write). */
function sealRaw(sender: TransportState, plaintext: Uint8Array): Buffer {
  const body = Buffer.alloc(plaintext.byteLength + TAG_BYTES);
  body.set(plaintext);
  sender.encryptInPlace(body, plaintext.byteLength);
  return body;
}

function pattern(bytes: number): Buffer {
  const message = Buffer.allocUnsafe(bytes);
  for (let index = 0; index < bytes; index++) message[index] = (index * 31 + 7) & 0xff;
  return message;
}

const M = MAX_RECORD_BODY_BYTES;

t.test('fragment boundaries: each size takes the records and write() calls it should, and reads back whole', async (t) => {
  const { writer, reader, sink } = fixture();
  // Up and down again: the reader's guess from the last long message is too small, right, then too large.
  const sizes = [0, 1, M - 1, M, M + 1, 2 * M, RECORDS_PER_WRITE * M, RECORDS_PER_WRITE * M + 1, 3 * M + 5, M + 1, 0];
  for (const size of sizes) {
    const message = pattern(size);
    const offsets = writeAll(writer, message);
    const records = Math.max(1, Math.ceil(size / M));
    t.equal(offsets.length, Math.ceil(records / RECORDS_PER_WRITE), `${size} bytes: ${offsets.length} write() call(s)`);
    t.equal(sink.writes.length, offsets.length, `${size} bytes: one buffer to the sink per call`);
    const frames = sink.takeFrames();
    t.equal(frames.length, records, `${size} bytes: ${records} record(s)`);
    t.ok(frames.slice(0, -1).every((frame) => frame.byteLength === M + 1 + TAG_BYTES), `${size} bytes: every record but the last is full`);
    const results = readAll(reader, frames);
    t.ok(results.slice(0, -1).every((result) => result === 'fragment'), `${size} bytes: the fragments are only fragments`);
    const last = results.at(-1);
    t.ok(Buffer.isBuffer(last) && last.equals(message), `${size} bytes: the FINAL record completes the same message`);
    t.equal(reader.isMidMessage, false);
  }
});

t.test('rekey by count: REKEY after rekeyAfterMessages transport messages, and no batch crosses that point', async (t) => {
  const { writer, reader, sink } = fixture({ rekeyAfterMessages: 3 });
  const message = pattern(4 * M);
  t.same(writeAll(writer, message), [3 * M, 4 * M], 'the first batch stops at the third record');
  const frames = sink.takeFrames();
  t.equal(frames.length, 5, 'three fragments, REKEY, FINAL');
  const results = readAll(reader, frames);
  t.same(results.slice(0, 4), ['fragment', 'fragment', 'fragment', 'control'], 'the fourth frame is REKEY');
  t.ok((results[4] as Buffer).equals(message), 'the record after REKEY opens under the new key');
  // REKEY counts as a message under the new key's predecessor only; the FINAL is the first under the new key.
  writer.write(pattern(1), 0);
  writer.write(pattern(1), 0);
  t.equal(sink.takeFrames().length, 2, 'two more messages fit under the new key');
  writer.write(pattern(1), 0);
  const afterThree = sink.takeFrames();
  t.equal(afterThree.length, 2, 'the fourth under one key is preceded by REKEY');
});

t.test('REKEY does change the key: a receiver that opens it without rekeying cannot read on', async (t) => {
  const { writer, sink, receiver } = fixture({ rekeyAfterMessages: 1 });
  writer.write(pattern(10), 0);
  writer.write(pattern(10), 0);
  const frames = sink.takeFrames();
  t.equal(frames.length, 3, 'message, REKEY, message');
  const opened = frames.slice(0, 2).map((frame) => receiver.decryptInto(frame, Buffer.alloc(frame.byteLength - TAG_BYTES)));
  t.same(opened.map((plaintext) => plaintext[0]), [RECORD_TYPES.FINAL, RECORD_TYPES.REKEY], 'the first two open under the first key');
  t.throws(() => receiver.decryptInto(frames[2]!, Buffer.alloc(frames[2]!.byteLength - TAG_BYTES)), { code: 'DECRYPT_FAILED' }, 'the third does not');
});

t.test('rekey by time: REKEY once rekeyAfterMs have passed on the clock given, before the next message or END', async (t) => {
  const { writer, reader, sink, clock } = fixture({ rekeyAfterMs: 1000 });
  const types = (): (Buffer | ReadEvent)[] => readAll(reader, sink.takeFrames());
  writer.write(pattern(5), 0);
  t.equal(types().length, 1, 'at once: no REKEY');
  clock.nowMs += 999;
  writer.write(pattern(5), 0);
  t.equal(types().length, 1, 'after 999 ms: no REKEY');
  clock.nowMs += 1;
  writer.write(pattern(5), 0);
  const due = types();
  t.equal(due[0], 'control', 'after 1000 ms: REKEY first');
  t.ok(Buffer.isBuffer(due[1]), 'then the message, under the new key');
  clock.nowMs += 500;
  writer.write(pattern(5), 0);
  t.equal(types().length, 1, 'the clock restarted at the REKEY');
  clock.nowMs += 500;
  writer.end();
  t.same(types(), ['control', 'end'], 'END after a due REKEY');
});

t.test('END: the reader reports it once, and refuses anything after it or in the middle of a message', async (t) => {
  const ended = fixture();
  ended.writer.write(pattern(3), 0);
  ended.writer.end();
  ended.writer.write(pattern(3), 0);
  const [message, end, after] = ended.sink.takeFrames();
  t.ok(Buffer.isBuffer(ended.reader.read(lend(message!))));
  t.equal(ended.reader.read(lend(end!)), 'end');
  t.throws(() => ended.reader.read(lend(after!)), { code: 'FRAME_INVALID', message: /after the END/ }, 'a record after END: FRAME_INVALID');

  const cut = fixture();
  const long = pattern((RECORDS_PER_WRITE + 1) * M);
  t.equal(cut.writer.write(long, 0), RECORDS_PER_WRITE * M, 'one batch of the message');
  cut.writer.end();
  const frames = cut.sink.takeFrames();
  const results = readAll(cut.reader, frames.slice(0, -1));
  t.ok(results.every((result) => result === 'fragment') && cut.reader.isMidMessage);
  t.throws(() => cut.reader.read(lend(frames.at(-1)!)), { code: 'CONNECTION_TRUNCATED', message: /middle of a message/ }, 'END mid-message');
});

t.test('the FIN before END is CONNECTION_TRUNCATED, saying whether a message was cut', async (t) => {
  const { writer, reader, sink } = fixture();
  t.match(reader.peerFinished(), { code: 'CONNECTION_TRUNCATED', message: /before its END record$/ });
  writer.write(pattern(2 * M), 0);
  reader.read(lend(sink.takeFrames()[0]!));
  t.match(reader.peerFinished(), { code: 'CONNECTION_TRUNCATED', message: /before its END record in the middle of a message/ });
  reader.discard();
  t.equal(reader.isMidMessage, false, 'discard() lets the message go');
});

t.test('maxReceiveMessageBytes: a message is refused at the record that takes it past the limit', async (t) => {
  const single = fixture({ maxReceiveMessageBytes: 100 });
  single.writer.write(pattern(100), 0);
  single.writer.write(pattern(101), 0);
  const [fits, over] = single.sink.takeFrames();
  t.ok(Buffer.isBuffer(single.reader.read(lend(fits!))), '100 bytes of 100: read');
  t.throws(() => single.reader.read(lend(over!)), { code: 'MESSAGE_TOO_LARGE' }, '101 bytes in one record: MESSAGE_TOO_LARGE');

  const long = fixture({ maxReceiveMessageBytes: M + 10 });
  writeAll(long.writer, pattern(3 * M));
  const frames = long.sink.takeFrames();
  t.equal(long.reader.read(lend(frames[0]!)), 'fragment', 'the first record is within the limit');
  t.throws(() => long.reader.read(lend(frames[1]!)), { code: 'MESSAGE_TOO_LARGE' }, 'the second record passes it: refused before the third arrives');

  const first = fixture({ maxReceiveMessageBytes: M - 1 });
  writeAll(first.writer, pattern(2 * M));
  t.throws(() => first.reader.read(lend(first.sink.takeFrames()[0]!)), { code: 'MESSAGE_TOO_LARGE' }, 'a first fragment over the limit');
});

t.test('malformed records: the right NoiseCfgError for each', async (t) => {
  const cases: [string, (sender: TransportState) => Buffer, string, RegExp][] = [
    ['shorter than the tag', () => Buffer.alloc(TAG_BYTES - 1), 'DECRYPT_FAILED', /shorter than the 16-byte tag/],
    ['a flipped bit', (sender) => {
      const frame = sealRaw(sender, Buffer.from([RECORD_TYPES.FINAL, 1, 2, 3]));
      frame[1]! ^= 0x10;
      return frame;
    }, 'DECRYPT_FAILED', /./],
    ['an empty record', (sender) => sealRaw(sender, Buffer.alloc(0)), 'FRAME_INVALID', /empty record/],
    ['an unknown type', (sender) => sealRaw(sender, Buffer.from([0x09])), 'FRAME_INVALID', /unknown record type 9/],
    ['READY after the handshake', (sender) => sealRaw(sender, Buffer.from([RECORD_TYPES.READY])), 'FRAME_INVALID', /READY after the handshake/],
    ...(['END', 'REKEY', 'READY'] as RecordType[]).map((type): [string, (sender: TransportState) => Buffer, string, RegExp] => [
      `${type} with a body`, (sender) => sealRaw(sender, Buffer.from([RECORD_TYPES[type], 0])), 'FRAME_INVALID', /must be empty/,
    ]),
  ];
  for (const [name, make, code, message] of cases) {
    const { reader, sender } = fixture();
    t.throws(() => reader.read(lend(make(sender))), { code, message }, `${name}: ${code}`);
  }
  // The same, in the middle of a message: a bad record there is refused too, and the body so far is not hurt.
  const { reader, sender } = fixture();
  t.equal(reader.read(lend(sealRaw(sender, Buffer.from([RECORD_TYPES.FRAGMENT, 1, 2])))), 'fragment');
  t.throws(() => reader.read(lend(sealRaw(sender, Buffer.from([0x09])))), { code: 'FRAME_INVALID' }, 'an unknown type mid-message');
});

t.test('onFirstDecrypt is told once, after the first frame that decrypts, not for one that does not', async (t) => {
  let calls = 0;
  const { writer, reader, sink } = fixture({}, () => {
    calls += 1;
  });
  t.throws(() => reader.read(lend(Buffer.alloc(40))), { code: 'DECRYPT_FAILED' });
  t.equal(calls, 0, 'not for garbage');
  writer.write(pattern(3), 0);
  writer.write(pattern(3), 0);
  readAll(reader, sink.takeFrames());
  t.equal(calls, 1, 'once for two good frames');
});

t.test('raw mode: one transport message per message, no END, and a FIN is clean only between frames', async (t) => {
  const { sender, receiver } = transportPair();
  const sink = new CollectingSink();
  const writing = new RawMessages(sender, sink);
  const reading = new RawMessages(receiver, new CollectingSink());
  t.equal(writing.maxMessageBytes, 65519, 'a transport message\'s plaintext at most');
  for (const size of [0, 1, 1000, 65519]) {
    const message = pattern(size);
    t.equal(writing.write(message), size, `${size} bytes in one write`);
    const frames = sink.takeFrames();
    t.equal(frames.length, 1, `${size} bytes: one frame`);
    t.equal(frames[0]!.byteLength, size + TAG_BYTES, 'no record type byte');
    t.ok(reading.read(lend(frames[0]!)).equals(message), `${size} bytes read back`);
  }
  writing.end();
  t.equal(sink.writes.length, 0, 'end() writes nothing');
  t.equal(reading.peerFinished(true), null, 'a FIN between frames is the end');
  t.match(reading.peerFinished(false), { code: 'CONNECTION_TRUNCATED', message: /middle of a frame/ });
  t.throws(() => reading.read(lend(Buffer.alloc(TAG_BYTES - 1))), { code: 'DECRYPT_FAILED' });
  t.throws(() => reading.read(lend(Buffer.alloc(FRAME_HEADER_BYTES + TAG_BYTES))), { code: 'DECRYPT_FAILED' }, 'a frame that does not open');
});

/**
 * The 2-byte framing of SPEC.md §2.1, pure: encodeFrame and the incremental FrameDecoder give the same frames
 * under any chunking of the stream, bound what they buffer, and fail for good on an oversize length.
 */
import t, { type Test } from 'tap';
import { encodeFrame, FrameDecoder, FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from '../../lib/transport/framing.js';
import { copyLent } from '../../lib/transport/lent-bytes.js';
import { patternedMessage, prng, randomInt } from './helpers.js';

/** Frame bodies of assorted sizes, including empty ones and both bounds. */
function sampleBodies(seed: number, count: number, maxBytes: number): Buffer[] {
  const rand = prng(seed);
  const bodies: Buffer[] = [Buffer.alloc(0), patternedMessage(1, seed), patternedMessage(maxBytes, seed + 1), Buffer.alloc(0)];
  for (let index = 0; bodies.length < count; index += 1) {
    const roll = rand();
    const length = roll < 0.15 ? 0 : roll < 0.6 ? randomInt(rand, 1, 64) : randomInt(rand, 65, maxBytes);
    bodies.push(patternedMessage(length, seed + index));
  }
  return bodies;
}

/** Feeds `stream` in the given chunk lengths and returns every frame, checking the buffer bound after each push. */
function decodeInChunks(t: Test, stream: Buffer, chunkLengths: Iterable<number>, maxFrameBytes = MAX_FRAME_BYTES): Buffer[] {
  const decoder = new FrameDecoder(maxFrameBytes);
  const frames: Buffer[] = [];
  let offset = 0;
  let maxBuffered = 0;
  for (const length of chunkLengths) {
    // A copy per chunk, as a socket gives: the decoder must not depend on the caller keeping the bytes.
    for (const frame of decoder.push(Buffer.from(stream.subarray(offset, offset + length)))) frames.push(Buffer.from(frame));
    maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    offset += length;
  }
  t.equal(offset, stream.byteLength, 'the chunks cover the whole stream');
  t.ok(maxBuffered <= maxFrameBytes + FRAME_HEADER_BYTES, `buffered at most ${maxBuffered} bytes (bound ${maxFrameBytes + FRAME_HEADER_BYTES})`);
  t.ok(decoder.isAtFrameBoundary, 'the decoder ends at a frame boundary');
  t.equal(decoder.bufferedBytes, 0, 'nothing is left buffered');
  return frames;
}

function* randomSplits(seed: number, total: number, maxChunk: number): Generator<number> {
  const rand = prng(seed);
  let left = total;
  while (left > 0) {
    const length = Math.min(left, randomInt(rand, 1, maxChunk));
    left -= length;
    yield length;
  }
}

function sameFrames(t: Test, actual: Buffer[], expected: Buffer[], what: string): void {
  t.equal(actual.length, expected.length, `${what}: ${expected.length} frames`);
  const firstDifference = expected.findIndex((body, index) => !actual[index]?.equals(body));
  t.equal(firstDifference, -1, `${what}: every frame byte-equal${firstDifference >= 0 ? ` (first difference at frame ${firstDifference})` : ''}`);
}

t.test('encodeFrame writes a 2-byte big-endian length, then the body', async (t) => {
  t.same([...encodeFrame(Buffer.alloc(0))], [0, 0], 'empty body: just 00 00');
  t.same([...encodeFrame(Buffer.from([0xab]))], [0, 1, 0xab]);
  const body = patternedMessage(0x1234, 1);
  const frame = encodeFrame(body);
  t.equal(frame.byteLength, 2 + 0x1234);
  t.same([frame[0], frame[1]], [0x12, 0x34], 'big-endian length');
  t.ok(frame.subarray(2).equals(body), 'body follows unchanged');
  const largest = encodeFrame(Buffer.alloc(MAX_FRAME_BYTES, 7));
  t.same([largest[0], largest[1]], [0xff, 0xff], '65535 is the largest length');
  t.throws(() => encodeFrame(Buffer.alloc(65536)), { code: 'MESSAGE_TOO_LONG' }, '65536 bytes cannot be framed');
  t.throws(() => encodeFrame(Buffer.alloc(200_000)), { code: 'MESSAGE_TOO_LONG' });
});

t.test('a round trip gives back every frame, whatever the chunking', async (t) => {
  const bodies = sampleBodies(1, 120, 3000);
  const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));

  sameFrames(t, decodeInChunks(t, stream, [stream.byteLength]), bodies, 'all frames in one chunk');
  sameFrames(t, decodeInChunks(t, stream, Array.from({ length: stream.byteLength }, () => 1)), bodies, 'one byte per chunk');
  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
    for (const maxChunk of [3, 50, 700, 9000]) {
      sameFrames(t, decodeInChunks(t, stream, randomSplits(seed * 1000 + maxChunk, stream.byteLength, maxChunk)), bodies, `random split (seed ${seed}, chunks up to ${maxChunk})`);
    }
  }
  // Every split of a small stream into two chunks: the cut lands in each header byte and each body in turn.
  const small = sampleBodies(2, 6, 20);
  const smallStream = Buffer.concat(small.map((body) => encodeFrame(body)));
  let failures = 0;
  for (let cut = 0; cut <= smallStream.byteLength; cut += 1) {
    const decoder = new FrameDecoder();
    const frames = [...decoder.push(smallStream.subarray(0, cut)), ...decoder.push(smallStream.subarray(cut))].map((frame) => Buffer.from(frame));
    if (frames.length !== small.length || frames.some((frame, index) => !frame.equals(small[index]!))) failures += 1;
  }
  t.equal(failures, 0, `all ${smallStream.byteLength + 1} two-chunk cuts give the same frames`);
});

/** Feeds `stream` through pushEach in the given chunk lengths; each body is copied during its call, as it must be. */
function decodeEachInChunks(stream: Buffer, chunkLengths: Iterable<number>): Buffer[] {
  const decoder = new FrameDecoder();
  const frames: Buffer[] = [];
  let offset = 0;
  // One reused chunk buffer, as the channel's shared read buffer is: a body kept past its call would change.
  const reused = Buffer.alloc(Math.max(1, stream.byteLength));
  for (const length of chunkLengths) {
    stream.copy(reused, 0, offset, offset + length);
    decoder.pushEach(reused.subarray(0, length), (body) => frames.push(copyLent(body)));
    reused.fill(0xee, 0, length);
    offset += length;
  }
  return frames;
}

t.test('pushEach hands out the same frames as push, whatever the chunking, from a reused chunk buffer', async (t) => {
  const bodies = [...sampleBodies(7, 80, 3000), patternedMessage(MAX_FRAME_BYTES, 8), Buffer.alloc(0), patternedMessage(MAX_FRAME_BYTES, 9)];
  const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));
  sameFrames(t, decodeEachInChunks(stream, [stream.byteLength]), bodies, 'pushEach, one chunk');
  sameFrames(t, decodeEachInChunks(stream, Array.from({ length: 5000 }, () => 1).concat([stream.byteLength - 5000])), bodies, 'pushEach, bytes one at a time, then the rest');
  for (const seed of [31, 32, 33]) {
    for (const maxChunk of [2, 333, 65_536, 200_000]) {
      sameFrames(t, decodeEachInChunks(stream, randomSplits(seed * 7 + maxChunk, stream.byteLength, maxChunk)), bodies, `pushEach, random split (seed ${seed}, chunks up to ${maxChunk})`);
    }
  }
  const decoder = new FrameDecoder(100);
  t.throws(() => decoder.pushEach(encodeFrame(Buffer.alloc(101)), () => undefined), { code: 'FRAME_INVALID' }, 'pushEach checks the bound too');
  t.throws(() => decoder.pushEach(encodeFrame(Buffer.alloc(1)), () => undefined), { code: 'FRAME_INVALID' }, 'and stays failed');
});

t.test('pushKept: the frames are the caller\'s to keep, even when the chunk they came in is reused', async (t) => {
  const bodies = [...sampleBodies(11, 30, 2000), patternedMessage(MAX_FRAME_BYTES, 12)];
  const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));
  for (const maxChunk of [1, 97, 5000, stream.byteLength]) {
    const decoder = new FrameDecoder();
    const kept: Buffer[] = [];
    const reused = Buffer.alloc(maxChunk);
    let sharing = 0;
    for (let offset = 0; offset < stream.byteLength; offset += maxChunk) {
      const length = stream.copy(reused, 0, offset, offset + maxChunk);
      for (const frame of decoder.pushKept(reused.subarray(0, length))) {
        if (frame.byteLength > 0 && frame.buffer === reused.buffer) sharing += 1;
        kept.push(frame);
      }
      reused.fill(0xee);
    }
    t.equal(sharing, 0, `chunks up to ${maxChunk}: no frame views the chunk`);
    sameFrames(t, kept, bodies, `chunks up to ${maxChunk}: the same frames after the chunk was overwritten`);
  }
});

t.test('frames of the largest size survive any chunking', async (t) => {
  const bodies = [patternedMessage(MAX_FRAME_BYTES, 3), Buffer.alloc(0), patternedMessage(MAX_FRAME_BYTES, 4), patternedMessage(1, 5)];
  const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));
  sameFrames(t, decodeInChunks(t, stream, [stream.byteLength]), bodies, 'one chunk');
  sameFrames(t, decodeInChunks(t, stream, randomSplits(21, stream.byteLength, 40_000)), bodies, 'random chunks');
  sameFrames(t, decodeInChunks(t, stream, [1, 1, 65_534, 1, 2, 1, 1, 65_535, 1, 2]), bodies, 'cuts around each header');
});

t.test('zero-length frames decode as empty bodies in any position', async (t) => {
  const stream = Buffer.concat([encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('a')), encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.alloc(0))]);
  for (const chunks of [[stream.byteLength], [1, 1, 1, 1, 1, 1, 1, 1, 1], [2, 3, 4], [3, 6]]) {
    const frames = decodeInChunks(t, stream, chunks);
    t.same(frames.map((frame) => frame.toString()), ['', 'a', '', ''], `chunks ${chunks.join(',')}`);
  }
});

t.test('a length over maxFrameBytes is FRAME_INVALID, and the decoder stays failed', async (t) => {
  const decoder = new FrameDecoder(100);
  t.same(decoder.push(encodeFrame(Buffer.alloc(100, 1))).map((frame) => frame.byteLength), [100], 'a frame of exactly the bound passes');
  t.throws(() => decoder.push(encodeFrame(Buffer.alloc(101))), { code: 'FRAME_INVALID' }, 'one byte over the bound');
  t.throws(() => decoder.push(encodeFrame(Buffer.alloc(1))), { code: 'FRAME_INVALID' }, 'a good frame afterwards is refused too');
  t.throws(() => decoder.push(Buffer.alloc(0)), { code: 'FRAME_INVALID' }, 'even an empty chunk');

  // The length is judged as soon as both header bytes are in, before any body arrives.
  const split = new FrameDecoder(1024);
  t.same(split.push(Buffer.from([0x04])), [], 'first header byte alone is not judged');
  t.equal(split.bufferedBytes, 1);
  t.throws(() => split.push(Buffer.from([0x01])), { code: 'FRAME_INVALID' }, '0x0401 = 1025 over a bound of 1024');
  t.throws(() => split.push(Buffer.alloc(1025)), { code: 'FRAME_INVALID' }, 'still failed');

  // The length is judged in the fast path too (header and body in one chunk, after other frames).
  const fast = new FrameDecoder(1024);
  t.throws(() => fast.push(Buffer.concat([encodeFrame(Buffer.alloc(3)), Buffer.from([0xff, 0xff])])), { code: 'FRAME_INVALID' });
  t.throws(() => fast.push(encodeFrame(Buffer.alloc(3))), { code: 'FRAME_INVALID' }, 'and stays failed');

  const zero = new FrameDecoder(0);
  t.same(zero.push(Buffer.from([0, 0])).map((frame) => frame.byteLength), [0], 'a bound of 0 still accepts empty frames');
  t.throws(() => zero.push(Buffer.from([0, 1, 9])), { code: 'FRAME_INVALID' });
});

t.test('the bound can be changed between frames and is checked as an argument', async (t) => {
  const decoder = new FrameDecoder(10);
  t.throws(() => new FrameDecoder(10).push(encodeFrame(Buffer.alloc(11))), { code: 'FRAME_INVALID' });
  decoder.maxFrameBytes = 2000;
  t.equal(decoder.maxFrameBytes, 2000);
  t.same(decoder.push(encodeFrame(Buffer.alloc(2000))).map((frame) => frame.byteLength), [2000], 'raised bound applies to the next frame');
  t.throws(() => new FrameDecoder(MAX_FRAME_BYTES + 1), { code: 'INVALID_ARGUMENT' });
  t.throws(() => new FrameDecoder(-1), { code: 'INVALID_ARGUMENT' });
  t.throws(() => new FrameDecoder(1.5), { code: 'INVALID_ARGUMENT' });
  t.throws(() => {
    decoder.maxFrameBytes = 70_000;
  }, { code: 'INVALID_ARGUMENT' });
});

t.test('bufferedBytes never exceeds maxFrameBytes + 2 while feeding', async (t) => {
  for (const maxFrameBytes of [1024, MAX_FRAME_BYTES]) {
    const rand = prng(maxFrameBytes);
    const bodies = Array.from({ length: 40 }, (_, index) => patternedMessage(index % 5 === 0 ? maxFrameBytes : randomInt(rand, 0, maxFrameBytes), index));
    const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));
    const decoder = new FrameDecoder(maxFrameBytes);
    let maxBuffered = 0;
    let count = 0;
    let offset = 0;
    for (const length of randomSplits(maxFrameBytes + 7, stream.byteLength, 5000)) {
      count += decoder.push(stream.subarray(offset, offset + length)).length;
      maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
      offset += length;
    }
    t.equal(count, bodies.length, `all ${bodies.length} frames decoded (bound ${maxFrameBytes})`);
    t.ok(maxBuffered <= maxFrameBytes + FRAME_HEADER_BYTES, `at most ${maxBuffered} bytes buffered with a bound of ${maxFrameBytes}`);
    t.ok(maxBuffered > 0, 'some frames were buffered partially (the check saw something)');
  }
});

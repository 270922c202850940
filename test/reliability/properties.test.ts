// Properties of the pure codecs and of the Noise core (SPEC.md §1.3, §2.1, §2.2, §2.5, §3, §4.5), checked with
// fast-check under one fixed seed (support.ts SEED) so that every run, and every failure, reproduces.
import t from 'tap';
import fc from 'fast-check';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../../lib/errors.js';
import { HandshakeState } from '../../lib/noise/handshake-state.js';
import { generateKeyPair, keyPairFromSecretKey } from '../../lib/noise/dh-functions.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import type { TransportState } from '../../lib/noise/transport-state.js';
import { decodeMessage, encodeMessage, MESSAGE_TYPES, type UpdateMessage } from '../../lib/task/messages.js';
import { taskDigest } from '../../lib/task/digests.js';
import { decodeToken, encodeToken, type TokenFields } from '../../lib/token/token.js';
import { encodeFrame, FrameDecoder, MAX_FRAME_BYTES } from '../../lib/transport/framing.js';
import { decodeRejection, encodePreamble, encodeRejection, MAX_PREAMBLE_BYTES, parsePreamble, type PreambleParse } from '../../lib/transport/preamble.js';
import { decodeRecord, encodeRecord, RECORD_TYPES } from '../../lib/transport/records.js';
import { checkProperty, codeOf, patterned, SEED, seededRandom, randomInt, xorByte } from './support.js';

// ---------------------------------------------------------------------------------------------------------------
// Framing (SPEC.md §2.1)

/** Cuts `stream` into chunks whose sizes cycle through `sizes` (the whole stream as one chunk when empty). */
function chunk(stream: Buffer, sizes: readonly number[]): Buffer[] {
  if (sizes.length === 0) return [stream];
  const chunks: Buffer[] = [];
  for (let offset = 0, index = 0; offset < stream.byteLength; index++) {
    const size = sizes[index % sizes.length]!;
    chunks.push(stream.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

/** The framing of §2.1 read off a whole stream at once: the frames before the first bad length, and whether there is one. */
function referenceFrames(stream: Buffer, maxFrameBytes: number): { frames: Buffer[]; isInvalid: boolean } {
  const frames: Buffer[] = [];
  let offset = 0;
  while (offset + 2 <= stream.byteLength) {
    const length = stream.readUInt16BE(offset);
    if (length > maxFrameBytes) return { frames, isInvalid: true };
    if (offset + 2 + length > stream.byteLength) break;
    frames.push(stream.subarray(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  return { frames, isInvalid: false };
}

// Mostly small frames, some around the unauthenticated bound, a few near the 65535 maximum; contents are cheap
// patterned bytes so that large frames do not cost fast-check a generated value per byte.
const frameLength = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 1100 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65_000, max: MAX_FRAME_BYTES }) },
);
const frameBody = fc.tuple(frameLength, fc.integer()).map(([length, seed]) => patterned(length, seed));
const chunkSizes = fc.oneof(
  fc.constant<number[]>([]),
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
  fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 }),
  fc.array(fc.integer({ min: 1, max: 140_000 }), { minLength: 1, maxLength: 4 }),
);

/** Feeds chunks to a decoder: the frames it gave, the code it threw (or null), and the largest bufferedBytes seen. */
function feed(decoder: FrameDecoder, chunks: readonly Buffer[]): { frames: Buffer[]; code: ErrorCode | null; maxBuffered: number } {
  const frames: Buffer[] = [];
  let maxBuffered = decoder.bufferedBytes;
  for (const piece of chunks) {
    try {
      frames.push(...decoder.push(piece));
    } catch (error) {
      if (!isNoiseCfgError(error)) throw error;
      return { frames, code: error.code, maxBuffered };
    }
    maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
  }
  return { frames, code: null, maxBuffered };
}

const sameFrames = (a: readonly Buffer[], b: readonly Buffer[]): boolean => a.length === b.length && a.every((frame, index) => frame.equals(b[index]!));

t.test('framing: any frames under any chunking decode to exactly those frames', async (t) => {
  const property = fc.property(
    fc.array(frameBody, { maxLength: 12 }).filter((frames) => frames.filter((frame) => frame.byteLength > 2000).length <= 2),
    fc.integer({ min: 0, max: MAX_FRAME_BYTES }),
    chunkSizes,
    (frames, slack, sizes) => {
      // Any bound at least as large as the largest frame; the bound may be far above it.
      const maxFrameBytes = Math.min(MAX_FRAME_BYTES, Math.max(0, ...frames.map((frame) => frame.byteLength)) + (slack % 2048));
      const stream = Buffer.concat(frames.map((frame) => encodeFrame(frame)));
      const decoder = new FrameDecoder(maxFrameBytes);
      const fed = feed(decoder, chunk(stream, sizes));
      return fed.code === null && sameFrames(fed.frames, frames) && decoder.isAtFrameBoundary && decoder.bufferedBytes === 0
        && fed.maxBuffered <= maxFrameBytes + 2;
    },
  );
  checkProperty(t, 'frames survive every chunking', property, 250);
});

// Streams built from well-formed frames, raw junk, and bare length prefixes (often oversize), in any order.
const streamPiece = (body: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> => fc.oneof(
  body.map((value) => encodeFrame(value)),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.integer({ min: 0, max: 0xffff }).map((length) => Buffer.from([length >> 8, length & 0xff])),
);
const frameBound = fc.oneof(fc.constant(1024), fc.constant(MAX_FRAME_BYTES), fc.integer({ min: 0, max: MAX_FRAME_BYTES }));

t.test('framing: any byte stream under any chunking gives frames of the stream, then FRAME_INVALID only', async (t) => {
  const property = fc.property(fc.array(streamPiece(frameBody), { maxLength: 10 }), frameBound, chunkSizes, (pieces, maxFrameBytes, sizes) => {
    const stream = Buffer.concat(pieces);
    const expected = referenceFrames(stream, maxFrameBytes);
    const decoder = new FrameDecoder(maxFrameBytes);
    const fed = feed(decoder, chunk(stream, sizes));
    if (fed.maxBuffered > maxFrameBytes + 2) return false;
    if (!expected.isInvalid) return fed.code === null && sameFrames(fed.frames, expected.frames);
    // Once failed, the decoder stays failed: the stream cannot be resynchronised. What it gave is a prefix of the
    // stream's frames: a frame that completes in the same chunk as the bad length is not returned, since push()
    // throws instead (harmless: after the handshake the bound is 65535, so a bad length cannot occur then).
    const again = codeOf(() => decoder.push(Buffer.from([0, 0])));
    return fed.code === 'FRAME_INVALID' && 'code' in again && again.code === 'FRAME_INVALID'
      && sameFrames(fed.frames, expected.frames.slice(0, fed.frames.length));
  });
  checkProperty(t, 'random streams decode like the reference, or a prefix of it then FRAME_INVALID', property, 400);

  // Pure noise at the unauthenticated bound, one byte at a time: the buffer never grows past one frame.
  const noise = fc.property(fc.uint8Array({ minLength: 1, maxLength: 4096 }), (bytes) => {
    const decoder = new FrameDecoder(1024);
    const fed = feed(decoder, chunk(Buffer.from(bytes), [1]));
    return fed.maxBuffered <= 1026 && (fed.code === null || fed.code === 'FRAME_INVALID');
  });
  checkProperty(t, 'noise one byte at a time: bufferedBytes <= 1026 and only FRAME_INVALID', noise, 300);
});

// ---------------------------------------------------------------------------------------------------------------
// Token (SPEC.md §3)

// Hostnames: fast-check's RFC 1123 domains, and our own labels in mixed case with inner hyphens.
const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?$/);
const hostname = fc.oneof(
  fc.domain().filter((name) => name.length <= 253),
  fc.array(label, { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.')).filter((name) => !/^[0-9.]+$/.test(name)),
);
const tokenFields: fc.Arbitrary<TokenFields> = fc.record({
  mode: fc.constantFrom<'xxpsk3' | 'nnpsk0'>('xxpsk3', 'nnpsk0'),
  host: fc.oneof(fc.ipV4(), fc.ipV6(), hostname),
  port: fc.integer({ min: 1, max: 65535 }),
  taskId: fc.stringMatching(/^[0-9a-hjkmnp-tv-z]{16}$/),
  expiresAtSeconds: fc.oneof(fc.constantFrom(0, 1, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
  psk: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes)),
  pin: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes)),
}).map(({ pin, ...fields }) => ({ ...fields, serverPublicKey: fields.mode === 'xxpsk3' ? pin : null }));

/** The host as a decoder must give it back: IPv6 in canonical compressed form (WHATWG URL host serialiser), others as is. */
function canonicalHost(host: string): string {
  return host.includes(':') ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
}

const TOKEN_CODES = new Set<ErrorCode>(['TOKEN_MALFORMED', 'TOKEN_VERSION_UNSUPPORTED', 'TOKEN_CHECKSUM_MISMATCH']);

t.test('token: every valid set of fields survives encode and decode', async (t) => {
  const property = fc.property(tokenFields, (fields) => {
    const token = encodeToken(fields);
    const decoded = decodeToken(`  ${token}\n`);
    return decoded.mode === fields.mode && decoded.host === canonicalHost(fields.host) && decoded.port === fields.port
      && decoded.taskId === fields.taskId && decoded.expiresAtSeconds === fields.expiresAtSeconds && decoded.psk.equals(fields.psk)
      && (fields.serverPublicKey === null ? decoded.serverPublicKey === null : decoded.serverPublicKey?.equals(fields.serverPublicKey) === true)
      && /^ncfg1[1-9A-HJ-NP-Za-km-z]+$/.test(token) && encodeToken(decoded) === token;
  });
  checkProperty(t, 'token round trip (IPv4, IPv6, hostnames, both modes)', property, 1500);

  const strings = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.stringMatching(/^ncfg[0-9][1-9A-HJ-NP-Za-km-z]{0,200}$/),
  );
  const garbage = fc.property(strings, (text) => {
    const outcome = codeOf(() => decodeToken(text));
    return 'value' in outcome || TOKEN_CODES.has(outcome.code);
  });
  checkProperty(t, 'arbitrary text decodes or fails with a TOKEN_* code only', garbage, 3000);
});

t.test('token: 100,000 single-character changes, deletions and transpositions are all rejected', async (t) => {
  const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  // Typos are mostly other base58 symbols; a few are look-alikes, digits, white space and non-ASCII.
  const OTHERS = '0OIl -_.+/=é\t';
  const tokens = fc.sample(tokenFields, { seed: SEED, numRuns: 40 }).map((fields) => encodeToken(fields));
  const random = seededRandom(SEED);
  const MUTATIONS = 100_000;
  const byCode = new Map<string, number>();
  const byKind = { change: 0, deletion: 0, transposition: 0 };
  const accepted: string[] = [];
  let tried = 0;
  let identical = 0;
  const started = performance.now();
  while (tried < MUTATIONS) {
    const token = tokens[tried % tokens.length]!;
    const position = randomInt(random, 0, token.length - 1);
    const kind = (['change', 'deletion', 'transposition'] as const)[randomInt(random, 0, 2)]!;
    let mutated: string;
    if (kind === 'change') {
      const pool = random() < 0.9 ? ALPHABET : OTHERS;
      mutated = token.slice(0, position) + pool[randomInt(random, 0, pool.length - 1)]! + token.slice(position + 1);
    } else if (kind === 'deletion') {
      mutated = token.slice(0, position) + token.slice(position + 1);
    } else {
      const at = Math.min(position, token.length - 2);
      mutated = token.slice(0, at) + token[at + 1]! + token[at]! + token.slice(at + 2);
    }
    // A change to the same symbol or a swap of two equal symbols is no mutation: draw again (bounded: it is rare).
    if (mutated === token) {
      identical++;
      if (identical > MUTATIONS) break;
      continue;
    }
    tried++;
    byKind[kind]++;
    const outcome = codeOf(() => decodeToken(mutated));
    if ('value' in outcome) accepted.push(`${kind} at ${position}`);
    else byCode.set(outcome.code, (byCode.get(outcome.code) ?? 0) + 1);
  }
  const rejected = tried - accepted.length;
  t.equal(tried, MUTATIONS, 'all mutations were tried');
  t.equal(rejected, tried, 'every mutation is rejected', { accepted: accepted.slice(0, 10) });
  t.ok([...byCode.keys()].every((code) => TOKEN_CODES.has(code as ErrorCode)), 'rejections carry TOKEN_* codes only', { byCode: Object.fromEntries(byCode) });
  t.comment(`token mutations: ${tried} tried over ${tokens.length} tokens (${JSON.stringify(byKind)}), ${rejected} rejected = ${(100 * rejected / tried).toFixed(3)}%, by code ${JSON.stringify(Object.fromEntries(byCode))}, ${identical} no-op draws skipped, ${Math.round(performance.now() - started)} ms`);
});

// ---------------------------------------------------------------------------------------------------------------
// Update messages (SPEC.md §4.5), preamble (§2.2), records (§2.5)

const digest = fc.stringMatching(/^[0-9a-f]{64}$/);
const taskPath = fc.array(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,12}$/), { minLength: 1, maxLength: 3 }).map((segments) => segments.join('/'));
const fileEntry = fc.record({ path: taskPath, mode: fc.integer({ min: 0, max: 0o777 }), size: fc.nat(), digest });
const validMessage: fc.Arbitrary<UpdateMessage> = fc.oneof(
  fc.record({ protocol: fc.nat(), software: fc.string({ maxLength: 100 }), name: fc.string({ maxLength: 128 }), clientId: fc.oneof(fc.constant(null), fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/)), have: fc.oneof(fc.constant(null), digest), intent: fc.constantFrom<'pull' | 'dry-run' | 'check'>('pull', 'dry-run', 'check') }).map((body) => ({ type: 'HELLO' as const, body })),
  fc.record({ digest, totalBytes: fc.nat(), files: fc.uniqueArray(fileEntry, { maxLength: 5, selector: (file) => file.path }), hasContent: fc.boolean() }).map((body) => ({ type: 'OFFER' as const, body })),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => ({ type: 'CHUNK' as const, body: Buffer.from(bytes) })),
  digest.map((value) => ({ type: 'UP_TO_DATE' as const, body: { digest: value } })),
  fc.record({ reason: fc.constantFrom<'expired' | 'cancelled' | 'completed' | 'full' | 'revoked' | 'unsupported-version' | 'bad-request'>('expired', 'cancelled', 'completed', 'full', 'revoked', 'unsupported-version', 'bad-request'), message: fc.string({ maxLength: 1024 }) }).map((body) => ({ type: 'REJECT' as const, body })),
  fc.record({ status: fc.constantFrom<'applied' | 'failed'>('applied', 'failed'), exitCode: fc.oneof(fc.constant(null), fc.integer({ min: -1, max: 255 })), message: fc.string({ maxLength: 1024 }), digest }).map((body) => ({ type: 'RESULT' as const, body })),
  fc.constantFrom<'applied' | 'failed'>('applied', 'failed').map((status) => ({ type: 'ACK' as const, body: { status } })),
  fc.record({ state: fc.constant<'active'>('active'), files: fc.nat(), totalBytes: fc.nat(), expiresAt: fc.date({ noInvalidDate: true }).map((date) => date.toISOString()).filter((text) => text.length <= 40) }).map((body) => ({ type: 'CHECKED' as const, body })),
);

/** Update-message bytes an attacker might send: junk, JSON of any shape, near-valid objects, mutated valid messages. */
const messageBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
  fc.tuple(fc.integer({ min: 0, max: 10 }), fc.json()).map(([type, json]) => Buffer.concat([Buffer.from([type]), Buffer.from(json)])),
  fc.tuple(
    fc.integer({ min: 1, max: 8 }),
    fc.dictionary(
      fc.constantFrom('protocol', 'software', 'name', 'clientId', 'have', 'intent', 'digest', 'totalBytes', 'files', 'hasContent', 'reason', 'message', 'status', 'exitCode', 'state', 'expiresAt', '__proto__', 'constructor'),
      fc.oneof(fc.jsonValue(), fc.array(fc.oneof(fileEntry, fc.jsonValue()), { maxLength: 3 }), digest, fc.constantFrom('pull', 'applied', 'active', 'expired', -1, 255, 256, 2 ** 53)),
      { maxKeys: 8 },
    ),
  ).map(([type, body]) => Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body))])),
  fc.tuple(validMessage, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([message, position, xor]) => {
    const bytes = encodeMessage(message);
    xorByte(bytes, position % bytes.byteLength, xor);
    return bytes;
  }),
);

const messagesEqual = (a: UpdateMessage, b: UpdateMessage): boolean => a.type === b.type
  && (a.type === 'CHUNK' ? (a.body as Buffer).equals(b.body as Buffer) : JSON.stringify(a.body) === JSON.stringify(b.body));

t.test('update messages: any bytes decode to a valid message or PROTOCOL_ERROR, never anything else', async (t) => {
  let slowestMs = 0;
  const property = fc.property(messageBytes, (bytes) => {
    const started = performance.now();
    const outcome = codeOf(() => decodeMessage(bytes));
    slowestMs = Math.max(slowestMs, performance.now() - started);
    if ('code' in outcome) return outcome.code === 'PROTOCOL_ERROR';
    // What decodes is a well-formed message: encoding it again decodes to the same thing.
    return Object.hasOwn(MESSAGE_TYPES, outcome.value.type) && messagesEqual(decodeMessage(encodeMessage(outcome.value)), outcome.value);
  });
  checkProperty(t, 'decodeMessage on arbitrary bytes', property, 4000);
  t.comment(`slowest decodeMessage call: ${slowestMs.toFixed(2)} ms`);
  t.ok(slowestMs < 250, 'no decode call takes long (no hang)');

  checkProperty(t, 'decodeMessage(encodeMessage(m)) = m for valid messages', fc.property(validMessage, (message) => messagesEqual(decodeMessage(encodeMessage(message)), message)), 1500);

  // Bodies at and over the limits, and deep nesting, end in PROTOCOL_ERROR quickly.
  const started = performance.now();
  const big = [
    Buffer.concat([Buffer.from([MESSAGE_TYPES.HELLO]), Buffer.alloc(64 * 1024 + 1, 0x20)]),
    Buffer.concat([Buffer.from([MESSAGE_TYPES.OFFER]), Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)]),
    Buffer.concat([Buffer.from([MESSAGE_TYPES.CHUNK]), Buffer.alloc(1024 * 1024 + 1)]),
    Buffer.concat([Buffer.from([MESSAGE_TYPES.RESULT]), Buffer.from('['.repeat(60_000))]),
    Buffer.concat([Buffer.from([MESSAGE_TYPES.OFFER]), Buffer.from(`{"files":${'['.repeat(1_000_000)}`)]),
    Buffer.concat([Buffer.from([MESSAGE_TYPES.OFFER]), Buffer.from(JSON.stringify({ digest: 'a'.repeat(64), totalBytes: 0, hasContent: true, files: Array.from({ length: 10_001 }, () => ({})) }))]),
  ];
  for (const bytes of big) t.throws(() => decodeMessage(bytes), { code: 'PROTOCOL_ERROR' }, `${bytes.byteLength}-byte message of type ${bytes[0]} is PROTOCOL_ERROR`);
  t.ok(performance.now() - started < 5000, `oversize and deeply nested bodies are refused in bounded time (${Math.round(performance.now() - started)} ms)`);
  const offer = { type: 'OFFER' as const, body: { digest: taskDigest([]), totalBytes: 0, files: [], hasContent: true } };
  t.ok(messagesEqual(decodeMessage(encodeMessage(offer)), offer), 'an empty offer decodes');
});

const PREAMBLE_CODES = new Set<ErrorCode>(['PREAMBLE_INVALID', 'UNSUPPORTED_VERSION', 'UNSUPPORTED_MODE']);

t.test('preamble: any bytes are incomplete, a valid preamble, or PREAMBLE_INVALID / UNSUPPORTED_VERSION / UNSUPPORTED_MODE', async (t) => {
  const taskId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
  const mode = fc.constantFrom<'xxpsk3' | 'nnpsk0'>('xxpsk3', 'nnpsk0');
  // Valid preambles, each byte possibly replaced, truncated, or followed by anything; and pure noise.
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 80 }).map((value) => Buffer.from(value)),
    fc.tuple(mode, taskId, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), fc.nat(), fc.uint8Array({ maxLength: 40 })).map(([modeName, id, position, value, isMutated, cut, tail]) => {
      const preamble = encodePreamble(modeName, id);
      if (isMutated) preamble[position % preamble.byteLength] = value;
      return Buffer.concat([preamble.subarray(0, preamble.byteLength - (cut % 3 === 0 ? cut % preamble.byteLength : 0)), tail]);
    }),
  );
  const parse = (input: Buffer): { value: PreambleParse } | { code: ErrorCode } => codeOf(() => parsePreamble(input));
  const property = fc.property(bytes, fc.uint8Array({ maxLength: 20 }), (input, more) => {
    const outcome = parse(input);
    const extended = parse(Buffer.concat([input, more]));
    if ('code' in outcome) {
      // A verdict, once reached, does not change with more bytes.
      return PREAMBLE_CODES.has(outcome.code) && 'code' in extended && extended.code === outcome.code;
    }
    if (outcome.value.status === 'incomplete') return input.byteLength < MAX_PREAMBLE_BYTES;
    const { preamble, bytes: consumed, rest } = outcome.value;
    const again = parse(Buffer.concat([consumed, more]));
    return Buffer.concat([consumed, rest]).equals(input) && consumed.equals(encodePreamble(preamble.mode, preamble.taskId))
      && 'value' in again && again.value.status === 'complete' && again.value.preamble.taskId === preamble.taskId;
  });
  checkProperty(t, 'parsePreamble on arbitrary bytes, and its verdict is stable under more bytes', property, 5000);

  const roundTrip = fc.property(mode, taskId, (modeName, id) => {
    const encoded = encodePreamble(modeName, id);
    const parsed = parsePreamble(encoded);
    // Every strict prefix is incomplete, never an error.
    const prefixesIncomplete = Array.from({ length: encoded.byteLength }, (_, length) => parsePreamble(encoded.subarray(0, length)).status).every((status) => status === 'incomplete');
    return parsed.status === 'complete' && parsed.preamble.mode === modeName && parsed.preamble.taskId === id && parsed.rest.byteLength === 0 && prefixesIncomplete;
  });
  checkProperty(t, 'encodePreamble / parsePreamble round trip, prefixes incomplete', roundTrip, 1000);

  const rejection = fc.property(fc.uint8Array({ maxLength: 12 }), (body) => {
    const code = decodeRejection(body);
    return code === null || PREAMBLE_CODES.has(code);
  });
  checkProperty(t, 'decodeRejection on arbitrary bytes: null or a preamble code', rejection, 2000);
  for (const reason of ['UNSUPPORTED_VERSION', 'UNSUPPORTED_MODE'] as const) t.equal(decodeRejection(encodeRejection(reason)), reason, `rejection frame ${reason} round trip`);
});

t.test('records: any plaintext is a record or FRAME_INVALID', async (t) => {
  const types = Object.keys(RECORD_TYPES) as (keyof typeof RECORD_TYPES)[];
  const property = fc.property(fc.uint8Array({ maxLength: 300 }), (plaintext) => {
    const outcome = codeOf(() => decodeRecord(Buffer.from(plaintext)));
    if ('code' in outcome) return outcome.code === 'FRAME_INVALID';
    const { type, body } = outcome.value;
    return types.includes(type) && encodeRecord(type, body).equals(Buffer.from(plaintext));
  });
  checkProperty(t, 'decodeRecord on arbitrary plaintext', property, 3000);
  const roundTrip = fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 300 }), (type, body) => {
    const hasBody = type === 'FRAGMENT' || type === 'FINAL';
    const outcome = codeOf(() => decodeRecord(encodeRecord(type, Buffer.from(body))));
    if (!hasBody && body.byteLength > 0) return 'code' in outcome && outcome.code === 'FRAME_INVALID';
    return 'value' in outcome && outcome.value.type === type && outcome.value.body.equals(Buffer.from(body));
  });
  checkProperty(t, 'encodeRecord / decodeRecord round trip; a body on END/REKEY/READY is FRAME_INVALID', roundTrip, 1000);
});

// ---------------------------------------------------------------------------------------------------------------
// Noise core (SPEC.md §1.3): transport in both directions with rekeys, and tampering

const SERVER_STATIC = keyPairFromSecretKey(Buffer.alloc(32, 0x21));

/** Runs a complete handshake of a product protocol; returns both transport states. */
function handshake(protocolName: string, psk: Buffer, prologue: Buffer): { initiator: TransportState; responder: TransportState } {
  const isXx = protocolName === XXPSK3_PROTOCOL_NAME;
  const initiator = new HandshakeState({
    protocolName, initiator: true, prologue, psks: [psk],
    ...(isXx ? { staticKeyPair: generateKeyPair(), expectedRemoteStaticKey: SERVER_STATIC.publicKey } : {}),
  });
  const responder = new HandshakeState({ protocolName, initiator: false, prologue, psks: [psk], ...(isXx ? { staticKeyPair: SERVER_STATIC } : {}) });
  let sender = initiator;
  let receiver = responder;
  for (let step = 0; step < 4 && !(initiator.isFinished && responder.isFinished); step++) {
    receiver.readMessage(sender.writeMessage());
    [sender, receiver] = [receiver, sender];
  }
  return { initiator: initiator.finish(), responder: responder.finish() };
}

type Step = { kind: 'send'; fromInitiator: boolean; payload: Buffer } | { kind: 'rekey'; fromInitiator: boolean };
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.boolean(), fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 4000 }), fc.constant(65519)), fc.integer()).map(([fromInitiator, length, seed]) => ({ kind: 'send' as const, fromInitiator, payload: patterned(length, seed) })) },
  { weight: 1, arbitrary: fc.boolean().map((fromInitiator) => ({ kind: 'rekey' as const, fromInitiator })) },
);
const protocol = fc.constantFrom(XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME);
const psk = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes));
const prologue = fc.uint8Array({ maxLength: 71 }).map((bytes) => Buffer.from(bytes));

t.test('noise: random traffic both ways with rekeys keeps both sides in sync, for both product protocols', async (t) => {
  const counts = { sessions: 0, messages: 0, rekeys: 0 };
  const property = fc.property(protocol, psk, prologue, fc.array(step, { minLength: 1, maxLength: 40 }), (protocolName, key, prologueBytes, steps) => {
    const { initiator, responder } = handshake(protocolName, key, prologueBytes);
    if (!initiator.handshakeHash.equals(responder.handshakeHash)) return false;
    counts.sessions++;
    for (const item of steps) {
      const [sender, receiver] = item.fromInitiator ? [initiator, responder] : [responder, initiator];
      if (item.kind === 'rekey') {
        sender.rekeySend();
        receiver.rekeyReceive();
        counts.rekeys++;
        continue;
      }
      const ciphertext = sender.encrypt(item.payload);
      if (ciphertext.byteLength !== item.payload.byteLength + 16) return false;
      if (!receiver.decrypt(ciphertext).equals(item.payload)) return false;
      counts.messages++;
    }
    return true;
  });
  checkProperty(t, 'every payload decrypts to itself after any rekeys', property, 300);
  t.comment(`noise sync: ${counts.sessions} sessions, ${counts.messages} messages, ${counts.rekeys} rekeys`);

  // A rekey on one side only is not silently tolerated: the next message fails.
  const { initiator, responder } = handshake(XXPSK3_PROTOCOL_NAME, Buffer.alloc(32, 7), Buffer.alloc(0));
  initiator.rekeySend();
  t.throws(() => responder.decrypt(initiator.encrypt(Buffer.from('after a one-sided rekey'))), { code: 'DECRYPT_FAILED' }, 'one-sided rekey is DECRYPT_FAILED');
});

t.test('noise: any single bit flip in any transport ciphertext is DECRYPT_FAILED and the state stays usable', async (t) => {
  let flips = 0;
  const property = fc.property(protocol, psk, fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 }), fc.nat(), fc.boolean()), { minLength: 1, maxLength: 12 }), (protocolName, key, messages) => {
    const { initiator, responder } = handshake(protocolName, key, Buffer.from('prologue'));
    for (const [fromInitiator, length, bitSeed, rekeyFirst] of messages) {
      const [sender, receiver] = fromInitiator ? [initiator, responder] : [responder, initiator];
      if (rekeyFirst) {
        sender.rekeySend();
        receiver.rekeyReceive();
      }
      const payload = patterned(length, bitSeed);
      const ciphertext = sender.encrypt(payload);
      const bit = bitSeed % (ciphertext.byteLength * 8);
      const tampered = Buffer.from(ciphertext);
      xorByte(tampered, bit >> 3, 1 << (bit & 7));
      // Both entry points: decrypt() into a new buffer, and decryptInPlace() as the channel uses it.
      const isInPlace = (bitSeed & 1) === 1;
      const outcome = codeOf(() => (isInPlace ? receiver.decryptInPlace(tampered) : receiver.decrypt(tampered)));
      flips++;
      if (!('code' in outcome) || outcome.code !== 'DECRYPT_FAILED') return false;
      // The nonce did not move: the genuine message still decrypts.
      const genuine = isInPlace ? receiver.decryptInPlace(Buffer.from(ciphertext)) : receiver.decrypt(ciphertext);
      if (!genuine.equals(payload)) return false;
    }
    return true;
  });
  checkProperty(t, 'a random bit flip in each message is detected (decrypt and decryptInPlace), then the genuine message decrypts', property, 200);

  // Exhaustively, for one short message in each direction of each protocol: every one of its bits.
  for (const protocolName of [XXPSK3_PROTOCOL_NAME, NNPSK0_PROTOCOL_NAME]) {
    const { initiator, responder } = handshake(protocolName, Buffer.alloc(32, 9), Buffer.alloc(0));
    for (const [sender, receiver, direction] of [[initiator, responder, 'initiator to responder'], [responder, initiator, 'responder to initiator']] as const) {
      const payload = Buffer.from('config v2: 24 bytes long');
      const ciphertext = sender.encrypt(payload);
      let detected = 0;
      let other: unknown = null;
      for (let bit = 0; bit < ciphertext.byteLength * 8; bit++) {
        const tampered = Buffer.from(ciphertext);
        xorByte(tampered, bit >> 3, 1 << (bit & 7));
        try {
          receiver.decrypt(tampered);
        } catch (error) {
          if (error instanceof NoiseCfgError && error.code === 'DECRYPT_FAILED') detected++;
          else other = error;
        }
      }
      flips += ciphertext.byteLength * 8;
      t.equal(detected, ciphertext.byteLength * 8, `${protocolName} ${direction}: all ${ciphertext.byteLength * 8} bit flips are DECRYPT_FAILED`, { other });
      t.same(receiver.decrypt(ciphertext), payload, `${protocolName} ${direction}: the genuine message decrypts afterwards`);
    }
  }
  t.comment(`noise tampering: ${flips} bit flips checked`);
});

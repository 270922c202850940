// The pure parts of the update protocol: the message codec (SPEC.md §4.5) with malformed inputs and a seeded
// fuzz, task paths (§4.2), the task digest (§4.3), task states at the expiry instant and durations (§4.4).
import t, { type Test } from 'tap';
import { isNoiseCfgError } from '../../lib/errors.js';
import { fileDigest, taskDigest, type FileEntry } from '../../lib/task/digests.js';
import {
  decodeMessage, encodeMessage, expectMessage, MAX_CHUNK_BYTES, MAX_JSON_BYTES, MAX_OFFER_FILES, MAX_OFFER_JSON_BYTES,
  MESSAGE_TYPES, type UpdateMessage,
} from '../../lib/task/messages.js';
import { checkPathSet, checkTaskPath } from '../../lib/task/paths.js';
import type { TaskRecord } from '../../lib/task/store.js';
import { parseDurationSeconds, taskState } from '../../lib/task/task.js';
import { seededRandom } from './support.js';

const DIGEST_A = fileDigest(Buffer.from('a'));
const DIGEST_B = fileDigest(Buffer.from('b'));

function offerFile(path: string, size = 1, digest = DIGEST_A, mode = 0o644): FileEntry {
  return { path, mode, size, digest };
}

const SAMPLES: UpdateMessage[] = [
  { type: 'HELLO', body: { protocol: 1, software: 'noise-cfg/0.1.0', name: 'web-1', clientId: null, have: null, intent: 'pull' } },
  { type: 'HELLO', body: { protocol: 1, software: 'x', name: '', clientId: 'Abc_.-09', have: DIGEST_A, intent: 'dry-run' } },
  { type: 'HELLO', body: { protocol: 7, software: '', name: 'n'.repeat(128), clientId: 'c'.repeat(64), have: null, intent: 'check' } },
  { type: 'OFFER', body: { digest: DIGEST_B, totalBytes: 3, files: [offerFile('etc/app.conf'), offerFile('bin/run.sh', 2, DIGEST_B, 0o755)], hasContent: true } },
  { type: 'OFFER', body: { digest: DIGEST_B, totalBytes: 0, files: [], hasContent: false } },
  { type: 'CHUNK', body: Buffer.from([0, 1, 2, 255]) },
  { type: 'CHUNK', body: Buffer.alloc(MAX_CHUNK_BYTES, 7) },
  { type: 'UP_TO_DATE', body: { digest: DIGEST_A } },
  ...(['expired', 'cancelled', 'completed', 'full', 'revoked', 'unsupported-version', 'bad-request'] as const)
    .map((reason): UpdateMessage => ({ type: 'REJECT', body: { reason, message: `because ${reason}` } })),
  { type: 'RESULT', body: { status: 'applied', exitCode: null, message: 'applied', digest: DIGEST_A } },
  { type: 'RESULT', body: { status: 'failed', exitCode: -1, message: 'm'.repeat(1024), digest: DIGEST_A } },
  { type: 'RESULT', body: { status: 'failed', exitCode: 255, message: '', digest: DIGEST_A } },
  { type: 'ACK', body: { status: 'applied' } },
  { type: 'ACK', body: { status: 'failed' } },
  { type: 'CHECKED', body: { state: 'active', files: 3, totalBytes: 12345, expiresAt: '2030-01-01T00:00:00.000Z' } },
];

function assertProtocolError(t: Test, bytes: Buffer, what: string): void {
  t.throws(() => decodeMessage(bytes), { code: 'PROTOCOL_ERROR' }, what);
}

function typed(type: keyof typeof MESSAGE_TYPES, body: unknown): Buffer {
  return Buffer.concat([Buffer.of(MESSAGE_TYPES[type]), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8')]);
}

t.test('every message type round trips', async (t) => {
  const seen = new Set<string>();
  for (const message of SAMPLES) {
    const bytes = encodeMessage(message);
    t.equal(bytes[0], MESSAGE_TYPES[message.type], `${message.type}: type byte`);
    const decoded = decodeMessage(bytes);
    t.same(decoded, message, `${message.type}: decodes to what was encoded`);
    t.ok(encodeMessage(decoded).equals(bytes), `${message.type}: encodes again to the same bytes`);
    seen.add(message.type);
  }
  t.same([...seen].sort(), Object.keys(MESSAGE_TYPES).sort(), 'all eight types are covered');
});

t.test('unknown fields are ignored', async (t) => {
  const decoded = decodeMessage(typed('ACK', { status: 'applied', future: [1, 2, 3] }));
  t.same(decoded, { type: 'ACK', body: { status: 'applied' } });
});

t.test('expectMessage accepts only the listed types and a null (END) is a protocol error', async (t) => {
  t.equal(expectMessage(encodeMessage({ type: 'ACK', body: { status: 'applied' } }), ['ACK']).type, 'ACK');
  t.throws(() => expectMessage(encodeMessage({ type: 'ACK', body: { status: 'applied' } }), ['RESULT']), { code: 'PROTOCOL_ERROR' });
  t.throws(() => expectMessage(null, ['HELLO']), { code: 'PROTOCOL_ERROR' });
});

t.test('malformed messages are PROTOCOL_ERROR', async (t) => {
  const hello = { protocol: 1, software: 's', name: 'n', clientId: null, have: null, intent: 'pull' };
  const result = { status: 'applied', exitCode: 0, message: '', digest: DIGEST_A };
  const offer = { digest: DIGEST_A, totalBytes: 1, files: [offerFile('a')], hasContent: true };
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['type 0', Buffer.of(0)],
    ['type 9', typed('ACK', { status: 'applied' }).fill(9, 0, 1)],
    ['type 255', Buffer.of(255, 0x7b, 0x7d)],
    ['type byte only (no JSON)', Buffer.of(MESSAGE_TYPES.HELLO)],
    ['bad JSON', typed('HELLO', '{"protocol": 1,')],
    ['JSON that is not an object: array', typed('ACK', '[]')],
    ['JSON that is not an object: null', typed('ACK', 'null')],
    ['JSON that is not an object: string', typed('ACK', '"applied"')],
    ['JSON that is not an object: number', typed('UP_TO_DATE', '42')],
    ['a status only on the prototype', typed('ACK', '{"__proto__": {"status": "applied"}}')],
    ['deeply nested JSON without the field', typed('ACK', `{"deep":${'['.repeat(30_000)}${']'.repeat(30_000)}}`)],
    ['protocol 1e400 (Infinity)', typed('HELLO', '{"protocol":1e400,"software":"s","name":"n","clientId":null,"have":null,"intent":"pull"}')],
    ['invalid UTF-8', Buffer.concat([Buffer.of(MESSAGE_TYPES.ACK), Buffer.from([0xff, 0xfe, 0xfd])])],
    ['missing field: HELLO.intent', typed('HELLO', { ...hello, intent: undefined })],
    ['missing field: HELLO.clientId', typed('HELLO', { ...hello, clientId: undefined })],
    ['missing field: OFFER.hasContent', typed('OFFER', { ...offer, hasContent: undefined })],
    ['missing field: RESULT.digest', typed('RESULT', { ...result, digest: undefined })],
    ['missing field: REJECT.message', typed('REJECT', { reason: 'full' })],
    ['missing field: CHECKED.expiresAt', typed('CHECKED', { state: 'active', files: 1, totalBytes: 1 })],
    ['missing field: UP_TO_DATE.digest', typed('UP_TO_DATE', {})],
    ['wrong type: protocol as string', typed('HELLO', { ...hello, protocol: '1' })],
    ['wrong type: negative protocol', typed('HELLO', { ...hello, protocol: -1 })],
    ['wrong type: fractional protocol', typed('HELLO', { ...hello, protocol: 1.5 })],
    ['wrong value: unknown intent', typed('HELLO', { ...hello, intent: 'steal' })],
    ['too long: software of 101 characters', typed('HELLO', { ...hello, software: 's'.repeat(101) })],
    ['too long: name of 129 characters', typed('HELLO', { ...hello, name: 'n'.repeat(129) })],
    ['bad clientId: 65 characters', typed('HELLO', { ...hello, clientId: 'c'.repeat(65) })],
    ['bad clientId: empty', typed('HELLO', { ...hello, clientId: '' })],
    ['bad clientId: a slash', typed('HELLO', { ...hello, clientId: 'a/b' })],
    ['bad have: uppercase hex', typed('HELLO', { ...hello, have: DIGEST_A.toUpperCase() })],
    ['bad have: 63 hex characters', typed('HELLO', { ...hello, have: DIGEST_A.slice(1) })],
    ['wrong type: hasContent as string', typed('OFFER', { ...offer, hasContent: 'true' })],
    ['wrong type: files as object', typed('OFFER', { ...offer, files: {} })],
    ['wrong type: a file that is a string', typed('OFFER', { ...offer, files: ['a'] })],
    ['wrong type: a file that is null', typed('OFFER', { ...offer, files: [null] })],
    ['wrong type: a file that is an array', typed('OFFER', { ...offer, files: [[]] })],
    ['bad file: size -1', typed('OFFER', { ...offer, files: [{ ...offerFile('a'), size: -1 }] })],
    ['bad file: size 2^53', typed('OFFER', { ...offer, files: [{ ...offerFile('a'), size: 2 ** 53 }] })],
    ['bad file: mode 0o1000', typed('OFFER', { ...offer, files: [{ ...offerFile('a'), mode: 0o1000 }] })],
    ['bad file: mode as string', typed('OFFER', { ...offer, files: [{ ...offerFile('a'), mode: '644' }] })],
    ['bad file: digest too short', typed('OFFER', { ...offer, files: [{ ...offerFile('a'), digest: 'ab' }] })],
    ['bad file: path missing', typed('OFFER', { ...offer, files: [{ mode: 0o644, size: 1, digest: DIGEST_A }] })],
    ['bad totalBytes: -1', typed('OFFER', { ...offer, totalBytes: -1 })],
    ['unknown reject reason', typed('REJECT', { reason: 'because', message: '' })],
    ['reject message of 1025 characters', typed('REJECT', { reason: 'full', message: 'm'.repeat(1025) })],
    ['result status unknown', typed('RESULT', { ...result, status: 'maybe' })],
    ['result exit code 256', typed('RESULT', { ...result, exitCode: 256 })],
    ['result exit code -2', typed('RESULT', { ...result, exitCode: -2 })],
    ['result exit code 1.5', typed('RESULT', { ...result, exitCode: 1.5 })],
    ['result exit code as string', typed('RESULT', { ...result, exitCode: '0' })],
    ['ack status unknown', typed('ACK', { status: 'ok' })],
    ['checked state expired', typed('CHECKED', { state: 'expired', files: 1, totalBytes: 1, expiresAt: 'x' })],
    ['over the limit: HELLO of 64 KiB + 1', typed('HELLO', `{"protocol":1,"pad":"${'x'.repeat(MAX_JSON_BYTES)}"}`)],
    ['over the limit: OFFER of 4 MiB + 1', Buffer.concat([Buffer.of(MESSAGE_TYPES.OFFER), Buffer.alloc(MAX_OFFER_JSON_BYTES + 1, 0x20)])],
    ['over the limit: CHUNK of 1 MiB + 1', Buffer.concat([Buffer.of(MESSAGE_TYPES.CHUNK), Buffer.alloc(MAX_CHUNK_BYTES + 1)])],
  ];
  for (const [what, bytes] of cases) assertProtocolError(t, bytes, what);

  const exactLimit = typed('ACK', `{"status":"applied","pad":"${'x'.repeat(MAX_JSON_BYTES - 29)}"}`);
  t.equal(exactLimit.byteLength - 1, MAX_JSON_BYTES, 'the body is exactly at the limit');
  t.equal(decodeMessage(exactLimit).type, 'ACK', 'a body of exactly 64 KiB is accepted');
});

t.test('an empty CHUNK is PROTOCOL_ERROR (SPEC.md §4.5: a CHUNK carries 1 byte to 1 MiB)', async (t) => {
  assertProtocolError(t, Buffer.of(MESSAGE_TYPES.CHUNK), 'a CHUNK with no bytes');
  t.equal(decodeMessage(Buffer.of(MESSAGE_TYPES.CHUNK, 0)).type, 'CHUNK', 'one byte is accepted');
});

t.test('an OFFER with an unsafe path is PROTOCOL_ERROR (the client refuses it before writing)', async (t) => {
  const unsafe = ['../escape', '/etc/passwd', 'a/../../b', 'a/./b', 'a//b', 'a/', '', '.', '..', 'a\\b', 'a\u0000b', 'a\nb',
    '.noise-cfg-state', 'p'.repeat(1025)];
  for (const path of unsafe) {
    const bytes = typed('OFFER', { digest: DIGEST_A, totalBytes: 1, files: [offerFile('fine'), offerFile(path)], hasContent: true });
    assertProtocolError(t, bytes, `path ${JSON.stringify(path.length > 40 ? `${path.slice(0, 10)}… (${path.length})` : path)}`);
  }
});

t.test('an OFFER of 10,001 files is PROTOCOL_ERROR; 10,000 is accepted', async (t) => {
  const files = Array.from({ length: MAX_OFFER_FILES + 1 }, (_, index) => offerFile(`f/${index}`));
  const over = typed('OFFER', { digest: DIGEST_A, totalBytes: files.length, files, hasContent: false });
  t.ok(over.byteLength < MAX_OFFER_JSON_BYTES, 'under the byte limit: the count alone is at fault');
  assertProtocolError(t, over, '10,001 files');
  const atLimit = typed('OFFER', { digest: DIGEST_A, totalBytes: MAX_OFFER_FILES, files: files.slice(0, MAX_OFFER_FILES), hasContent: false });
  const decoded = decodeMessage(atLimit);
  t.equal(decoded.type === 'OFFER' ? decoded.body.files.length : -1, MAX_OFFER_FILES);
});

// Bodies that look like our messages: the right keys with values of random types and sizes.
function randomValue(random: () => number, depth = 0): unknown {
  const pick = Math.floor(random() * 14);
  switch (pick) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return Math.floor(random() * 600) - 100;
    case 3: return random() * 1e6;
    case 4: return DIGEST_A;
    case 5: return 'x'.repeat(Math.floor(random() * 200));
    case 6: return ['pull', 'dry-run', 'check', 'applied', 'failed', 'active', 'full', 'revoked'][Math.floor(random() * 8)];
    case 7: return ['a', 'etc/app.conf', '../x', '/abs', 'a//b', '.noise-cfg', 'a\\b', 'é'.repeat(600)][Math.floor(random() * 8)];
    case 8: return depth > 2 ? [] : Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1));
    case 9: return depth > 2 ? {} : randomFile(random, depth + 1);
    case 10: return 2 ** 53 + Math.floor(random() * 10);
    case 11: return -1;
    case 12: return 'Abc_.-09';
    default: return '2030-01-01T00:00:00.000Z';
  }
}

function randomFile(random: () => number, depth: number): Record<string, unknown> {
  const file: Record<string, unknown> = {};
  for (const key of ['path', 'mode', 'size', 'digest']) if (random() < 0.85) file[key] = random() < 0.5 ? randomValue(random, depth) : ({ path: 'a/b', mode: 0o644, size: 1, digest: DIGEST_A } as Record<string, unknown>)[key];
  return file;
}

const KEYS = ['protocol', 'software', 'name', 'clientId', 'have', 'intent', 'digest', 'totalBytes', 'files', 'hasContent', 'reason',
  'message', 'status', 'exitCode', 'state', 'expiresAt'];

function randomBody(random: () => number): Buffer {
  const kind = random();
  if (kind < 0.25) return Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
  const object: Record<string, unknown> = {};
  for (const key of KEYS) if (random() < 0.6) object[key] = randomValue(random);
  let text = JSON.stringify(object);
  if (kind < 0.35 && text.length > 2) {
    // Cut or corrupt the JSON somewhere.
    const at = Math.floor(random() * text.length);
    text = random() < 0.5 ? text.slice(0, at) : `${text.slice(0, at)}${String.fromCharCode(Math.floor(random() * 128))}${text.slice(at + 1)}`;
  }
  return Buffer.from(text, 'utf8');
}

t.test('fuzz: 5,000 seeded random messages decode or fail with PROTOCOL_ERROR, never anything else', async (t) => {
  const random = seededRandom(20_240_611);
  let valid = 0;
  let refused = 0;
  const strays: string[] = [];
  for (let index = 0; index < 5_000; index++) {
    const typeByte = random() < 0.9 ? 1 + Math.floor(random() * 8) : Math.floor(random() * 256);
    const bytes = Buffer.concat([Buffer.of(typeByte), randomBody(random)]);
    try {
      const message = decodeMessage(bytes);
      valid++;
      // Whatever decodes must encode and decode to the same message.
      const again = decodeMessage(encodeMessage(message));
      if (JSON.stringify(again) !== JSON.stringify(message)) strays.push(`#${index}: round trip differs`);
    } catch (error) {
      if (isNoiseCfgError(error, 'PROTOCOL_ERROR')) refused++;
      else strays.push(`#${index} (type ${typeByte}): ${(error as Error).name}: ${(error as Error).message}`);
    }
  }
  t.same(strays, [], 'no other error and no unstable round trip');
  t.equal(valid + refused, 5_000);
  t.ok(valid >= 100, `${valid} decoded (the generator reaches valid messages)`);
  t.ok(refused >= 1_000, `${refused} refused`);
  t.comment(`fuzz: ${valid} valid, ${refused} PROTOCOL_ERROR`);
});

t.test('checkTaskPath refuses unsafe paths with PATH_UNSAFE', async (t) => {
  const unsafe: [string, string][] = [
    ['/etc/passwd', 'absolute'],
    ['/', 'root'],
    ['..', 'parent'],
    ['../x', 'leading ..'],
    ['a/../../b', '.. inside'],
    ['a/..', 'trailing ..'],
    ['.', 'dot'],
    ['./a', 'leading dot segment'],
    ['a/./b', 'dot segment'],
    ['', 'empty'],
    ['a//b', 'empty segment'],
    ['a/', 'trailing slash'],
    ['a\\b', 'backslash'],
    ['..\\x', 'backslash climb'],
    ['a\u0000b', 'NUL'],
    ['a\u001fb', 'control character'],
    ['a\u007fb', 'DEL'],
    ['x'.repeat(1025), '1025 bytes'],
    ['é'.repeat(513), '1026 bytes of two-byte characters'],
    ['.noise-cfg', 'reserved name'],
    ['.noise-cfg-state/x', 'reserved prefix'],
  ];
  for (const [path, what] of unsafe) t.throws(() => checkTaskPath(path), { code: 'PATH_UNSAFE' }, what);
  for (const path of ['a', 'a/b', 'etc/conf.d/a.conf', '...', '.hidden', 'a/.noise-cfg', 'x'.repeat(1024), 'é'.repeat(512), 'sp ace']) {
    t.equal(checkTaskPath(path), path, `${JSON.stringify(path.slice(0, 20))} is safe`);
  }
});

t.test('checkTaskPath refuses C1 control characters too (SPEC.md §4.2: no control character)', async (t) => {
  // U+0080 to U+009F are control characters (Unicode category Cc); U+009B is CSI, an escape for some terminals.
  for (const code of [0x80, 0x85, 0x9b, 0x9f]) {
    const path = `etc/a${String.fromCharCode(code)}b`;
    t.throws(() => checkTaskPath(path), { code: 'PATH_UNSAFE' }, `U+${code.toString(16).toUpperCase().padStart(4, '0')}`);
  }
  t.equal(checkTaskPath('etc/caf\u00e9'), 'etc/caf\u00e9', 'U+00E9 (a letter just above the C1 block) is fine');
});

t.test('a bidi override or an invisible character in a path is PATH_UNSAFE, and the message names it escaped', async (t) => {
  // "invoice\u202Efdp.exe" shows as "invoiceexe.pdf"; a zero-width space makes two names that look the same.
  const cases: [string, string][] = [
    ['\u202e', 'U+202E right-to-left override'],
    ['\u202d', 'U+202D left-to-right override'],
    ['\u2066', 'U+2066 left-to-right isolate'],
    ['\u200b', 'U+200B zero-width space'],
    ['\u200d', 'U+200D zero-width joiner'],
    ['\ufeff', 'U+FEFF byte-order mark'],
    ['\u00ad', 'U+00AD soft hyphen'],
    ['\u2028', 'U+2028 line separator'],
    ['\u2029', 'U+2029 paragraph separator'],
    ['\u{e0001}', 'U+E0001 language tag (astral)'],
    ['\u001b', 'U+001B ESC'],
  ];
  for (const [character, what] of cases) {
    const path = `etc/invoice${character}fdp.conf`;
    const escaped = `\\u{${character.codePointAt(0)!.toString(16)}}`;
    t.throws(() => checkTaskPath(path), { code: 'PATH_UNSAFE', message: new RegExp(`character ${escaped.replace(/[{}\\]/g, '\\$&')}`) }, what);
    let message = '';
    try {
      checkTaskPath(path);
    } catch (error) {
      message = (error as Error).message;
    }
    t.notOk(message.includes(character), `${what}: the message does not hold the raw character`);
    // JSON quoting already writes a C0 control as \u00XX; everything else is written as \u{hex}.
    const shown = character < ' ' ? `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}` : escaped;
    t.ok(message.includes(`invoice${shown}fdp`), `${what}: the message shows the path with it escaped`);
  }
  t.throws(() => checkPathSet(['ok', 'a\u202eb']), { code: 'PATH_UNSAFE' }, 'checkPathSet checks each path too');
  const offer = typed('OFFER', { digest: DIGEST_A, totalBytes: 2, files: [offerFile('fine'), offerFile('etc/\u202eevil')], hasContent: true });
  assertProtocolError(t, offer, 'an OFFER with U+202E in a path: the client refuses it before writing');
  t.equal(checkTaskPath('etc/caf\u00e9/\u65e5\u672c.conf'), 'etc/caf\u00e9/\u65e5\u672c.conf', 'letters of any script are fine');
});

t.test('checkPathSet refuses duplicates and a path that is also a directory', async (t) => {
  t.throws(() => checkPathSet(['a', 'a/b']), { code: 'PATH_UNSAFE' }, 'a and a/b');
  t.throws(() => checkPathSet(['x/y/z', 'x/y']), { code: 'PATH_UNSAFE' }, 'x/y/z and x/y (either order)');
  t.throws(() => checkPathSet(['a', 'b', 'a']), { code: 'PATH_UNSAFE' }, 'a duplicate');
  t.throws(() => checkPathSet(['ok', '../bad']), { code: 'PATH_UNSAFE' }, 'each path is checked too');
  t.doesNotThrow(() => checkPathSet(['a/b', 'a/c', 'ab', 'a.b/c']), 'siblings and look-alike prefixes are fine');
  t.doesNotThrow(() => checkPathSet([]));
});

t.test('taskDigest does not depend on order and changes with every field', async (t) => {
  const files = [offerFile('etc/app.conf', 10, DIGEST_A), offerFile('bin/run.sh', 20, DIGEST_B, 0o755), offerFile('z', 0, fileDigest(Buffer.alloc(0)))];
  const digest = taskDigest(files);
  t.match(digest, /^[0-9a-f]{64}$/);
  t.equal(taskDigest([...files].reverse()), digest, 'reversed');
  t.equal(taskDigest([files[1]!, files[2]!, files[0]!]), digest, 'rotated');
  const variants: [string, FileEntry[]][] = [
    ['path', [{ ...files[0]!, path: 'etc/app.conf2' }, files[1]!, files[2]!]],
    ['mode', [{ ...files[0]!, mode: 0o600 }, files[1]!, files[2]!]],
    ['size', [{ ...files[0]!, size: 11 }, files[1]!, files[2]!]],
    ['file digest', [{ ...files[0]!, digest: DIGEST_B }, files[1]!, files[2]!]],
    ['a file less', [files[0]!, files[1]!]],
    ['a file more', [...files, offerFile('new')]],
  ];
  for (const [what, changed] of variants) t.not(taskDigest(changed), digest, `changing the ${what} changes the digest`);
  // The line layout of SPEC.md §4.3, computed independently.
  const lines = [files[1]!, files[0]!, files[2]!].map((file) => `${file.path}\0${file.mode.toString(8)}\0${file.size}\0${file.digest}\n`).join('');
  t.equal(digest, fileDigest(Buffer.from(lines)), 'BLAKE2b-256 over the sorted lines');
  t.equal(taskDigest([offerFile('b'), offerFile('a'), offerFile('B')]), taskDigest([offerFile('B'), offerFile('a'), offerFile('b')]), 'byte order sort');
});

t.test('taskState: expired at exactly expiresAt by the clock passed in', async (t) => {
  const task: TaskRecord = {
    id: 'kw3dg76w18whjmr0', name: '', mode: 'xxpsk3', createdAt: 1_000_000, expiresAt: 2_000_000, maxClients: null, state: 'active',
    endedAt: null, digest: DIGEST_A, totalBytes: 1, fileCount: 1,
  };
  t.equal(taskState(task, 1_999_999), 'active', 'one millisecond before');
  t.equal(taskState(task, 2_000_000), 'expired', 'at the instant');
  t.equal(taskState(task, 2_000_001), 'expired', 'after');
  t.equal(taskState({ ...task, state: 'cancelled' }, 3_000_000), 'cancelled', 'cancelled stays cancelled after the expiry');
  t.equal(taskState({ ...task, state: 'completed' }, 1_500_000), 'completed');
});

t.test('parseDurationSeconds', async (t) => {
  t.equal(parseDurationSeconds('90s'), 90);
  t.equal(parseDurationSeconds('10m'), 600);
  t.equal(parseDurationSeconds('1h'), 3600);
  t.equal(parseDurationSeconds('2d'), 172_800);
  t.equal(parseDurationSeconds(' 1h '), 3600, 'surrounding white space is ignored');
  for (const text of ['0s', '1w', 'h', '-1m', '', '1', '1.5h', '1h30m', '1H', 's1', '+1m', '1e3s']) {
    t.equal(parseDurationSeconds(text), null, JSON.stringify(text));
  }
});

t.test('the task digest of SPEC.md §4.3\'s example: mode in octal without padding', async (t) => {
  const content = Buffer.from('x=1\n');
  const file: FileEntry = { path: 'etc/app.conf', mode: 0o644, size: 4, digest: fileDigest(content) };
  t.equal(file.digest, '68e3ec8303d7690608b747665cb3793db2f147944fd8b90b6f533f0a1490c745');
  t.equal(taskDigest([file]), '015b39a10ce315efce4e57e0be8b9a1ba65d960e56813bded263c3759d49de94');
  const line = Buffer.from('6574632f6170702e636f6e6600363434003400' + file.digest.split('').map((c) => c.charCodeAt(0).toString(16)).join('') + '0a', 'hex');
  t.equal(taskDigest([file]), fileDigest(line), 'the line spelled out byte by byte');
  t.equal(taskDigest([{ ...file, mode: 0o7 }]), '35ffd6e825e84ba3935b11812aaa68928c11cd773e0b0c60b6de0d1fb26aaf80', 'mode 0o7 is the one digit 7');
});

// The ncfg1 token: published vectors, round trips, the checksum against 100,000 typos, expiry, and inspect.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { decodeBase58, encodeBase58 } from '../../lib/token/base58.js';
import { generateTaskId, isTaskId, taskIdFromBytes, taskIdToBytes } from '../../lib/token/task-id.js';
import { checkTokenExpiry, decodeToken, describeToken, encodeToken, type TokenFields } from '../../lib/token/token.js';
import { tokenVectorsText } from '../../tools/vectors/token-vectors.js';
import { CLI_BIN, REPO_ROOT } from '../support/paths.js';
import { seededRandom } from '../support/seeded-random.js';

const VECTOR_FILE = join(REPO_ROOT, 'vectors', 'noise-cfg-token.json');

function randomBytesFrom(random: () => number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

function randomFields(random: () => number): TokenFields {
  const mode = random() < 0.5 ? 'xxpsk3' : 'nnpsk0';
  const kind = Math.floor(random() * 3);
  const host = kind === 0
    ? Array.from({ length: 4 }, () => Math.floor(random() * 256)).join('.')
    : kind === 1 ? `2001:db8::${Math.floor(random() * 65535).toString(16)}` : `host-${Math.floor(random() * 1e6)}.example.org`;
  return {
    mode,
    host,
    port: 1 + Math.floor(random() * 65535),
    taskId: taskIdFromBytes(randomBytesFrom(random, 10)),
    expiresAtSeconds: Math.floor(random() * 0xffffffff),
    psk: randomBytesFrom(random, 32),
    serverPublicKey: mode === 'xxpsk3' ? randomBytesFrom(random, 32) : null,
  };
}

t.test('vectors/noise-cfg-token.json is what the generator makes', async (t) => {
  t.equal(readFileSync(VECTOR_FILE, 'utf8'), tokenVectorsText());
});

t.test('valid vectors: fields encode to the token and the token decodes to the fields', async (t) => {
  const { valid } = JSON.parse(readFileSync(VECTOR_FILE, 'utf8')) as { valid: { comment: string; token: string; fields: Record<string, any> }[] };
  t.equal(valid.length, 4);
  for (const vector of valid) {
    const fields: TokenFields = {
      mode: vector.fields['mode'], host: vector.fields['host'], port: vector.fields['port'], taskId: vector.fields['task_id'],
      expiresAtSeconds: vector.fields['expires_at_seconds'], psk: Buffer.from(vector.fields['psk'], 'hex'),
      serverPublicKey: vector.fields['server_public_key'] === null ? null : Buffer.from(vector.fields['server_public_key'], 'hex'),
    };
    t.equal(encodeToken(fields), vector.token, `${vector.comment}: encodes`);
    t.same(decodeToken(vector.token), fields, `${vector.comment}: decodes`);
    t.match(vector.token, /^ncfg1[1-9A-HJ-NP-Za-km-z]+$/, `${vector.comment}: URL-safe, no look-alikes`);
  }
  t.ok(valid[0]!.token.length <= 130, `an IPv4 xxpsk3 token is ${valid[0]!.token.length} characters`);
});

t.test('field-stage vectors: base58 of body || checksum, the checksum the first 4 bytes of a 16-byte BLAKE2b, and the fields at fault', async (t) => {
  const { invalid } = JSON.parse(readFileSync(VECTOR_FILE, 'utf8')) as { invalid: { comment: string; token: string; error: string; body?: string }[] };
  const fieldCases = invalid.filter((vector) => vector.body !== undefined);
  t.ok(fieldCases.length >= 12, `${fieldCases.length} field-stage vectors`);
  const blake2b = (bytes: Buffer, outputBytes: number): Buffer => {
    const digest = Buffer.alloc(outputBytes);
    sodium.crypto_generichash(digest, bytes);
    return digest;
  };
  for (const vector of fieldCases) {
    const body = Buffer.from(vector.body!, 'hex');
    const signed = Buffer.concat([Buffer.from('ncfg1'), body]);
    t.same(decodeBase58(vector.token.slice(5)), Buffer.concat([body, blake2b(signed, 16).subarray(0, 4)]), `${vector.comment}: the token is ncfg1 and base58(body || checksum)`);
    t.notSame(blake2b(signed, 16).subarray(0, 4), blake2b(signed, 32).subarray(0, 4), `${vector.comment}: BLAKE2b-128 is not BLAKE2b-256 cut short`);
    t.throws(() => decodeToken(vector.token), { code: 'TOKEN_MALFORMED', message: /header|address|port|hostname|bytes more|ends inside/ }, `${vector.comment}: TOKEN_MALFORMED at the fields`);
  }
});

t.test('white space around a token is what String.prototype.trim removes; inside it, it is a bad character', async (t) => {
  const { valid } = JSON.parse(readFileSync(VECTOR_FILE, 'utf8')) as { valid: { token: string }[] };
  const token = valid[0]!.token;
  for (const space of [' ', '\t', '\n', '\r\n', '\v', '\f', '\u00a0', '\ufeff', '\u2028', '\u3000']) {
    // Named by code point: a raw U+2028 in a test name would break the TAP stream.
    const name = [...space].map((character) => `U+${character.codePointAt(0)!.toString(16).padStart(4, '0')}`).join(' ');
    t.equal(decodeToken(`${space}${token}${space}`).taskId, '0123456789abcdef', `${name} around it is ignored`);
    t.throws(() => decodeToken(`${token.slice(0, 30)}${space}${token.slice(30)}`), { code: 'TOKEN_MALFORMED' }, `${name} inside it is not`);
  }
  t.throws(() => decodeToken(`${token}\u200b`), { code: 'TOKEN_MALFORMED' }, 'U+200B (zero width space) is not white space');
});

t.test('invalid vectors give their error code', async (t) => {
  const { invalid } = JSON.parse(readFileSync(VECTOR_FILE, 'utf8')) as { invalid: { comment: string; token: string; error: string }[] };
  t.ok(invalid.length >= 8);
  for (const vector of invalid) t.throws(() => decodeToken(vector.token), { code: vector.error }, vector.comment);
});

t.test('random fields round trip', async (t) => {
  const random = seededRandom(1);
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    const fields = randomFields(random);
    const decoded = decodeToken(encodeToken(fields));
    if (JSON.stringify(decoded) !== JSON.stringify(fields)) t.fail(`round trip ${i}`, { fields, decoded });
    else checked++;
  }
  t.equal(checked, 2000, '2000 random tokens round trip');
});

t.test('the checksum rejects single-character changes, deletions and transpositions', async (t) => {
  const random = seededRandom(7);
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz';
  const counts = { change: 0, deletion: 0, transposition: 0 };
  let accepted = 0;
  let tries = 0;
  const tokens = Array.from({ length: 50 }, () => encodeToken(randomFields(random)));
  while (tries < 100_000) {
    const token = tokens[tries % tokens.length]!;
    const position = 5 + Math.floor(random() * (token.length - 5));
    const kind = (['change', 'deletion', 'transposition'] as const)[tries % 3]!;
    let mutated: string;
    if (kind === 'change') {
      let symbol = token[position]!;
      while (symbol === token[position]) symbol = alphabet[Math.floor(random() * alphabet.length)]!;
      mutated = token.slice(0, position) + symbol + token.slice(position + 1);
    } else if (kind === 'deletion') {
      mutated = token.slice(0, position) + token.slice(position + 1);
    } else {
      const at = Math.min(position, token.length - 2);
      if (token[at] === token[at + 1]) continue;
      mutated = token.slice(0, at) + token[at + 1] + token[at] + token.slice(at + 2);
    }
    tries++;
    counts[kind]++;
    try {
      decodeToken(mutated);
      accepted++;
    } catch {
      // rejected, as it must be
    }
  }
  const rate = (tries - accepted) / tries;
  t.comment(`mutations tried: ${tries} (${counts.change} changes, ${counts.deletion} deletions, ${counts.transposition} transpositions); rejected ${tries - accepted} = ${(rate * 100).toFixed(4)}%`);
  t.equal(accepted, 0, 'no mutated token is accepted');
});

t.test('expiry is checked locally and inclusive', async (t) => {
  const fields = randomFields(seededRandom(3));
  fields.expiresAtSeconds = 1_000_000;
  t.doesNotThrow(() => checkTokenExpiry(fields, 999_999));
  t.throws(() => checkTokenExpiry(fields, 1_000_000), { code: 'TOKEN_EXPIRED' });
  t.equal(describeToken(fields, 1_000_000).isExpired, true);
});

t.test('encodeToken names the bad field', async (t) => {
  const fields = randomFields(seededRandom(4));
  t.throws(() => encodeToken({ ...fields, port: 0 }), { code: 'INVALID_ARGUMENT', message: /port/ });
  t.throws(() => encodeToken({ ...fields, host: 'bad host!' }), { code: 'INVALID_ARGUMENT', message: /host/ });
  t.throws(() => encodeToken({ ...fields, psk: Buffer.alloc(31) }), { code: 'PSK_INVALID_LENGTH' });
  t.throws(() => encodeToken({ ...fields, mode: 'xxpsk3', serverPublicKey: null }), { code: 'INVALID_KEY' });
  t.throws(() => encodeToken({ ...fields, taskId: 'NOT-A-TASK-ID' }), { code: 'INVALID_ARGUMENT', message: /task id/ });
});

t.test('base58 and task ids', async (t) => {
  const random = seededRandom(5);
  for (let i = 0; i < 200; i++) {
    const bytes = randomBytesFrom(random, Math.floor(random() * 40));
    if (i % 10 === 0 && bytes.byteLength > 1) bytes[0] = 0;
    t.same(decodeBase58(encodeBase58(bytes)), bytes);
  }
  t.equal(decodeBase58('0OIl'), null, 'look-alikes are not base58');
  for (let i = 0; i < 100; i++) {
    const id = generateTaskId();
    t.ok(isTaskId(id));
    t.equal(taskIdFromBytes(taskIdToBytes(id)), id);
  }
  t.notOk(isTaskId('0123456789abcdeI'));
});

t.test('token inspect shows every field but the PSK, from argv, a file, stdin or the environment', async (t) => {
  const fields = randomFields(seededRandom(6));
  fields.mode = 'xxpsk3';
  fields.serverPublicKey = Buffer.alloc(32, 7);
  fields.expiresAtSeconds = 4_000_000_000;
  const token = encodeToken(fields);
  const pskHex = fields.psk.toString('hex');
  const run = (args: string[], input?: string, env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [CLI_BIN, 'token', 'inspect', ...args], { encoding: 'utf8', input, env: { ...process.env, ...env } });

  const viaArgv = run([token, '--json']);
  t.equal(viaArgv.status, 0);
  const view = JSON.parse(viaArgv.stdout) as Record<string, unknown>;
  t.same(view, {
    version: 1, mode: 'xxpsk3', host: fields.host, port: fields.port,
    address: fields.host.includes(':') ? `[${fields.host}]:${fields.port}` : `${fields.host}:${fields.port}`,
    taskId: fields.taskId, expiresAt: new Date(4_000_000_000_000).toISOString(), isExpired: false, pin: '07'.repeat(32),
  });
  const viaStdin = run(['--token-file', '-'], `${token}\n`);
  t.equal(viaStdin.status, 0, viaStdin.stderr);
  t.match(viaStdin.stdout, new RegExp(`task id:  ${fields.taskId}`));
  const viaEnv = run([], undefined, { NOISE_CFG_TOKEN: token });
  t.equal(viaEnv.status, 0, viaEnv.stderr);
  for (const output of [viaArgv.stdout, viaStdin.stdout, viaEnv.stdout, viaArgv.stderr]) {
    t.notMatch(output, pskHex, 'the PSK is never shown');
    t.notMatch(output, token, 'nor the token itself');
  }
  const typo = run([`${token.slice(0, 30)}${token[30] === 'z' ? 'y' : 'z'}${token.slice(31)}`]);
  t.equal(typo.status, 10, 'a bad token exits 10');
  t.match(typo.stderr, /checksum does not match: it was mistyped or truncated/);
  t.notMatch(typo.stderr, token.slice(10, 40), 'the error does not echo the token');
  const none = run([], undefined, { NOISE_CFG_TOKEN: '' });
  t.equal(none.status, 2);
  t.match(none.stderr, /no token/);
});

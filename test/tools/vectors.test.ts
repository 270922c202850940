// The public vectors in test/vectors/public and the project's own vectors/, byte for byte (SPEC.md §1.4).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import NoiseHandshake from 'noise-handshake';
import { keyPairFromSecretKey } from '../../lib/noise/dh-functions.js';
import { checkVector } from '../../tools/vectors/check-vector.js';
import { coreVectorsText } from '../../tools/vectors/core-vectors.js';
import { runVectorFile } from '../../tools/vectors/vector-file.js';
import { REPO_ROOT, PUBLIC_VECTORS_DIR, VECTOR_RUNNER } from '../support/paths.js';

// Passed counts per public file as of this commit: a drop means a supported protocol stopped being checked.
const EXPECTED_PASSED: Record<string, number> = {
  'cacophony-haskell.txt': 944,
  'snow-cacophony.txt': 944,
  'snow.txt': 408,
  'noise-c-basic.txt': 240,
  'noise-c-cacophony.txt': 240,
  'noise-c-fallback.txt': 0,
  'noise-c-hybrid.txt': 0,
  'generated-flynn-nnpsk0-xxpsk3.json': 12,
};

// Only these may be skipped, each with its count over the public files (SPEC.md §1.4 says why each is out of
// scope); anything else skipped is a supported protocol left unchecked.
const OUT_OF_SCOPE: Record<string, number> = {
  'pre-rev-31 NoisePSK_ naming': 480,
  'hybrid forward secrecy (hfs: an extension, not revision 34)': 400,
  'compound protocol (Noise Pipes fallback)': 32,
};

const CORE_VECTORS_FILE = join(REPO_ROOT, 'vectors', 'noise-cfg-core.json');

t.test('every public vector file passes with nothing in scope skipped', async (t) => {
  const files = readdirSync(PUBLIC_VECTORS_DIR).filter((file) => file !== 'README.md').sort();
  t.same(files, Object.keys(EXPECTED_PASSED).sort(), 'the public vector files are the known set');
  const skipped = new Map<string, number>();
  for (const file of files) {
    const report = runVectorFile(join(PUBLIC_VECTORS_DIR, file));
    t.equal(report.failed, 0, `${file}: no failures`, { failures: report.failures });
    t.equal(report.passed, EXPECTED_PASSED[file], `${file}: ${report.passed} passed`);
    for (const [reason, count] of report.skipReasons) skipped.set(reason, (skipped.get(reason) ?? 0) + count);
  }
  t.same(Object.fromEntries(skipped), OUT_OF_SCOPE, 'the skips are exactly the out-of-scope ones, by reason and count');
});

t.test('the product protocols are among the passed vectors', async (t) => {
  const parsed = JSON.parse(readFileSync(join(PUBLIC_VECTORS_DIR, 'cacophony-haskell.txt'), 'utf8')) as { vectors: Record<string, unknown>[] };
  for (const name of ['Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b', 'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b']) {
    const vector = parsed.vectors.find((candidate) => candidate['protocol_name'] === name);
    t.ok(vector, `${name} is in the cacophony file`);
    t.same(checkVector(vector!), { status: 'passed', protocolName: name });
  }
  const multiPsk = JSON.parse(readFileSync(join(PUBLIC_VECTORS_DIR, 'snow.txt'), 'utf8')) as { vectors: Record<string, unknown>[] };
  const names = multiPsk.vectors.map((vector) => String(vector['protocol_name'])).filter((name) => name.includes('psk0+psk1+psk2+psk3'));
  t.ok(names.length > 0, 'snow.txt has XXpsk0+psk1+psk2+psk3 vectors');
  for (const name of names) {
    const vector = multiPsk.vectors.find((candidate) => candidate['protocol_name'] === name)!;
    t.same(checkVector(vector), { status: 'passed', protocolName: name }, `${name} passed`);
  }
});

t.test('a tampered vector fails with the protocol name and the first differing message in hex', async (t) => {
  const parsed = JSON.parse(readFileSync(CORE_VECTORS_FILE, 'utf8')) as { vectors: { messages: { ciphertext: string }[] }[] };
  const vector = parsed.vectors[0]!;
  const original = vector.messages[1]!.ciphertext;
  vector.messages[1]!.ciphertext = (original[0] === '0' ? '1' : '0') + original.slice(1);
  const dir = t.testdir({});
  const file = join(dir, 'tampered.json');
  writeFileSync(file, JSON.stringify({ vectors: [vector] }));
  const run = spawnSync(process.execPath, [VECTOR_RUNNER, file], { encoding: 'utf8' });
  t.equal(run.status, 1, 'exits 1');
  t.match(run.stdout, /FAIL Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b: message 1 \(handshake\) ciphertext differs/);
  t.match(run.stdout, new RegExp(`expected ${vector.messages[1]!.ciphertext.slice(0, 16)}`));
  t.match(run.stdout, /^0 passed, 1 failed, 0 skipped$/m);
});

t.test('the runner counts every public file and ends with the totals line', async (t) => {
  const files = readdirSync(PUBLIC_VECTORS_DIR).map((file) => join(PUBLIC_VECTORS_DIR, file));
  const run = spawnSync(process.execPath, [VECTOR_RUNNER, ...files], { encoding: 'utf8' });
  t.equal(run.status, 0);
  const expectedPassed = Object.values(EXPECTED_PASSED).reduce((sum, count) => sum + count, 0);
  const expectedSkipped = Object.values(OUT_OF_SCOPE).reduce((sum, count) => sum + count, 0);
  const reasons = Object.entries(OUT_OF_SCOPE).map(([reason, count]) => `${count} ${reason}`).join('; ');
  t.equal(run.stdout.trimEnd().split('\n').at(-1), `${expectedPassed} passed, 0 failed, ${expectedSkipped} skipped (${reasons})`, 'the closing line gives the skips by reason');
  t.match(run.stderr, /README\.md: not a vector file/);
});

t.test('vectors/noise-cfg-core.json is what the generator makes, and passes', async (t) => {
  t.equal(readFileSync(CORE_VECTORS_FILE, 'utf8'), coreVectorsText(), 'regenerate with npm run vectors:generate');
  const report = runVectorFile(CORE_VECTORS_FILE);
  t.equal(report.failed, 0);
  t.equal(report.passed, 6);
});

t.test('noise-handshake independently reproduces our published NNpsk0 vectors', async (t) => {
  const parsed = JSON.parse(readFileSync(CORE_VECTORS_FILE, 'utf8')) as { vectors: Record<string, any>[] };
  const nnpsk0 = parsed.vectors.filter((vector) => vector['protocol_name'] === 'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b');
  t.equal(nnpsk0.length, 3);
  for (const vector of nnpsk0) {
    const psk = Buffer.from(vector['init_psks'][0], 'hex');
    const prologue = Buffer.from(vector['init_prologue'], 'hex');
    const initiator = new NoiseHandshake('NNpsk0', true, null, { psk });
    const responder = new NoiseHandshake('NNpsk0', false, null, { psk });
    initiator.initialise(prologue);
    responder.initialise(prologue);
    initiator.e = keyPairFromSecretKey(Buffer.from(vector['init_ephemeral'], 'hex'));
    responder.e = keyPairFromSecretKey(Buffer.from(vector['resp_ephemeral'], 'hex'));
    const [first, second] = vector['messages'] as { payload: string; ciphertext: string }[];
    t.equal(initiator.send(Buffer.from(first!.payload, 'hex')).toString('hex'), first!.ciphertext, `${vector['comment']}: message 0`);
    responder.recv(Buffer.from(first!.ciphertext, 'hex'));
    t.equal(responder.send(Buffer.from(second!.payload, 'hex')).toString('hex'), second!.ciphertext, `${vector['comment']}: message 1`);
    initiator.recv(Buffer.from(second!.ciphertext, 'hex'));
    t.equal(initiator.hash!.toString('hex'), vector['handshake_hash'], `${vector['comment']}: handshake hash`);
  }
});

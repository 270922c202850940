// The CLI through a real process: the demo, usage errors and --help.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { buildCli } from '../../cli/index.js';
import { CLI_BIN } from '../support/paths.js';

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI_BIN, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

t.test('demo completes both handshakes and rejects the tampered message', async (t) => {
  const result = run(['demo']);
  t.equal(result.status, 0);
  t.match(result.stdout, /Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b/);
  t.match(result.stdout, /-> handshake message 1 \(48 bytes\)/);
  t.match(result.stdout, /<- handshake message 2 \(96 bytes\)/);
  t.match(result.stdout, /-> handshake message 3 \(64 bytes\)/);
  t.match(result.stdout, /Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b/);
  t.equal(result.stdout.match(/tampered message rejected \(\d+ bytes\): DECRYPT_FAILED/g)?.length, 2);
  t.equal(result.stdout.match(/handshake hash equal on both sides: true/g)?.length, 2);
});

t.test('demo --json prints one parseable array of steps', async (t) => {
  const result = run(['demo', '--json']);
  t.equal(result.status, 0);
  const steps = JSON.parse(result.stdout) as { protocol: string; step: string }[];
  t.ok(steps.some((step) => step.protocol === 'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b' && step.step === 'tampered message rejected'));
});

t.test('no command, or an unknown one, is a usage error with exit code 2 and no stack', async (t) => {
  for (const args of [[], ['bogus']]) {
    const result = run(args);
    t.equal(result.status, 2, `noise-cfg ${args.join(' ')} exits 2`);
    t.match(result.stderr, /^noise-cfg: /);
    t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('buildCli parses in-process', async (t) => {
  const parsed = await buildCli(['demo', '--json']).exitProcess(false).parseAsync();
  t.equal(parsed['json'], true);
});

// `noise-cfg channel` end to end (SPEC.md §2.9): a listener with --echo and a client, framed and --raw, in both
// modes; the pin refuses a wrong server key; key files are created 0600 and a readable PSK file is refused.
import t, { type Test } from 'tap';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CLI_BIN } from '../support/paths.js';
import { spawnWatched } from '../support/watched-process.js';

const env = { PATH: process.env['PATH'] ?? '' };

function channel(t: Test, args: readonly string[], stdin?: string) {
  return spawnWatched(t, process.execPath, [CLI_BIN, 'channel', ...args], { env, ...(stdin !== undefined ? { stdin } : {}) });
}

async function startListener(t: Test, args: readonly string[]): Promise<{ port: string; publicKey: string | null }> {
  const listener = channel(t, ['listen', '--listen', '127.0.0.1:0', '--echo', ...args]);
  const [, port] = await listener.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  const publicKey = /our public key: ([0-9a-f]{64})/.exec(listener.stderr())?.[1] ?? null;
  return { port: port!, publicKey };
}

const root = t.testdir();
const pskFile = join(root, 'psk.hex');
writeFileSync(pskFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });

for (const raw of [false, true]) {
  for (const mode of ['xxpsk3', 'nnpsk0'] as const) {
    const rawArgs = raw ? ['--raw', '--prologue', 'abcd'] : [];
    t.test(`${mode}${raw ? ' --raw' : ''}: a line goes to the listener and comes back`, async (t) => {
      const keys = mode === 'xxpsk3' ? ['--key-file', join(root, `${mode}-${raw}-server.key`)] : [];
      const { port, publicKey } = await startListener(t, ['--mode', mode, '--psk-file', pskFile, ...keys, ...rawArgs]);
      const clientKeys = mode === 'xxpsk3' ? ['--key-file', join(root, `${mode}-${raw}-client.key`), '--pin', publicKey!] : [];
      const client = channel(t, ['connect', `127.0.0.1:${port}`, '--mode', mode, '--psk-file', pskFile, ...clientKeys, ...rawArgs], 'hello over noise\n');
      t.equal((await client.exited).code, 0, `connect exits 0: ${client.stderr()}`);
      t.equal(client.stdout(), 'hello over noise\n', 'the echo is printed');
      t.match(client.stderr(), /^connected: /m);
      if (mode === 'xxpsk3') t.equal(statSync(join(root, `${mode}-${raw}-client.key`)).mode & 0o777, 0o600, 'the new key file is 0600');
    });
  }

  t.test(`xxpsk3${raw ? ' --raw' : ''}: a pin that is not the listener's key fails authentication (exit 12)`, async (t) => {
    const { port } = await startListener(t, ['--psk-file', pskFile, '--key-file', join(root, `pin-${raw}-server.key`), ...(raw ? ['--raw'] : [])]);
    const wrongPin = randomBytes(32).toString('hex');
    const client = channel(t, ['connect', `127.0.0.1:${port}`, '--psk-file', pskFile, '--key-file', join(root, `pin-${raw}-client.key`), '--pin', wrongPin, ...(raw ? ['--raw'] : [])], 'never sent\n');
    t.equal((await client.exited).code, 12, `exit 12: ${client.stderr()}`);
    t.match(client.stderr(), /\(REMOTE_STATIC_MISMATCH\)/);
    t.equal(client.stdout(), '', 'nothing received');
  });
}

t.test('a PSK file readable by others is refused with the fix (exit 2)', async (t) => {
  const open = join(root, 'open-psk.hex');
  writeFileSync(open, `${randomBytes(32).toString('hex')}\n`);
  chmodSync(open, 0o644);
  const client = channel(t, ['connect', '127.0.0.1:1', '--mode', 'nnpsk0', '--psk-file', open]);
  t.equal((await client.exited).code, 2);
  t.match(client.stderr(), /readable by others \(mode 644\); run: chmod 600 .*\(INVALID_ARGUMENT\)/);
});

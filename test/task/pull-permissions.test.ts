// Issue 12 item 7, client part (SPEC.md §4.7, §6): a file-system problem in the identity directory or under
// --out is a coded error that names the path and the fix, found before connecting. The tests run as root, so the
// non-writable cases run the CLI as `nobody` through setpriv, or put the path under a regular file.
import t, { type Test } from 'tap';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isNoiseCfgError } from '../../lib/errors.js';
import { pull } from '../../lib/task/client.js';
import { CLI_BIN } from '../support/paths.js';
import { spawnWatched } from '../support/watched-process.js';
import { clientSetup, textFiles, type ClientSetup } from './client-support.js';
import { runCli } from './support.js';
import { NOBODY, SETPRIV, nobodySkipReason } from '../support/as-nobody.js';

const FILES = textFiles({ 'app.conf': 'x = 1\n' });

/** Runs the built CLI as nobody (uid and gid 65534, no groups) with exactly `env` and PATH. */
async function runAsNobody(t: Test, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnWatched(t, SETPRIV, [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, CLI_BIN, ...args], { env: { PATH: process.env.PATH, ...env } });
  const { code } = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

/** A directory that nobody owns (mode 0700), for its identity. */
function nobodyDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chownSync(path, NOBODY, NOBODY);
  return path;
}

/** Proves that nothing but a later check pull reached the server: it logs every connection once it closes. */
async function assertNoConnection(t: Test, s: ClientSetup, token: string): Promise<void> {
  const result = await pull({ token, intent: 'check', identityDir: join(s.dir, 'settle-identity'), name: 'settle' });
  t.equal(result.status, 'checked');
  await s.running.waitForLog((record) => record.event === 'pull' && record.client === 'settle');
  const others = s.running.connectionLogs().filter((record) => record.client !== 'settle');
  t.same(others, [], 'the failed pull never connected');
}

t.test('an identity directory under a regular file is IDENTITY_UNAVAILABLE naming the path and --identity-dir, before connecting', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  const blocker = join(s.dir, 'a-file');
  writeFileSync(blocker, 'not a directory');
  const identityDir = join(blocker, 'identity');
  const error = await s.pullInto(token, { identityDir }).then(() => null, (failure: unknown) => failure);
  t.ok(isNoiseCfgError(error, 'IDENTITY_UNAVAILABLE'), `IDENTITY_UNAVAILABLE (${String(error)})`);
  t.match((error as Error).message, /cannot use the client identity directory .*a-file\/identity.*ENOTDIR: a part of that path is a file.*--identity-dir/);
  const cli = await runCli(t, ['pull', '--out', s.outDir, '--identity-dir', identityDir, '--retry', '0'], { env: { NOISE_CFG_TOKEN: token } });
  t.equal(cli.code, 5, 'the CLI exits 5');
  t.match(cli.stderr, /cannot use the client identity directory .*identity.*--identity-dir.*\(IDENTITY_UNAVAILABLE\)/);
  t.notMatch(cli.stderr, /unexpected error|\n\s+at /, 'no stack, no "unexpected error"');
  t.notOk(existsSync(s.outDir), 'nothing was made at --out');
  await assertNoConnection(t, s, token);
});

t.test('as nobody, the default identity directory in root\'s home is IDENTITY_UNAVAILABLE (exit 5) with the fix', { skip: nobodySkipReason() ?? false }, async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  const outParent = nobodyDir(join(s.dir, 'nobody-out'));
  const result = await runAsNobody(t, ['pull', '--out', join(outParent, 'out'), '--retry', '0'], { HOME: '/root', NOISE_CFG_TOKEN: token });
  t.equal(result.code, 5, `exit 5 (${result.stderr.trim()})`);
  t.match(result.stderr, /cannot use the client identity directory \/root\/\.config\/noise-cfg.*EACCES.*run noise-cfg as the user who owns it, or choose an identity directory you can write with --identity-dir \(IDENTITY_UNAVAILABLE\)/);
  t.notMatch(result.stderr, /unexpected error/);
  await assertNoConnection(t, s, token);
});

t.test('as nobody, an --out whose parent nobody cannot write is APPLY_FAILED (exit 15) before connecting, naming the directory and the fix', { skip: nobodySkipReason() ?? false }, async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  const identityDir = nobodyDir(join(s.dir, 'nobody-identity'));
  const parent = join(s.dir, 'root-owned');
  mkdirSync(parent, { mode: 0o755 });
  const result = await runAsNobody(t, ['pull', '--out', join(parent, 'out'), '--identity-dir', identityDir, '--retry', '0', '--json'], { NOISE_CFG_TOKEN: token });
  t.equal(result.code, 15, `exit 15 (${result.stderr.trim()})`);
  t.match(result.stderr, new RegExp(`you \\(uid ${NOBODY}\\) cannot create entries in its parent directory ${parent.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(owner uid 0, mode 755\\): EACCES; run noise-cfg as the user who owns`));
  t.notOk(existsSync(join(parent, '.out.noise-cfg')), 'nothing was made beside --out');
  await assertNoConnection(t, s, token);
});

t.test('an --out whose parent is a regular file is APPLY_FAILED before connecting', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  const blocker = join(s.dir, 'a-file');
  writeFileSync(blocker, 'x');
  await t.rejects(s.pullInto(token, { outDir: join(blocker, 'out') }), { code: 'APPLY_FAILED', message: /a-file is not a directory/ });
  await assertNoConnection(t, s, token);
});

// The update commands as real processes (CONTRACT.md CLI, SPEC.md §4.7, §4.8, §6): serve, task create / show / list /
// cancel / revoke, pull with every token source, exit codes, the serve log, SIGTERM, and key file permissions.
import t from 'tap';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { decodeToken, encodeToken } from '../../lib/token/token.js';
import { readTree, runCli, startServe, type TreeFile } from './support.js';

const NESTED: Record<string, TreeFile> = {
  'bin/run.sh': { content: '#!/bin/sh\necho run\n', mode: 0o755 },
  'etc/app.conf': { content: 'listen = 8080\n', mode: 0o644 },
  'etc/conf.d/a.conf': { content: 'a = 1\n', mode: 0o640 },
};

function writeSourceTree(root: string): void {
  for (const [path, file] of Object.entries(NESTED)) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, file.content);
    chmodSync(full, file.mode);
  }
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface ShowJson {
  id: string;
  state: string;
  expiresAt: string;
  clients: { identity: string; name: string; state: string; result: { exitCode: number | null; message: string } | null }[];
}

t.test('serve, task and pull as processes, end to end', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const source = join(dir, 'source');
  writeSourceTree(source);
  // Every child gets its own HOME and XDG_CONFIG_HOME, so nothing here touches the real ~/.config.
  const env = (who: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    HOME: join(dir, 'home', who), XDG_CONFIG_HOME: join(dir, 'xdg', who), NOISE_CFG_TOKEN: '', ...extra,
  });

  const serve = await startServe(t, data, { env: env('serve') });
  t.match(serve.stdout(), /listening/, 'the log says where it listens');
  const port = serve.port;
  t.ok(port > 0, `serve bound 127.0.0.1:${port}`);

  const dataMode = statSync(data).mode & 0o777;
  t.equal(dataMode, 0o700, 'the data directory is 0700');
  for (const name of ['server.key', 'master.key', 'admin.token']) {
    t.equal(statSync(join(data, name)).mode & 0o777, 0o600, `${name} is 0600`);
  }

  // task create prints only the token on stdout.
  const [created, createdJson] = await Promise.all([
    runCli(t, ['task', 'create', '--data', data, '--file', source, '--advertise', `127.0.0.1:${port}`, '--name', 'nested'], { env: env('admin') }),
    runCli(t, ['task', 'create', '--data', data, '--file', source, '--advertise', `127.0.0.1:${port}`, '--ttl', '10m', '--json'], { env: env('admin') }),
  ]);
  t.equal(created.code, 0, 'task create exits 0');
  t.match(created.stdout, /^ncfg1[1-9A-HJ-NP-Za-km-z]+\n$/, 'stdout is the token and nothing else');
  t.match(created.stderr, /created task [0-9a-z]{16}: 3 file\(s\)/);
  const token = created.stdout.trim();
  const fields = decodeToken(token);
  t.equal(fields.port, port);
  t.equal(fields.host, '127.0.0.1');
  const taskId = fields.taskId;
  const pskHex = fields.psk.toString('hex');
  t.notOk(created.stderr.includes(pskHex), 'no PSK on stderr');

  // --json gives id, token and expiresAt.
  t.equal(createdJson.code, 0);
  const second = JSON.parse(createdJson.stdout) as { id: string; token: string; expiresAt: string };
  t.match(second.id, /^[0-9a-hjkmnp-tv-z]{16}$/);
  t.match(second.token, /^ncfg1/);
  t.equal(decodeToken(second.token).taskId, second.id);
  t.match(second.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const ttlMs = Date.parse(second.expiresAt) - Date.now();
  t.ok(ttlMs > 8 * 60_000 && ttlMs <= 10 * 60_000, '--ttl 10m');

  const expectedPulls: string[] = [];
  const out = (who: string): string => join(dir, 'out', who);
  // The parent of --out must exist (noise-cfg makes no parent directories, SPEC.md §4.7).
  mkdirSync(join(dir, 'out'));

  // Three pulls at once, each with its own identity; one prints JSON.
  const three = await Promise.all(['c1', 'c2', 'c3'].map((who) => runCli(t, ['pull', '--out', out(who), '--name', who, ...(who === 'c3' ? ['--json'] : [])], {
    env: env(who, { NOISE_CFG_TOKEN: token }),
  })));
  for (const [index, who] of ['c1', 'c2', 'c3'].entries()) {
    t.equal(three[index]!.code, 0, `${who} exits 0`);
    t.same(readTree(out(who)), NESTED, `${who}: nested files with their bytes and modes`);
    t.equal(statSync(join(dir, 'xdg', who, 'noise-cfg', 'identity.key')).mode & 0o777, 0o600, `${who}: identity key under its XDG_CONFIG_HOME, 0600`);
    t.notOk(three[index]!.stderr.includes('warning: a token on the command line'), `${who}: no argv warning for NOISE_CFG_TOKEN`);
    expectedPulls.push('applied');
  }
  t.match(three[0]!.stdout, /^applied 3 file\(s\) to /);
  const json = JSON.parse(three[2]!.stdout) as { status: string; taskId: string; files: string[]; isAcknowledged: boolean };
  t.equal(json.status, 'applied');
  t.equal(json.taskId, taskId);
  t.same([...json.files].sort(), Object.keys(NESTED).sort());
  t.equal(json.isAcknowledged, true);

  const show = await runCli(t, ['task', 'show', taskId, '--data', data, '--json'], { env: env('admin') });
  t.equal(show.code, 0);
  const view = JSON.parse(show.stdout) as ShowJson;
  t.equal(view.id, taskId);
  t.equal(view.state, 'active');
  t.match(view.expiresAt, /Z$/);
  t.same(view.clients.map((client) => client.name).sort(), ['c1', 'c2', 'c3']);
  for (const client of view.clients) {
    t.match(client.identity, /^[0-9a-f]{64}$/);
    t.equal(client.state, 'applied');
    t.same(client.result, { exitCode: null, message: 'applied' });
  }
  t.notOk(show.stdout.includes(pskHex) || show.stdout.includes(token), 'show --json holds no PSK and no token');

  // Independent commands run side by side; each checks its own outcome.
  const closed = await closedPort();
  const at = Math.floor(token.length / 2);
  const mistyped = `${token.slice(0, at)}${token[at] === 'z' ? 'y' : 'z'}${token.slice(at + 1)}`;
  const wrong = encodeToken({ ...fields, psk: Buffer.alloc(32, 7) });
  const [list, again, failing, bad, unreachable, argv, stdin, wrongPull] = await Promise.all([
    runCli(t, ['task', 'list', '--data', data], { env: env('admin') }),
    runCli(t, ['pull', '--out', out('c1'), '--name', 'c1'], { env: env('c1', { NOISE_CFG_TOKEN: token }) }),
    runCli(t, ['pull', '--out', out('c4'), '--name', 'c4', '--exec', 'exit 4', '--json'], { env: env('c4', { NOISE_CFG_TOKEN: token }) }),
    runCli(t, ['pull', '--out', out('bad'), '--name', 'bad'], { env: env('bad', { NOISE_CFG_TOKEN: mistyped }) }),
    runCli(t, ['task', 'create', '--data', data, '--file', source, '--advertise', `127.0.0.1:${closed}`], { env: env('admin') })
      .then((unreachableCreate) => runCli(t, ['pull', '--out', out('far'), '--name', 'far'], { env: env('far', { NOISE_CFG_TOKEN: unreachableCreate.stdout.trim() }) })),
    runCli(t, ['pull', token, '--out', out('argv'), '--name', 'argv'], { env: env('argv') }),
    runCli(t, ['pull', '--token-file', '-', '--out', out('stdin'), '--name', 'stdin', '--json'], { env: env('stdin'), stdin: `${token}\n` }),
    runCli(t, ['pull', '--out', out('wrong'), '--name', 'wrong'], { env: env('wrong', { NOISE_CFG_TOKEN: wrong }) }),
  ]);

  t.equal(list.code, 0);
  // The argv and stdin pulls above run alongside the list and may already have applied: 3 to 5.
  t.match(list.stdout, new RegExp(`^${taskId}\\s+active\\s+xxpsk3\\s+[345] applied`, 'm'));
  t.match(list.stdout, new RegExp(`^${second.id}\\s+active`, 'm'));

  // Re-pull: up to date.
  t.equal(again.code, 0);
  t.match(again.stdout, /up to date/);
  expectedPulls.push('up-to-date');

  // The command fails: exit 16.
  t.equal(failing.code, 16, '--exec that exits 4: exit code 16');
  const failingJson = JSON.parse(failing.stdout) as { status: string; exitCode: number; failure: { code: string } };
  t.equal(failingJson.status, 'failed');
  t.equal(failingJson.exitCode, 4);
  t.equal(failingJson.failure.code, 'COMMAND_FAILED');
  expectedPulls.push('failed');

  // A mistyped token: exit 10, before any connection.
  t.equal(bad.code, 10, 'bad token: exit 10');
  t.match(bad.stderr, /TOKEN_CHECKSUM_MISMATCH/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line on stderr');

  // A closed port: exit 11.
  t.equal(unreachable.code, 11, 'unreachable server: exit 11');
  t.match(unreachable.stderr, /CONNECTION_FAILED/);

  // The token in argv works and warns about the process list.
  t.equal(argv.code, 0);
  t.match(argv.stderr, /warning: .*process list/);
  t.same(readTree(out('argv')), NESTED);
  expectedPulls.push('applied');

  // --token-file - reads stdin.
  t.equal(stdin.code, 0, '--token-file - works');
  t.equal((JSON.parse(stdin.stdout) as { status: string }).status, 'applied');
  t.notOk(stdin.stderr.includes('process list'), 'no argv warning');
  expectedPulls.push('applied');

  // A token with another PSK for the same task: exit 12.
  t.equal(wrongPull.code, 12, 'wrong PSK: exit 12');

  // revoke c2: its next pull exits 13.
  const c2 = view.clients.find((client) => client.name === 'c2')!;
  const [revoke, revokeUnknown] = await Promise.all([
    runCli(t, ['task', 'revoke', taskId, c2.identity, '--data', data], { env: env('admin') }),
    runCli(t, ['task', 'revoke', taskId, 'f'.repeat(64), '--data', data], { env: env('admin') }),
  ]);
  t.equal(revoke.code, 0);
  t.match(revoke.stdout, /revoked/);
  t.equal(revokeUnknown.code, 3, 'revoking an unknown identity: exit 3');
  const revoked = await runCli(t, ['pull', '--out', out('c2'), '--name', 'c2'], { env: env('c2', { NOISE_CFG_TOKEN: token }) });
  t.equal(revoked.code, 13, 'a revoked client: exit 13');
  t.match(revoked.stderr, /revoked/);
  expectedPulls.push('rejected:revoked');

  // cancel: the next pull exits 13.
  const cancel = await runCli(t, ['task', 'cancel', taskId, '--data', data, '--json'], { env: env('admin') });
  t.equal(cancel.code, 0);
  t.equal((JSON.parse(cancel.stdout) as ShowJson).state, 'cancelled');
  const [cancelled, cancelAgain, showMissing] = await Promise.all([
    runCli(t, ['pull', '--out', out('late'), '--name', 'late', '--json'], { env: env('late', { NOISE_CFG_TOKEN: token }) }),
    runCli(t, ['task', 'cancel', taskId, '--data', data], { env: env('admin') }),
    runCli(t, ['task', 'show', '0000000000000000', '--data', data], { env: env('admin') }),
  ]);
  t.equal(cancelled.code, 13, 'a cancelled task: exit 13');
  t.match(cancelled.stderr, /cancelled/);
  expectedPulls.push('rejected:cancelled');
  // CONTRACT.md: pull --json prints an object with at least status, taskId and files, also when the pull fails.
  const cancelledJson = JSON.parse(cancelled.stdout) as { status: string; taskId?: string; files?: string[]; failure: { code: string } };
  t.equal(cancelledJson.status, 'failed');
  t.equal(cancelledJson.failure.code, 'REJECTED');
  t.equal(cancelledJson.taskId, taskId, 'a rejected pull --json still names the task');
  t.same(cancelledJson.files, [], 'and lists the files written: none');
  t.equal(cancelAgain.code, 4, 'cancelling an ended task: exit 4');
  t.equal(showMissing.code, 3, 'an unknown task: exit 3');

  // SIGTERM: serve stops cleanly.
  serve.child.kill('SIGTERM');
  const exit = await serve.exited;
  t.equal(exit.code, 0, 'serve exits 0 on SIGTERM');
  const log = serve.stdout();
  t.match(log, /^\S+ stopped$/m, 'a stopped line');
  t.match(serve.stderr(), /SIGTERM: stopping/);
  const pullLines = log.split('\n').filter((line) => /^\S+ pull /.test(line));
  t.ok(pullLines.every((line) => /outcome=\S+/.test(line)), 'every pull line has an outcome');
  t.same(pullLines.map((line) => /outcome=(\S+)/.exec(line)![1]).sort(), [...expectedPulls].sort(), 'one pull line per connection, with its outcome');
  t.ok(pullLines.every((line) => line.includes(`task=${taskId}`)));
  t.match(log, /handshake-failed/, 'the wrong PSK shows as a failed handshake');
  for (const secret of [pskHex, token, decodeToken(second.token).psk.toString('hex'), second.token, readFileSync(join(data, 'server.key'), 'utf8').trim(), readFileSync(join(data, 'master.key'), 'utf8').trim()]) {
    t.notOk(log.includes(secret) || serve.stderr().includes(secret), 'no PSK, token or key in the serve output');
  }
});

t.test('serve refuses a world-readable server.key with the chmod 600 fix and exit code 5', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  (await TaskAdmin.open(data, { create: true })).close();
  chmodSync(join(data, 'server.key'), 0o644);
  const result = await runCli(t, ['serve', '--data', data, '--listen', '127.0.0.1:0'], { env: { HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg') } });
  t.equal(result.code, 5);
  t.match(result.stderr, /chmod 600/);
  t.match(result.stderr, /DATA_DIR_INSECURE/);
  t.notMatch(result.stderr, /listening/);
  t.equal(statSync(join(data, 'server.key')).mode & 0o777, 0o644, 'the file is left for the operator to fix');
});

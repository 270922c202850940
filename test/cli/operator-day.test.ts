// The operator's day at the CLI (issue 12 items 10, 12, 13, 16): a token shown again, revoke by what logs and
// watch show, watch exit codes with one final line, and task show / watch without doubled or empty words.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';
import { decodeToken, pull } from '../../lib/index.js';
import { openAdmin, runCli, startServe, startServer } from '../task/support.js';
import { watchLine } from '../../cli/watch-view.js';

const file = { path: 'app.conf', content: Buffer.from('a = 1\n') };

// Each label is its own client (its own identity directory); `name` is what it calls itself.
async function pullAs(root: string, token: string, label: string, name = label): Promise<void> {
  await pull({ token, outDir: join(root, `out-${label}`), identityDir: join(root, `id-${label}`), name, retryForMs: 0 });
}

t.test('task token prints an active task\'s token again; the pull command is what a client runs; ended → exit 4', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const created = await admin.createTask({ files: [file], advertise: { host: '127.0.0.1', port: running.port } });
  const shown = await runCli(t, ['task', 'token', created.id, '--data', data, '--advertise', `127.0.0.1:${running.port}`]);
  t.equal(shown.code, 0, 'exit 0');
  const token = shown.stdout.trim();
  t.same({ ...decodeToken(token), psk: null }, { ...decodeToken(created.token), psk: null }, 'the same task, address, mode and pin');
  t.ok(decodeToken(token).psk.equals(decodeToken(created.token).psk), 'the same PSK, derived again');
  await pullAs(root, token, 'again');
  t.equal((await admin.showTask(created.id)).counts.applied, 1, 'the token shown again pulls');
  const json = await runCli(t, ['task', 'token', created.id, '--data', data, '--json', '--print-pull-command']);
  const parsed = JSON.parse(json.stdout) as { id: string; token: string; expiresAt: string; pullCommand: string };
  t.equal(parsed.id, created.id);
  t.equal(parsed.expiresAt, created.expiresAt);
  t.match(parsed.pullCommand, /^NOISE_CFG_TOKEN='ncfg[^']+' noise-cfg pull --out \.\/config$/, 'the printed command is noise-cfg pull, not this machine\'s node path');
  const printed = await runCli(t, ['task', 'create', '--data', data, '--file', join(root, 'data', 'server.json'), '--print-pull-command']);
  t.match(printed.stdout, /^NOISE_CFG_TOKEN='ncfg[^']+' noise-cfg pull --out \.\/config\n$/, 'task create --print-pull-command too');
  await admin.cancelTask(created.id);
  const ended = await runCli(t, ['task', 'token', created.id, '--data', data]);
  t.equal(ended.code, 4, 'an ended task: exit 4');
  t.match(ended.stderr, /has ended \(cancelled\).*\(TASK_ENDED\)/);
  t.equal(ended.stdout, '', 'no token printed');
  const missing = await runCli(t, ['task', 'token', 'nosuchtask00000', '--data', data]);
  t.equal(missing.code, 3, 'no such task: exit 3');
});

t.test('task revoke takes a unique 8+ hex prefix or a unique name; ambiguity, short prefixes, twice and ended tasks say so', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const created = await admin.createTask({ files: [file], advertise: { host: '127.0.0.1', port: running.port } });
  await pullAs(root, created.token, 'alpha');
  await pullAs(root, created.token, 'beta');
  // Names are the clients' own words: two may share one.
  await pullAs(root, created.token, 'twin-1', 'twin');
  await pullAs(root, created.token, 'twin-2', 'twin');
  const clients = (await admin.showTask(created.id)).clients;
  const alpha = clients.find((client) => client.name === 'alpha')!;
  const beta = clients.find((client) => client.name === 'beta')!;
  t.equal(clients.filter((client) => client.name === 'twin').length, 2, 'two clients named twin');

  const byPrefix = await runCli(t, ['task', 'revoke', created.id, alpha.identity.slice(0, 8), '--data', data]);
  t.equal(byPrefix.code, 0, 'an 8-character prefix: exit 0');
  t.match(byPrefix.stdout, new RegExp(`revoked alpha ${alpha.identity} from task ${created.id}`), 'says whom, in full');
  t.equal((await admin.showTask(created.id)).clients.find((client) => client.identity === alpha.identity)!.state, 'revoked');
  t.equal((await admin.showTask(created.id)).counts.revoked, 1, 'only that client');

  const twice = await runCli(t, ['task', 'revoke', created.id, alpha.identity.slice(0, 16), '--data', data]);
  t.equal(twice.code, 4, 'revoking twice: exit 4');
  t.match(twice.stderr, /already revoked \(CLIENT_ALREADY_REVOKED\)/);

  const byName = await runCli(t, ['task', 'revoke', created.id, 'beta', '--data', data, '--json']);
  t.equal(byName.code, 0, 'a unique name: exit 0');
  t.equal((JSON.parse(byName.stdout) as { clients: { identity: string; state: string }[] }).clients.find((client) => client.identity === beta.identity)!.state, 'revoked');

  const ambiguous = await runCli(t, ['task', 'revoke', created.id, 'twin', '--data', data]);
  t.equal(ambiguous.code, 2, 'a shared name: exit 2');
  t.match(ambiguous.stderr, /2 clients of task \S+ are named "twin": .*give the identity/);
  const short = await runCli(t, ['task', 'revoke', created.id, alpha.identity.slice(0, 6), '--data', data]);
  t.equal(short.code, 2, 'a 6-character prefix: exit 2');
  t.match(short.stderr, /at least 8 hex characters/);
  const unknown = await runCli(t, ['task', 'revoke', created.id, 'gamma', '--data', data]);
  t.equal(unknown.code, 3, 'no such client: exit 3');
  t.equal((await admin.showTask(created.id)).counts.revoked, 2, 'the refused attempts revoked no one');

  await admin.cancelTask(created.id);
  const ended = await runCli(t, ['task', 'revoke', created.id, 'twin', '--data', data]);
  t.equal(ended.code, 4, 'on an ended task: exit 4');
  t.match(ended.stderr, /has already ended \(cancelled\)/);
});

t.test('task watch: exit 0 completed, 6 cancelled or expired (also with no client); one final line; no doubled words', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const advertise = { host: '127.0.0.1', port: running.port };

  const completing = await admin.createTask({ files: [file], maxClients: 1, advertise });
  await pullAs(root, completing.token, 'one');
  const completed = await runCli(t, ['task', 'watch', completing.id, '--data', data]);
  t.equal(completed.code, 0, 'completed: exit 0');
  const lines = completed.stdout.trim().split('\n');
  t.match(lines.at(-1), /^ended \S+ completed: 1\/1 applied/, 'the last line is the end');
  t.equal(lines.filter((line) => /completed/.test(line)).length, 1, 'one line says completed');

  const cancelled = await admin.createTask({ files: [file], advertise });
  await admin.cancelTask(cancelled.id);
  const cancelledWatch = await runCli(t, ['task', 'watch', cancelled.id, '--data', data]);
  t.equal(cancelledWatch.code, 6, 'cancelled with no client: exit 6');
  t.equal(cancelledWatch.stdout.trim().split('\n').length, 1, 'one line');

  const expiring = await admin.createTask({ files: [file], ttlSeconds: 1, advertise });
  const expired = await runCli(t, ['task', 'watch', expiring.id, '--data', data]);
  t.equal(expired.code, 6, 'expired with no client came: exit 6');
  t.match(expired.stdout.trim().split('\n').at(-1), /^ended \S+ expired/);

  const shown = await runCli(t, ['task', 'show', completing.id, '--data', data]);
  t.notMatch(shown.stdout, /exit -|\(exit/, 'task show prints no "exit -" for a pull without a command');
  t.notMatch(completed.stdout, /applied: applied/, 'watch does not say applied twice');
});

t.test('a watch line says a state once: "applied" alone, a failure with its message, escaped', async (t) => {
  const change = { id: 1, taskId: 'xfs651q31w5bv82y', identity: 'ab'.repeat(32), name: 'web-1', at: '2026-12-03T10:00:00.000Z' };
  t.equal(watchLine({ type: 'change', change: { ...change, state: 'applied', detail: 'applied' } }), `2026-12-03T10:00:00.000Z web-1 ${'ab'.repeat(8)} applied`);
  t.equal(watchLine({ type: 'change', change: { ...change, state: 'failed', detail: 'the --exec command exited with 1\u001b[2J' } }),
    `2026-12-03T10:00:00.000Z web-1 ${'ab'.repeat(8)} failed: the --exec command exited with 1\\u{1b}[2J`);
});

t.test('a pull says where it applied once, not in a progress line and again in the result', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const created = await (await openAdmin(t, data)).createTask({ files: [file], advertise: { host: '127.0.0.1', port: running.port } });
  const outDir = join(root, 'out');
  const pulled = await runCli(t, ['pull', '--out', outDir, '--identity-dir', join(root, 'id')], { env: { NOISE_CFG_TOKEN: created.token } });
  t.equal(pulled.code, 0, pulled.stderr);
  t.equal(pulled.stdout, `applied 1 file(s) to ${outDir}\n`);
  t.equal(`${pulled.stdout}${pulled.stderr}`.split(outDir).length - 1, 1, 'the directory is named once');
});

t.test('an expired token exits 10 before connecting, as README and --help say', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const running = await startServer(t, data);
  const created = await (await openAdmin(t, data)).createTask({ files: [file], ttlSeconds: 1, advertise: { host: '127.0.0.1', port: running.port } });
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const pulled = await runCli(t, ['pull', '--out', join(root, 'out'), '--identity-dir', join(root, 'id')], { env: { NOISE_CFG_TOKEN: created.token } });
  t.equal(pulled.code, 10, 'exit 10');
  t.match(pulled.stderr, /\(TOKEN_EXPIRED\)/);
  t.notMatch(pulled.stderr, /connecting/, 'before connecting');
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  t.match(readme, /10 bad or expired token/, 'README says 10 for an expired token');
  t.match((await runCli(t, ['pull', '--help'])).stdout, /10 bad or expired token/, 'so does pull --help');
});

t.test('--advertise is checked before anything starts: a name that does not resolve or 0.0.0.0 is exit 2, an address of no interface here a warning', async (t) => {
  const root = t.testdir();
  const fresh = join(root, 'never-created');
  const unresolved = await runCli(t, ['serve', '--data', fresh, '--listen', '127.0.0.1:0', '--api', 'off', '--advertise', 'config.no-such-host.invalid:7447']);
  t.equal(unresolved.code, 2, 'a name that does not resolve: exit 2');
  t.match(unresolved.stderr, /--advertise config\.no-such-host\.invalid:7447: config\.no-such-host\.invalid does not resolve here \(ENOTFOUND/);
  const unspecified = await runCli(t, ['serve', '--data', fresh, '--listen', '127.0.0.1:0', '--api', 'off', '--advertise', '0.0.0.0:7447']);
  t.equal(unspecified.code, 2, '0.0.0.0: exit 2');
  t.match(unspecified.stderr, /cannot connect to the unspecified address/);
  const portZero = await runCli(t, ['serve', '--data', fresh, '--listen', '127.0.0.1:0', '--api', 'off', '--advertise', '127.0.0.1:0']);
  t.equal(portZero.code, 2, 'port 0: exit 2');
  t.notOk(existsSync(fresh), 'no data directory was created');

  const data = join(root, 'data');
  const serve = await startServe(t, data, { extra: ['--advertise', '203.0.113.5:7447'] });
  t.match(serve.stderr(), /warning: --advertise 203\.0\.113\.5:7447 is not an address of this host/, 'serve warns and starts');
  const local = await runCli(t, ['task', 'create', '--data', data, '--file', join(REPO_ROOT, 'package.json'), '--advertise', 'localhost:7447', '--json']);
  t.equal(local.code, 0, local.stderr);
  t.equal(local.stderr, '', 'a name that resolves: no warning');
  const remote = await runCli(t, ['task', 'create', '--data', data, '--file', join(REPO_ROOT, 'package.json'), '--advertise', '198.51.100.7:7447', '--json']);
  t.equal(remote.code, 0);
  t.match(remote.stderr, /warning: --advertise 198\.51\.100\.7:7447 is not an address of this host/, 'task create warns too');
  t.equal(decodeToken((JSON.parse(remote.stdout) as { token: string }).token).host, '198.51.100.7', 'and uses it');
  const before = (await (await openAdmin(t, data)).listTasks()).length;
  const typo = await runCli(t, ['task', 'create', '--data', data, '--file', join(REPO_ROOT, 'package.json'), '--advertise', 'cnofig.no-such-host.invalid:7447']);
  t.equal(typo.code, 2, 'task create with a name that does not resolve: exit 2');
  t.equal((await (await openAdmin(t, data)).listTasks()).length, before, 'and no task');
});

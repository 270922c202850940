// The operator's side of the hostile edges (issue 11, SPEC.md §9): a data directory other local users can enter,
// a REST API "loopback" address that only looks like one, and client-chosen text reaching the operator's terminal
// through serve's log, task show and task watch.
import t from 'tap';
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { encodeMessage, expectMessage } from '../../lib/task/messages.js';
import { hasUnprintableCharacters } from '../../lib/task/printable.js';
import { decodeToken } from '../../lib/token/token.js';
import { connectSecure } from '../../lib/transport/secure-socket.js';
import { isLoopbackAddress, isLoopbackHost } from '../../cli/loopback.js';
import { runCli, spawnCli, startServe } from '../task/support.js';
import { CLI_BIN } from '../support/paths.js';
import { spawnWatched } from '../support/watched-process.js';

const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

t.test('a data directory open to group or others is refused with the chmod 700 fix, by serve and by task commands', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  (await TaskAdmin.open(data, { create: true })).close();
  t.equal(statSync(data).mode & 0o777, 0o700, 'a new data directory is made 0700');
  chmodSync(data, 0o755);
  await t.rejects(() => TaskAdmin.open(data), { code: 'DATA_DIR_INSECURE', message: /open to group or others \(mode 755\).*chmod 700/ });
  const serve = await runCli(t, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--api', 'off'], { env: { XDG_CONFIG_HOME: join(dir, 'xdg') } });
  t.equal(serve.code, 5, 'serve exits 5');
  t.match(serve.stderr, new RegExp(`chmod 700 ${data}`));
  t.notMatch(serve.stderr, /listening/);
  const list = await runCli(t, ['task', 'list', '--data', data]);
  t.equal(list.code, 5, 'task list exits 5 too');
  t.equal(statSync(data).mode & 0o777, 0o755, 'refused, not repaired behind the operator\'s back');
  chmodSync(data, 0o700);
  t.equal((await runCli(t, ['task', 'list', '--data', data])).code, 0, 'after the fix it opens');
});

t.test('a data directory that belongs to another user is refused, also for root', { skip: isRoot ? false : 'needs root to give a directory to another uid' }, async (t) => {
  const data = join(t.testdir(), 'data');
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, NOBODY, NOBODY);
  await t.rejects(() => TaskAdmin.open(data), { code: 'DATA_DIR_INSECURE', message: new RegExp(`belongs to uid ${NOBODY}, not to you`) });
});

t.test('--api 127.anything:PORT is judged by what the name resolves to, not by how it is spelt', async (t) => {
  for (const address of ['127.0.0.1', '127.9.8.7', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.ok(isLoopbackAddress(address), address);
  for (const address of ['10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', '0.0.0.0', '::', '127.example.net']) t.notOk(isLoopbackAddress(address), address);
  t.ok(await isLoopbackHost('localhost', '--api'), 'localhost resolves to loopback here');
  await t.rejects(isLoopbackHost('127.attacker.invalid', '--api'), { code: 'INVALID_ARGUMENT', message: /cannot resolve 127\.attacker\.invalid/ });
  const dir = t.testdir();
  const serve = await runCli(t, ['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--api', '127.attacker.invalid:0'], { env: { XDG_CONFIG_HOME: join(dir, 'xdg') } });
  t.equal(serve.code, 2, 'a name that is not known to be loopback never gets the API');
  t.match(serve.stderr, /--api: cannot resolve 127\.attacker\.invalid/);
  t.notMatch(serve.stderr, /REST API on/);
  const remote = await runCli(t, ['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--api', '0.0.0.0:0'], { env: { XDG_CONFIG_HOME: join(dir, 'xdg') } });
  t.equal(remote.code, 2, '0.0.0.0 still needs --api-allow-remote');
  t.match(remote.stderr, /not a loopback address/);
});

t.test('a client\'s result message with terminal escapes and bidi overrides reaches serve\'s log, task show and task watch escaped', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const env = { XDG_CONFIG_HOME: join(dir, 'xdg') };
  const serve = await startServe(t, data, { env });
  const source = join(dir, 'app.conf');
  writeFileSync(source, 'x = 1\n');
  const created = JSON.parse((await runCli(t, ['task', 'create', '--data', data, '--file', source, '--advertise', `127.0.0.1:${serve.port}`, '--json'], { env })).stdout) as { id: string; token: string };
  const token = decodeToken(created.token);
  const hostile = '\u001b[2J\u001b[31mOK\u001b[0m\r\n2026-12-03T00:00:00Z pull outcome=applied \u202etxt.exe\u2066';
  const watch = spawnCli(t, ['task', 'watch', created.id, '--data', data], { env });
  await watch.waitFor(/^task \S+ active/m, 'stdout');
  const connection = await connectSecure('127.0.0.1', serve.port, {
    mode: 'xxpsk3', taskId: token.taskId, psk: token.psk, staticKeyPair: loadClientKeyPair(join(dir, 'hostile')), serverPublicKey: token.serverPublicKey!,
  });
  await connection.send(encodeMessage({ type: 'HELLO', body: { protocol: 1, software: 'hostile', name: 'mallory', clientId: null, have: null, intent: 'pull' } }));
  const offer = expectMessage(await connection.receive(), ['OFFER']).body;
  let received = 0;
  while (received < offer.totalBytes) received += expectMessage(await connection.receive(), ['CHUNK']).body.byteLength;
  await connection.send(encodeMessage({ type: 'RESULT', body: { status: 'failed', exitCode: 1, message: hostile, digest: offer.digest } }));
  expectMessage(await connection.receive(), ['ACK']);
  await connection.close();
  await serve.waitFor(/outcome=failed/, 'stdout');

  const show = await runCli(t, ['task', 'show', created.id, '--data', data], { env });
  const showJson = await runCli(t, ['task', 'show', created.id, '--data', data, '--json'], { env });
  await watch.waitFor(/mallory [0-9a-f]{16} failed/, 'stdout');
  await runCli(t, ['task', 'cancel', created.id, '--data', data], { env });
  await watch.exited;
  t.match(watch.stdout(), /failed: \\u\{1b\}\[2J/, 'task watch writes the escape visibly');
  for (const [what, text] of [['serve log', serve.stdout()], ['task show', show.stdout], ['task show --json', showJson.stdout], ['task watch', watch.stdout()]] as const) {
    t.notOk(hasUnprintableCharacters(text.replace(/\n/g, '')), `${what}: no control, escape or bidi character reaches the terminal`);
  }
  t.match(show.stdout, /\\u\{1b\}\[2J/, 'task show writes the escape visibly');
  t.equal(show.stdout.split('\n').filter((line) => line.includes('pull outcome=applied')).length, 1, 'the fake log line stays inside the real one');
  t.equal((JSON.parse(showJson.stdout) as { clients: { result: { message: string } }[] }).clients[0]!.result.message, hostile, 'JSON keeps the exact text for machines');
});

t.test('serve says at start how many connections it will hold, and that a low open-files limit lowered the caps', async (t) => {
  const dir = t.testdir();
  const command = `ulimit -n 600 && exec '${process.execPath}' '${CLI_BIN}' serve --data '${join(dir, 'data')}' --listen 127.0.0.1:0 --api off --grace-seconds 1`;
  const serve = spawnWatched(t, '/bin/sh', ['-c', command], { env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'xdg') } });
  const line = await serve.waitFor(/listening .*/, 'stdout');
  t.match(line[0], /at most \d+ connections in the handshake and \d+ established, lowered to fit the open-files limit of 600/);
  const [unauthenticated, established] = /at most (\d+) connections in the handshake and (\d+) established/.exec(line[0])!.slice(1).map(Number) as [number, number];
  t.ok(unauthenticated + established + 256 <= 600, `${unauthenticated} + ${established} leave room for the store, the API and the log`);
});

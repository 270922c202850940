// The operator's CLI through real processes against a real `serve` with its REST API: task commands with --api,
// the admin token from --data or the environment, serve's API address checks, the create output options, task
// watch (piped and --json) and shell completion.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskView } from '../../lib/task/task.js';
import { decodeToken } from '../../lib/token/token.js';
import { pullAs, runCli, spawnCli, spawnProcess } from './support.js';
import { CLI_BIN } from '../support/paths.js';

const root = t.testdir({
  files: { 'app.conf': 'port = 8080\n', conf: { 'a.txt': 'a\n', nested: { 'b.txt': 'b\n' } } },
});
const data = join(root, 'data');
const appConf = join(root, 'files', 'app.conf');
// No pull may touch ~/.config, and no admin token may leak in from the environment of the test run.
const env = { XDG_CONFIG_HOME: join(root, 'xdg'), NOISE_CFG_ADMIN_TOKEN: '', NOISE_CFG_TOKEN: '' };

const serve = spawnCli(t, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--grace-seconds', '1'], env);
const listening = await serve.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
const apiLine = await serve.waitFor(/REST API on (http:\/\/127\.0\.0\.1:(\d+))\/v1\b/);
const noisePort = Number(listening[1]);
/** The API's origin, as `--api` documents it (`http://127.0.0.1:7448`). */
const api = apiLine[1]!;
/** The URL exactly as serve printed it. */
const printedUrl = `${api}/v1`;
const adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim();

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/** Creates a task through the API directly (quicker than a CLI process where the create itself is not tested). */
async function createTask(extra: Record<string, unknown> = {}): Promise<{ id: string; token: string; task: TaskView }> {
  const response = await fetch(`${api}/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ files: [{ path: 'app.conf', content: Buffer.from('port = 8080\n').toString('base64') }], ...extra }),
  });
  if (response.status !== 201) throw new Error(`POST /v1/tasks answered ${response.status}: ${await response.text()}`);
  return response.json() as Promise<{ id: string; token: string; task: TaskView }>;
}

t.test('serve printed its Noise port and its API address', async (t) => {
  t.ok(noisePort > 0);
  t.match(api, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(Number(apiLine[2]), noisePort);
  t.match(serve.stderr(), /REST API on http:\/\/127\.0\.0\.1:\d+\/v1 \(bearer token in .*admin\.token\)/);
});

t.test('task create --api prints a token that pulls the files', async (t) => {
  const result = await runCli(t, ['task', 'create', '--api', api, '--data', data, '--file', appConf, '--file', join(root, 'files', 'conf'), '--max-clients', '3', '--name', 'via api'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^ncfg1[1-9A-HJ-NP-Za-km-z]+\n$/, 'stdout is the token alone');
  const id = /created task ([0-9a-z]{16}): 3 file\(s\)/.exec(result.stderr)?.[1];
  t.ok(id, `stderr names the task: ${result.stderr}`);
  const token = result.stdout.trim();
  t.match(decodeToken(token), { host: '127.0.0.1', port: noisePort, taskId: id, mode: 'xxpsk3' }, 'the token names the Noise listener serve bound');
  const pulled = await pullAs(root, 'create', token);
  t.equal(pulled.status, 'applied');
  t.equal(pulled.taskId, id);
  t.equal(readFileSync(join(root, 'out-create', 'app.conf'), 'utf8'), 'port = 8080\n');
  t.equal(readFileSync(join(root, 'out-create', 'nested', 'b.txt'), 'utf8'), 'b\n', 'a directory keeps its relative paths');
  const shown = await fetch(`${api}/v1/tasks/${id}`, { headers: { authorization: `Bearer ${adminToken}` } });
  t.match(await shown.json(), { id, name: 'via api', maxClients: 3, files: [{ path: 'a.txt' }, { path: 'app.conf' }, { path: 'nested/b.txt' }], counts: { applied: 1 } }, 'the server holds the task');
});

t.test('task list, show, revoke and cancel through --api match the --data results', async (t) => {
  const created = await createTask({ name: 'compare' });
  const pulled = await pullAs(root, 'compare', created.token);
  t.equal(pulled.status, 'applied');

  const [listApi, listData, showApi] = await Promise.all([
    runCli(t, ['task', 'list', '--api', api, '--data', data, '--json'], env),
    runCli(t, ['task', 'list', '--data', data, '--json'], env),
    runCli(t, ['task', 'show', created.id, '--api', api, '--data', data, '--json'], env),
  ]);
  for (const result of [listApi, listData, showApi]) t.equal(result.code, 0, result.stderr);
  const tasks = JSON.parse(listApi.stdout) as TaskView[];
  t.same(tasks, JSON.parse(listData.stdout), 'list: the same array');
  t.equal(tasks[0]!.id, created.id, 'newest first');
  // `show --data` prints the same view as the task's entry in `list --data` (the show path is checked after the cancel).
  t.same(JSON.parse(showApi.stdout), tasks[0], 'show: the same object');
  t.match(tasks[0], { name: 'compare', counts: { applied: 1 } });
  const identity = (JSON.parse(showApi.stdout) as TaskView).clients[0]!.identity;
  t.match(identity, /^[0-9a-f]{64}$/);

  const revoked = await runCli(t, ['task', 'revoke', created.id, identity, '--api', api, '--data', data], env);
  t.equal(revoked.code, 0, revoked.stderr);
  t.match(revoked.stdout, new RegExp(`^revoked \\S+ ${identity} from task ${created.id}\n$`), 'names the client and its whole identity');

  const cancelled = await runCli(t, ['task', 'cancel', created.id, '--api', api, '--data', data, '--json'], env);
  t.equal(cancelled.code, 0, cancelled.stderr);
  const cancelView = JSON.parse(cancelled.stdout) as TaskView;
  t.equal(cancelView.state, 'cancelled');
  t.equal(cancelView.clients[0]!.state, 'revoked');

  const [afterCancel, again, unknown] = await Promise.all([
    runCli(t, ['task', 'show', created.id, '--data', data, '--json'], env),
    runCli(t, ['task', 'cancel', created.id, '--api', api, '--data', data], env),
    runCli(t, ['task', 'revoke', '0123456789abcdef', 'ab'.repeat(32), '--api', api, '--data', data], env),
  ]);
  t.same(JSON.parse(afterCancel.stdout), cancelView, 'the data directory sees the same revoked client and cancelled task');
  t.equal(again.code, 4, 'cancelling again: task already ended');
  t.match(again.stderr, /^noise-cfg: error: .*409.*\(TASK_ENDED\)\n$/);
  t.equal(unknown.code, 3, 'an unknown task');
  t.match(unknown.stderr, /^noise-cfg: error: .*\(TASK_NOT_FOUND\)\n$/);
});

t.test('a task id that is not one exits 3 (TASK_NOT_FOUND) with --data and with --api alike', async (t) => {
  const runs = await Promise.all(['show', 'cancel', 'token', 'delete', 'watch'].flatMap((command) => [
    runCli(t, ['task', command, 'not-a-task-id', '--data', data], env),
    runCli(t, ['task', command, 'not-a-task-id', '--api', api, '--data', data], env),
  ]));
  for (const result of runs) {
    t.equal(result.code, 3, result.stderr);
    t.match(result.stderr, /^noise-cfg: error: .*\(TASK_NOT_FOUND\)\n$/);
  }
});

t.test('task prune works through --api as on --data', async (t) => {
  const [viaApi, viaData] = await Promise.all([
    runCli(t, ['task', 'prune', '--ended-before', '3650d', '--dry-run', '--json', '--api', api, '--data', data], env),
    runCli(t, ['task', 'prune', '--ended-before', '3650d', '--dry-run', '--json', '--data', data], env),
  ]);
  t.equal(viaApi.code, 0, viaApi.stderr);
  t.equal(viaData.code, 0, viaData.stderr);
  t.same(JSON.parse(viaApi.stdout), { dryRun: true, ...JSON.parse(viaData.stdout), databaseBytes: JSON.parse(viaApi.stdout).databaseBytes });
  t.match(JSON.parse(viaApi.stdout), { dryRun: true, tasks: [], freedBytes: 0 });
});

t.test('NOISE_CFG_ADMIN_TOKEN alone works; a wrong one exits 12 with one line; neither exits 2', async (t) => {
  const nowhere = join(root, 'no-such-data');
  const [good, wrong, none] = await Promise.all([
    runCli(t, ['task', 'list', '--api', api, '--data', nowhere], { ...env, NOISE_CFG_ADMIN_TOKEN: adminToken }),
    runCli(t, ['task', 'list', '--api', api, '--data', data], { ...env, NOISE_CFG_ADMIN_TOKEN: `${adminToken.slice(0, -1)}x` }),
    runCli(t, ['task', 'list', '--api', api, '--data', nowhere], env),
  ]);
  t.equal(good.code, 0, good.stderr);
  const newest = (await (await fetch(`${api}/v1/tasks`, { headers: { authorization: `Bearer ${adminToken}` } })).json() as TaskView[])[0]!;
  t.match(good.stdout, new RegExp(`^${newest.id}  ${newest.state} +${newest.mode}  ${newest.counts.applied}(/\\d+)? applied  expires ${newest.expiresAt}  ${newest.name}$`, 'm'), 'the task list, as text');
  t.notOk(existsSync(nowhere), 'the data directory was not needed, nor created');
  t.equal(wrong.code, 12, 'a wrong admin token is an authentication failure');
  t.equal(wrong.stdout, '');
  t.equal(lines(wrong.stderr).length, 1, `one line: ${wrong.stderr}`);
  t.match(wrong.stderr, /^noise-cfg: error: .*401.*\n$/);
  t.notMatch(wrong.stderr, adminToken.slice(0, -1), 'the token is not echoed');
  t.equal(none.code, 2, 'no token at all is a usage error');
  t.match(none.stderr, /NOISE_CFG_ADMIN_TOKEN/);
  t.equal(lines(none.stderr).length, 1);
});

t.test('--api with a URL that is not http(s) exits 2 with one line', async (t) => {
  const results = await Promise.all(['ftp://127.0.0.1:21', '127.0.0.1:7448'].map((url) => runCli(t, ['task', 'list', '--api', url, '--data', data], env)));
  for (const result of results) {
    t.equal(result.code, 2, result.stderr);
    t.equal(lines(result.stderr).length, 1);
    t.match(result.stderr, /^noise-cfg: error: --api must be/);
  }
});

t.test('the API URL exactly as serve prints it works with --api', async (t) => {
  const result = await runCli(t, ['task', 'list', '--api', printedUrl, '--data', data, '--json'], env);
  t.equal(result.code, 0, `task list --api ${printedUrl}: ${result.stderr}`);
  t.ok(result.stdout !== '' && Array.isArray(JSON.parse(result.stdout || 'null')), 'prints the task list');
});

t.test('serve --api on a non-loopback address needs --api-allow-remote, and then warns', async (t) => {
  const refusedDir = join(root, 'data-refused');
  const refused = await runCli(t, ['serve', '--data', refusedDir, '--listen', '127.0.0.1:0', '--api', '0.0.0.0:0'], env);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /--api-allow-remote/);
  t.equal(lines(refused.stderr).length, 1, refused.stderr);
  t.notMatch(refused.stderr, /listening/, 'nothing was started');
  t.notOk(existsSync(refusedDir), 'nothing was created');

  const allowed = spawnCli(t, ['serve', '--data', join(root, 'data-remote'), '--listen', '127.0.0.1:0', '--api', '0.0.0.0:0', '--api-allow-remote', '--grace-seconds', '0'], env);
  await allowed.waitFor(/REST API on http:\/\/0\.0\.0\.0:\d+\/v1/);
  t.match(allowed.stderr(), /^warning: the REST API listens on 0\.0\.0\.0:\d+, reachable from the network; .*TLS.*$/m);
  allowed.child.kill('SIGTERM');
  const { code } = await allowed.exited;
  t.equal(code, 0, 'stops cleanly on SIGTERM');
});

t.test('task create -q prints only the token and nothing on stderr', async (t) => {
  const result = await runCli(t, ['task', 'create', '-q', '--api', api, '--data', data, '--file', appConf], env);
  t.equal(result.code, 0);
  t.match(result.stdout, /^ncfg1\S+\n$/);
  t.equal(result.stderr, '');
});

t.test('--print-pull-command prints a line that /bin/sh runs to apply the files', async (t) => {
  const result = await runCli(t, ['task', 'create', '--print-pull-command', '--api', api, '--data', data, '--file', appConf, '--file', join(root, 'files', 'conf')], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(lines(result.stdout).length, 1, 'one line');
  const line = result.stdout.trim();
  t.match(line, /^NOISE_CFG_TOKEN='ncfg1[1-9A-HJ-NP-Za-km-z]+' /);
  t.match(line, / pull --out /);
  t.ok(line.endsWith(' pull --out ./config'), line);
  const out = join(root, 'sh-out');
  const command = `${line.slice(0, -'./config'.length)}'${out}'`;
  // The line is for a client machine, where noise-cfg is installed: a `noise-cfg` on PATH stands for that.
  const bin = join(root, 'installed-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'noise-cfg'), `#!/bin/sh\nexec '${process.execPath}' '${CLI_BIN}' "$@"\n`, { mode: 0o755 });
  t.match(line, /' noise-cfg pull --out /, 'it runs noise-cfg, not this machine\'s node and script path');
  const ran = spawnProcess(t, '/bin/sh', ['-c', command], { ...env, PATH: `${bin}:${process.env['PATH'] ?? ''}` });
  const { code } = await ran.exited;
  t.equal(code, 0, ran.stderr());
  t.match(ran.stdout(), /^applied 3 file\(s\) to /);
  t.equal(readFileSync(join(out, 'app.conf'), 'utf8'), 'port = 8080\n');
  t.equal(readFileSync(join(out, 'nested', 'b.txt'), 'utf8'), 'b\n');
});

t.test('--qr draws the token as block characters on stderr', async (t) => {
  const result = await runCli(t, ['task', 'create', '--qr', '--api', api, '--data', data, '--file', appConf], env);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^ncfg1\S+\n$/, 'stdout still holds just the token');
  const qrLines = lines(result.stderr).filter((line) => /^[█▀▄ ]+$/.test(line));
  t.ok(qrLines.length >= 20, `${qrLines.length} lines of blocks`);
  t.equal(new Set(qrLines.map((line) => line.length)).size, 1, 'a square of equal lines');
  t.ok(/^█+$/.test(qrLines[0]!), 'a light quiet zone above');
  t.ok(qrLines.every((line) => /^[█▀]{2}/.test(line) && /[█▀]{2}$/.test(line)), 'and on both sides');
});

t.test('task watch, piped, prints one plain line per event while two clients pull, and exits 0 on completion', async (t) => {
  const created = await createTask({ maxClients: 2 });
  const watch = spawnCli(t, ['task', 'watch', created.id, '--api', api, '--data', data], env);
  await watch.waitFor(new RegExp(`^task ${created.id} active: 0/2 applied, 0 failed, 0 receiving\\n`), 'stdout');
  const [alpha, beta] = await Promise.all([pullAs(root, 'watch-alpha', created.token), pullAs(root, 'watch-beta', created.token)]);
  t.equal(alpha.status, 'applied');
  t.equal(beta.status, 'applied');
  const { code } = await watch.exited;
  t.equal(code, 0, watch.stderr());
  t.equal(watch.stderr(), '');
  const output = lines(watch.stdout());
  t.equal(output[0], `task ${created.id} active: 0/2 applied, 0 failed, 0 receiving`);
  t.equal(output.at(-1), `ended ${created.id} completed: 2/2 applied, 0 failed, 0 receiving`);
  const middle = output.slice(1, -1);
  const changeLine = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:(watch-alpha|watch-beta) [0-9a-f]{16}|task) (\w+)/;
  t.ok(middle.every((line) => changeLine.test(line)), `every line in between is a change: ${middle.join(' | ')}`);
  for (const name of ['watch-alpha', 'watch-beta']) {
    t.same(middle.filter((line) => changeLine.exec(line)?.[1] === name).map((line) => changeLine.exec(line)?.[2]), ['offered', 'applied'], `${name}: offered then applied`);
  }
  // The task's own "completed" change is not printed: the end line says it, with the counts (one final line).
  t.same(middle.filter((line) => / task /.test(line)), [], 'no task-level change line before the end line');
  t.equal(output.filter((line) => /completed/.test(line)).length, 1, 'one line says completed');
  t.equal(middle.length, 4);
});

t.test('task watch --json prints task, change and end objects, one per line', async (t) => {
  const created = await createTask({ maxClients: 1 });
  // Through the data directory this time: the same output from the store's own follower.
  const watch = spawnCli(t, ['task', 'watch', created.id, '--data', data, '--json'], env);
  await watch.waitFor(/^\{"type":"task"/, 'stdout');
  t.equal((await pullAs(root, 'watch-json', created.token)).status, 'applied');
  const { code } = await watch.exited;
  t.equal(code, 0, watch.stderr());
  const events = lines(watch.stdout()).map((line) => JSON.parse(line) as { type: string; task?: TaskView; change?: { state: string; name: string | null } });
  t.equal(events[0]!.type, 'task');
  t.equal(events[0]!.task!.id, created.id);
  t.equal(events.at(-1)!.type, 'end');
  t.equal(events.at(-1)!.task!.state, 'completed');
  t.ok(events.slice(1, -1).every((event) => event.type === 'change'), 'changes in between');
  t.same(events.slice(1, -1).filter((event) => event.change!.name === 'watch-json').map((event) => event.change!.state), ['offered', 'applied']);
});

t.test('a watched task that gets cancelled makes task watch exit 6', async (t) => {
  const created = await createTask();
  const watch = spawnCli(t, ['task', 'watch', created.id, '--api', api, '--data', data], env);
  await watch.waitFor(new RegExp(`^task ${created.id} active`), 'stdout');
  const cancel = await fetch(`${api}/v1/tasks/${created.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` } });
  t.equal(cancel.status, 200);
  const { code } = await watch.exited;
  t.equal(code, 6);
  t.equal(lines(watch.stdout()).at(-1), `ended ${created.id} cancelled: 0 applied, 0 failed, 0 receiving`);
});

t.test('noise-cfg completion prints a bash completion script', async (t) => {
  const result = await runCli(t, ['completion'], env);
  t.equal(result.code, 0);
  t.match(result.stdout, /noise-cfg/);
  t.match(result.stdout, /\bcomplete\b/);
  t.match(result.stdout, /^complete -o bashdefault -o default -F \S+ noise-cfg$/m);
});

// A misspelt option never acts (issue 12 item 1, SPEC.md §6): every command, run with an option that does not
// exist, exits 2 with one line naming it, before its handler runs: no connection is made, nothing is written,
// no task is created.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { CLI_BIN } from '../support/paths.js';

function run(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('every command with a misspelt option exits 2 naming it, and does nothing', async (t) => {
  const root = t.testdir();
  // Anything that connects (a pull, a channel connect, --api) would reach this listener.
  let connections = 0;
  const sentinel = net.createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => sentinel.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => sentinel.close(() => resolve())));
  const port = (sentinel.address() as net.AddressInfo).port;
  // A real task on a real data directory, so that a command that ran would find something to act on.
  const data = join(root, 'data');
  const admin = await TaskAdmin.open(data, { create: true });
  const created = await admin.createTask({ files: [{ path: 'a.conf', content: Buffer.from('a = 1\n') }], advertise: { host: '127.0.0.1', port } });
  const tasksBefore = (await admin.listTasks()).length;
  admin.close();
  const pskFile = join(root, 'psk.hex');
  writeFileSync(pskFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const work = join(root, 'cwd');
  mkdirSync(work);
  const env = { NOISE_CFG_TOKEN: created.token, XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root };
  const cases: [string, string[]][] = [
    ['serve', ['serve', '--data', data, '--listen', '127.0.0.1:0', '--api', 'off', '--lissen', '127.0.0.1:0']],
    ['task create', ['task', 'create', '--data', data, '--file', join(root, 'data'), '--max-client', '1']],
    ['task list', ['task', 'list', '--data', data, '--jsn']],
    ['task show', ['task', 'show', created.id, '--data', data, '--jsno']],
    ['task watch', ['task', 'watch', created.id, '--data', data, '--poll']],
    ['task cancel', ['task', 'cancel', created.id, '--data', data, '--forse']],
    ['task revoke', ['task', 'revoke', created.id, 'f'.repeat(64), '--data', data, '--all']],
    ['pull', ['pull', '--out', join(work, 'out'), '--dryrun']],
    ['pull --check', ['pull', '--check', '--identity-dir', join(work, 'id'), '--chek']],
    ['token inspect', ['token', 'inspect', '--jason']],
    ['channel listen', ['channel', 'listen', '--listen', '127.0.0.1:0', '--psk-file', pskFile, '--key-file', join(work, 'server.key'), '--ecko']],
    ['channel connect', ['channel', 'connect', `127.0.0.1:${port}`, '--psk-file', pskFile, '--key-file', join(work, 'client.key'), '--pinn', 'ab']],
    ['demo', ['demo', '--jsn']],
  ];
  for (const [name, args] of cases) {
    const result = await run(work, args, env);
    const misspelt = args.at(-1)!.startsWith('--') ? args.at(-1)! : args.at(-2)!;
    t.equal(result.code, 2, `${name}: exit 2`);
    t.match(result.stderr, new RegExp(`^noise-cfg: Unknown arguments?: ${misspelt.slice(2)}`, 'm'), `${name}: the line names ${misspelt}`);
    t.equal(result.stderr.split('\n').filter((line) => line.startsWith('noise-cfg:')).length, 1, `${name}: one error line`);
    t.equal(result.stdout, '', `${name}: nothing on stdout`);
  }
  t.equal(connections, 0, 'no command connected anywhere');
  t.same(readdirSync(work), [], 'nothing was written in the working directory (no --out, no default data directory)');
  const after = await TaskAdmin.open(data);
  t.equal((await after.listTasks()).length, tasksBefore, 'no task was created');
  t.equal((await after.showTask(created.id)).state, 'active', 'the task was not cancelled');
  after.close();
});

t.test('usage errors name the option, suggest the right one, and stop before the command acts', async (t) => {
  const root = t.testdir();
  let connections = 0;
  const sentinel = net.createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => sentinel.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => sentinel.close(() => resolve())));
  const port = (sentinel.address() as net.AddressInfo).port;
  const data = join(root, 'data');
  const admin = await TaskAdmin.open(data, { create: true });
  const created = await admin.createTask({ files: [{ path: 'a.conf', content: Buffer.from('a = 1\n') }], advertise: { host: '127.0.0.1', port } });
  admin.close();
  const pskFile = join(root, 'psk.hex');
  writeFileSync(pskFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const work = join(root, 'cwd');
  mkdirSync(work);
  const env = { NOISE_CFG_TOKEN: created.token, XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root };
  const cases: [string, string[], RegExp][] = [
    ['a typo gets a suggestion', ['pull', '--out', join(work, 'out'), '--dryrun'], /^noise-cfg: Unknown argument: dryrun \(did you mean --dry-run\?\)$/m],
    ['a typo of a task option gets a suggestion', ['task', 'create', '--data', data, '--file', pskFile, '--max-client', '1'], /did you mean --max-clients\?/],
    ['a missing required option is named', ['task', 'create', '--data', data], /^noise-cfg: Missing required argument: file$/m],
    ['conflicting options are refused', ['pull', '--dry-run', '--check', '--out', join(work, 'out')], /^noise-cfg: --dry-run and --check do not go together$/m],
    ['an option without its value is named', ['pull', '--out'], /^noise-cfg: --out needs a value$/m],
    ['a repeated single-valued option is refused', ['pull', '--out', join(work, 'a'), '--identity-dir', join(work, 'x'), '--identity-dir', join(work, 'y')], /^noise-cfg: --identity-dir was given 2 times; give it once$/m],
    ['a bad duration is refused before connecting', ['pull', '--out', join(work, 'out'), '--retry', 'soon'], /--retry must look like 30s/],
    ['a bad file mode is refused before connecting', ['pull', '--out', join(work, 'out'), '--max-file-mode', '999'], /--max-file-mode must be octal/],
    ['a bad ttl is refused before reading files', ['task', 'create', '--data', data, '--file', join(root, 'missing'), '--ttl', 'forever'], /--ttl must look like 90s/],
    ['a zero client limit is refused', ['task', 'create', '--data', data, '--file', pskFile, '--max-clients', '0'], /--max-clients must be a whole number of at least 1/],
    ['channel connect without --pin creates no key file', ['channel', 'connect', `127.0.0.1:${port}`, '--psk-file', pskFile, '--key-file', join(work, 'client.key')], /needs --pin/],
    ['serve with a bad address stops before opening the data directory', ['serve', '--data', join(work, 'new-data'), '--listen', 'nowhere'], /--listen must be HOST:PORT/],
  ];
  for (const [name, args, wanted] of cases) {
    const result = await run(work, args, env);
    t.equal(result.code, 2, `${name}: exit 2`);
    t.match(result.stderr, wanted, `${name}: the message`);
    t.notMatch(result.stderr, /unexpected error|\n\s+at /, `${name}: no unexpected error, no stack`);
    t.equal(result.stdout, '', `${name}: nothing on stdout`);
  }
  t.equal(connections, 0, 'nothing connected');
  t.same(readdirSync(work), [], 'nothing was written (no --out, no key file, no data directory)');
  const after = await TaskAdmin.open(data);
  t.equal((await after.listTasks()).length, 1, 'no task was created');
  after.close();
});

t.test('with --json every failure prints one JSON error object on stdout, with the exit code of its error', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  (await TaskAdmin.open(data, { create: true })).close();
  const env = { XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root, NOISE_CFG_TOKEN: '' };
  const cases: [string, string[], number, string][] = [
    ['task show of no task', ['task', 'show', 'tsk_nosuchtask', '--data', data, '--json'], 3, 'TASK_NOT_FOUND'],
    ['task cancel of no task', ['task', 'cancel', 'tsk_nosuchtask', '--data', data, '--json'], 3, 'TASK_NOT_FOUND'],
    ['task create of a missing file', ['task', 'create', '--data', data, '--file', join(root, 'missing.conf'), '--json'], 2, 'FILE_UNREADABLE'],
    ['token inspect of a non-token', ['token', 'inspect', 'not-a-token', '--json'], 10, 'TOKEN_MALFORMED'],
    ['pull with a mistyped token', ['pull', 'nc1-mistyped', '--out', join(root, 'out'), '--json'], 10, 'TOKEN_MALFORMED'],
    ['a usage error', ['task', 'list', '--data', data, '--json', '--bogus'], 2, 'INVALID_ARGUMENT'],
  ];
  for (const [name, args, exitCode, code] of cases) {
    const result = await run(root, args, env);
    t.equal(result.code, exitCode, `${name}: exit ${exitCode}`);
    const lines = result.stdout.trim().split('\n');
    t.equal(lines.length, 1, `${name}: one line on stdout`);
    const parsed = JSON.parse(lines[0]!) as { error?: { code: string; message: string }; status?: string };
    t.equal(parsed.error?.code, code, `${name}: error.code ${code}`);
    t.type(parsed.error?.message, 'string', `${name}: error.message`);
    if (args[0] === 'pull') t.equal(parsed.status, 'failed', `${name}: pull keeps its result shape (status failed)`);
    t.equal(result.stderr.split('\n').filter((line) => line.startsWith('noise-cfg:')).length, 1, `${name}: one error line on stderr`);
  }
});

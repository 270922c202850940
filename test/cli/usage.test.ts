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
  const admin = TaskAdmin.open(data, { create: true });
  const created = admin.createTask({ files: [{ path: 'a.conf', content: Buffer.from('a = 1\n') }], advertise: { host: '127.0.0.1', port } });
  const tasksBefore = admin.listTasks().length;
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
  const after = TaskAdmin.open(data);
  t.equal(after.listTasks().length, tasksBefore, 'no task was created');
  t.equal(after.showTask(created.id).state, 'active', 'the task was not cancelled');
  after.close();
});

// `task watch` on a terminal: the live view (SPEC.md §8), driven through a pseudo-terminal made by script(1)
// from util-linux, while two clients pull.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_BIN } from '../support/paths.js';
import { pullAs, spawnProcess, startApi, taskBody } from './support.js';

const SCRIPT = '/usr/bin/script';
const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

t.test('on a terminal, task watch draws a live view with a progress bar and exits 0 on completion', { timeout: 60_000 }, async (t) => {
  t.ok(existsSync(SCRIPT), 'script(1) from util-linux makes the pseudo-terminal');
  if (!existsSync(SCRIPT)) return;
  const root = t.testdir();
  const api = await startApi(t, join(root, 'data'), { eventPollMs: 20 });
  const response = await fetch(`${api.base}/v1/tasks`, { method: 'POST', headers: api.headers(true), body: JSON.stringify(taskBody({ 'app.conf': 'x = 1\n' }, { maxClients: 2, name: 'tty' })) });
  t.equal(response.status, 201);
  const task = (await response.json()) as { id: string; token: string };

  const command = [process.execPath, CLI_BIN, 'task', 'watch', task.id, '--api', api.base].map(quote).join(' ');
  // -q no banner, -f flush at once, -e exit with the command's code, -c the command; the typescript goes nowhere.
  const watch = spawnProcess(t, SCRIPT, ['-qfec', command, '/dev/null'], { NOISE_CFG_ADMIN_TOKEN: api.adminToken, XDG_CONFIG_HOME: join(root, 'xdg'), TERM: 'xterm' });
  await watch.waitFor(/\[\.{30}\] 0\/2 applied/, 'stdout');

  const [alpha, beta] = await Promise.all([pullAs(root, 'alpha', task.token), pullAs(root, 'beta', task.token)]);
  t.equal(alpha.status, 'applied');
  t.equal(beta.status, 'applied');
  const { code } = await watch.exited;
  t.equal(code, 0, `exit code; output: ${JSON.stringify(watch.stdout())}`);

  const output = watch.stdout();
  t.ok(output.startsWith('\u001b[H\u001b[2J'), 'each frame clears the screen');
  t.ok(output.split('\u001b[H\u001b[2J').length >= 3, 'several frames');
  t.match(output, new RegExp(`task ${task.id} \\(tty\\)  active`), 'the task line');
  t.match(output, /\[###/, 'the progress bar fills');
  t.match(output, /\[#{30}\] 2\/2 applied/, 'full at the end');
  t.match(output, /connected 0 {2}receiving 0 {2}applied 2 {2}failed 0 {2}revoked 0/, 'counts per state');
  t.match(output, /Z alpha [0-9a-f]{16} applied/, 'the latest events name the clients');
  t.match(output, /Z beta [0-9a-f]{16} applied/);
  t.notMatch(output, /^ended /m, 'no plain lines on a terminal');
});

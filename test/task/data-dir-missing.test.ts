// Only serve creates a data directory (issue 12 item 5, SPEC.md §4.1): TaskAdmin.open and every `task` command
// with a missing data directory fail with DATA_DIR_MISSING (exit 5), naming the absolute path and --data /
// NOISE_CFG_DATA, and create nothing; NOISE_CFG_DATA is the default of --data, and --data wins over it.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import { runCli } from './run-cli.js';

t.test('task list in an empty working directory exits 5 naming where it looked, and creates nothing', async (t) => {
  const cwd = t.testdir();
  const result = await runCli(cwd, ['task', 'list']);
  t.equal(result.code, 5, 'exit 5 (data directory)');
  t.match(result.stderr, `no data directory at ${join(cwd, 'noise-cfg-data')}`, 'the absolute path it looked at');
  t.match(result.stderr, /--data DIR or NOISE_CFG_DATA=DIR/, 'how to point elsewhere');
  t.match(result.stderr, /DATA_DIR_MISSING/);
  t.equal(result.stdout, '', 'no "no tasks" line');
  t.same(readdirSync(cwd), [], 'nothing was created');
});

t.test('task create without a data directory exits 5 and mints no token', async (t) => {
  const cwd = t.testdir({ 'app.conf': 'a = 1\n' });
  const result = await runCli(cwd, ['task', 'create', '--file', 'app.conf', '--json']);
  t.equal(result.code, 5);
  t.notMatch(result.stdout, /ncfg1/, 'no token printed');
  t.same(readdirSync(cwd), ['app.conf'], 'no data directory appeared');
});

t.test('TaskAdmin.open refuses a missing directory and a directory that is not a data directory', async (t) => {
  const root = t.testdir();
  await t.rejects(() => TaskAdmin.open(join(root, 'absent')), { code: 'DATA_DIR_MISSING', message: new RegExp(`no data directory at ${join(root, 'absent')}`) });
  t.notOk(existsSync(join(root, 'absent')), 'not created');
  const empty = join(root, 'empty');
  mkdirSync(empty, { mode: 0o700 });
  await t.rejects(() => TaskAdmin.open(empty), { code: 'DATA_DIR_MISSING', message: /no noise-cfg data directory/ });
  t.same(readdirSync(empty), [], 'no keys or database were made in it');
  // create: true is how a library user (or a test) sets one up without a server.
  (await TaskAdmin.open(join(root, 'made'), { create: true })).close();
  (await TaskAdmin.open(join(root, 'made'))).close();
  t.pass('an existing data directory opens without create');
});

t.test('NOISE_CFG_DATA is the default of --data, and --data wins over it', async (t) => {
  const root = t.testdir();
  const data = join(root, 'data');
  const admin = await TaskAdmin.open(data, { create: true });
  const created = await admin.createTask({ name: 'from-env', files: [{ path: 'a.conf', content: Buffer.from('a\n') }], advertise: { host: '127.0.0.1', port: 7447 } });
  admin.close();
  const cwd = join(root, 'cwd');
  mkdirSync(cwd);

  const fromEnvironment = await runCli(cwd, ['task', 'list', '--json'], { NOISE_CFG_DATA: data });
  t.equal(fromEnvironment.code, 0, fromEnvironment.stderr);
  t.same((JSON.parse(fromEnvironment.stdout) as { id: string }[]).map((task) => task.id), [created.id], 'the task of $NOISE_CFG_DATA');

  const overridden = await runCli(cwd, ['task', 'list', '--json', '--data', data], { NOISE_CFG_DATA: join(root, 'elsewhere') });
  t.equal(overridden.code, 0, '--data wins over NOISE_CFG_DATA');

  const wrongEnvironment = await runCli(cwd, ['task', 'show', created.id], { NOISE_CFG_DATA: join(root, 'elsewhere') });
  t.equal(wrongEnvironment.code, 5);
  t.match(wrongEnvironment.stderr, `no data directory at ${join(root, 'elsewhere')}`, 'names the directory NOISE_CFG_DATA gave');
  t.same(readdirSync(cwd), [], 'nothing created in the working directory');
  t.notOk(existsSync(join(root, 'elsewhere')));
});

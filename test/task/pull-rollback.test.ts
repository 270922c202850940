// Issue 12 item 3 (SPEC.md §4.7 "--verify", "--exec", "Rollback"): a failed --verify changes nothing, a failed
// --exec goes back to the previous version unless --keep-on-failure, the previous version is kept until the next
// successful apply, and `noise-cfg rollback --out DIR` goes back one version by hand.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pull } from '../../lib/task/client.js';
import { clientSetup, textFiles } from './client-support.js';
import { runCli } from './support.js';

const OLD = textFiles({ 'app.conf': 'version = old\n' });
const NEW = textFiles({ 'app.conf': 'version = new\n', 'new-only.conf': 'x\n' });
const NEWER = textFiles({ 'app.conf': 'version = newer\n' });

function appConf(outDir: string): string {
  return readFileSync(join(outDir, 'app.conf'), 'utf8');
}

/** The version directories kept beside `outDir` (no dot-names: lock, temporaries). */
function versions(outDir: string): string[] {
  const directory = join(outDir, '..', `.${outDir.split('/').pop()}.noise-cfg`);
  return readdirSync(directory).filter((name) => !name.startsWith('.') && name !== 'state.json').sort();
}

t.test('a failing --verify leaves the old files current and untouched, the server records failed, VERIFY_FAILED', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(OLD)).token)).status, 'applied');
  const linkBefore = readlinkSync(s.outDir);
  const newer = await s.create(NEW);
  const seen = join(s.dir, 'verify-saw.txt');
  const result = await s.pullInto(newer.token, {
    verify: `cat "$NOISE_CFG_STAGED_DIR/app.conf" > '${seen}'; exit 3`,
    exec: `echo must-not-run > '${join(s.dir, 'exec-ran')}'`,
  });
  t.equal(result.status, 'failed');
  t.equal(result.failure?.code, 'VERIFY_FAILED');
  t.match(result.failure?.message, /--verify command exited with 3; nothing was changed/);
  t.equal(readFileSync(seen, 'utf8'), 'version = new\n', '--verify ran on the staged new files');
  t.equal(appConf(s.outDir), 'version = old\n', 'the old files are still current');
  t.equal(readlinkSync(s.outDir), linkBefore, 'the link did not move');
  t.notOk(existsSync(join(s.dir, 'exec-ran')), '--exec did not run');
  t.same(versions(s.outDir), [linkBefore.split('/').pop()], 'no staged version left behind');
  const client = (await s.admin.showTask(newer.id)).clients[0]!;
  t.equal(client.state, 'failed', 'the server recorded failed');
  t.match(client.result?.message, /--verify command exited with 3/);
});

t.test('--verify gets NOISE_CFG_STAGED_DIR and the cleaned environment, and exit 0 lets the apply go on', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(NEW);
  const envFile = join(s.dir, 'verify-env.txt');
  process.env.NOISE_CFG_TOKEN = token;
  process.env.NOISE_CFG_ADMIN_TOKEN = 'admin-secret-0123456789';
  t.teardown(() => {
    delete process.env.NOISE_CFG_TOKEN;
    delete process.env.NOISE_CFG_ADMIN_TOKEN;
  });
  const result = await s.pullInto(token, { verify: `env > '${envFile}'; test -f "$NOISE_CFG_STAGED_DIR/new-only.conf"` });
  t.equal(result.status, 'applied');
  const environment = readFileSync(envFile, 'utf8');
  t.match(environment, /^NOISE_CFG_STAGED_DIR=.*\/\.out\.noise-cfg\/\.staging-\d+-[0-9a-f]+$/m, 'the staged directory is named');
  t.match(environment, /^NOISE_CFG_TASK_ID=/m);
  t.notMatch(environment, /^NOISE_CFG_(ADMIN_)?TOKEN=/m, 'neither secret variable');
  t.notOk(environment.includes(token), 'the token text appears nowhere');
  t.equal(appConf(s.outDir), 'version = new\n');
});

t.test('a failing --exec rolls back to the previous version: rolledBack true, old files current, server sees failed', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(OLD)).token)).status, 'applied');
  const newer = await s.create(NEW);
  const result = await s.pullInto(newer.token, { exec: 'exit 4' });
  t.equal(result.status, 'failed');
  t.equal(result.failure?.code, 'COMMAND_FAILED');
  t.equal(result.exitCode, 4);
  t.equal(result.rolledBack, true, 'rolledBack: true');
  t.match(result.failure?.message, /the command exited with 4; rolled back/);
  t.same(result.files, [], 'no new file stays written');
  t.equal(appConf(s.outDir), 'version = old\n', 'the old files are current again');
  t.notOk(existsSync(join(s.outDir, 'new-only.conf')));
  t.equal(versions(s.outDir).length, 1, 'the failed version was removed');
  const client = (await s.admin.showTask(newer.id)).clients[0]!;
  t.equal(client.state, 'failed', 'the server recorded failed');
  t.match(client.result?.message, /rolled back/);
});

t.test('with --keep-on-failure a failing --exec leaves the new files current (rolledBack false); the previous one stays for rollback', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(OLD)).token)).status, 'applied');
  const result = await s.pullInto((await s.create(NEW)).token, { exec: 'exit 5', keepOnFailure: true });
  t.equal(result.status, 'failed');
  t.equal(result.rolledBack, false, 'rolledBack: false');
  t.match(result.failure?.message, /--keep-on-failure/);
  t.equal(appConf(s.outDir), 'version = new\n', 'the new files stay');
  t.equal(versions(s.outDir).length, 2, 'the previous version is kept');
  const back = await runCli(t, ['rollback', '--out', s.outDir, '--json']);
  t.equal(back.code, 0, back.stderr);
  t.equal(appConf(s.outDir), 'version = old\n', 'rollback brought the old files back');
});

t.test('a failing --exec on the first pull has nothing to roll back to: the new files stay, rolledBack false', async (t) => {
  const s = await clientSetup(t);
  const result = await s.pullInto((await s.create(NEW)).token, { exec: 'exit 6' });
  t.equal(result.rolledBack, false);
  t.match(result.failure?.message, /no previous version to roll back to/);
  t.equal(appConf(s.outDir), 'version = new\n');
});

t.test('the previous version is kept until the next successful apply; a rollback after a failed --exec still leaves one', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(OLD)).token)).status, 'applied');
  t.equal((await s.pullInto((await s.create(NEW)).token)).status, 'applied');
  t.equal(versions(s.outDir).length, 2, 'current and previous after two successful applies');
  t.equal((await s.pullInto((await s.create(NEWER)).token)).status, 'applied');
  t.equal(versions(s.outDir).length, 2, 'still two after a third: the oldest was removed');
  const failing = await s.pullInto((await s.create(OLD)).token, { exec: 'exit 1' });
  t.equal(failing.rolledBack, true);
  t.equal(appConf(s.outDir), 'version = newer\n', 'back at the last good version');
  const back = await runCli(t, ['rollback', '--out', s.outDir]);
  t.equal(back.code, 0, back.stderr);
  t.equal(appConf(s.outDir), 'version = new\n', 'the version before it was still kept, and rollback went to it');
});

t.test('rollback twice: the first goes back one version and records it, the second refuses (ROLLBACK_UNAVAILABLE, exit 3)', async (t) => {
  const s = await clientSetup(t);
  const first = await s.create(OLD);
  const second = await s.create(NEW);
  t.equal((await s.pullInto(first.token)).status, 'applied');
  t.equal((await s.pullInto(second.token)).status, 'applied');
  const back = await runCli(t, ['rollback', '--out', s.outDir, '--json']);
  t.equal(back.code, 0, back.stderr);
  const result = JSON.parse(back.stdout) as { status: string; taskId: string; from: { taskId: string } };
  t.equal(result.status, 'rolled-back');
  t.equal(result.taskId, first.id, 'the first task is current again');
  t.equal(result.from.taskId, second.id);
  t.equal(appConf(s.outDir), 'version = old\n');
  const state = JSON.parse(readFileSync(join(s.dir, '.out.noise-cfg', 'state.json'), 'utf8')) as { taskId: string };
  t.equal(state.taskId, first.id, 'state.json says what is there now');
  t.equal((await s.pullInto(first.token)).status, 'up-to-date', 'a pull of the restored task is up to date');
  const again = await runCli(t, ['rollback', '--out', s.outDir]);
  t.equal(again.code, 3, 'the second rollback refuses with exit 3');
  t.match(again.stderr, /has no previous version to go back to.*ROLLBACK_UNAVAILABLE/);
  t.equal(appConf(s.outDir), 'version = old\n', 'and changes nothing');
  t.equal((await s.pullInto(second.token)).status, 'applied', 'a pull of the task it left applies it again');
  t.equal(appConf(s.outDir), 'version = new\n');
});

t.test('rollback on a fresh directory refuses (ROLLBACK_UNAVAILABLE, exit 3) and creates nothing', async (t) => {
  const dir = t.testdir({ empty: {} });
  for (const out of [join(dir, 'missing'), join(dir, 'empty')]) {
    const result = await runCli(t, ['rollback', '--out', out]);
    t.equal(result.code, 3, `${out}: exit 3`);
    t.match(result.stderr, /holds no version applied by noise-cfg.*ROLLBACK_UNAVAILABLE/);
  }
  t.same(readdirSync(dir).sort(), ['empty'], 'no versions directory was made');
});

t.test('rollback refuses to go back to a previous version that was changed on disk (APPLY_FAILED)', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(OLD)).token)).status, 'applied');
  const oldVersion = readlinkSync(s.outDir);
  t.equal((await s.pullInto((await s.create(NEW)).token)).status, 'applied');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(s.dir, oldVersion, 'app.conf'), 'version = ODD\n');
  const result = await runCli(t, ['rollback', '--out', s.outDir]);
  t.equal(result.code, 15, result.stderr);
  t.match(result.stderr, /previous version .* was changed on disk \(app\.conf was changed\)/);
  t.equal(appConf(s.outDir), 'version = new\n', 'nothing moved');
});

t.test('a library pull() returns rolledBack only when --exec ran and failed', async (t) => {
  const s = await clientSetup(t);
  const result = await pull({ token: (await s.create(OLD)).token, outDir: s.outDir, identityDir: s.identityDir, exec: 'true' });
  t.equal(result.status, 'applied');
  t.notOk('rolledBack' in result, 'no rolledBack on success');
});

t.test('--verify, --exec or --keep-on-failure with --dry-run or --check, and --keep-on-failure without --exec, are usage errors (exit 2) that do nothing', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const cases: [string[], RegExp][] = [
    [['--dry-run', '--verify', 'true'], /--verify applies only to a pull that writes files; --dry-run writes nothing/],
    [['--check', '--exec', 'true', '--verify', 'true'], /--verify and --exec apply only to a pull that writes files; --check/],
    [['--keep-on-failure'], /--keep-on-failure goes with --exec/],
  ];
  for (const [extra, message] of cases) {
    // The token is never read: the command line fails to parse first.
    const result = await runCli(t, ['pull', '--out', out, '--retry', '0', ...extra], { env: { NOISE_CFG_TOKEN: 'not-read' } });
    t.equal(result.code, 2, `${extra.join(' ')}: exit 2`);
    t.match(result.stderr, message);
  }
  t.notOk(existsSync(out), 'nothing was made');
});

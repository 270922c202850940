// The client host's other users and concurrent pulls (SPEC.md §4.7): directories above --out that others may write
// or own, a versions directory or an OUT link planted by another user (uid 65534 when the tests run as root), a
// link planted at a temporary name, staging and version directories replaced mid-pull, and two pulls at once.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync,
  statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileDigest, taskDigest, type FileEntry } from '../../lib/task/digests.js';
import { pull, type PullOptions, type PullResult } from '../../lib/task/client.js';
import { OutputLock } from '../../lib/task/output-lock.js';
import type { TaskFileInput } from '../../lib/task/file-set.js';
import { REPO_ROOT } from '../support/paths.js';
import { openAdmin, readTree, spawnCli, startServer, type RunningServer } from '../task/support.js';
import type { TaskAdmin } from '../../lib/task/admin.js';

/** The other local user: nobody. */
const OTHER_UID = 65534;
const isRoot = process.geteuid?.() === 0;
const NEEDS_ROOT = 'needs root: planting files owned by another uid (65534) takes chown';

const FILES: TaskFileInput[] = [
  { path: 'etc/app.conf', content: Buffer.from('listen = 8080\n') },
  { path: 'bin/run.sh', content: Buffer.from('#!/bin/sh\nexec app\n'), mode: 0o755 },
];

interface Setup {
  dir: string;
  running: RunningServer;
  admin: TaskAdmin;
  create: (files?: readonly TaskFileInput[]) => Promise<{ id: string; token: string }>;
  pullInto: (outDir: string, token: string, options?: Partial<PullOptions>) => Promise<PullResult>;
  /** How many connections the server has seen (after settling: every earlier one is logged). */
  connections: (token: string) => Promise<number>;
}

async function setup(t: Test): Promise<Setup> {
  const dir = t.testdir();
  const dataDir = join(dir, 'data');
  const running = await startServer(t, dataDir);
  const admin = await openAdmin(t, dataDir);
  let settles = 0;
  return {
    dir, running, admin,
    create: async (files = FILES) => {
      const created = await admin.createTask({ files, mode: 'nnpsk0', advertise: { host: '127.0.0.1', port: running.port } });
      return { id: created.id, token: created.token };
    },
    pullInto: (outDir, token, options = {}) => pull({ token, outDir, identityDir: join(dir, 'identity'), name: 'client', ...options }),
    connections: async (token) => {
      const name = `settle-${++settles}`;
      await pull({ token, intent: 'check', identityDir: join(dir, `identity-${name}`), name });
      await running.waitForLog((record) => record.event === 'pull' && record.client === name);
      return running.connectionLogs().filter((record) => !record.client?.startsWith('settle-')).length;
    },
  };
}

function expected(files: readonly TaskFileInput[]): Record<string, { content: string; mode: number }> {
  const umask = process.umask(0o022);
  process.umask(umask);
  return Object.fromEntries(files.map((file) => [file.path, { content: Buffer.from(file.content).toString('latin1'), mode: (file.mode ?? 0o644) & 0o755 & ~umask }]));
}

function listing(directory: string): string[] {
  return existsSync(directory) ? readdirSync(directory).sort() : [];
}

/** A directory with exactly `mode` (chmod, so the umask does not interfere). */
function directoryWithMode(path: string, mode: number): string {
  mkdirSync(path);
  chmodSync(path, mode);
  return path;
}

t.test('dirname(--out): group- or world-writable without the sticky bit, here or above, is APPLY_FAILED before connecting, with the chmod fix', async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const cases: [string, number, RegExp][] = [
    ['group', 0o775, /is writable by group \(mode 775\) without the sticky bit, so other users could replace what noise-cfg writes there; run chmod g-w [^ ]+ \(or chmod \+t [^)]+\), or choose an --out in a directory only you can write/],
    ['others', 0o757, /is writable by others \(mode 757\).*run chmod o-w /],
    ['both', 0o777, /is writable by group and others \(mode 777\).*run chmod g-w,o-w /],
  ];
  for (const [name, mode, message] of cases) {
    const parent = directoryWithMode(join(s.dir, `parent-${name}`), mode);
    const out = join(parent, 'app');
    await t.rejects(s.pullInto(out, token), { code: 'APPLY_FAILED', message }, `parent mode ${mode.toString(8)}`);
    await t.rejects(s.pullInto(out, token), { message: new RegExp(`^cannot pull into ${out}: ${parent} is writable`) }, 'the message names --out and the directory');
    t.same(listing(parent), [], 'nothing made in it');
  }

  const grandparent = directoryWithMode(join(s.dir, 'open-above'), 0o777);
  const parent = directoryWithMode(join(grandparent, 'deploy'), 0o755);
  await t.rejects(s.pullInto(join(parent, 'app'), token), { code: 'APPLY_FAILED', message: new RegExp(`: ${grandparent} is writable by group and others`) }, 'an open directory above the parent is refused too');

  // The parent is judged by its real path: a link to an open directory does not hide it.
  const linkedParent = join(s.dir, 'linked-parent');
  symlinkSync(join(s.dir, 'parent-both'), linkedParent);
  await t.rejects(s.pullInto(join(linkedParent, 'app'), token), { code: 'APPLY_FAILED', message: new RegExp(`${join(s.dir, 'parent-both')} is writable`) }, 'resolved with realpath first');

  await t.rejects(s.pullInto(join(s.dir, 'missing', 'app'), token), { code: 'APPLY_FAILED', message: /its parent directory .*missing does not exist; create it first/ }, 'a missing parent is not created');
  t.notOk(existsSync(join(s.dir, 'missing')));

  t.equal(await s.connections(token), 0, 'none of the refused pulls connected');

  const sticky = directoryWithMode(join(s.dir, 'sticky'), 0o1777);
  t.equal((await s.pullInto(join(sticky, 'app'), token)).status, 'applied', 'a world-writable parent with the sticky bit (like /tmp) is fine');
  t.same(readTree(join(sticky, 'app')), expected(FILES));
  t.equal(lstatSync(join(sticky, '.app.noise-cfg')).mode & 0o777, 0o700, 'the versions directory is made 0700');
});

t.test('dirname(--out) owned by another user is APPLY_FAILED', { skip: isRoot ? false : NEEDS_ROOT }, async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const theirs = directoryWithMode(join(s.dir, 'theirs'), 0o755);
  chownSync(theirs, OTHER_UID, OTHER_UID);
  await t.rejects(s.pullInto(join(theirs, 'app'), token), { code: 'APPLY_FAILED', message: new RegExp(`${theirs} belongs to uid ${OTHER_UID}, not to you \\(uid 0\\) or root, so that user could replace what noise-cfg writes there`) });
  t.same(listing(theirs), []);
  const above = directoryWithMode(join(s.dir, 'theirs-above'), 0o755);
  chownSync(above, OTHER_UID, OTHER_UID);
  const mine = directoryWithMode(join(above, 'mine'), 0o755);
  await t.rejects(s.pullInto(join(mine, 'app'), token), { code: 'APPLY_FAILED', message: new RegExp(`${above} belongs to uid ${OTHER_UID}`) }, 'also above the parent');
  t.equal(await s.connections(token), 0);
});

t.test('dirname(--out) opened to others while the pull runs is refused right before the swap', async (t) => {
  const s = await setup(t);
  const parent = directoryWithMode(join(s.dir, 'deploy'), 0o755);
  const out = join(parent, 'app');
  t.equal((await s.pullInto(out, (await s.create()).token)).status, 'applied');
  const before = readlinkSync(out);
  const v2 = [{ path: 'etc/app.conf', content: Buffer.from('version 2\n') }];
  const result = await s.pullInto(out, (await s.create(v2)).token, {
    onProgress: (line) => {
      if (line.startsWith('received and checked')) chmodSync(parent, 0o777);
    },
  });
  t.equal(result.status, 'failed');
  t.equal(result.failure?.code, 'APPLY_FAILED');
  t.match(result.failure?.message, /is writable by group and others \(mode 777\)/);
  t.equal(readlinkSync(out), before, 'the old version stays current');
  t.same(readTree(out), expected(FILES));
});

t.test('a versions directory planted by another user in a sticky parent is refused, and nothing is written into it', { skip: isRoot ? false : NEEDS_ROOT }, async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const shared = directoryWithMode(join(s.dir, 'tmp'), 0o1777);
  const planted = directoryWithMode(join(shared, '.app.noise-cfg'), 0o777);
  chownSync(planted, OTHER_UID, OTHER_UID);
  // The attack on the old temporary name: their directory holds a link at .state.json.<pid> to a file of root's.
  const victim = join(s.dir, 'victim.conf');
  writeFileSync(victim, 'root\'s precious file\n');
  const trap = join(planted, `.state.json.${process.pid}`);
  symlinkSync(victim, trap);
  lchownSync(trap, OTHER_UID, OTHER_UID);
  await t.rejects(s.pullInto(join(shared, 'app'), token), { code: 'APPLY_FAILED', message: new RegExp(`the versions directory ${planted} belongs to uid ${OTHER_UID}, not to you \\(uid 0\\): someone else made it.*remove it`) });
  t.same(listing(planted), [`.state.json.${process.pid}`], 'nothing was written into their directory');
  t.equal(readFileSync(victim, 'utf8'), 'root\'s precious file\n', 'the victim is unchanged');
  t.notOk(existsSync(join(shared, 'app')));
  t.equal(statSync(planted).uid, OTHER_UID, 'and their directory is not adopted (still theirs)');
  t.equal(await s.connections(token), 0, 'refused before connecting');
});

t.test('an OUT link planted by another user in a sticky parent, pointing at .OUT.noise-cfg/x, is refused, not adopted', { skip: isRoot ? false : NEEDS_ROOT }, async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const shared = directoryWithMode(join(s.dir, 'tmp'), 0o1777);
  const out = join(shared, 'app');
  symlinkSync('.app.noise-cfg/x', out);
  lchownSync(out, OTHER_UID, OTHER_UID);
  await t.rejects(s.pullInto(out, token), { code: 'APPLY_FAILED', message: new RegExp(`${out} is a symbolic link owned by uid ${OTHER_UID}, not by you \\(uid 0\\)`) });
  t.equal(readlinkSync(out), '.app.noise-cfg/x', 'their link is left as it was');
  t.notOk(existsSync(join(shared, '.app.noise-cfg')), 'no versions directory made');
  const emptyDirectory = directoryWithMode(join(shared, 'other'), 0o755);
  chownSync(emptyDirectory, OTHER_UID, OTHER_UID);
  await t.rejects(s.pullInto(emptyDirectory, token), { code: 'APPLY_FAILED', message: /is an empty directory owned by uid 65534/ }, 'their empty directory is not taken over either');
  t.equal(await s.connections(token), 0);
});

t.test('a versions directory that is a link, or ours but group-writable, is refused; ours with read bits for others is tightened to 0700', async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const decoy = directoryWithMode(join(s.dir, 'decoy'), 0o700);
  symlinkSync(decoy, join(s.dir, '.linked.noise-cfg'));
  await t.rejects(s.pullInto(join(s.dir, 'linked'), token), { code: 'APPLY_FAILED', message: /the versions directory .*\.linked\.noise-cfg is a symbolic link, not a directory noise-cfg made/ });
  t.same(listing(decoy), [], 'nothing written where the link points');

  directoryWithMode(join(s.dir, '.open.noise-cfg'), 0o775);
  await t.rejects(s.pullInto(join(s.dir, 'open'), token), { code: 'APPLY_FAILED', message: /is writable by group or others \(mode 775\).*chmod 700/ });

  const old = directoryWithMode(join(s.dir, '.old.noise-cfg'), 0o755);
  t.equal((await s.pullInto(join(s.dir, 'old'), token)).status, 'applied', 'a 0755 versions directory of ours (older versions made it so) is used');
  t.equal(lstatSync(old).mode & 0o777, 0o700, 'and tightened to 0700');
  t.equal(await s.connections(token), 1, 'only the last pull connected');
});

t.test('a symlink planted at the old state.json temporary name does not make a pull overwrite another file', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  const versions = directoryWithMode(join(s.dir, '.app.noise-cfg'), 0o700);
  const victim = join(s.dir, 'victim.conf');
  writeFileSync(victim, 'precious\n');
  // Older versions wrote .state.json.<pid> with a plain open: this link would have received the state.
  symlinkSync(victim, join(versions, `.state.json.${process.pid}`));
  t.equal((await s.pullInto(out, (await s.create()).token)).status, 'applied');
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the victim is unchanged');
  t.notOk(lstatSync(join(versions, 'state.json')).isSymbolicLink(), 'state.json is a file of its own');
  t.equal(statSync(join(versions, 'state.json')).mode & 0o777, 0o600, 'mode 0600');
  t.notOk(existsSync(join(versions, `.state.json.${process.pid}`)), 'the planted link was removed (not followed)');
  // And a link planted at state.json itself is replaced by rename, never written through.
  const stateLinkVictim = join(s.dir, 'victim-2.conf');
  writeFileSync(stateLinkVictim, 'precious too\n');
  renameSync(join(versions, 'state.json'), join(s.dir, 'state.json.saved'));
  symlinkSync(stateLinkVictim, join(versions, 'state.json'));
  t.equal((await s.pullInto(out, (await s.create([{ path: 'x', content: Buffer.from('2') }])).token)).status, 'applied');
  t.equal(readFileSync(stateLinkVictim, 'utf8'), 'precious too\n');
});

t.test('a staging directory replaced by a link to a decoy is found before any file is written: APPLY_FAILED, the decoy untouched', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  const decoy = directoryWithMode(join(s.dir, 'decoy'), 0o755);
  const versions = join(s.dir, '.app.noise-cfg');
  let replaced = '';
  const result = await s.pullInto(out, (await s.create()).token, {
    onProgress: (line) => {
      if (!line.startsWith('receiving')) return;
      const staging = listing(versions).find((name) => name.startsWith('.staging-'))!;
      renameSync(join(versions, staging), join(s.dir, 'staging-moved-away'));
      symlinkSync(decoy, join(versions, staging));
      replaced = staging;
    },
  });
  t.ok(replaced !== '', 'the staging directory was replaced at "receiving"');
  t.equal(result.status, 'failed');
  t.equal(result.failure?.code, 'APPLY_FAILED');
  t.match(result.failure?.message, /the staging directory .* was replaced while the pull ran/);
  t.same(listing(decoy), [], 'nothing was written into the decoy');
  t.notOk(existsSync(out), 'nothing made current');
  t.ok(lstatSync(join(versions, replaced)).isSymbolicLink(), 'the link is left alone (not followed by the clean-up)');
});

t.test('a staging directory swapped for another between the digest check and the swap is APPLY_FAILED; its files never become current', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  const versions = join(s.dir, '.app.noise-cfg');
  t.equal((await s.pullInto(out, (await s.create()).token)).status, 'applied');
  const before = readlinkSync(out);
  const result = await s.pullInto(out, (await s.create([{ path: 'etc/app.conf', content: Buffer.from('version 2\n') }])).token, {
    onProgress: (line) => {
      if (!line.startsWith('received and checked')) return;
      const staging = listing(versions).find((name) => name.startsWith('.staging-'))!;
      renameSync(join(versions, staging), join(s.dir, 'verified-moved-away'));
      mkdirSync(join(versions, staging, 'etc'), { recursive: true });
      writeFileSync(join(versions, staging, 'etc', 'app.conf'), 'evil\n');
    },
  });
  t.equal(result.status, 'failed');
  t.equal(result.failure?.code, 'APPLY_FAILED');
  t.match(result.failure?.message, /the staging directory .* was replaced while the pull ran/);
  t.equal(readlinkSync(out), before, 'the link still points to the first version');
  t.same(readTree(out), expected(FILES), 'the first version, intact');
});

t.test('a version directory or the OUT link replaced before --exec: the command does not run, and the next pull repairs instead of "up to date"', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  const versions = join(s.dir, '.app.noise-cfg');
  const evil = directoryWithMode(join(s.dir, 'evil'), 0o755);
  mkdirSync(join(evil, 'etc'));
  writeFileSync(join(evil, 'etc', 'app.conf'), 'evil\n');
  const tamperings: [string, () => void][] = [
    ['the version directory renamed away and another put in its place', () => {
      const version = readlinkSync(out).split('/')[1]!;
      renameSync(join(versions, version), join(s.dir, `moved-${version}`));
      mkdirSync(join(versions, version, 'etc'), { recursive: true });
      writeFileSync(join(versions, version, 'etc', 'app.conf'), 'evil\n');
    }],
    ['the OUT link swapped for one to another directory', () => {
      symlinkSync(evil, join(s.dir, 'evil-link'));
      renameSync(join(s.dir, 'evil-link'), out);
    }],
  ];
  for (const [index, [what, tamper]] of tamperings.entries()) {
    // A task of its own each time: an identity that applied a task is up to date with it for good.
    const { token } = await s.create();
    const marker = join(s.dir, `command-ran-${index}`);
    const result = await s.pullInto(out, token, {
      exec: `touch '${marker}'; cat "$NOISE_CFG_OUT_DIR/etc/app.conf" >> '${marker}'`,
      onProgress: (line) => {
        if (line.startsWith('running:')) tamper();
      },
    });
    t.equal(result.status, 'failed', what);
    t.equal(result.failure?.code, 'APPLY_FAILED');
    t.match(result.failure?.message, /was replaced while the pull ran/);
    t.notOk(existsSync(marker), `${what}: the command did not run`);
    if (lstatSync(out).isSymbolicLink() && !readlinkSync(out).startsWith('.app.noise-cfg/')) {
      // A link noise-cfg did not make is never adopted, not even to repair: the person removes it.
      await t.rejects(s.pullInto(out, token), { code: 'APPLY_FAILED', message: /is a symbolic link that noise-cfg does not manage/ }, `${what}: the foreign link is not adopted`);
      unlinkSync(out);
    }
    const again = await s.pullInto(out, token, { exec: `cat "$NOISE_CFG_OUT_DIR/etc/app.conf" > '${marker}'` });
    t.equal(again.status, 'applied', `${what}: the next pull applies again (not "up to date")`);
    t.equal(readFileSync(marker, 'utf8'), 'listen = 8080\n', 'and its command runs on the real files');
    t.same(readTree(out), expected(FILES));
  }
});

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

t.test('a pull that finds the lock held by a live pull waits, bounded by lockTimeoutMs, then says who holds it', async (t) => {
  const s = await setup(t);
  const { token } = await s.create();
  const out = join(s.dir, 'app');
  const versions = directoryWithMode(join(s.dir, '.app.noise-cfg'), 0o700);
  const holder = await OutputLock.acquire(versions, { timeoutMs: 0, outDir: out });
  const progress: string[] = [];
  await t.rejects(s.pullInto(out, token, { lockTimeoutMs: 200, onProgress: (line) => progress.push(line) }), {
    code: 'APPLY_FAILED', message: new RegExp(`^another noise-cfg pull \\(pid ${process.pid}\\) is applying to ${out}; wait for it or try again`),
  });
  t.match(progress, [new RegExp(`^waiting for another noise-cfg pull \\(pid ${process.pid}\\) applying to ${out}$`)], 'one progress line while waiting');
  t.equal(await s.connections(token), 0, 'it did not connect');
  const waiting = s.pullInto(out, token, { lockTimeoutMs: 60_000, onProgress: (line) => {
    if (line.startsWith('waiting')) void holder.release();
  } });
  t.equal((await waiting).status, 'applied', 'it goes on once the holder releases');
  t.same(listing(versions).filter((name) => name.startsWith('.')), [], 'no lock or temporary left');
});

t.test('a stale lock (its pid is dead) is broken; when several waiters find it at once exactly one holds the lock at a time', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  const versions = directoryWithMode(join(s.dir, '.app.noise-cfg'), 0o700);
  const dead = await deadPid();
  const stale = `${JSON.stringify({ pid: dead, nonce: randomBytes(16).toString('hex') })}\n`;
  writeFileSync(join(versions, '.lock'), stale);
  t.equal((await s.pullInto(out, (await s.create()).token, { lockTimeoutMs: 0 })).status, 'applied', 'a pull breaks a dead pull\'s lock at once');
  // A restarted container often runs with the same pid: a lock with our pid that this process does not hold is stale.
  writeFileSync(join(versions, '.lock'), `${JSON.stringify({ pid: process.pid, nonce: randomBytes(16).toString('hex') })}\n`);
  t.equal((await s.pullInto(out, (await s.create()).token, { lockTimeoutMs: 0 })).status, 'applied', 'a lock left by an earlier process with this pid is broken too');

  // In one process: 12 acquirers race for the same stale lock, each counting holders while it holds it.
  for (let round = 0; round < 5; round++) {
    writeFileSync(join(versions, '.lock'), stale.replace(/"nonce":"[0-9a-f]+"/, `"nonce":"${randomBytes(16).toString('hex')}"`));
    let holders = 0;
    let most = 0;
    await Promise.all(Array.from({ length: 12 }, async () => {
      const lock = await OutputLock.acquire(versions, { timeoutMs: 60_000, outDir: out });
      holders++;
      most = Math.max(most, holders);
      await new Promise((resolve) => setImmediate(resolve));
      holders--;
      await lock.release();
    }));
    t.equal(most, 1, `round ${round}: never two holders`);
  }

  // Across processes: children of the built library, all started on a stale lock, log when they hold it.
  const log = join(s.dir, 'holders.log');
  writeFileSync(log, '');
  writeFileSync(join(versions, '.lock'), stale);
  const script = `
    import { appendFileSync } from 'node:fs';
    const { OutputLock } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'lib', 'task', 'output-lock.js'))});
    for (let i = 0; i < 5; i++) {
      const lock = await OutputLock.acquire(${JSON.stringify(versions)}, { timeoutMs: 60000, outDir: 'x' });
      appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n');
      for (let j = 0; j < 3; j++) await new Promise((resolve) => setImmediate(resolve));
      appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
      await lock.release();
    }`;
  const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const codes = await Promise.all(children.map((child) => new Promise<number | null>((resolve) => child.on('exit', resolve))));
  t.same(codes, [0, 0, 0, 0], 'every child took the lock five times');
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.equal(lines.length, 40);
  let isNested = true;
  for (let index = 0; index < lines.length; index += 2) {
    const [enter, leave] = [lines[index]!, lines[index + 1]!];
    if (!enter.startsWith('in ') || leave !== enter.replace('in ', 'out ')) isNested = false;
  }
  t.ok(isNested, 'the log is strictly "in P, out P" pairs: never two processes holding the lock');
  t.same(listing(versions).filter((name) => name.startsWith('.lock')), [], 'no lock, breaker or temporary left');
});

/** Asserts that OUT resolves to a complete version whose task digest is one of `digests`. */
function checkComplete(t: Test, out: string, digests: ReadonlySet<string>, what: string): void {
  const tree = readTree(out);
  const entries: FileEntry[] = Object.entries(tree).map(([path, file]) => {
    const content = Buffer.from(file.content, 'latin1');
    return { path, mode: file.mode, size: content.byteLength, digest: fileDigest(content) };
  });
  t.ok(digests.has(taskDigest(entries)), `${what}: OUT resolves to a complete version of the task`);
}

function roundFiles(round: number): TaskFileInput[] {
  // The content and the file set change every round, so that a mixed or dangling version shows.
  return [
    { path: 'etc/app.conf', content: Buffer.from(`round = ${round}\n`) },
    { path: `etc/round-${round % 3}.conf`, content: randomBytes(1000 + round * 37) },
    ...(round % 2 === 0 ? [{ path: 'var/big.bin', content: randomBytes(200_000) }] : []),
  ];
}

function modeExpected(files: readonly TaskFileInput[]): FileEntry[] {
  const tree = expected(files);
  return files.map((file) => ({ path: file.path, mode: tree[file.path]!.mode, size: file.content.byteLength, digest: fileDigest(Buffer.from(file.content)) }));
}

t.test('two pulls at once into one --out, 44 rounds in one process and 4 with two CLI processes: both succeed and OUT is always a complete version', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'app');
  let waited = 0;
  for (let round = 0; round < 44; round++) {
    const files = roundFiles(round);
    const { token } = await s.create(files);
    const digests = new Set([taskDigest(modeExpected(files))]);
    const results = await Promise.all(['a', 'b'].map((who) => pull({
      token, outDir: out, identityDir: join(s.dir, `identity-${who}`), name: who,
      onProgress: (line) => {
        if (line.startsWith('waiting')) waited++;
      },
    })));
    t.same(results.map((result) => result.status === 'applied' || result.status === 'up-to-date'), [true, true], `round ${round}: both succeeded (${results.map((result) => result.status).join(', ')})`);
    checkComplete(t, out, digests, `round ${round}`);
    // Issue 12 item 3: the previous version is kept for a rollback, so one or two version directories.
    const kept = listing(join(s.dir, '.app.noise-cfg')).filter((name) => name !== 'state.json');
    t.ok(kept.length >= 1 && kept.length <= 2 && kept.every((name) => !name.startsWith('.')), `round ${round}: the current and at most one previous version, no lock or temporaries left (${kept.join(', ')})`);
  }
  t.comment(`in-process rounds: ${waited} pulls waited for the other's lock`);
  t.ok(waited > 0, 'the pulls did meet at the lock');

  for (let round = 44; round < 48; round++) {
    const files = roundFiles(round);
    const { token } = await s.create(files);
    const children = ['a', 'b'].map((who) => spawnCli(t, ['pull', '--out', out, '--identity-dir', join(s.dir, `identity-${who}`), '--name', who, '--json'], { env: { NOISE_CFG_TOKEN: token } }));
    const exits = await Promise.all(children.map((child) => child.exited));
    t.same(exits.map((exit) => exit.code), [0, 0], `CLI round ${round}: both exited 0 (${children.map((child) => child.stderr().trim().split('\n').at(-1)).join(' | ')})`);
    checkComplete(t, out, new Set([taskDigest(modeExpected(files))]), `CLI round ${round}`);
  }
});

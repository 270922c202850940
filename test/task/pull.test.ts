// pull against a real TaskServer over 127.0.0.1, in both modes (SPEC.md §4.6, §4.7): nested files applied by
// several identities, up to date, expired / cancelled / full / revoked, wrong and corrupted tokens, --exec, dry run
// and check, version replacement, refused output directories, unsafe task paths, malicious servers, and a client
// killed in the middle of the content.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { isNoiseCfgError } from '../../lib/errors.js';
import { generateKeyPair } from '../../lib/noise/keys.js';
import { fileDigest, taskDigest, type FileEntry } from '../../lib/task/digests.js';
import { encodeMessage, expectMessage, type Result } from '../../lib/task/messages.js';
import { CHUNK_CONTENT_BYTES } from '../../lib/task/task-content.js';
import { pull, type PullOptions, type PullResult } from '../../lib/task/client.js';
import { escapeUnprintable } from '../../lib/task/printable.js';
import { generateTaskId } from '../../lib/token/task-id.js';
import { decodeToken, encodeToken } from '../../lib/token/token.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { SecureServer } from '../../lib/transport/secure-server.js';
import { connectSecure } from '../../lib/transport/secure-socket.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import type { TaskServerOptions } from '../../lib/task/server.js';
import type { TaskAdmin } from '../../lib/task/admin.js';
import type { TaskFileInput } from '../../lib/task/file-set.js';
import { fileStamps, openAdmin, readTree, spawnCli, startServer, type RunningServer, type TreeFile } from './support.js';

type Mode = 'xxpsk3' | 'nnpsk0';
const MODES: readonly Mode[] = ['xxpsk3', 'nnpsk0'];

const NESTED: TaskFileInput[] = [
  { path: 'etc/app.conf', content: Buffer.from('listen = 8080\nworkers = 4\n') },
  { path: 'etc/conf.d/a.conf', content: Buffer.from('a = 1\n'), mode: 0o600 },
  { path: 'bin/run.sh', content: Buffer.from('#!/bin/sh\nexec /usr/bin/app "$@"\n'), mode: 0o755 },
];

/** This process's umask (set back at once; the tests run on the main thread). */
function currentUmask(): number {
  const umask = process.umask(0o022);
  process.umask(umask);
  return umask;
}

/** The tree a pull writes: the offered modes within the default maxFileMode, with the umask applied. */
function expectedTree(files: readonly TaskFileInput[]): Record<string, TreeFile> {
  return Object.fromEntries(files.map((file) => [file.path, { content: Buffer.from(file.content).toString('latin1'), mode: (file.mode ?? 0o644) & 0o755 & ~currentUmask() }]));
}

interface Setup {
  dir: string;
  dataDir: string;
  running: RunningServer;
  admin: TaskAdmin;
  /** Set to move the server's clock; null is the real clock. */
  setServerClock: (ms: number | null) => void;
  create: (files?: readonly TaskFileInput[], options?: { ttlSeconds?: number; maxClients?: number; nowMs?: number }) => Promise<{ id: string; token: string; expiresAtMs: number }>;
  /** Pulls with the identity called `who` (its own identity directory), into `out` (default: out-<who>). */
  pullAs: (who: string, token: string, options?: Partial<PullOptions>) => Promise<PullResult>;
  outDir: (who: string) => string;
  identityDir: (who: string) => string;
  /** Pulls with intent check as a fresh identity and waits for its log line: every earlier connection is logged by then. */
  settleLogs: (token: string) => Promise<void>;
}

async function setup(t: Test, mode: Mode, options: { adminNow?: () => number; contentCacheBytes?: number; server?: Partial<TaskServerOptions> } = {}): Promise<Setup> {
  const dir = t.testdir();
  const dataDir = join(dir, 'data');
  let serverClock: number | null = null;
  const running = await startServer(t, dataDir, {
    now: () => serverClock ?? Date.now(),
    ...(options.contentCacheBytes === undefined ? {} : { contentCacheBytes: options.contentCacheBytes }),
    ...options.server,
  });
  const admin = await openAdmin(t, dataDir, options.adminNow ? { now: options.adminNow } : {});
  const identityDir = (who: string): string => join(dir, 'identities', who);
  const outDir = (who: string): string => join(dir, `out-${who}`);
  let settles = 0;
  return {
    dir, dataDir, running, admin, identityDir, outDir,
    setServerClock: (ms) => {
      serverClock = ms;
    },
    create: async (files = NESTED, createOptions = {}) => {
      const created = await admin.createTask({ files, mode, advertise: { host: '127.0.0.1', port: running.port }, ...createOptions });
      return { id: created.id, token: created.token, expiresAtMs: Date.parse(created.expiresAt) };
    },
    pullAs: (who, token, pullOptions = {}) => pull({ token, outDir: outDir(who), identityDir: identityDir(who), name: who, ...pullOptions }),
    settleLogs: async (token) => {
      const name = `settle-${++settles}`;
      // A new identity's check of a completed task is refused `completed`; either answer is logged.
      const result = await pull({ token, intent: 'check', identityDir: identityDir(name), name }).catch((error: unknown) => {
        if (isNoiseCfgError(error, 'REJECTED') && /: completed:/.test(error.message)) return { status: 'checked' };
        throw error;
      });
      if (result.status !== 'checked') throw new Error(`settle pull: ${result.status}`);
      await running.waitForLog((record) => record.event === 'pull' && record.client === name);
    },
  };
}

function listing(directory: string): string[] {
  return existsSync(directory) ? readdirSync(directory).sort() : [];
}

for (const mode of MODES) {
  t.test(`${mode}: three identities apply nested files; the server records each as applied`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    const results = await Promise.all(['a', 'b', 'c'].map((who) => s.pullAs(who, token)));
    for (const [index, who] of ['a', 'b', 'c'].entries()) {
      const result = results[index]!;
      t.equal(result.status, 'applied', `${who}: applied`);
      t.equal(result.taskId, id);
      t.same([...result.files].sort(), NESTED.map((file) => file.path).sort(), `${who}: files written`);
      t.equal(result.isAcknowledged, true, `${who}: acknowledged`);
      t.same(readTree(s.outDir(who)), expectedTree(NESTED), `${who}: exactly the task's files, bytes and modes`);
      const out = s.outDir(who);
      t.ok(lstatSync(out).isSymbolicLink(), `${who}: --out is a symbolic link`);
      t.match(readlinkSync(out), new RegExp(`^\\.out-${who}\\.noise-cfg/${id}-[0-9a-f]{16}-\\d+$`), `${who}: into .out-${who}.noise-cfg/`);
      const state = JSON.parse(readFileSync(join(s.dir, `.out-${who}.noise-cfg`, 'state.json'), 'utf8')) as { taskId: string; digest: string };
      t.equal(state.taskId, id);
    }
    const view = await s.admin.showTask(id);
    t.equal(view.state, 'active');
    t.equal(view.clients.length, 3, 'three client records');
    t.same(view.clients.map((client) => client.name).sort(), ['a', 'b', 'c']);
    for (const client of view.clients) {
      t.equal(client.state, 'applied', `${client.name}: applied`);
      t.same(client.result, { exitCode: null, message: 'applied' }, `${client.name}: result with exit code null`);
      if (mode === 'xxpsk3') t.match(client.identity, /^[0-9a-f]{64}$/, 'identity is the static public key in hex');
      else t.equal(client.identity, readFileSync(join(s.identityDir(client.name), 'client-id'), 'utf8').trim(), 'identity is the client id');
    }
    t.equal(new Set(view.clients.map((client) => client.identity)).size, 3, 'three distinct identities');
    t.equal(view.counts.applied, 3);
    const pulls = await s.running.waitForPullLogs(3);
    t.same(pulls.map((record) => record.outcome), ['applied', 'applied', 'applied'], 'one log line per connection');
    t.ok(pulls.every((record) => record.task === id && typeof record.bytes === 'number' && record.bytes > 0));
  });

  t.test(`${mode}: files across CHUNK boundaries apply byte for byte, from the content cache and streamed from the store`, async (t) => {
    const random = randomBytes;
    const files: TaskFileInput[] = [
      { path: 'big/a.bin', content: random(CHUNK_CONTENT_BYTES + 7) },
      { path: 'big/empty', content: Buffer.alloc(0) },
      { path: 'big/b.bin', content: random(3) },
      { path: 'big/c.bin', content: random(2 * CHUNK_CONTENT_BYTES - 5) },
    ];
    for (const [how, contentCacheBytes] of [['cached', undefined], ['streamed', 0]] as const) {
      const s = await setup(t, mode, { contentCacheBytes });
      const { token } = await s.create(files);
      const result = await s.pullAs(how, token);
      t.equal(result.status, 'applied', `${how}: applied`);
      t.same(readTree(s.outDir(how)), expectedTree(files), `${how}: exactly the task's bytes`);
      const [log] = await s.running.waitForPullLogs(1);
      t.equal(log!.bytes, files.reduce((sum, file) => sum + file.content.byteLength, 0), `${how}: the log counts the content bytes sent`);
    }
  });

  t.test(`${mode}: a re-pull by the same identity is up to date and touches nothing`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    t.equal((await s.pullAs('a', token)).status, 'applied');
    const out = s.outDir('a');
    const link = readlinkSync(out);
    const stamps = fileStamps(out, NESTED.map((file) => file.path));
    const versions = listing(join(s.dir, '.out-a.noise-cfg'));
    const again = await s.pullAs('a', token);
    t.equal(again.status, 'up-to-date');
    t.same(again.files, []);
    t.equal(readlinkSync(out), link, 'the link is unchanged');
    t.same(fileStamps(out, NESTED.map((file) => file.path)), stamps, 'inodes and mtimes unchanged');
    t.same(listing(join(s.dir, '.out-a.noise-cfg')), versions, 'no new version directory');
    t.equal((await s.admin.showTask(id)).clients.length, 1);
    t.equal((await s.admin.showTask(id)).clients[0]!.state, 'applied');
    t.same((await s.running.waitForPullLogs(2)).map((record) => record.outcome).sort(), ['applied', 'up-to-date']);

    // The same identity with a fresh --out sends no `have`: "up to date" means the files are there, so it gets them.
    const elsewhere = await s.pullAs('a', token, { outDir: join(s.dir, 'out-a2') });
    t.equal(elsewhere.status, 'applied', 'a new --out always gets the files, even for an identity that applied');
    t.same(Object.keys(readTree(join(s.dir, 'out-a2'))).sort(), NESTED.map((file) => file.path).sort(), 'and they are there');
  });

  t.test(`${mode}: an expired token fails locally before any connection (TOKEN_EXPIRED)`, async (t) => {
    const s = await setup(t, mode);
    const { token, expiresAtMs } = await s.create(NESTED, { ttlSeconds: 60 });
    await t.rejects(s.pullAs('a', token, { now: () => expiresAtMs }), { code: 'TOKEN_EXPIRED' }, 'at exactly the expiry');
    await t.rejects(s.pullAs('a', token, { now: () => expiresAtMs + 3_600_000 }), { code: 'TOKEN_EXPIRED' }, 'an hour later');
    await s.settleLogs(token);
    t.same(s.running.connectionLogs().map((record) => record.client), ['settle-1'], 'the server saw only the later check');
    t.same(listing(s.dir).filter((name) => name.includes('out-a')), [], 'nothing written');
  });

  t.test(`${mode}: the server refuses an expired task at exactly expiresAt by its own clock (REJECTED expired)`, async (t) => {
    const s = await setup(t, mode);
    const { id, token, expiresAtMs } = await s.create(NESTED, { ttlSeconds: 3600 });
    s.setServerClock(expiresAtMs);
    await t.rejects(s.pullAs('a', token), { code: 'REJECTED', message: /expired/ });
    t.equal((await s.running.waitForPullLogs(1))[0]!.outcome, 'rejected:expired');
    t.same((await s.admin.showTask(id)).clients, [], 'no client record');
    t.notOk(existsSync(s.outDir('a')), 'nothing written');
    s.setServerClock(expiresAtMs - 1);
    t.equal((await s.pullAs('a', token)).status, 'applied', 'one millisecond earlier the task is active');
  });

  t.test(`${mode}: a task expired on the server while the client clock says otherwise is REJECTED expired`, async (t) => {
    const past = Date.now() - 2 * 3600_000;
    const s = await setup(t, mode, { adminNow: () => past });
    const { id, token, expiresAtMs } = await s.create(NESTED, { ttlSeconds: 3600 });
    t.ok(expiresAtMs < Date.now(), 'expired an hour ago by the real clock');
    await t.rejects(s.pullAs('a', token), { code: 'TOKEN_EXPIRED' }, 'the real clock: refused locally');
    await t.rejects(s.pullAs('a', token, { now: () => expiresAtMs - 60_000 }), { code: 'REJECTED', message: /expired/ }, 'a client clock before the expiry: refused by the server');
    t.same((await s.admin.showTask(id)).clients, []);
    t.equal((await (await openAdmin(t, s.dataDir)).showTask(id)).state, 'expired', 'expired by the real clock');
  });

  t.test(`${mode}: a cancelled task is REJECTED cancelled`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    t.equal((await s.pullAs('a', token)).status, 'applied');
    t.equal((await s.admin.cancelTask(id)).state, 'cancelled');
    await t.rejects(s.pullAs('b', token), { code: 'REJECTED', message: /cancelled/ }, 'a new identity');
    await t.rejects(s.pullAs('a', token), { code: 'REJECTED', message: /cancelled/ }, 'an identity that applied it');
    t.notOk(existsSync(s.outDir('b')));
    t.same((await s.admin.showTask(id)).clients.map((client) => client.name), ['a']);
    await t.rejects(() => s.admin.cancelTask(id), { code: 'TASK_ENDED' });
  });

  t.test(`${mode}: maxClients 2: a failed client keeps its slot, a third identity is REJECTED full`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create(NESTED, { maxClients: 2 });
    t.equal((await s.pullAs('a', token)).status, 'applied');
    const failed = await s.pullAs('b', token, { exec: 'exit 1' });
    t.equal(failed.status, 'failed');
    t.equal(failed.failure?.code, 'COMMAND_FAILED');
    t.equal((await s.admin.showTask(id)).state, 'active', 'one applied of two: not complete');
    await t.rejects(s.pullAs('c', token), { code: 'REJECTED', message: /full/ });
    t.notOk(existsSync(s.outDir('c')), 'c wrote nothing');
    t.same((await s.admin.showTask(id)).clients.map((client) => client.name).sort(), ['a', 'b'], 'no record for c');
    t.same((await s.running.waitForPullLogs(3)).map((record) => record.outcome).sort(), ['applied', 'failed', 'rejected:full']);
    t.equal((await s.pullAs('a', token)).status, 'up-to-date', 'a full task still answers an identity that applied it');
  });

  t.test(`${mode}: maxClients 2: a failed command is redone by the next pull, which completes the task`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create(NESTED, { maxClients: 2 });
    t.equal((await s.pullAs('a', token)).status, 'applied');
    t.equal((await s.pullAs('b', token, { exec: 'exit 1' })).status, 'failed');
    // The files are in place but the command failed, so b does not claim to have them (SPEC.md §4.7): the next pull
    // applies again and runs the command again.
    const marker = join(s.dir, 'b-ran');
    const retry = await s.pullAs('b', token, { exec: `touch ${marker}` });
    t.equal(retry.status, 'applied', 'b applies again');
    t.ok(existsSync(marker), 'and its command runs again');
    await s.running.waitForPullLogs(3);
    await s.settleLogs(token);
    const view = await s.admin.showTask(id);
    t.equal(view.clients.find((client) => client.name === 'b')!.state, 'applied', 'b is recorded as applied');
    t.equal(view.counts.applied, 2);
    t.equal(view.state, 'completed', 'two applied of two: completed (SPEC.md §4.6)');
    await t.rejects(s.pullAs('c', token), { code: 'REJECTED', message: /completed/ });
    t.equal((await s.pullAs('a', token)).status, 'up-to-date', 'an identity that applied is still up to date');
  });

  t.test(`${mode}: maxClients 2: \`have\` from an identity that never applied counts for nothing; only its RESULT completes the task`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create(NESTED, { maxClients: 2 });
    t.equal((await s.pullAs('a', token)).status, 'applied');
    // b pulls into a directory that already holds this task's files (a's), so it sends `have`: b never applied, so
    // the server sends it the files like any new client (issue 11: fresh keys must not complete a task).
    const viaHave = await s.pullAs('b', token, { outDir: s.outDir('a') });
    t.equal(viaHave.status, 'applied', 'b gets the files and applies them');
    await s.running.waitForPullLogs(2);
    await s.settleLogs(token);
    const view = await s.admin.showTask(id);
    t.equal(view.clients.find((client) => client.name === 'b')!.state, 'applied', 'b is recorded as applied');
    t.equal(view.state, 'completed', 'two applied of two: completed');
  });

  t.test(`${mode}: revoked while it applies, a client is told the server refused its result (REJECTED, not "not acknowledged")`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    const pulling = s.pullAs('a', token, {
      exec: 'true',
      // Called synchronously as the command starts: the files are applied, RESULT is not sent yet.
      onProgress: async (line) => {
        if (!line.startsWith('running:')) return;
        // The server records the offer in its next group commit; commit it now, so that there is a client to revoke.
        await s.running.server.store.flush();
        const identity = (await s.admin.showTask(id)).clients.find((client) => client.name === 'a')!.identity;
        await s.admin.revokeClient(id, identity);
      },
    });
    await t.rejects(pulling, { code: 'REJECTED', message: /files it offered are in place in .*refused the result: revoked/ });
    const view = await s.admin.showTask(id);
    t.equal(view.clients[0]!.state, 'revoked', 'the revocation holds');
    t.equal(view.counts.applied, 0, 'the result counts for nothing');
  });

  t.test(`${mode}: a revoked identity is REJECTED revoked; the others go on`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    t.equal((await s.pullAs('a', token)).status, 'applied');
    const identity = (await s.admin.showTask(id)).clients.find((client) => client.name === 'a')!.identity;
    const revoked = await s.admin.revokeClient(id, identity);
    t.equal(revoked.clients.find((client) => client.identity === identity)!.state, 'revoked');
    await t.rejects(s.pullAs('a', token), { code: 'REJECTED', message: /revoked/ }, 'with its files in place');
    await t.rejects(s.pullAs('a', token, { outDir: join(s.dir, 'out-a-fresh') }), { code: 'REJECTED', message: /revoked/ }, 'and from a fresh directory');
    t.notOk(existsSync(join(s.dir, 'out-a-fresh')));
    t.equal((await s.pullAs('b', token)).status, 'applied', 'another identity still applies');
    t.equal((await s.admin.showTask(id)).clients.find((client) => client.name === 'a')!.state, 'revoked', 'still revoked');
    await t.rejects(() => s.admin.revokeClient(id, 'f'.repeat(64)), { code: 'CLIENT_NOT_FOUND' });
  });

  t.test(`${mode}: a token with the wrong PSK is AUTHENTICATION_FAILED`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    const fields = decodeToken(token);
    const wrong = encodeToken({ ...fields, psk: randomBytes(32) });
    await t.rejects(s.pullAs('a', wrong), { code: 'AUTHENTICATION_FAILED' });
    const failure = await s.running.waitForLog((record) => record.event === 'handshake-failed');
    t.ok(failure.remote?.startsWith('127.0.0.1:'), 'the server logged a failed handshake');
    t.notOk(existsSync(s.outDir('a')), 'nothing written');
    t.same((await s.admin.showTask(id)).clients, [], 'no client record');
    t.notOk(JSON.stringify(s.running.logs).includes(fields.psk.toString('hex')), 'no PSK in the log');
    t.equal((await s.pullAs('a', token)).status, 'applied', 'the right token still works');
  });

  t.test(`${mode}: a corrupted token is TOKEN_CHECKSUM_MISMATCH before any connection`, async (t) => {
    const s = await setup(t, mode);
    const { token } = await s.create();
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
    for (const at of [20, Math.floor(token.length / 2), token.length - 1]) {
      const replacement = [...alphabet].find((symbol) => symbol !== token[at])!;
      const corrupted = `${token.slice(0, at)}${replacement}${token.slice(at + 1)}`;
      await t.rejects(s.pullAs('a', corrupted), { code: 'TOKEN_CHECKSUM_MISMATCH' }, `character ${at} changed`);
    }
    await t.rejects(s.pullAs('a', token.slice(0, -3)), { code: 'TOKEN_CHECKSUM_MISMATCH' }, 'truncated');
    await s.settleLogs(token);
    t.same(s.running.connectionLogs().map((record) => record.client), ['settle-1'], 'no connection but the later check');
    t.notOk(existsSync(s.outDir('a')));
  });

  t.test(`${mode}: --exec sees the task id, out dir and digest; exit 0 applied, exit 3 failed and recorded`, async (t) => {
    const s = await setup(t, mode);
    const { id, token } = await s.create();
    const envFile = join(s.dir, 'env.txt');
    const command = `printf '%s\\n%s\\n%s\\n' "$NOISE_CFG_TASK_ID" "$NOISE_CFG_OUT_DIR" "$NOISE_CFG_DIGEST" > '${envFile}' && cat "$NOISE_CFG_OUT_DIR/etc/app.conf" >> '${envFile}'`;
    const applied = await s.pullAs('a', token, { exec: command });
    t.equal(applied.status, 'applied');
    t.equal(applied.exitCode, 0);
    const digest = (await s.admin.showTask(id)).digest;
    t.equal(readFileSync(envFile, 'utf8'), `${id}\n${s.outDir('a')}\n${digest}\n${NESTED[0]!.content.toString()}`, 'the environment, and the files are in place when it runs');
    t.same((await s.admin.showTask(id)).clients[0]!.result, { exitCode: 0, message: 'applied' });

    const failed = await s.pullAs('b', token, { exec: 'exit 3' });
    t.equal(failed.status, 'failed');
    t.equal(failed.exitCode, 3);
    t.equal(failed.failure?.code, 'COMMAND_FAILED');
    t.match(failed.failure?.message, /3/);
    t.equal(failed.isAcknowledged, true);
    t.same(readTree(s.outDir('b')), expectedTree(NESTED), 'the files were applied before the command ran');
    const b = (await s.admin.showTask(id)).clients.find((client) => client.name === 'b')!;
    t.equal(b.state, 'failed');
    t.equal(b.result?.exitCode, 3, 'the server records exit code 3');
    t.same((await s.running.waitForPullLogs(2)).map((record) => record.outcome).sort(), ['applied', 'failed']);
  });

  t.test(`${mode}: dry run lists added, changed and removed paths and writes and records nothing; check takes no slot`, async (t) => {
    const s = await setup(t, mode);
    const v1: TaskFileInput[] = [
      { path: 'etc/app.conf', content: Buffer.from('version 1\n') },
      { path: 'etc/keep.conf', content: Buffer.from('same\n') },
      { path: 'etc/mode.conf', content: Buffer.from('same bytes\n') },
      { path: 'bin/old.sh', content: Buffer.from('old\n'), mode: 0o755 },
    ];
    const v2: TaskFileInput[] = [
      { path: 'etc/app.conf', content: Buffer.from('version 2\n') },
      { path: 'etc/keep.conf', content: Buffer.from('same\n') },
      { path: 'etc/mode.conf', content: Buffer.from('same bytes\n'), mode: 0o600 },
      { path: 'etc/new.conf', content: Buffer.from('new\n') },
    ];
    const first = await s.create(v1);
    t.equal((await s.pullAs('a', first.token)).status, 'applied');
    const out = s.outDir('a');
    const versionsDir = join(s.dir, '.out-a.noise-cfg');
    const link = readlinkSync(out);
    const versions = listing(versionsDir);
    const stamps = fileStamps(out, v1.map((file) => file.path));
    const second = await s.create(v2);
    const dry = await s.pullAs('a', second.token, { intent: 'dry-run' });
    t.equal(dry.status, 'dry-run');
    t.equal(dry.taskId, second.id);
    t.same([...dry.files].sort(), v2.map((file) => file.path).sort(), 'files: the offered paths');
    t.same(dry.changes, { added: ['etc/new.conf'], changed: ['etc/app.conf', 'etc/mode.conf'], removed: ['bin/old.sh'], unchanged: ['etc/keep.conf'] });
    t.equal(readlinkSync(out), link, 'the link is unchanged');
    t.same(listing(versionsDir), versions, 'no version or staging directory');
    t.same(fileStamps(out, v1.map((file) => file.path)), stamps, 'files untouched');
    t.same(readTree(out), expectedTree(v1));
    t.same((await s.admin.showTask(second.id)).clients, [], 'no client record on the second task');

    const fresh = await s.pullAs('z', second.token, { intent: 'dry-run' });
    t.same(fresh.changes?.added.sort(), v2.map((file) => file.path).sort(), 'against a missing --out everything is added');
    t.notOk(existsSync(s.outDir('z')), 'and it is not created');

    const checked = await pull({ token: second.token, intent: 'check', identityDir: s.identityDir('a'), name: 'a' });
    t.equal(checked.status, 'checked');
    t.same((await s.admin.showTask(second.id)).clients, [], 'check leaves no client record');
    t.same((await s.running.waitForPullLogs(4)).map((record) => record.outcome).sort(), ['applied', 'checked', 'dry-run', 'dry-run']);

    const limited = await s.create(v2, { maxClients: 1 });
    await s.pullAs('a', limited.token, { intent: 'dry-run' });
    await pull({ token: limited.token, intent: 'check', identityDir: s.identityDir('a') });
    t.equal((await s.pullAs('b', limited.token)).status, 'applied', 'dry run and check took no slot of a one-client task');
  });

  t.test(`${mode}: a second task replaces the version in the same --out atomically`, async (t) => {
    const s = await setup(t, mode);
    const first = await s.create();
    t.equal((await s.pullAs('a', first.token)).status, 'applied');
    const out = s.outDir('a');
    const versionsDir = join(s.dir, '.out-a.noise-cfg');
    const oldVersion = readlinkSync(out).split('/')[1]!;
    t.ok(existsSync(join(versionsDir, oldVersion)));
    const v2: TaskFileInput[] = [{ path: 'etc/app.conf', content: Buffer.from('listen = 9090\n') }, { path: 'etc/other.conf', content: Buffer.from('x\n') }];
    const second = await s.create(v2);
    t.equal((await s.pullAs('a', second.token)).status, 'applied');
    const newTarget = readlinkSync(out);
    t.match(newTarget, new RegExp(`^\\.out-a\\.noise-cfg/${second.id}-`), 'the link points to the second task\'s version');
    // Issue 12 item 3: the previous version is kept for a rollback until the next successful apply.
    t.same(listing(versionsDir), [oldVersion, newTarget.split('/')[1]!, 'state.json'].sort(), 'the current version, the previous one (for rollback) and state.json');
    t.same(readTree(out), expectedTree(v2), 'exactly the new files: none of the old ones linger');
    const state = JSON.parse(readFileSync(join(versionsDir, 'state.json'), 'utf8')) as { taskId: string; version: string };
    t.equal(state.taskId, second.id);
    t.equal(state.version, newTarget.split('/')[1]);
  });

  t.test(`${mode}: an --out that noise-cfg does not own is APPLY_FAILED before connecting`, async (t) => {
    const s = await setup(t, mode);
    const { token } = await s.create();
    const nonEmpty = join(s.dir, 'mine');
    mkdirSync(nonEmpty);
    writeFileSync(join(nonEmpty, 'precious.txt'), 'keep me\n');
    await t.rejects(pull({ token, outDir: nonEmpty, identityDir: s.identityDir('a') }), { code: 'APPLY_FAILED' }, 'a non-empty directory');
    t.same(readTree(nonEmpty), { 'precious.txt': { content: 'keep me\n', mode: statSync(join(nonEmpty, 'precious.txt')).mode & 0o777 } }, 'left as it was');
    const plainFile = join(s.dir, 'a-file');
    writeFileSync(plainFile, 'x');
    await t.rejects(pull({ token, outDir: plainFile, identityDir: s.identityDir('a') }), { code: 'APPLY_FAILED' }, 'a file');
    const foreignLink = join(s.dir, 'foreign-link');
    symlinkSync(nonEmpty, foreignLink);
    await t.rejects(pull({ token, outDir: foreignLink, identityDir: s.identityDir('a') }), { code: 'APPLY_FAILED' }, 'a link noise-cfg does not own');
    t.equal(readlinkSync(foreignLink), nonEmpty);
    t.notOk(existsSync(join(s.dir, '.mine.noise-cfg')), 'no versions directory beside it');
    await s.settleLogs(token);
    t.same(s.running.connectionLogs().map((record) => record.client), ['settle-1'], 'the server saw none of the refused pulls');

    const empty = join(s.dir, 'empty');
    mkdirSync(empty);
    t.equal((await pull({ token, outDir: empty, identityDir: s.identityDir('a') })).status, 'applied', 'an empty directory is taken over');
    t.ok(lstatSync(empty).isSymbolicLink());
  });

  t.test(`${mode}: task paths that climb out are PATH_UNSAFE at creation`, async (t) => {
    const s = await setup(t, mode);
    for (const path of ['../x', '/etc/x', 'a/../../b', 'a/./b', '.noise-cfg/x']) {
      await t.rejects(() => s.create([{ path, content: Buffer.from('x') }]), { code: 'PATH_UNSAFE' }, path);
    }
    await t.rejects(() => s.create([{ path: 'a', content: Buffer.from('x') }, { path: 'a/b', content: Buffer.from('y') }]), { code: 'PATH_UNSAFE' }, 'a and a/b');
    t.same(await s.admin.listTasks(), [], 'no task was created');
  });

  t.test(`${mode}: a malicious server offering ../escape is refused by the decoder (PROTOCOL_ERROR), nothing written`, async (t) => {
    const dir = t.testdir();
    const content = Buffer.from('pwned\n');
    const files: FileEntry[] = [{ path: '../escape', mode: 0o644, size: content.byteLength, digest: fileDigest(content) }];
    const fake = await startFakeServer(t, mode, async (connection) => {
      expectMessage(await connection.receive(), ['HELLO']);
      await connection.send(encodeMessage({ type: 'OFFER', body: { digest: taskDigest(files), totalBytes: content.byteLength, files, hasContent: true } }));
      await connection.send(encodeMessage({ type: 'CHUNK', body: content }));
      await connection.receive().catch(() => null);
    });
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const before = listing(dir);
    await t.rejects(pull({ token: fake.token, outDir: join(sub, 'out'), identityDir: join(dir, 'id') }), { code: 'PROTOCOL_ERROR', message: /\.\./ });
    t.same(listing(dir).filter((name) => name !== 'id'), before, 'nothing beside the parent of out');
    t.notOk(existsSync(join(sub, 'escape')), 'no escape file');
    t.notOk(existsSync(join(dir, 'escape')));
    t.same(listing(sub), ['.out.noise-cfg'], 'beside out only the versions directory, made before connecting');
    t.same(listing(join(sub, '.out.noise-cfg')), [], 'and it is empty: no staging, no lock left');
    t.equal(fake.sessions(), 1, 'the client did connect (the refusal is the decoder\'s)');
  });

  t.test(`${mode}: a malicious server sending bytes that do not match the digest: failed DIGEST_MISMATCH, previous version intact`, async (t) => {
    const dir = t.testdir();
    const out = join(dir, 'out');
    const v1 = [{ path: 'etc/app.conf', content: Buffer.from('good version 1\n') }];
    const v2 = [{ path: 'etc/app.conf', content: Buffer.from('good version 2\n') }, { path: 'etc/z.conf', content: Buffer.from('announced content\n') }];
    const entries = (files: { path: string; content: Buffer }[]): FileEntry[] => files.map((file) => ({ path: file.path, mode: 0o644, size: file.content.byteLength, digest: fileDigest(file.content) }));
    let sendBadContent = false;
    const results: Result[] = [];
    const fake = await startFakeServer(t, mode, async (connection) => {
      expectMessage(await connection.receive(), ['HELLO']);
      const files = sendBadContent ? v2 : v1;
      const list = entries(files);
      await connection.send(encodeMessage({ type: 'OFFER', body: { digest: taskDigest(list), totalBytes: list.reduce((sum, file) => sum + file.size, 0), files: list, hasContent: true } }));
      for (const file of files) {
        // The last file's bytes are replaced by others of the same length.
        const body = sendBadContent && file === files.at(-1) ? Buffer.from('X'.repeat(file.content.byteLength)) : file.content;
        await connection.send(encodeMessage({ type: 'CHUNK', body }));
      }
      results.push(expectMessage(await connection.receive(), ['RESULT']).body);
      await connection.send(encodeMessage({ type: 'ACK', body: { status: results.at(-1)!.status } }));
      await connection.close();
    });
    const identityDir = join(dir, 'id');
    t.equal((await pull({ token: fake.token, outDir: out, identityDir })).status, 'applied', 'version 1 from the (still honest) server');
    const link = readlinkSync(out);
    const stateBefore = readFileSync(join(dir, '.out.noise-cfg', 'state.json'));
    sendBadContent = true;
    const result = await pull({ token: fake.token, outDir: out, identityDir });
    t.equal(result.status, 'failed');
    t.equal(result.failure?.code, 'DIGEST_MISMATCH');
    t.same(result.files, [], 'no files reported written');
    t.equal(result.isAcknowledged, true);
    t.equal(results.at(-1)?.status, 'failed', 'the client reported the failure to the server');
    t.match(results.at(-1)?.message, /etc\/z\.conf/);
    t.equal(readlinkSync(out), link, 'the link still points to version 1');
    t.same(readTree(out), { 'etc/app.conf': { content: 'good version 1\n', mode: 0o644 } }, 'version 1 intact');
    t.ok(readFileSync(join(dir, '.out.noise-cfg', 'state.json')).equals(stateBefore), 'state.json unchanged');
    t.same(listing(join(dir, '.out.noise-cfg')), [link.split('/')[1]!, 'state.json'].sort(), 'the staging directory was removed');
  });

  t.test(`${mode}: an offered file list that does not hash to the offered digest: the content is read and dropped, then RESULT failed DIGEST_MISMATCH with exit code null`, async (t) => {
    const dir = t.testdir();
    const out = join(dir, 'out');
    const content = Buffer.from('announced content\n');
    const list: FileEntry[] = [{ path: 'etc/app.conf', mode: 0o644, size: content.byteLength, digest: fileDigest(content) }];
    const results: Result[] = [];
    const fake = await startFakeServer(t, mode, async (connection) => {
      expectMessage(await connection.receive(), ['HELLO']);
      const wrongDigest = taskDigest([{ ...list[0]!, mode: 0o600 }]);
      await connection.send(encodeMessage({ type: 'OFFER', body: { digest: wrongDigest, totalBytes: content.byteLength, files: list, hasContent: true } }));
      await connection.send(encodeMessage({ type: 'CHUNK', body: content }));
      results.push(expectMessage(await connection.receive(), ['RESULT']).body);
      await connection.send(encodeMessage({ type: 'ACK', body: { status: 'failed' } }));
      await connection.close();
    });
    const result = await pull({ token: fake.token, outDir: out, identityDir: join(dir, 'id') });
    t.match(result, { status: 'failed', failure: { code: 'DIGEST_MISMATCH', message: /file list does not hash/ }, files: [], isAcknowledged: true });
    t.match(results, [{ status: 'failed', exitCode: null, message: /file list does not hash/ }], 'reported to the server, no command having run');
    t.notOk(existsSync(out), 'nothing written');
  });

  t.test(`${mode}: a server that dies after the content: the files are applied and the result says unacknowledged`, async (t) => {
    const dir = t.testdir();
    const out = join(dir, 'out');
    const content = Buffer.from('applied before the server died\n');
    const list: FileEntry[] = [{ path: 'etc/app.conf', mode: 0o644, size: content.byteLength, digest: fileDigest(content) }];
    const fake = await startFakeServer(t, mode, async (connection) => {
      expectMessage(await connection.receive(), ['HELLO']);
      await connection.send(encodeMessage({ type: 'OFFER', body: { digest: taskDigest(list), totalBytes: content.byteLength, files: list, hasContent: true } }));
      await connection.send(encodeMessage({ type: 'CHUNK', body: content }));
      // The server process dies here: no RESULT is read and no ACK is sent.
      connection.destroy();
    });
    const progress: string[] = [];
    const outcome = await pull({ token: fake.token, outDir: out, identityDir: join(dir, 'id'), exec: 'true', onProgress: (line) => progress.push(line) })
      .then((result) => ({ result }), (error: Error & { code?: string }) => ({ error }));
    t.same(readTree(out), { 'etc/app.conf': { content: content.toString(), mode: 0o644 } }, 'the files were made current');
    // SPEC.md §4.7: isAcknowledged is false when the ACK did not arrive, and a re-pull settles it. A pull that made
    // its files current must say so, not fail with a connection error (the CLI would exit 1 over applied files).
    t.notOk('error' in outcome, `pull resolves instead of throwing ${'error' in outcome ? outcome.error.code : ''}`);
    if ('result' in outcome) {
      t.equal(outcome.result.status, 'applied');
      t.equal(outcome.result.isAcknowledged, false);
    }
  });

  t.test(`${mode}: a client killed in the middle of the content leaves --out untouched; the next pull cleans up`, async (t) => {
    const s = await setup(t, mode);
    const first = await s.create();
    t.equal((await s.pullAs('a', first.token)).status, 'applied');
    const out = s.outDir('a');
    const versionsDir = join(s.dir, '.out-a.noise-cfg');
    const before = readTree(out);
    const link = readlinkSync(out);
    const stateBefore = readFileSync(join(versionsDir, 'state.json'));

    const big = Buffer.alloc(20 * 1024 * 1024);
    for (let offset = 0; offset < big.byteLength; offset += 65_536) randomBytes(16).copy(big, offset);
    const v2: TaskFileInput[] = [{ path: 'etc/app.conf', content: Buffer.from('version 2\n') }, { path: 'var/big.bin', content: big }];
    // The token points at a proxy that forwards the first 6 MiB from the server and then holds the rest back, so
    // the kill lands in the middle of the content whatever the speed of the machine.
    const proxy = await startStallingProxy(t, s.running.port, 6 * 1024 * 1024);
    const created = await s.admin.createTask({ files: v2, mode, advertise: { host: '127.0.0.1', port: proxy.port } });
    const child = spawnCli(t, ['pull', '--out', out, '--identity-dir', s.identityDir('a'), '--name', 'a', '--json'], {
      env: { NOISE_CFG_TOKEN: created.token, XDG_CONFIG_HOME: join(s.dir, 'xdg') },
    });
    await Promise.race([proxy.stalled, child.exited.then((exit) => {
      throw new Error(`pull exited (${exit.code}) before the content stalled: ${child.stderr()}`);
    })]);
    const staging = await waitForStagedBytes(versionsDir, 'var/big.bin');
    t.ok(staging.bytes > 0, `the child had written ${staging.bytes} bytes of var/big.bin into ${staging.name}`);
    child.child.kill('SIGKILL');
    const exit = await child.exited;
    t.equal(exit.signal, 'SIGKILL');

    t.equal(readlinkSync(out), link, 'the link still points to the previous version');
    t.same(readTree(out), before, 'the previous version byte for byte');
    t.ok(readFileSync(join(versionsDir, 'state.json')).equals(stateBefore), 'state.json unchanged');
    t.ok(listing(versionsDir).includes(staging.name), 'the dead pull left its staging directory');

    const again = await s.pullAs('a', await s.admin.token(created.id, { host: '127.0.0.1', port: s.running.port }));
    t.equal(again.status, 'applied', 'a re-pull completes');
    t.notOk(listing(versionsDir).some((name) => name.startsWith('.staging-')), 'and removes the stale staging directory');
    t.equal(listing(versionsDir).length, 3, 'the new version, the previous one (kept for rollback) and state.json');
    t.ok(readFileSync(join(out, 'var/big.bin')).equals(big), 'the 20 MiB file arrived whole');
    t.equal((await s.admin.showTask(created.id)).clients[0]!.state, 'applied');
  });
}

t.test('a server at its session cap answers REJECT busy: the pull retries until a session closes; past --retry it is TOO_MANY_CONNECTIONS, exit 11', async (t) => {
  const s = await setup(t, 'xxpsk3', { server: { maxSessionsPerTask: 1 } });
  const { token } = await s.create();
  const fields = decodeToken(token);
  const hold = (): Promise<SecureConnection> => connectSecure('127.0.0.1', s.running.port, {
    mode: 'xxpsk3', taskId: fields.taskId, psk: fields.psk, staticKeyPair: loadClientKeyPair(s.identityDir('holder')), serverPublicKey: fields.serverPublicKey!,
  });
  // A session that sends no HELLO holds the task's only session until its HELLO deadline (10 s).
  let holder = await hold();
  await t.rejects(s.pullAs('a', token, { retryForMs: 0 }), { code: 'TOO_MANY_CONNECTIONS', message: /server is busy/ }, 'busy, not REJECTED: nothing is wrong with this client');
  const lines: string[] = [];
  const retried = await s.pullAs('b', token, {
    retryForMs: 20_000,
    onProgress: (line) => {
      lines.push(line);
      // The session closes while b waits: its next attempt gets through.
      if (line.startsWith('server busy')) holder.destroy();
    },
  });
  t.equal(retried.status, 'applied', 'the retried pull applies');
  t.ok(lines.some((line) => /^server busy, retrying in \d+\.\d s$/.test(line)), 'and said it was retrying');

  holder = await hold();
  t.teardown(() => holder.destroy());
  const cli = spawnCli(t, ['pull', '--out', s.outDir('cli'), '--identity-dir', s.identityDir('cli'), '--retry', '0'], { env: { NOISE_CFG_TOKEN: token, XDG_CONFIG_HOME: join(s.dir, 'xdg') } });
  const exit = await cli.exited;
  t.equal(exit.code, 11, `the CLI exits 11 for a busy server (${cli.stderr().trim()})`);
  t.match(cli.stderr(), /server is busy.*TOO_MANY_CONNECTIONS/);
});

t.test('--exec does not inherit the token (it holds the PSK) nor the admin API token from the environment', async (t) => {
  const s = await setup(t, 'xxpsk3');
  const { token } = await s.create();
  const adminToken = 'admin-token-that-must-not-leak-0123456789ab';
  const envFile = join(s.dir, 'env.txt');
  // The CLI as a person runs it: the token in NOISE_CFG_TOKEN (as README recommends), an admin token beside it.
  const child = spawnCli(t, ['pull', '--out', s.outDir('cli'), '--identity-dir', s.identityDir('cli'), '--exec', `env > '${envFile}'`], {
    env: { NOISE_CFG_TOKEN: token, NOISE_CFG_ADMIN_TOKEN: adminToken, XDG_CONFIG_HOME: join(s.dir, 'xdg') },
  });
  const exit = await child.exited;
  t.equal(exit.code, 0, `pull applied (${child.stderr()})`);
  const environment = readFileSync(envFile, 'utf8');
  t.match(environment, /^NOISE_CFG_OUT_DIR=/m, 'the command saw its own variables');
  t.notMatch(environment, /^NOISE_CFG_TOKEN=/m, 'no NOISE_CFG_TOKEN variable');
  t.notMatch(environment, /^NOISE_CFG_ADMIN_TOKEN=/m, 'no NOISE_CFG_ADMIN_TOKEN variable');
  t.notOk(environment.includes(token), 'the token text appears nowhere');
  t.notOk(environment.includes(adminToken), 'the admin token text appears nowhere');
  t.notOk(environment.includes(decodeToken(token).psk.toString('hex')), 'nor the PSK in hex');

  // The library the same way: pull() leaves out both names whatever the caller's environment holds.
  const saved = { token: process.env.NOISE_CFG_TOKEN, admin: process.env.NOISE_CFG_ADMIN_TOKEN };
  t.teardown(() => {
    for (const [name, value] of [['NOISE_CFG_TOKEN', saved.token], ['NOISE_CFG_ADMIN_TOKEN', saved.admin]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  process.env.NOISE_CFG_TOKEN = token;
  process.env.NOISE_CFG_ADMIN_TOKEN = adminToken;
  const libraryEnvFile = join(s.dir, 'env-library.txt');
  t.equal((await s.pullAs('library', token, { exec: `env > '${libraryEnvFile}'` })).status, 'applied');
  const libraryEnvironment = readFileSync(libraryEnvFile, 'utf8');
  t.notMatch(libraryEnvironment, /^NOISE_CFG_(ADMIN_)?TOKEN=/m, 'pull(): neither name');
  t.notOk(libraryEnvironment.includes(token) || libraryEnvironment.includes(adminToken), 'pull(): neither text');
});

t.test('a task whose files are all empty applies (the server sends no CHUNK for 0 bytes), and empty files between others too', { timeout: 60_000 }, async (t) => {
  const s = await setup(t, 'nnpsk0');
  const allEmpty: TaskFileInput[] = [
    { path: 'a.conf', content: Buffer.alloc(0) },
    { path: 'etc/b.conf', content: Buffer.alloc(0), mode: 0o600 },
    { path: 'etc/deep/c', content: Buffer.alloc(0) },
  ];
  const { token } = await s.create(allEmpty);
  const result = await s.pullAs('empty', token);
  t.equal(result.status, 'applied', 'applied instead of waiting for a CHUNK that never comes');
  t.equal(result.isAcknowledged, true);
  t.same(readTree(s.outDir('empty')), expectedTree(allEmpty), 'three empty files, with their directories and modes');

  const mixed: TaskFileInput[] = [
    { path: 'a/0-empty', content: Buffer.alloc(0) },
    { path: 'a/1', content: Buffer.from('one\n') },
    { path: 'a/2-empty', content: Buffer.alloc(0) },
    { path: 'a/3-empty', content: Buffer.alloc(0) },
    { path: 'b/4', content: randomBytes(CHUNK_CONTENT_BYTES + 1) },
    { path: 'b/5-empty', content: Buffer.alloc(0) },
  ];
  const second = await s.create(mixed);
  t.equal((await s.pullAs('empty', second.token)).status, 'applied');
  t.same(readTree(s.outDir('empty')), expectedTree(mixed), 'empty files first, between others and last');
});

t.test('file modes: a 0777 or 0666 file gets no group or others write unless --max-file-mode allows it, and the umask applies', async (t) => {
  const s = await setup(t, 'xxpsk3');
  const savedUmask = process.umask(0);
  t.teardown(() => {
    process.umask(savedUmask);
  });
  const files: TaskFileInput[] = [
    { path: 'bin/all.sh', content: Buffer.from('#!/bin/sh\n'), mode: 0o777 },
    { path: 'etc/shared.conf', content: Buffer.from('x\n'), mode: 0o666 },
    { path: 'etc/secret.conf', content: Buffer.from('s\n'), mode: 0o600 },
  ];
  const { token } = await s.create(files);
  const directoryMode = (path: string): number => lstatSync(path).mode & 0o777;

  t.equal((await s.pullAs('a', token)).status, 'applied');
  const tree = readTree(s.outDir('a'));
  t.equal(tree['bin/all.sh']!.mode, 0o755, 'umask 0: 0777 offered, 0755 written');
  t.equal(tree['etc/shared.conf']!.mode, 0o644, 'umask 0: 0666 offered, 0644 written');
  t.equal(tree['etc/secret.conf']!.mode, 0o600, '0600 stays 0600');
  t.equal(directoryMode(join(s.outDir('a'), 'etc')), 0o755, 'directories 0755');
  t.equal(directoryMode(join(s.dir, '.out-a.noise-cfg')), 0o700, 'the versions directory 0700');
  const dry = await s.pullAs('a', (await s.create(files)).token, { intent: 'dry-run' });
  t.same(dry.changes?.changed, [], 'a dry run compares the modes that would be written: nothing changed');
  const dryWider = await s.pullAs('a', (await s.create(files)).token, { intent: 'dry-run', maxFileMode: 0o777 });
  t.same(dryWider.changes?.changed, ['bin/all.sh', 'etc/shared.conf'], 'with maxFileMode 0777 the two would change');

  t.equal((await s.pullAs('b', token, { maxFileMode: 0o775 })).status, 'applied');
  const wider = readTree(s.outDir('b'));
  t.equal(wider['bin/all.sh']!.mode, 0o775, 'maxFileMode 0775: group write allowed');
  t.equal(wider['etc/shared.conf']!.mode, 0o664);

  process.umask(0o027);
  t.equal((await s.pullAs('c', token, { maxFileMode: 0o777 })).status, 'applied');
  const masked = readTree(s.outDir('c'));
  t.equal(masked['bin/all.sh']!.mode, 0o750, 'umask 027 applies on top of maxFileMode 0777');
  t.equal(masked['etc/shared.conf']!.mode, 0o640);
  t.equal(directoryMode(join(s.outDir('c'), 'etc')), 0o750, 'directories 0755 & ~umask');

  for (const bad of [0o1777, -1, 1.5, 0o1000]) {
    await t.rejects(s.pullAs('d', token, { maxFileMode: bad }), { code: 'INVALID_ARGUMENT', message: /maxFileMode/ }, `maxFileMode ${bad}`);
  }

  process.umask(0o002);
  const cli = spawnCli(t, ['pull', '--out', s.outDir('cli'), '--identity-dir', s.identityDir('cli'), '--max-file-mode', '0775'], { env: { NOISE_CFG_TOKEN: token } });
  t.equal((await cli.exited).code, 0, `pull --max-file-mode 0775 (${cli.stderr()})`);
  t.equal(readTree(s.outDir('cli'))['bin/all.sh']!.mode, 0o775, 'the CLI: 0775 with umask 002');
  for (const bad of ['1777', '778', 'rwx', '0o1000']) {
    const refused = spawnCli(t, ['pull', '--out', s.outDir('cli-bad'), '--max-file-mode', bad], { env: { NOISE_CFG_TOKEN: token } });
    t.equal((await refused.exited).code, 2, `--max-file-mode ${bad}: usage error`);
    t.match(refused.stderr(), /^noise-cfg: error: --max-file-mode must be octal permission bits from 0 to 777 .*\(INVALID_ARGUMENT\)$/m);
  }
});

t.test('a CHUNK past the offered total, where the ACK belongs, is PROTOCOL_ERROR, not "applied"; a CHUNK straddling the total is refused before the swap', async (t) => {
  const dir = t.testdir();
  const content = Buffer.from('exactly the offered bytes\n');
  const list: FileEntry[] = [{ path: 'etc/app.conf', mode: 0o644, size: content.byteLength, digest: fileDigest(content) }];
  let how: 'after' | 'straddling' = 'after';
  const results: Result[] = [];
  const fake = await startFakeServer(t, 'xxpsk3', async (connection) => {
    expectMessage(await connection.receive(), ['HELLO']);
    await connection.send(encodeMessage({ type: 'OFFER', body: { digest: taskDigest(list), totalBytes: content.byteLength, files: list, hasContent: true } }));
    if (how === 'after') {
      await connection.send(encodeMessage({ type: 'CHUNK', body: content }));
      await connection.send(encodeMessage({ type: 'CHUNK', body: Buffer.from('and more the offer never mentioned\n') }));
    } else {
      await connection.send(encodeMessage({ type: 'CHUNK', body: Buffer.concat([content, Buffer.from('tail')]) }));
    }
    const result = await connection.receive().catch(() => null);
    if (result) results.push(expectMessage(result, ['RESULT']).body);
    await connection.send(encodeMessage({ type: 'ACK', body: { status: 'applied' } })).catch(() => undefined);
    await connection.close().catch(() => undefined);
  });
  const out = join(dir, 'out');
  await t.rejects(pull({ token: fake.token, outDir: out, identityDir: join(dir, 'id') }), { code: 'PROTOCOL_ERROR', message: /more content than it offered/ }, 'extra CHUNK after the total: the pull fails');
  // SPEC.md §4.7: the offered files were complete and matched the offer before the swap, so they stay current.
  t.same(readTree(out), { 'etc/app.conf': { content: content.toString(), mode: 0o644 } }, 'out holds exactly the offered version');

  how = 'straddling';
  const other = join(dir, 'other');
  await t.rejects(pull({ token: fake.token, outDir: other, identityDir: join(dir, 'id') }), { code: 'PROTOCOL_ERROR', message: /more content than it offered/ }, 'straddling CHUNK');
  t.notOk(existsSync(other), 'nothing made current');
  t.same(listing(join(dir, '.other.noise-cfg')), [], 'no staging left');
});

t.test('a client name with a bidi override or control character is INVALID_ARGUMENT before connecting; an odd host name is sent escaped and cut to 128', async (t) => {
  const dir = t.testdir();
  const names: string[] = [];
  const fake = await startFakeServer(t, 'nnpsk0', async (connection) => {
    names.push(expectMessage(await connection.receive(), ['HELLO']).body.name);
    await connection.send(encodeMessage({ type: 'UP_TO_DATE', body: { digest: 'a'.repeat(64) } }));
    await connection.close();
  });
  for (const name of ['web\u202e1', 'web\u001b[31m1', 'a\u200bb', 'line\u2028two']) {
    await t.rejects(pull({ token: fake.token, outDir: join(dir, 'out'), identityDir: join(dir, 'id'), name }), { code: 'INVALID_ARGUMENT', message: /unprintable character \\u\{/ }, escapeUnprintable(JSON.stringify(name)));
  }
  const cli = spawnCli(t, ['pull', '--out', join(dir, 'out'), '--identity-dir', join(dir, 'id'), '--name', 'evil\u202eeman'], { env: { NOISE_CFG_TOKEN: fake.token } });
  t.equal((await cli.exited).code, 2, 'the CLI: exit 2');
  t.match(cli.stderr(), /^noise-cfg: error: name .* has the unprintable character \\u\{202e\}.*\(INVALID_ARGUMENT\)$/m, 'one line naming the character, escaped');
  t.notOk(cli.stderr().includes('\u202e'), 'the raw character is not echoed');
  t.equal(fake.sessions(), 0, 'nothing connected');

  const host = `evil\u001b[2J\u202ehost${'x'.repeat(200)}`;
  const os = await import('node:os');
  const mocked = await t.mockImport<typeof import('../../lib/task/client.js')>('../../lib/task/client.js', { 'node:os': { ...os, hostname: () => host } });
  t.equal((await mocked.pull({ token: fake.token, outDir: join(dir, 'out'), identityDir: join(dir, 'id') })).status, 'up-to-date');
  t.equal(names.length, 1);
  t.match(names[0], /^evil\\u\{1b\}\[2J\\u\{202e\}hostx+$/, 'sent escaped');
  t.equal(names[0]!.length, 128, 'and cut to 128 characters');
});

/** A channel server that speaks the update protocol however `behave` likes, with a token for it. */
async function startFakeServer(t: Test, mode: Mode, behave: (connection: SecureConnection) => Promise<void>): Promise<{ token: string; sessions: () => number }> {
  const keyPair = generateKeyPair();
  const psk = randomBytes(32);
  const taskId = generateTaskId();
  let sessions = 0;
  const server = new SecureServer({
    staticKeyPair: keyPair,
    resolveTask: (id) => (id === taskId ? { psk, mode } : null),
    onConnection: (connection) => {
      sessions++;
      behave(connection).catch(() => connection.destroy());
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close(0));
  const token = encodeToken({
    mode, host: '127.0.0.1', port, taskId, expiresAtSeconds: Math.floor(Date.now() / 1000) + 3600, psk,
    serverPublicKey: mode === 'xxpsk3' ? keyPair.publicKey : null,
  });
  return { token, sessions: () => sessions };
}

/** A TCP proxy to `targetPort` that forwards `limitBytes` from the server to the client, then holds the rest. */
async function startStallingProxy(t: Test, targetPort: number, limitBytes: number): Promise<{ port: number; stalled: Promise<void> }> {
  let markStalled: () => void = () => undefined;
  const stalled = new Promise<void>((resolve) => {
    markStalled = resolve;
  });
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let forwarded = 0;
    let isStalled = false;
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (isStalled) return;
      const room = limitBytes - forwarded;
      if (chunk.byteLength < room) {
        forwarded += chunk.byteLength;
        client.write(chunk);
        return;
      }
      client.write(chunk.subarray(0, room));
      forwarded = limitBytes;
      isStalled = true;
      upstream.pause();
      markStalled();
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => proxy.close(() => resolve()));
  });
  return { port: (proxy.address() as net.AddressInfo).port, stalled };
}

/** Waits (bounded) until a staging directory in `versionsDir` holds some bytes of `path`. */
async function waitForStagedBytes(versionsDir: string, path: string): Promise<{ name: string; bytes: number }> {
  for (let attempt = 0; attempt < 3000; attempt++) {
    for (const name of listing(versionsDir).filter((entry) => entry.startsWith('.staging-'))) {
      const file = join(versionsDir, name, path);
      const bytes = existsSync(file) ? statSync(file).size : 0;
      if (bytes > 0) return { name, bytes };
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no staging directory with ${path} appeared in ${versionsDir}`);
}

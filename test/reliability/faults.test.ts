// Faults (SPEC.md §4.1 durability, §4.4 expiry, §4.7 atomic apply): the server killed with SIGKILL while 200
// clients pull; clients killed at each phase of a pull; a full disk and a read-only output directory; the server's
// and the client's clocks at and around a task's expiry.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, watch } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TaskAdmin } from '../../lib/task/admin.js';
import { pull, type PullResult } from '../../lib/task/client.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { TaskServer, type LogRecord } from '../../lib/task/server.js';
import { TaskStore } from '../../lib/task/store.js';
import { isNoiseCfgError } from '../../lib/errors.js';
import { CLI_BIN } from '../support/paths.js';
import { ControlledProxy, freePort, HOST, runPool, spawnNode, waitUntil, withTimeout, type ChildHandle, type TestLike } from './support.js';

interface FileInput {
  path: string;
  content: Buffer;
}

/** path -> sha256 of each regular file under `root` (following the OUT link); null when `root` does not exist. */
function treeDigests(root: string): Map<string, string> | null {
  if (!existsSync(root)) return null;
  const found = new Map<string, string>();
  const walk = (directory: string, prefix: string): void => {
    for (const name of readdirSync(directory).sort()) {
      const full = join(directory, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      if (lstatSync(full).isDirectory()) walk(full, path);
      else found.set(path, createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  };
  walk(root, '');
  return found;
}

function filesDigests(files: readonly FileInput[]): Map<string, string> {
  return new Map(files.map((file) => [file.path, createHash('sha256').update(file.content).digest('hex')]));
}

function sameTree(a: Map<string, string> | null, b: Map<string, string> | null): boolean {
  if (a === null || b === null) return a === b;
  return a.size === b.size && [...a].every(([path, digest]) => b.get(path) === digest);
}

/** Which version `outDir` holds: 'old', 'new', 'absent', or 'MIXED' (anything else). */
function versionAt(outDir: string, versions: { old?: Map<string, string>; new: Map<string, string> }): 'old' | 'new' | 'absent' | 'MIXED' {
  const tree = treeDigests(outDir);
  if (tree === null) return 'absent';
  if (versions.old && sameTree(tree, versions.old)) return 'old';
  if (sameTree(tree, versions.new)) return 'new';
  return 'MIXED';
}

/** Staging directories left beside `outDir`. */
function stagingLeft(outDir: string): string[] {
  const versionsDir = join(outDir, '..', `.${outDir.split('/').pop()}.noise-cfg`);
  return existsSync(versionsDir) ? readdirSync(versionsDir).filter((name) => name.startsWith('.staging-')) : [];
}

const xxIdentity = (identityDir: string): string => loadClientKeyPair(identityDir).publicKey.toString('hex');

/** An in-process TaskServer on 127.0.0.1 port 0, with a clock that tests may move. */
async function startTaskServer(t: Pick<TestLike, 'teardown'>, dataDir: string, options: { now?: () => number } = {}): Promise<{ server: TaskServer; port: number; admin: TaskAdmin; logs: LogRecord[] }> {
  const logs: LogRecord[] = [];
  const server = new TaskServer({ dataDir, listen: { host: HOST, port: 0 }, log: (record) => logs.push(record), ...(options.now ? { now: options.now } : {}) });
  const { port } = await server.start();
  t.teardown(() => server.stop(0));
  return { server, port, admin: server.admin(), logs };
}

// ---------------------------------------------------------------------------------------------------------------

t.test('crash: serve is SIGKILLed 3 times while 200 clients pull, and no acknowledged result is lost', async (t) => {
  const CLIENTS = 200;
  const CONCURRENCY = 50;
  const KILL_AT_ACKS = [30, 80, 130];
  const MAX_ATTEMPTS = 8;
  const dir = t.testdir();
  const data = join(dir, 'data');
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg') };
  const port = await freePort();
  const files: FileInput[] = [
    { path: 'etc/app.conf', content: Buffer.from('listen = 8080\nworkers = 4\n') },
    { path: 'etc/conf.d/extra.conf', content: randomBytes(20_000) },
  ];
  const setup = await TaskAdmin.open(data, { create: true });
  const created = await setup.createTask({ files, name: 'crash', advertise: { host: HOST, port } });
  setup.close();
  const expected = filesDigests(files);

  // One serve process at a time on the same data directory and port; `up` resolves once the current one listens.
  let serve: ChildHandle | null = null;
  const starts: number[] = [];
  const start = async (): Promise<void> => {
    const child = spawnNode([CLI_BIN, 'serve', '--data', data, '--listen', `${HOST}:${port}`, '--api', 'off', '--grace-seconds', '1'], env);
    serve = child;
    await child.waitForStderr(/listening on 127\.0\.0\.1:\d+/);
    starts.push(Date.now());
  };
  t.teardown(() => {
    if (serve && serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
  });
  let up = start();
  await up;

  let acks = 0;
  let kills = 0;
  const killsAt: { acks: number; inFlight: number }[] = [];
  let inFlight = 0;
  const kill = (): void => {
    const victim = serve!;
    kills++;
    killsAt.push({ acks, inFlight });
    // Clients that fail from now on wait for the restart before they try again.
    up = (async () => {
      await victim.exited;
      await start();
    })();
    victim.child.kill('SIGKILL');
  };

  const acknowledged = new Set<number>();
  const settledUpToDate = new Set<number>();
  const attempts = new Array<number>(CLIENTS).fill(0);
  const failures = new Map<string, number>();
  const identityDir = (index: number): string => join(dir, 'identities', String(index));
  const outDir = (index: number): string => join(dir, 'out', String(index));
  // The parent of --out must exist (noise-cfg makes no parent directories, SPEC.md §4.7).
  mkdirSync(join(dir, 'out'));
  const started = Date.now();
  await runPool(CLIENTS, CONCURRENCY, async (index) => {
    while (attempts[index]! < MAX_ATTEMPTS) {
      await up;
      attempts[index]!++;
      inFlight++;
      let result: PullResult | null = null;
      try {
        result = await pull({ token: created.token, outDir: outDir(index), identityDir: identityDir(index), name: `client-${index}` });
      } catch (error) {
        const code = isNoiseCfgError(error) ? error.code : (error as Error).message;
        failures.set(code, (failures.get(code) ?? 0) + 1);
      } finally {
        inFlight--;
      }
      if (result?.status === 'applied' && result.isAcknowledged === true) {
        acknowledged.add(index);
        acks++;
        if (kills < KILL_AT_ACKS.length && acks >= KILL_AT_ACKS[kills]!) kill();
        return;
      }
      if (result?.status === 'up-to-date') {
        settledUpToDate.add(index);
        return;
      }
      // Thrown, or applied without ACK: pull again (after the restart, if the server is down).
    }
  });
  const pullMs = Date.now() - started;
  await up;
  const last = serve as ChildHandle | null;
  last!.child.kill('SIGTERM');
  const stopped = await withTimeout(last!.exited, 15_000, 'serve to stop on SIGTERM');
  t.equal(stopped.code, 0, 'the last serve stops cleanly on SIGTERM');

  t.equal(kills, KILL_AT_ACKS.length, `the server was killed ${KILL_AT_ACKS.length} times`);
  t.equal(starts.length, KILL_AT_ACKS.length + 1, 'and restarted after each kill');
  t.ok(killsAt.every((at) => at.inFlight > 0), 'every kill hit pulls in flight', { killsAt });
  t.equal(acknowledged.size + settledUpToDate.size, CLIENTS, `all ${CLIENTS} clients settled within ${MAX_ATTEMPTS} attempts`);

  // The store is sound, and every acknowledged result is in it.
  const check = TaskStore.open(join(data, 'noise-cfg.db'), { check: true });
  check.close();
  t.pass('the database passes quick_check after the crashes');
  const admin = await TaskAdmin.open(data);
  const view = await admin.showTask(created.id);
  admin.close();
  const byIdentity = new Map(view.clients.map((client) => [client.identity, client]));
  const lost = [...acknowledged].filter((index) => {
    const record = byIdentity.get(xxIdentity(identityDir(index)));
    return !(record?.state === 'applied' && record.result !== null);
  });
  const VALID = new Set(['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted']);
  const halfWritten = view.clients.filter((client) => !VALID.has(client.state) || !/^client-\d+$/.test(client.name)
    || Date.parse(client.firstSeenAt) > Date.parse(client.updatedAt)
    || ((client.state === 'applied' || client.state === 'failed') && (client.result === null || typeof client.result.message !== 'string')));
  const identities = new Set(Array.from({ length: CLIENTS }, (_, index) => xxIdentity(identityDir(index))));
  t.equal(lost.length, 0, 'results lost: none (every ACKed result is recorded applied)', { lost });
  t.equal(halfWritten.length, 0, 'no client record is half-written', { halfWritten: halfWritten.slice(0, 5) });
  t.ok(view.clients.every((client) => identities.has(client.identity)), 'every record belongs to one of the clients');
  const wrongOut = Array.from({ length: CLIENTS }, (_, index) => index).filter((index) => !sameTree(treeDigests(outDir(index)), expected));
  t.equal(wrongOut.length, 0, 'every client holds the files byte for byte', { wrongOut: wrongOut.slice(0, 5) });
  const upToDateNotApplied = [...settledUpToDate].filter((index) => byIdentity.get(xxIdentity(identityDir(index)))?.state !== 'applied');
  t.comment(`crashes survived: ${kills} (at ${JSON.stringify(killsAt)}); ${CLIENTS} clients in ${pullMs} ms, ${attempts.reduce((a, b) => a + b, 0)} attempts; `
    + `${acknowledged.size} acknowledged, ${settledUpToDate.size} settled by UP_TO_DATE (${upToDateNotApplied.length} of those not recorded applied); `
    + `results lost: ${lost.length}; client errors during crashes: ${JSON.stringify(Object.fromEntries(failures))}; final counts ${JSON.stringify(view.counts)}`);
});

t.test('crash: the server records a client applied before it answers UP_TO_DATE', async (t) => {
  // SPEC.md §4.7: a result without ACK is settled by a re-pull, "because the client then sends have"; §4.6: the
  // server answers UP_TO_DATE and records the client applied. If the server dies between the two, the client has
  // settled (it never pulls again) and the server never learns it applied. To make the window deterministic, the
  // test holds SQLite's write lock from another connection: the server's commit waits on it, and the server is
  // killed while it waits.
  const dir = t.testdir();
  const data = join(dir, 'data');
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg') };
  const port = await freePort();
  const setup = await TaskAdmin.open(data, { create: true });
  const created = await setup.createTask({ files: [{ path: 'app.conf', content: Buffer.from('v = 1\n') }], advertise: { host: HOST, port } });
  setup.close();
  const children: ChildHandle[] = [];
  t.teardown(() => {
    for (const child of children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
  });
  const start = async (): Promise<ChildHandle> => {
    const child = spawnNode([CLI_BIN, 'serve', '--data', data, '--listen', `${HOST}:${port}`, '--api', 'off'], env);
    children.push(child);
    await child.waitForStderr(/listening on/);
    return child;
  };
  const identityDir = join(dir, 'identity');
  const outDir = join(dir, 'out');

  // 1. The client applies, and the server dies before RESULT (the --exec command kills it): no ACK.
  let serve = await start();
  const first = await pull({ token: created.token, outDir, identityDir, exec: `kill -9 ${serve.child.pid}` }).catch((error: unknown) => error);
  await serve.exited;
  t.ok(isNoiseCfgError(first) || (first as PullResult).isAcknowledged === false, 'the first pull got no ACK', { first });
  t.ok(existsSync(join(outDir, 'app.conf')), 'but its files are applied');

  // 2. The re-pull that settles it, while the server's commit is held up by the write lock.
  serve = await start();
  const lock = new Database(join(data, 'noise-cfg.db'));
  lock.pragma('busy_timeout = 0');
  lock.prepare('BEGIN IMMEDIATE').run();
  let isLocked = true;
  t.teardown(() => {
    if (isLocked) lock.prepare('ROLLBACK').run();
    lock.close();
  });
  const settling = pull({ token: created.token, outDir, identityDir }).then((result) => ({ result }), (error: unknown) => ({ error }));
  // Proving that an answer does not come needs a bound: while the commit cannot happen, a server that answers
  // only after the record is durable stays silent; this one answers at once.
  const early = await Promise.race([settling, new Promise<null>((resolve) => setTimeout(() => resolve(null), 2000))]);
  serve.child.kill('SIGKILL');
  await serve.exited;
  lock.prepare('ROLLBACK').run();
  isLocked = false;
  const outcome = await withTimeout(settling, 15_000, 'the settling re-pull to end');
  const isToldUpToDate = 'result' in outcome && outcome.result.status === 'up-to-date';
  t.comment(`while the commit was held up the server ${early === null ? 'did not answer' : `answered (${'result' in early ? early.result.status : 'error'})`}; the re-pull ended with ${'result' in outcome ? outcome.result.status : (outcome.error as Error).message}`);

  const admin = await TaskAdmin.open(data);
  const record = (await admin.showTask(created.id)).clients.find((client) => client.identity === xxIdentity(identityDir));
  admin.close();
  if (isToldUpToDate) {
    t.equal(record?.state, 'applied', 'the client that was told UP_TO_DATE (and so will not pull again) is recorded applied', { record });
  } else {
    t.pass('the server did not answer UP_TO_DATE before the applied record was durable');
  }
});

// ---------------------------------------------------------------------------------------------------------------

t.test('client killed at each phase of a pull: --out holds the old or the new version, never a mix', async (t) => {
  const dir = t.testdir();
  const { port, admin, logs } = await startTaskServer(t, join(dir, 'data'));
  const oldFiles: FileInput[] = [
    { path: 'etc/app.conf', content: Buffer.from('version = 1\n') },
    { path: 'etc/old-only.conf', content: Buffer.from('gone in version 2\n') },
  ];
  // The new version: 30 MiB in 60 files for the kill during the content, 1.25 MiB in 20 files for the other phases
  // (the staged version is written file by file either way).
  const newVersion = (files: number, bytesEach: number): FileInput[] => [
    { path: 'etc/app.conf', content: Buffer.from('version = 2\n') },
    ...Array.from({ length: files }, (_, index) => ({ path: `data/part-${String(index).padStart(2, '0')}.bin`, content: randomBytes(bytesEach) })),
  ];
  const largeFiles = newVersion(60, 512 * 1024);
  const smallFiles = newVersion(20, 64 * 1024);
  const oldTask = await admin.createTask({ files: oldFiles, name: 'old', advertise: { host: HOST, port } });
  const largeTask = await admin.createTask({ files: largeFiles, name: 'new-30MiB', advertise: { host: HOST, port } });
  const smallTask = await admin.createTask({ files: smallFiles, name: 'new-1MiB', advertise: { host: HOST, port } });
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg') };

  type Phase = {
    name: string;
    isLarge?: boolean;
    /** Server bytes let through to the client before the proxy holds them. */
    serverToClientLimit?: number;
    /** Stop passing the client's bytes on once this much content went to it (so RESULT never reaches the server). */
    holdClientAfter?: number;
    exec?: string;
    /** Resolves at the moment to kill the client (absent: the client kills itself). */
    trigger?: (proxy: ControlledProxy, versionsDir: string) => Promise<void>;
    allowed: ('old' | 'new')[];
    states: (string | undefined)[];
  };
  /** Resolves when an entry whose name matches appears in `directory`. */
  const entryAppears = (directory: string, match: (name: string) => boolean): Promise<void> => new Promise((resolve) => {
    const watcher = watch(directory, (_, name) => {
      if (name !== null && match(name.toString())) {
        watcher.close();
        resolve();
      }
    });
  });
  const phases: Phase[] = [
    {
      name: 'mid-handshake',
      serverToClientLimit: 0,
      trigger: (proxy) => proxy.clientSent(23 + 2 + 64),
      allowed: ['old'],
      states: [undefined],
    },
    {
      name: 'mid-offer (10 of 30 MiB received)',
      isLarge: true,
      serverToClientLimit: 10 * 1024 * 1024,
      trigger: (proxy) => proxy.forwarded(10 * 1024 * 1024),
      allowed: ['old'],
      states: ['offered', 'interrupted'],
    },
    {
      name: 'mid-apply (the staged version was just renamed into place)',
      holdClientAfter: 256 * 1024,
      trigger: (_, versionsDir) => entryAppears(versionsDir, (name) => name.startsWith(`${smallTask.id}-`)),
      allowed: ['old', 'new'],
      states: ['offered', 'interrupted'],
    },
    {
      name: 'mid-apply (the new link was just made)',
      holdClientAfter: 256 * 1024,
      trigger: (_, versionsDir) => entryAppears(versionsDir, (name) => name.startsWith('.link-')),
      allowed: ['old', 'new'],
      states: ['offered', 'interrupted'],
    },
    {
      name: 'before RESULT (--exec kills the client)',
      exec: 'kill -9 $PPID',
      allowed: ['new'],
      states: ['offered', 'interrupted'],
    },
  ];

  for (const [index, phase] of phases.entries()) {
    await t.test(phase.name, async (t) => {
      const newTask = phase.isLarge ? largeTask : smallTask;
      const versions = { old: filesDigests(oldFiles), new: filesDigests(phase.isLarge ? largeFiles : smallFiles) };
      const totalNewBytes = newTask.task.totalBytes;
      const identityDir = join(dir, `identity-${index}`);
      const outDir = join(dir, `out-${index}`);
      const versionsDir = join(dir, `.out-${index}.noise-cfg`);
      const identity = xxIdentity(identityDir);
      const before = await pull({ token: oldTask.token, outDir, identityDir, name: `phase-${index}` });
      t.equal(before.status, 'applied', 'the old version is in place');

      const proxy = new ControlledProxy(port, phase.serverToClientLimit === undefined ? {} : { serverToClientLimit: phase.serverToClientLimit });
      await proxy.listen();
      t.teardown(() => proxy.close());
      if (phase.holdClientAfter !== undefined) {
        // Once content flows, the HELLO is long past; from then on the client's bytes (its RESULT) are held back.
        void proxy.forwarded(phase.holdClientAfter).then(() => proxy.holdClient());
      }
      // Watchers and waiters are in place before the client starts.
      const triggered = phase.trigger?.(proxy, versionsDir);
      const client = spawnNode([CLI_BIN, 'pull', '--out', outDir, '--identity-dir', identityDir, '--name', `phase-${index}`, ...(phase.exec ? ['--exec', phase.exec] : [])], {
        ...env, NOISE_CFG_TOKEN: await admin.token(newTask.id, { host: HOST, port: proxy.port }),
      });
      t.teardown(() => {
        if (client.child.exitCode === null && client.child.signalCode === null) client.child.kill('SIGKILL');
      });
      if (triggered) {
        await withTimeout(Promise.race([triggered, client.exited.then(() => Promise.reject(new Error(`the client exited first: ${client.stderr()}`)))]), 30_000, `the ${phase.name} trigger`);
        client.child.kill('SIGKILL');
      }
      const exit = await withTimeout(client.exited, 30_000, 'the client to die');
      t.equal(exit.signal, 'SIGKILL', 'the client was killed');

      const found = versionAt(outDir, versions);
      t.ok((phase.allowed as string[]).includes(found), `--out holds the ${phase.allowed.join(' or the ')} version byte for byte (found: ${found})`);
      const record = (await admin.showTask(newTask.id)).clients.find((client) => client.identity === identity);
      t.ok(phase.states.includes(record?.state), `the server shows the client as ${phase.states.map((state) => state ?? 'unknown').join(' or ')} (found: ${record?.state ?? 'no record'})`);
      t.comment(`${phase.name}: --out has the ${found} version; server record ${record?.state ?? 'none'}; ${proxy.forwardedBytes} of ~${totalNewBytes} content bytes reached the client`);

      const again = await withTimeout(pull({ token: newTask.token, outDir, identityDir, name: `phase-${index}` }), 30_000, 're-pull');
      t.ok(again.status === 'applied' ? again.isAcknowledged === true : again.status === 'up-to-date', `a re-pull completes (${again.status})`);
      t.equal(versionAt(outDir, versions), 'new', 'after the re-pull --out holds the new version');
      await waitUntil(async () => (await admin.showTask(newTask.id)).clients.find((client) => client.identity === identity)?.state === 'applied', 'the record to be applied', 5000);
      t.pass('and the server records the client applied');
      t.same(stagingLeft(outDir), [], 'no staging directory is left behind');
    });
  }
  t.ok(logs.some((record) => record.event === 'handshake-failed'), 'the killed handshake was logged');
});

// ---------------------------------------------------------------------------------------------------------------

/** Runs a command; returns whether it succeeded, with its stderr. */
function run(command: string, args: readonly string[]): { ok: boolean; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return { ok: result.status === 0, stderr: `${result.stderr ?? ''}${result.error?.message ?? ''}`.trim() };
}

t.test('disk full: a task larger than the filesystem fails with APPLY_FAILED and leaves nothing half-written', async (t) => {
  const dir = t.testdir();
  const { port, admin, logs } = await startTaskServer(t, join(dir, 'data'));
  const small = await admin.createTask({ files: [{ path: 'app.conf', content: Buffer.from('version = 1\n') }], advertise: { host: HOST, port } });
  const bigFiles: FileInput[] = [{ path: 'app.conf', content: Buffer.from('version = 2\n') }, { path: 'data/blob.bin', content: randomBytes(16 * 1024 * 1024) }];
  const big = await admin.createTask({ files: bigFiles, advertise: { host: HOST, port } });
  const mountPoint = join(dir, 'tmpfs');
  mkdirSync(mountPoint);
  const mounted = run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
  if (!mounted.ok) {
    t.comment(`mount -t tmpfs is not permitted here (${mounted.stderr}); the disk-full case cannot run`);
    t.fail('a 4 MiB tmpfs could not be mounted: disk full is untested');
    return;
  }
  let isMounted = true;
  const unmount = (): void => {
    if (isMounted) isMounted = !run('umount', [mountPoint]).ok;
  };
  t.teardown(unmount);
  try {
    const oldVersion = filesDigests([{ path: 'app.conf', content: Buffer.from('version = 1\n') }]);
    const newVersion = filesDigests(bigFiles);
    for (const withPrevious of [false, true]) {
      const label = withPrevious ? 'over a previous version' : 'into a new --out';
      const outDir = join(mountPoint, withPrevious ? 'out-previous' : 'out-new');
      const identityDir = join(dir, withPrevious ? 'identity-previous' : 'identity-new');
      if (withPrevious) t.equal((await pull({ token: small.token, outDir, identityDir })).status, 'applied', 'the previous version is in place');
      const identity = xxIdentity(identityDir);
      const logged = (): number => logs.filter((record) => record.event === 'pull' && record.task === big.id && record.identity === identity.slice(0, 16)).length;
      const result = await pull({ token: big.token, outDir, identityDir });
      // The server's side of the session is over once it has logged it: its record is final then.
      await waitUntil(() => logged() === 1, 'the server to log the pull', 5000);
      t.equal(result.status, 'failed', `${label}: the pull fails`);
      t.equal(result.failure?.code, 'APPLY_FAILED', `${label}: with APPLY_FAILED`);
      t.match(result.failure?.message ?? '', /ENOSPC/, `${label}: and a clear message (${result.failure?.message})`);
      t.equal(result.isAcknowledged, true, `${label}: the server acknowledged the failure`);
      t.equal(versionAt(outDir, { old: oldVersion, new: newVersion }), withPrevious ? 'old' : 'absent', `${label}: ${withPrevious ? 'the previous version is intact' : 'the out link is absent'}`);
      t.same(stagingLeft(outDir), [], `${label}: the staging directory was removed`);
      const record = (await admin.showTask(big.id)).clients.find((client) => client.identity === identity);
      t.equal(record?.state, 'failed', `${label}: the server records the client failed`);
      t.match(record?.result?.message ?? '', /ENOSPC/, `${label}: with the reason`);
    }
    const usage = spawnSync('df', ['-k', '--output=used', mountPoint], { encoding: 'utf8' }).stdout.trim().split('\n').pop();
    t.comment(`tmpfs of 4 MiB used after the failed pulls: ${usage} KiB`);
  } finally {
    unmount();
  }
});

t.test('read-only output directory: APPLY_FAILED with a clear message, the previous version intact', async (t) => {
  const dir = t.testdir();
  const { port, admin, logs } = await startTaskServer(t, join(dir, 'data'));
  const serverLogged = (taskId: string, identityDir: string): number => logs.filter((record) => record.event === 'pull' && record.task === taskId && record.identity === xxIdentity(identityDir).slice(0, 16)).length;
  const v1 = [{ path: 'app.conf', content: Buffer.from('version = 1\n') }];
  const v2 = [{ path: 'app.conf', content: Buffer.from('version = 2\n') }];
  const first = await admin.createTask({ files: v1, advertise: { host: HOST, port } });
  const second = await admin.createTask({ files: v2, advertise: { host: HOST, port } });
  const versions = { old: filesDigests(v1), new: filesDigests(v2) };

  // A read-only bind mount: root ignores permission bits, not a read-only mount.
  const source = join(dir, 'ro-source');
  const mountPoint = join(dir, 'ro');
  mkdirSync(source);
  mkdirSync(mountPoint);
  const identityDir = join(dir, 'identity');
  t.equal((await pull({ token: first.token, outDir: join(source, 'out'), identityDir })).status, 'applied', 'version 1 is in place');
  const bound = run('mount', ['--bind', source, mountPoint]);
  const readOnly = bound.ok ? run('mount', ['-o', 'remount,bind,ro', mountPoint]) : bound;
  let isMounted = bound.ok;
  const unmount = (): void => {
    if (isMounted) isMounted = !run('umount', [mountPoint]).ok;
  };
  t.teardown(unmount);
  try {
    if (!readOnly.ok) {
      t.comment(`read-only bind mounts are not permitted here (${readOnly.stderr})`);
    } else {
      const outDir = join(mountPoint, 'out');
      // The pull takes its lock (a new file beside --out) before it connects, so a read-only --out is found
      // before anything is downloaded (SPEC.md §4.7), and the server never hears of this pull.
      await t.rejects(pull({ token: second.token, outDir, identityDir }), { code: 'APPLY_FAILED', message: /EROFS/ }, 'read-only mount: APPLY_FAILED (EROFS) before connecting');
      t.equal(versionAt(outDir, versions), 'old', 'read-only mount: version 1 is intact');
      t.equal(serverLogged(second.id, identityDir), 0, 'read-only mount: no connection was made');
      t.equal((await admin.showTask(second.id)).clients.find((client) => client.identity === xxIdentity(identityDir)), undefined, 'read-only mount: no client record');
    }
  } finally {
    unmount();
  }

  // An immutable parent directory (chattr +i): the writability check before connecting finds it (issue 12 item 7),
  // so the pull fails APPLY_FAILED (EPERM) and the server never hears of it.
  const parent = join(dir, 'immutable');
  mkdirSync(parent);
  const outDir = join(parent, 'out');
  const identity2 = join(dir, 'identity-2');
  t.equal((await pull({ token: first.token, outDir, identityDir: identity2 })).status, 'applied', 'version 1 is in place under the parent');
  const immutable = run('chattr', ['+i', parent]);
  if (!immutable.ok) {
    t.comment(`chattr +i is not permitted here (${immutable.stderr})`);
    if (!readOnly.ok) t.fail('neither a read-only mount nor chattr +i is available: read-only --out is untested');
    return;
  }
  t.teardown(() => {
    run('chattr', ['-i', parent]);
  });
  try {
    await t.rejects(pull({ token: second.token, outDir, identityDir: identity2 }), { code: 'APPLY_FAILED', message: /EPERM.*lsattr/ }, 'immutable parent: APPLY_FAILED (EPERM) before connecting');
    t.equal(serverLogged(second.id, identity2), 0, 'immutable parent: no connection was made');
    t.equal((await admin.showTask(second.id)).clients.find((client) => client.identity === xxIdentity(identity2)), undefined, 'immutable parent: no client record');
    t.equal(versionAt(outDir, versions), 'old', 'immutable parent: version 1 is intact');
    t.equal(readlinkSync(outDir).includes(first.id), true, 'immutable parent: --out still links to version 1');
  } finally {
    run('chattr', ['-i', parent]);
  }
});

// ---------------------------------------------------------------------------------------------------------------

t.test('clocks: a task expires at exactly its time, and client clock skew is reported clearly', async (t) => {
  const dir = t.testdir();
  let serverNow = Date.now();
  const { port, admin, logs } = await startTaskServer(t, join(dir, 'data'), { now: () => serverNow });
  const created = await admin.createTask({ files: [{ path: 'app.conf', content: Buffer.from('x = 1\n') }], ttlSeconds: 60, advertise: { host: HOST, port } });
  const expiresAt = Date.parse(created.expiresAt);
  t.equal(expiresAt % 1000, 0, 'the expiry is a whole second (the token carries seconds)');
  let client = 0;
  const attempt = (clientNow: number): Promise<PullResult> => {
    client++;
    return pull({ token: created.token, outDir: join(dir, `out-${client}`), identityDir: join(dir, `identity-${client}`), now: () => clientNow });
  };

  serverNow = expiresAt - 1;
  t.equal((await attempt(expiresAt - 1)).status, 'applied', 'one millisecond before expiry (both clocks): the pull succeeds');

  serverNow = expiresAt;
  await t.rejects(attempt(expiresAt - 1), { code: 'REJECTED', message: /expired/ }, 'at expiresAt on the server: REJECTED, expired');
  t.notOk(existsSync(join(dir, `out-${client}`)), 'nothing was written for the rejected pull');

  // The client's clock is ahead, past the expiry, while the task is still active on the server.
  serverNow = expiresAt - 30_000;
  const handshakesBefore = logs.length;
  await t.rejects(attempt(expiresAt), { code: 'TOKEN_EXPIRED', message: new RegExp(new Date(expiresAt).toISOString()) }, 'client clock at the expiry: TOKEN_EXPIRED locally, naming when');
  await t.rejects(attempt(expiresAt + 3_600_000), { code: 'TOKEN_EXPIRED' }, 'client clock an hour ahead: TOKEN_EXPIRED locally');
  t.equal(logs.length, handshakesBefore, 'no connection was made for a locally expired token');

  // The client's clock is behind: the token looks valid, and the server decides.
  serverNow = expiresAt + 5000;
  const rejection = attempt(expiresAt - 3_600_000);
  await t.rejects(rejection, { code: 'REJECTED', message: new RegExp(`expired at ${new Date(expiresAt).toISOString()}`) }, 'client clock an hour behind, server past expiry: REJECTED, saying when the task expired');
  serverNow = expiresAt - 1000;
  t.equal((await attempt(expiresAt - 30 * 86_400_000)).status, 'applied', 'client clock 30 days behind, task active on the server: skew alone is not fatal');
  t.equal((await attempt(expiresAt - 1)).status, 'applied', 'client clock ahead of the server but before expiry: the pull succeeds');
});

// Token holders (issue 11, SPEC.md §4.6, §4.8): a task token goes to many clients, and a leaked or hostile one
// must not hurt the server or other tasks. Each case is an attack seen in review, run against a TaskServer in a
// child process (so memory figures are the server's own) over loopback: FRAGMENTs that never end, big-task pulls
// that stop reading, too many sessions per task and per identity, REKEY keep-alives instead of HELLO, `have` from
// new identities, cancel and revoke mid-session, and a flood of nnpsk0 identities. Figures are printed, not timed.
import t, { type Test } from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { generateKeyPair } from '../../lib/noise/keys.js';
import { TaskAdmin } from '../../lib/task/admin.js';
import { pull } from '../../lib/task/client.js';
import { MAX_CLIENT_MESSAGE_BYTES, type UpdateMessage } from '../../lib/task/messages.js';
import type { LogRecord, TaskServerOptions } from '../../lib/task/server.js';
import { CONTENT_SLICE_BYTES } from '../../lib/task/store.js';
import { MAX_RECORD_BODY_BYTES } from '../../lib/transport/records.js';
import { HOST, patterned, runPool, withTimeout, waitUntil } from './support.js';
import { openTokenHolder, type TokenHolder } from './token-holder-client.js';

const MIB = 1024 * 1024;
/** How long any single wait may take before the test fails instead of hanging (a broken server never closes). */
const GUARD_MS = 20_000;

interface ServerStats {
  rssBytes: number;
  peakRssBytes: number;
}

/** A TaskServer in a child process (token-holder-server.ts), with its log records and memory figures. */
class ServerChild {
  readonly logs: LogRecord[] = [];
  readonly #child: ChildProcess;
  readonly #waiters: ((message: Record<string, unknown>) => boolean)[] = [];
  port = 0;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (message: Record<string, unknown>) => {
      if (message['log']) this.logs.push(message['log'] as LogRecord);
      for (const waiter of [...this.#waiters]) if (waiter(message)) this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
    });
  }

  static async start(t: Test, dataDir: string, options: Partial<TaskServerOptions> = {}): Promise<ServerChild> {
    // The child runs the built server (dist/), with no loader of this test's in its memory figures.
    const child = fork(new URL('./token-holder-server.mjs', import.meta.url), [JSON.stringify({ dataDir, ...options })], {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const server = new ServerChild(child);
    t.teardown(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send('stop');
      await withTimeout(exited, 10_000, 'the server child to stop').catch(() => child.kill('SIGKILL'));
    });
    server.port = (await server.#next((message) => typeof message['port'] === 'number', 'the server to listen'))['port'] as number;
    return server;
  }

  #next(match: (message: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    return withTimeout(new Promise((resolve) => {
      this.#waiters.push((message) => {
        if (!match(message)) return false;
        resolve(message);
        return true;
      });
    }), GUARD_MS, what);
  }

  async stats(): Promise<ServerStats> {
    const reply = this.#next((message) => message['stats'] !== undefined, 'server stats');
    this.#child.send('stats');
    return (await reply)['stats'] as ServerStats;
  }

  async resetPeak(): Promise<ServerStats> {
    const reply = this.#next((message) => message['reset'] === true, 'the peak reset');
    this.#child.send('reset-peak');
    await reply;
    return this.stats();
  }

  /** Pull log records of `task` (refusal summaries count as their `count`). */
  pullRecords(task: string, match: (record: LogRecord) => boolean = () => true): LogRecord[] {
    return this.logs.filter((record) => record.event === 'pull' && record.task === task && match(record));
  }

  /** How many connections the pull records of `task` matching `match` stand for. */
  countPulls(task: string, match: (record: LogRecord) => boolean): number {
    return this.pullRecords(task, match).reduce((sum, record) => sum + (record.count ?? 1), 0);
  }

  /** Resolves once the records of `task` matching `match` stand for at least `count` connections. */
  waitForPulls(task: string, match: (record: LogRecord) => boolean, count: number, what: string): Promise<void> {
    return waitUntil(() => this.countPulls(task, match) >= count, what, GUARD_MS);
  }
}

const mib = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;

async function createTask(dataDir: string, port: number, options: { bytes?: number; files?: { path: string; content: Buffer }[]; maxClients?: number; mode?: 'xxpsk3' | 'nnpsk0' } = {}): Promise<{ id: string; token: string; digest: string }> {
  const admin = await TaskAdmin.open(dataDir, { create: true });
  try {
    const files = options.files ?? [{ path: 'payload.bin', content: patterned(options.bytes ?? 1000, 3) }];
    const created = await admin.createTask({ files, advertise: { host: HOST, port }, mode: options.mode ?? 'xxpsk3', ...(options.maxClients !== undefined ? { maxClients: options.maxClients } : {}) });
    return { id: created.id, token: created.token, digest: created.task.digest };
  } finally {
    admin.close();
  }
}

/** Runs `step` on an admin of the data directory opened for the call: another process than the server's. */
async function withAdmin<T>(dataDir: string, step: (admin: TaskAdmin) => Promise<T>): Promise<T> {
  const admin = await TaskAdmin.open(dataDir, { create: true });
  try {
    return await step(admin);
  } finally {
    await admin.close();
  }
}

async function expectNext(holder: TokenHolder, what: string): Promise<UpdateMessage | null> {
  return withTimeout(holder.receive(), GUARD_MS, what);
}

/** Reads an OFFER's content to its end; returns the bytes taken. */
async function readContent(holder: TokenHolder, totalBytes: number): Promise<number> {
  let received = 0;
  while (received < totalBytes) {
    const message = await expectNext(holder, 'a CHUNK');
    if (message?.type !== 'CHUNK') throw new Error(`expected CHUNK, got ${message?.type ?? 'END'}`);
    received += message.body.byteLength;
  }
  return received;
}

/** Closes every holder and waits for their sockets to close. */
async function closeAll(holders: readonly TokenHolder[]): Promise<void> {
  for (const holder of holders) holder.connection.destroy();
  await Promise.all(holders.map((holder) => holder.closed));
}

t.test('FRAGMENTs that never end: the server cuts each connection past one HELLO\'s size and its memory does not grow with them', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const server = await ServerChild.start(t, dataDir);
  const task = await createTask(dataDir, server.port);
  // What each flooder would send if nothing stopped it; the review's flood went on to the 64 MiB message limit.
  const floodBytesPerConnection = 8 * MIB;
  const fragment = Buffer.alloc(MAX_RECORD_BODY_BYTES, 0x41);
  let logged = 0;
  for (const connections of [8, 48]) {
    const before = await server.resetPeak();
    const holders = await Promise.all(Array.from({ length: connections }, () => openTokenHolder(task.token)));
    const sent = await Promise.all(holders.map(async (holder) => {
      let bytes = 0;
      let isClosed = false;
      void holder.closed.then(() => {
        isClosed = true;
      });
      while (!isClosed && bytes < floodBytesPerConnection) {
        bytes += fragment.byteLength;
        if (!holder.writeRecord('FRAGMENT', fragment)) {
          await Promise.race([new Promise((resolve) => holder.socket.once('drain', resolve)), holder.closed]);
        }
      }
      await withTimeout(holder.closed, GUARD_MS, 'the server to close a flooding connection');
      return bytes;
    }));
    await server.waitForPulls(task.id, () => true, logged + connections, `${connections} pull log records`);
    const after = await server.stats();
    const records = server.pullRecords(task.id).slice(logged);
    logged += connections;
    t.equal(records.length, connections, `${connections} flooders: one log record each`);
    t.ok(records.every((record) => record.outcome === 'error' && record.code === 'MESSAGE_TOO_LARGE'), `${connections} flooders: each was cut with MESSAGE_TOO_LARGE`, { codes: [...new Set(records.map((record) => record.code))] });
    const growth = after.peakRssBytes - before.rssBytes;
    t.comment(`${connections} connections sending FRAGMENTs (${mib(Math.max(...sent))} written at most, limit ${MAX_CLIENT_MESSAGE_BYTES} bytes): server RSS ${mib(before.rssBytes)} -> peak ${mib(after.peakRssBytes)} (+${mib(growth)}), now ${mib(after.rssBytes)}`);
    // Without the receive limit each connection makes the server hold what it sent (8 MiB here).
    t.ok(growth < 16 * MIB + connections * 256 * 1024, `${connections} flooders: the server's peak RSS grew by ${mib(growth)}, well under what they sent (${mib(connections * floodBytesPerConnection)})`);
  }
});

t.test('pulls of a big task that stop reading: the server holds about a slice per pull, whatever the task\'s size', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  // A content cache of 1 MiB: both tasks are streamed from the store, as any task over 64 MiB is by default.
  const server = await ServerChild.start(t, dataDir, { contentCacheBytes: MIB });
  const sizesMib = (process.env['TOKEN_HOLDERS_BIG_TASK_MIB'] ?? '24,96').split(',').map(Number);
  const pulls = 8;
  const growthBySize = new Map<number, number>();
  // The first round warms the server up (its allocator, SQLite's page cache, lazily compiled code): not counted.
  for (const [round, sizeMib] of [sizesMib[0]!, ...sizesMib].entries()) {
    const isWarmUp = round === 0;
    const task = await createTask(dataDir, server.port, { bytes: sizeMib * MIB });
    const before = await server.resetPeak();
    const holders = await Promise.all(Array.from({ length: pulls }, () => openTokenHolder(task.token)));
    await Promise.all(holders.map(async (holder) => {
      await holder.hello();
      const offer = await expectNext(holder, 'the OFFER');
      if (offer?.type !== 'OFFER') throw new Error(`expected OFFER, got ${offer?.type ?? 'END'}`);
      // Take a few MiB, so the pull is well into the file, then stop reading: the server's sends back up.
      await readContent(holder, 4 * MIB);
    }));
    // The server goes on until its socket buffers are full; wait until nothing more arrives at any holder.
    let lastRead = -1;
    await waitUntil(() => {
      const read = holders.reduce((sum, holder) => sum + holder.socket.bytesRead, 0);
      const isSteady = read === lastRead;
      lastRead = read;
      return isSteady;
    }, 'the stalled pulls to stop moving', GUARD_MS);
    const after = await server.stats();
    const growth = after.peakRssBytes - before.rssBytes;
    if (!isWarmUp) growthBySize.set(sizeMib, growth);
    t.comment(`${isWarmUp ? 'warm-up: ' : ''}${pulls} stalled pulls of a ${sizeMib} MiB task (one file, slices of ${mib(CONTENT_SLICE_BYTES)}): server RSS ${mib(before.rssBytes)} -> peak ${mib(after.peakRssBytes)} (+${mib(growth)}), now ${mib(after.rssBytes)}`);
    // Reading each file whole, the server held the task's size per pull.
    if (!isWarmUp) t.ok(growth < pulls * 8 * MIB, `${sizeMib} MiB task: the peak grew by ${mib(growth)}, under ${pulls} x 8 MiB (the task is ${sizeMib} MiB per pull)`);
    await closeAll(holders);
    await server.waitForPulls(task.id, () => true, pulls, 'the stalled pulls to be logged');
  }
  const sizes = [...growthBySize.keys()];
  if (sizes.length >= 2) {
    const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
    const extra = growthBySize.get(large)! - growthBySize.get(small)!;
    t.ok(extra < pulls * 4 * MIB, `from ${small} to ${large} MiB per task the peak grew ${mib(extra)} more, not ${pulls} x ${large - small} MiB`);
  }
});

t.test('sessions per identity and per task are capped: over a cap a client gets REJECT busy at once, logged at a bounded rate, and other tasks are served', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const perTask = 100;
  const perIdentity = 4;
  // A long HELLO deadline: the idle sessions below stay open for as long as the test needs them.
  // The crowd below connects from one address all at once: the channel's per-source cap on handshakes is not
  // what this test is about.
  const server = await ServerChild.start(t, dataDir, { maxSessionsPerTask: perTask, maxSessionsPerIdentity: perIdentity, helloTimeoutMs: 60_000, limits: { maxUnauthenticatedPerSource: 1000 } });
  const xx = await createTask(dataDir, server.port);
  const nn = await createTask(dataDir, server.port, { mode: 'nnpsk0' });
  const other = await createTask(dataDir, server.port);
  const root = t.testdir();

  // One xxpsk3 identity: four idle sessions are held, the fifth is refused before it says anything.
  const keyPair = generateKeyPair();
  const same = await Promise.all(Array.from({ length: perIdentity }, () => openTokenHolder(xx.token, { keyPair })));
  const fifth = await openTokenHolder(xx.token, { keyPair });
  const refusal = await expectNext(fifth, 'the fifth session of one identity to be refused');
  t.match(refusal, { type: 'REJECT', body: { reason: 'busy', message: /busy.*4 sessions/ } }, 'the fifth session of one xxpsk3 identity: REJECT busy, before HELLO');
  t.equal(await expectNext(fifth, 'the END after REJECT'), null, 'then the server ends the session');
  await server.waitForPulls(xx.id, (record) => record.outcome === 'rejected:busy', 1, 'the busy refusal to be logged');
  t.match(server.pullRecords(xx.id, (record) => record.outcome === 'rejected:busy')[0], { code: 'TOO_MANY_CONNECTIONS', identity: fifth.identity.slice(0, 16) }, 'logged with TOO_MANY_CONNECTIONS');
  const legit = await pull({ token: xx.token, outDir: join(root, 'out-legit'), identityDir: join(root, 'id-legit'), name: 'legit' });
  t.equal(legit.status, 'applied', 'another identity of the same task still pulls');

  // One nnpsk0 clientId: the identity is known at HELLO, so the fifth is refused there.
  const clientId = 'one-claimed-id';
  const nnSame = await Promise.all(Array.from({ length: perIdentity }, async () => {
    const holder = await openTokenHolder(nn.token, { clientId });
    await holder.hello();
    t.equal((await expectNext(holder, 'an OFFER'))?.type, 'OFFER');
    return holder;
  }));
  const nnFifth = await openTokenHolder(nn.token, { clientId });
  await nnFifth.hello();
  t.match(await expectNext(nnFifth, 'the fifth nnpsk0 session to be refused'), { type: 'REJECT', body: { reason: 'busy' } }, 'the fifth session of one nnpsk0 clientId: REJECT busy at HELLO');
  await closeAll([...same, fifth, ...nnSame, nnFifth]);

  // One task: 150 idle sessions of fresh identities; 100 are held, 50 refused, and the log stays short.
  const crowd = await Promise.all(Array.from({ length: 150 }, () => openTokenHolder(xx.token)));
  await server.waitForPulls(xx.id, (record) => record.outcome === 'rejected:busy', 1 + 50, '50 more busy refusals to be logged (summaries included)');
  // Now every session says HELLO: a held one is offered the files, a refused one has its REJECT first in line.
  const held = await Promise.all(crowd.map(async (holder) => {
    await holder.hello().catch(() => undefined);
    const first = await expectNext(holder, 'the first answer').catch(() => null);
    return first?.type === 'REJECT' ? `REJECT ${first.body.reason}` : first?.type ?? 'nothing';
  }));
  t.equal(held.filter((answer) => answer === 'REJECT busy').length, 50, '50 of 150 were refused busy');
  t.equal(held.filter((answer) => answer === 'OFFER').length, perTask, `${perTask} were held open and served`);
  const busyLines = server.pullRecords(xx.id, (record) => record.outcome === 'rejected:busy');
  t.comment(`51 busy refusals of task ${xx.id} were logged in ${busyLines.length} line(s); counts ${JSON.stringify(busyLines.map((record) => record.count ?? 1))}`);
  t.equal(busyLines.reduce((sum, record) => sum + (record.count ?? 1), 0), 51, 'every refusal is in a line or a summary');
  // The 1 s window is shared with the earlier refusal, so on a slow machine the crowd can straddle two windows: at
  // most 10 single lines and a summary in each, beside that first line.
  t.ok(busyLines.length <= 1 + 2 * (10 + 1), `the refusals were logged at a bounded rate (${busyLines.length} lines for 51)`);
  await t.rejects(pull({ token: xx.token, outDir: join(root, 'out-late'), identityDir: join(root, 'id-late'), name: 'late', retryForMs: 0 }), { code: 'TOO_MANY_CONNECTIONS', message: /busy/ }, 'a pull of the full task is told busy (exit 11), not refused');
  const otherPull = await pull({ token: other.token, outDir: join(root, 'out-other'), identityDir: join(root, 'id-other'), name: 'other' });
  t.equal(otherPull.status, 'applied', 'a pull of another task is served meanwhile');
  await closeAll(crowd);
});

t.test('deadlines: REKEY keep-alives do not extend the HELLO deadline; RESULT and the session\'s lifetime are bounded, each logged as SESSION_TIMEOUT', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const helloTimeoutMs = 1500;
  const server = await ServerChild.start(t, dataDir, { helloTimeoutMs, resultTimeoutMs: 1500, maxSessionMs: 4000, limits: { idleTimeoutMs: 60_000 } });
  const small = await createTask(dataDir, server.port, { bytes: 100_000 });

  // A REKEY every 200 ms and no HELLO.
  const rekeyer = await openTokenHolder(small.token);
  let rekeys = 0;
  const timer = setInterval(() => {
    rekeyer.writeRecord('REKEY');
    rekeys++;
  }, 200);
  t.teardown(() => clearInterval(timer));
  await withTimeout(rekeyer.closed, GUARD_MS, 'the server to end a session that sends no HELLO');
  clearInterval(timer);
  t.ok(rekeys >= helloTimeoutMs / 200 - 2, `the client kept the connection busy with ${rekeys} REKEY records before the server ended it`);
  await server.waitForPulls(small.id, () => true, 1, 'the HELLO timeout to be logged');
  t.match(server.pullRecords(small.id)[0], { outcome: 'error', code: 'SESSION_TIMEOUT', message: /no HELLO within 1500 ms/ }, 'logged: no HELLO within the deadline');

  // HELLO, the content, and no RESULT.
  const silent = await openTokenHolder(small.token);
  await silent.hello();
  const offer = await expectNext(silent, 'the OFFER');
  t.equal(offer?.type, 'OFFER');
  await readContent(silent, 100_000);
  await withTimeout(silent.closed, GUARD_MS, 'the server to end a session that sends no RESULT');
  await server.waitForPulls(small.id, () => true, 2, 'the RESULT timeout to be logged');
  t.match(server.pullRecords(small.id)[1], { outcome: 'error', code: 'SESSION_TIMEOUT', message: /no RESULT within 1500 ms after the last CHUNK/ }, 'logged: no RESULT within the deadline');

  // A pull that reads so slowly that it would outlive the session's lifetime.
  const big = await createTask(dataDir, server.port, { bytes: 64 * MIB });
  const crawler = await openTokenHolder(big.token);
  await crawler.hello();
  t.equal((await expectNext(crawler, 'the OFFER'))?.type, 'OFFER');
  let crawled = 0;
  const crawl = setInterval(() => {
    crawler.receive().then((message) => {
      if (message?.type === 'CHUNK') crawled += message.body.byteLength;
    }, () => undefined);
  }, 20);
  t.teardown(() => clearInterval(crawl));
  await withTimeout(crawler.closed, GUARD_MS, 'the server to end a session at its maximum lifetime');
  clearInterval(crawl);
  await server.waitForPulls(big.id, () => true, 1, 'the lifetime end to be logged');
  t.match(server.pullRecords(big.id)[0], { outcome: 'error', code: 'SESSION_TIMEOUT', message: /maximum lifetime of 4000 ms/ }, `logged: the session reached its lifetime (after ${mib(crawled)} of 64 MiB, still moving)`);
  t.ok(crawled > 0 && crawled < 64 * MIB, 'the crawler was still receiving when the lifetime ended the session');
});

/** Pulls with `holder`: HELLO with `have`, reads the content if offered, sends RESULT applied unless told not to. */
async function holderPull(holder: TokenHolder, have: string | null, options: { sendResult?: boolean } = {}): Promise<{ reply: UpdateMessage | null; ack?: UpdateMessage | null }> {
  await holder.hello({ have });
  const reply = await expectNext(holder, 'the answer to HELLO');
  if (reply?.type !== 'OFFER') return { reply };
  await readContent(holder, reply.body.totalBytes);
  if (options.sendResult === false) return { reply };
  await holder.send({ type: 'RESULT', body: { status: 'applied', exitCode: 0, message: 'applied', digest: reply.body.digest } });
  return { reply, ack: await expectNext(holder, 'the answer to RESULT') };
}

t.test('`have` from identities that never applied: three fresh keys get the files, not UP_TO_DATE, and complete nothing on a --max-clients 3 task', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const server = await ServerChild.start(t, dataDir);
  const task = await createTask(dataDir, server.port, { maxClients: 3, bytes: 70_000 });
  const keys = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
  for (const [index, keyPair] of keys.entries()) {
    const holder = await openTokenHolder(task.token, { keyPair });
    const { reply } = await holderPull(holder, task.digest, { sendResult: false });
    t.equal(reply?.type, 'OFFER', `fresh identity ${index + 1} claiming to have the digest is offered the files (slot rules), not told UP_TO_DATE`);
    await closeAll([holder]);
  }
  // Each holder closed without a RESULT: its record is group-committed offered, then interrupted (issue 12 item 6).
  await waitUntil(() => withAdmin(dataDir, async (admin) => (await admin.showTask(task.id)).counts.interrupted === 3), 'the three records to be committed interrupted');
  let view = await withAdmin(dataDir, (admin) => admin.showTask(task.id));
  t.equal(view.state, 'active', 'the task is not completed');
  t.same(view.counts, { connected: 0, offered: 0, applied: 0, failed: 0, revoked: 0, interrupted: 3 }, 'nobody is recorded applied: only a RESULT counts');
  const fourth = await openTokenHolder(task.token);
  t.match((await holderPull(fourth, task.digest)).reply, { type: 'REJECT', body: { reason: 'full' } }, 'a fourth identity is refused full by the slot rules');
  await closeAll([fourth]);

  // The slot holders apply for real; the third RESULT completes the task.
  for (const keyPair of keys) {
    const holder = await openTokenHolder(task.token, { keyPair });
    const { reply, ack } = await holderPull(holder, null);
    t.equal(reply?.type, 'OFFER', 'a slot holder gets the files');
    t.match(ack, { type: 'ACK', body: { status: 'applied' } });
    await closeAll([holder]);
  }
  view = await withAdmin(dataDir, (admin) => admin.showTask(task.id));
  t.equal(view.state, 'completed', 'three RESULTs completed the task');

  const again = await openTokenHolder(task.token, { keyPair: keys[0] });
  t.match((await holderPull(again, task.digest)).reply, { type: 'UP_TO_DATE' }, 'an identity that applied and says `have` is up to date');
  await closeAll([again]);
  const fresh = await openTokenHolder(task.token, { keyPair: keys[0] });
  const refetch = await holderPull(fresh, null);
  t.match(refetch.reply, { type: 'OFFER', body: { hasContent: true } }, 'an identity that applied but has no `have` (new --out) gets the files again, though the task is completed');
  t.match(refetch.ack, { type: 'ACK', body: { status: 'applied' } });
  await closeAll([fresh]);
  const stranger = await openTokenHolder(task.token);
  t.match((await holderPull(stranger, task.digest)).reply, { type: 'REJECT', body: { reason: 'completed' } }, 'a new identity on the completed task is refused completed');
  await closeAll([stranger]);
});

t.test('cancel and revoke from another process during a session: no OFFER after a cancel, no ACK after a cancel or revoke, and nothing counted', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const server = await ServerChild.start(t, dataDir, { helloTimeoutMs: 60_000 });

  // Sessions opened before the cancel, HELLO after it.
  const early = await createTask(dataDir, server.port);
  const opened = await Promise.all(Array.from({ length: 3 }, () => openTokenHolder(early.token)));
  await withAdmin(dataDir, (admin) => admin.cancelTask(early.id));
  for (const holder of opened) {
    await holder.hello();
    t.match(await expectNext(holder, 'the answer to HELLO after the cancel'), { type: 'REJECT', body: { reason: 'cancelled' } }, 'opened before the cancel, HELLO after it: REJECT cancelled');
  }
  t.same((await withAdmin(dataDir, (admin) => admin.showTask(early.id))).clients, [], 'no client record');

  // Cancelled between OFFER and RESULT.
  const cancelled = await createTask(dataDir, server.port, { maxClients: 1 });
  const applier = await openTokenHolder(cancelled.token);
  await applier.hello();
  const offer = await expectNext(applier, 'the OFFER');
  if (offer?.type !== 'OFFER') throw new Error(`expected OFFER, got ${offer?.type}`);
  await readContent(applier, offer.body.totalBytes);
  await waitUntil(() => withAdmin(dataDir, async (admin) => (await admin.showTask(cancelled.id)).clients.length === 1), 'the offered record to be committed');
  await withAdmin(dataDir, (admin) => admin.cancelTask(cancelled.id));
  await applier.send({ type: 'RESULT', body: { status: 'applied', exitCode: 0, message: 'applied', digest: offer.body.digest } });
  t.match(await expectNext(applier, 'the answer to RESULT'), { type: 'REJECT', body: { reason: 'cancelled' } }, 'RESULT after the cancel: REJECT cancelled instead of ACK');
  let view = await withAdmin(dataDir, (admin) => admin.showTask(cancelled.id));
  t.equal(view.state, 'cancelled');
  t.same(view.clients.map((client) => client.state), ['offered'], 'the client is not recorded applied');

  // Revoked between OFFER and RESULT, on a --max-clients 1 task that its RESULT would complete.
  const revoked = await createTask(dataDir, server.port, { maxClients: 1 });
  const victim = await openTokenHolder(revoked.token);
  await victim.hello();
  const revokedOffer = await expectNext(victim, 'the OFFER');
  if (revokedOffer?.type !== 'OFFER') throw new Error(`expected OFFER, got ${revokedOffer?.type}`);
  await readContent(victim, revokedOffer.body.totalBytes);
  await waitUntil(() => withAdmin(dataDir, async (admin) => (await admin.showTask(revoked.id)).clients.length === 1), 'the offered record to be committed');
  await withAdmin(dataDir, (admin) => admin.revokeClient(revoked.id, victim.identity));
  await victim.send({ type: 'RESULT', body: { status: 'applied', exitCode: 0, message: 'applied', digest: revokedOffer.body.digest } });
  t.match(await expectNext(victim, 'the answer to RESULT'), { type: 'REJECT', body: { reason: 'revoked' } }, 'RESULT after the revoke: REJECT revoked instead of ACK');
  view = await withAdmin(dataDir, (admin) => admin.showTask(revoked.id));
  t.equal(view.state, 'active', 'the revoked client did not complete the task');
  t.same(view.clients.map((client) => client.state), ['revoked'], 'and is not recorded applied');
  await closeAll([...opened, applier, victim]);
  await server.waitForPulls(revoked.id, () => true, 1, 'the revoked session to be logged');
  t.match(server.pullRecords(revoked.id)[0], { outcome: 'rejected:revoked' });
  t.match(server.pullRecords(cancelled.id)[0], { outcome: 'rejected:cancelled' });
});

t.test('a flood of random nnpsk0 identities on one token: the task records at most its limit, the rest get REJECT full naming it', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const maxClientsPerTask = Number(process.env['TOKEN_HOLDERS_MAX_CLIENTS'] ?? 200);
  const flood = Number(process.env['TOKEN_HOLDERS_FLOOD'] ?? 1000);
  const server = await ServerChild.start(t, dataDir, { maxClientsPerTask });
  const task = await createTask(dataDir, server.port, { mode: 'nnpsk0', bytes: 200 });
  const answers = new Map<string, number>();
  let fullMessage = '';
  const started = performance.now();
  await runPool(flood, 16, async () => {
    const holder = await openTokenHolder(task.token);
    await holder.hello();
    const reply = await expectNext(holder, 'the answer to HELLO');
    const key = reply?.type === 'REJECT' ? `REJECT ${reply.body.reason}` : reply?.type ?? 'END';
    if (reply?.type === 'REJECT' && reply.body.reason === 'full') fullMessage = reply.body.message;
    answers.set(key, (answers.get(key) ?? 0) + 1);
    await closeAll([holder]);
  });
  const floodMs = performance.now() - started;
  const stored = await withAdmin(dataDir, (admin) => admin.showTask(task.id));
  t.comment(`${flood} random identities in ${Math.round(floodMs)} ms: answers ${JSON.stringify(Object.fromEntries(answers))}; client records ${stored.clients.length} (limit ${maxClientsPerTask}); task show JSON ${JSON.stringify(stored).length} bytes`);
  t.equal(stored.clients.length, maxClientsPerTask, `the task records ${maxClientsPerTask} identities, not ${flood}`);
  t.same(Object.fromEntries(answers), { OFFER: maxClientsPerTask, 'REJECT full': flood - maxClientsPerTask }, 'the first ones are offered the files, every later one is refused full');
  t.match(fullMessage, new RegExp(`limit of ${maxClientsPerTask} clients`), 'the refusal names the limit');
  await server.waitForPulls(task.id, (record) => record.outcome === 'rejected:full', flood - maxClientsPerTask, 'every refusal to be logged or summarized');
  const lines = server.pullRecords(task.id, (record) => record.outcome === 'rejected:full');
  t.comment(`${flood - maxClientsPerTask} refusals logged in ${lines.length} lines`);
  t.ok(lines.length < flood - maxClientsPerTask, 'the refusals were summarized, not logged one line each');
});

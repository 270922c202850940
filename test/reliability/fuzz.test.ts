// A bounded network fuzzer against a real TaskServer (SPEC.md §2.2–§2.6, §4): random bytes, real preambles with
// random frames, bad and truncated length prefixes, recorded client streams with one byte changed, verbatim
// replays, live handshakes by a token holder that go wrong at message 3 or after READY, and connections that stall.
// Afterwards the server must be alive and serve a real client, must have recorded no client for any fuzz
// connection, must have dropped every stalled connection at its own deadline, and must have stayed within memory.
import t from 'tap';
import net from 'node:net';
import { join } from 'node:path';
import { HandshakeState } from '../../lib/noise/handshake-state.js';
import { generateKeyPair } from '../../lib/noise/dh-functions.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import { pull } from '../../lib/task/client.js';
import { loadClientId, loadClientKeyPair } from '../../lib/task/identity.js';
import { TaskServer, type LogRecord } from '../../lib/task/server.js';
import { decodeToken, type TokenFields } from '../../lib/token/token.js';
import { encodeFrame, FrameDecoder } from '../../lib/transport/framing.js';
import { computeMac1, deriveMac1Key } from '../../lib/transport/mac1.js';
import { encodePreamble, encodeRejection } from '../../lib/transport/preamble.js';
import { encodeRecord } from '../../lib/transport/records.js';
import { encodeMessage } from '../../lib/task/messages.js';
import { HOST, randomBytesFrom, randomInt, rawConnection, RecordingProxy, SEED, seededRandom, withTimeout, type RawOutcome, xorByte } from './support.js';

const HANDSHAKE_TIMEOUT_MS = 500;
/** How late past the deadline a stalled connection may be closed, on a loaded 2-core machine. */
const DEADLINE_MARGIN_MS = 1500;
/** The fuzzing phase runs this long, or until MAX_CONNECTIONS, whichever comes first. */
const FUZZ_MS = 35_000;
const MAX_CONNECTIONS = 30_000;
const CONCURRENCY = 64;
const RSS_BOUND_BYTES = 200 * 1024 * 1024;

type CaseKind = 'random-bytes' | 'preamble-random-frames' | 'bad-length' | 'truncated' | 'mutated-recording' | 'replay'
  | 'stall-silent' | 'stall-partial-preamble' | 'stall-partial-frame' | 'stall-after-preamble' | 'live-bad-message3' | 'live-garbage-after-ready';

const STALLS = new Set<CaseKind>(['stall-silent', 'stall-partial-preamble', 'stall-partial-frame', 'stall-after-preamble']);

interface FuzzOutcome extends Omit<RawOutcome, 'received'> {
  /** For raw connections: whether what came back was nothing or a clear rejection frame, else its first bytes in hex. */
  reply: 'none' | 'rejection' | string;
  kind: CaseKind;
  localPort: number;
  /** What the server logged about this connection (matched by port while it was open). */
  records: LogRecord[];
  /** For recording mutations: which byte of the handshake changed. */
  mutatedAt?: number;
}

interface Task {
  id: string;
  token: string;
  fields: TokenFields;
  mode: 'xxpsk3' | 'nnpsk0';
}

/** A client of our own that runs a real handshake with the task's PSK, then misbehaves as told. */
function liveHandshake(port: number, task: Task, misbehaviour: 'bad-message3' | 'garbage-after-ready', random: () => number, tracker: ConnectionTracker): Promise<FuzzOutcome> {
  const kind: CaseKind = misbehaviour === 'bad-message3' ? 'live-bad-message3' : 'live-garbage-after-ready';
  return new Promise((resolve) => {
    const isXx = task.mode === 'xxpsk3';
    const preamble = encodePreamble(task.mode, task.id);
    const handshake = new HandshakeState({
      protocolName: isXx ? XXPSK3_PROTOCOL_NAME : NNPSK0_PROTOCOL_NAME,
      initiator: true,
      prologue: preamble,
      psks: [task.fields.psk],
      ...(isXx ? { staticKeyPair: generateKeyPair(), expectedRemoteStaticKey: task.fields.serverPublicKey! } : {}),
    });
    const socket = net.connect({ host: HOST, port });
    const decoder = new FrameDecoder();
    let stage: 'message2' | 'ready' | 'done' = 'message2';
    let transport: ReturnType<HandshakeState['finish']> | null = null;
    let connectedAt = 0;
    let localPort = 0;
    let closedByTest = false;
    let errorCode: string | null = null;
    let records: LogRecord[] = [];
    const guard = setTimeout(() => {
      closedByTest = true;
      socket.destroy();
    }, HANDSHAKE_TIMEOUT_MS + DEADLINE_MARGIN_MS + 1000);
    const sendGarbage = (): void => {
      // Either random frames, or a real HELLO record with one bit flipped; then FIN.
      if (random() < 0.5) {
        for (let count = randomInt(random, 1, 3); count > 0; count--) socket.write(encodeFrame(randomBytesFrom(random, randomInt(random, 0, 300))));
      } else {
        const hello = encodeMessage({ type: 'HELLO', body: { protocol: 1, software: 'fuzz', name: 'fuzz', clientId: isXx ? null : 'fuzz-client', have: null, intent: 'pull' } });
        const frame = transport!.encrypt(encodeRecord('FINAL', hello));
        xorByte(frame, randomInt(random, 0, frame.byteLength - 1), 1 << randomInt(random, 0, 7));
        socket.write(encodeFrame(frame));
      }
      socket.end();
      stage = 'done';
    };
    socket.on('connect', () => {
      connectedAt = performance.now();
      localPort = socket.localPort ?? 0;
      records = tracker.open(localPort);
      const message1 = handshake.writeMessage();
      const first = isXx ? Buffer.concat([message1, computeMac1(deriveMac1Key(task.fields.psk), preamble, message1)]) : message1;
      socket.write(Buffer.concat([preamble, encodeFrame(first)]));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) {
          if (stage === 'message2') {
            handshake.readMessage(frame);
            if (isXx) {
              const message3 = handshake.writeMessage();
              if (misbehaviour === 'bad-message3') {
                xorByte(message3, randomInt(random, 0, message3.byteLength - 1), 1 << randomInt(random, 0, 7));
                socket.write(encodeFrame(message3));
                socket.end();
                stage = 'done';
                return;
              }
              socket.write(encodeFrame(message3));
            }
            transport = handshake.finish();
            stage = 'ready';
            if (!isXx && misbehaviour === 'bad-message3') {
              // NNpsk0 has no message 3: its first transport message (HELLO) is the one that goes wrong.
              sendGarbage();
              return;
            }
          } else if (stage === 'ready') {
            transport!.decrypt(frame);
            sendGarbage();
          }
        }
      } catch (error) {
        errorCode = (error as { code?: string }).code ?? 'client-error';
        socket.destroy();
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      errorCode ??= error.code ?? error.message;
    });
    socket.on('close', () => {
      clearTimeout(guard);
      tracker.close(localPort);
      resolve({ kind, reply: 'none', openMs: connectedAt === 0 ? 0 : performance.now() - connectedAt, closedByTest, errorCode, localPort, records });
    });
  });
}

/**
 * Attributes server log records to the fuzz connection they concern: by the client's port while its socket is
 * open. The server logs a connection's outcome before the client can see the close (the log is written in the same
 * turn as the destroy), so every record lands while its connection is still registered; ports are reused only later.
 */
class ConnectionTracker {
  readonly #open = new Map<number, LogRecord[]>();
  readonly unattributed: LogRecord[] = [];
  isActive = false;

  open(localPort: number): LogRecord[] {
    const records: LogRecord[] = [];
    this.#open.set(localPort, records);
    return records;
  }

  close(localPort: number): void {
    this.#open.delete(localPort);
  }

  readonly log = (record: LogRecord): void => {
    if (!this.isActive || record.remote === undefined) return;
    const records = this.#open.get(Number(/:(\d+)$/.exec(record.remote)?.[1]));
    if (records) records.push(record);
    else this.unattributed.push(record);
  };
}

t.test('fuzzing a TaskServer leaves it alive, clean and within bounds', async (t) => {
  const dir = t.testdir();
  const logs: LogRecord[] = [];
  const tracker = new ConnectionTracker();
  const server = new TaskServer({
    dataDir: join(dir, 'data'),
    listen: { host: HOST, port: 0 },
    limits: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
    log: (record) => {
      logs.push(record);
      tracker.log(record);
    },
  });
  const { port } = await server.start();
  t.teardown(() => server.stop(0));
  const admin = server.admin();
  const proxy = new RecordingProxy(port);
  const proxyPort = await proxy.listen();
  t.teardown(() => proxy.close());

  const files = [{ path: 'etc/app.conf', content: Buffer.from('listen = 8080\n') }, { path: 'etc/extra/b.conf', content: Buffer.alloc(3000, 0x62) }];
  const tasks: Task[] = (['xxpsk3', 'nnpsk0'] as const).map((mode) => {
    const created = admin.createTask({ files, mode, name: `fuzz-${mode}`, advertise: { host: HOST, port } });
    return { id: created.id, token: created.token, fields: decodeToken(created.token), mode };
  });

  // Record one real client of each task through the proxy: its bytes feed the mutation and replay cases.
  const expectedIdentities = new Map<string, Set<string>>(tasks.map((task) => [task.id, new Set<string>()]));
  const identityOf = (task: Task, identityDir: string): string => (task.mode === 'xxpsk3' ? loadClientKeyPair(identityDir).publicKey.toString('hex') : loadClientId(identityDir));
  for (const task of tasks) {
    const identityDir = join(dir, `recorded-${task.mode}`);
    const result = await pull({ token: admin.token(task.id, { host: HOST, port: proxyPort }), outDir: join(dir, `out-recorded-${task.mode}`), identityDir, name: 'recorded' });
    t.equal(result.status, 'applied', `the recorded ${task.mode} client applied`);
    expectedIdentities.get(task.id)!.add(identityOf(task, identityDir));
  }
  const recordings = proxy.recordings.map((chunks) => Buffer.concat(chunks));
  t.equal(recordings.length, 2, 'two client streams recorded');
  // Bytes of the handshake in each recording: preamble, frame 1 (msg1 || mac1, or msg1) and, in xxpsk3, frame 3.
  const handshakeBytes = tasks.map((task) => encodePreamble(task.mode, task.id).byteLength + (task.mode === 'xxpsk3' ? 2 + 64 + 2 + 64 : 2 + 48));

  const random = seededRandom(SEED);
  const rejections = [encodeFrame(encodeRejection('UNSUPPORTED_VERSION')), encodeFrame(encodeRejection('UNSUPPORTED_MODE'))];
  const guardMs = HANDSHAKE_TIMEOUT_MS + DEADLINE_MARGIN_MS;
  const someTask = (): Task => tasks[randomInt(random, 0, 1)]!;
  const preambleOf = (task: Task): Buffer => {
    // Mostly right; sometimes the other mode, an unknown task, or a bad version or mode byte.
    const roll = random();
    if (roll < 0.7) return encodePreamble(task.mode, task.id);
    if (roll < 0.8) return encodePreamble(task.mode === 'xxpsk3' ? 'nnpsk0' : 'xxpsk3', task.id);
    if (roll < 0.9) return encodePreamble(task.mode, 'zzzzzzzzzzzzzzzz');
    const bytes = encodePreamble(task.mode, task.id);
    bytes[random() < 0.5 ? 4 : 5] = randomInt(random, 3, 255);
    return bytes;
  };
  const randomFrame = (): Buffer => encodeFrame(randomBytesFrom(random, random() < 0.8 ? randomInt(random, 0, 200) : randomInt(random, 0, 1024)));

  let mutationsTried = 0;
  const runCase = (kind: CaseKind): Promise<FuzzOutcome> => {
    const task = someTask();
    const raw = async (writes: Buffer[], end: boolean, extra: Partial<FuzzOutcome> = {}): Promise<FuzzOutcome> => {
      let localPort = 0;
      let records: LogRecord[] = [];
      const outcome = await rawConnection(port, writes, {
        end,
        guardMs,
        onConnect: (socket) => {
          localPort = socket.localPort ?? 0;
          records = tracker.open(localPort);
        },
      });
      tracker.close(localPort);
      // Only a summary is kept: thousands of small Buffers would pin pool slabs and blur the memory figure.
      const { received, ...rest } = outcome;
      const reply = received.byteLength === 0 ? 'none' : rejections.some((frame) => frame.equals(received)) ? 'rejection' : received.subarray(0, 40).toString('hex');
      return { ...rest, kind, localPort, records, reply, ...extra };
    };
    switch (kind) {
      case 'random-bytes': {
        const prefix = random() < 0.3 ? Buffer.from('NCFG').subarray(0, randomInt(random, 1, 4)) : Buffer.alloc(0);
        return raw([prefix, randomBytesFrom(random, randomInt(random, 1, 2000))], random() < 0.9);
      }
      case 'preamble-random-frames':
        return raw([preambleOf(task), ...Array.from({ length: randomInt(random, 1, 4) }, randomFrame)], true);
      case 'bad-length': {
        const length = random() < 0.5 ? 0xffff : randomInt(random, 1025, 0xffff);
        return raw([encodePreamble(task.mode, task.id), Buffer.from([length >> 8, length & 0xff]), randomBytesFrom(random, randomInt(random, 0, 64))], random() < 0.5);
      }
      case 'truncated': {
        // A preamble or a frame cut short, then FIN.
        const preamble = encodePreamble(task.mode, task.id);
        if (random() < 0.4) return raw([preamble.subarray(0, randomInt(random, 1, preamble.byteLength - 1))], true);
        const frame = randomFrame();
        return raw([preamble, frame.subarray(0, randomInt(random, 1, Math.max(1, frame.byteLength - 1)))], true);
      }
      case 'mutated-recording': {
        const index = randomInt(random, 0, 1);
        const stream = Buffer.from(recordings[index]!);
        const at = randomInt(random, 0, handshakeBytes[index]! - 1);
        xorByte(stream, at, randomInt(random, 1, 255));
        mutationsTried++;
        const cut = random() < 0.5 ? stream : stream.subarray(0, handshakeBytes[index]);
        return raw([cut], true, { mutatedAt: at });
      }
      case 'replay':
        return raw([recordings[randomInt(random, 0, 1)]!], random() < 0.8);
      case 'stall-silent':
        return raw([], false);
      case 'stall-partial-preamble': {
        const preamble = encodePreamble(task.mode, task.id);
        return raw([preamble.subarray(0, randomInt(random, 1, preamble.byteLength - 1))], false);
      }
      case 'stall-partial-frame': {
        const frame = randomFrame();
        return raw([encodePreamble(task.mode, task.id), frame.subarray(0, randomInt(random, 1, Math.max(1, frame.byteLength - 1)))], false);
      }
      case 'stall-after-preamble':
        return raw([encodePreamble(task.mode, task.id)], false);
      case 'live-bad-message3':
        return liveHandshake(port, task, 'bad-message3', random, tracker);
      case 'live-garbage-after-ready':
        return liveHandshake(port, task, 'garbage-after-ready', random, tracker);
    }
  };
  const weights: [CaseKind, number][] = [
    ['random-bytes', 14], ['preamble-random-frames', 14], ['bad-length', 8], ['truncated', 8], ['mutated-recording', 18], ['replay', 6],
    ['stall-silent', 3], ['stall-partial-preamble', 3], ['stall-partial-frame', 3], ['stall-after-preamble', 3],
    ['live-bad-message3', 6], ['live-garbage-after-ready', 6],
  ];
  const totalWeight = weights.reduce((sum, [, weight]) => sum + weight, 0);
  const pickKind = (): CaseKind => {
    let roll = random() * totalWeight;
    for (const [kind, weight] of weights) {
      roll -= weight;
      if (roll < 0) return kind;
    }
    return 'random-bytes';
  };

  // Memory: sampled throughout; the server is in this process, so the bound is generous.
  const baselineRss = process.memoryUsage().rss;

  let peakRss = baselineRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100);
  t.teardown(() => clearInterval(sampler));

  const fuzzLogStart = logs.length;
  tracker.isActive = true;
  const outcomes: FuzzOutcome[] = [];
  const started = performance.now();
  const deadline = started + FUZZ_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline && outcomes.length < MAX_CONNECTIONS) outcomes.push(await runCase(pickKind()));
  }));
  const fuzzMs = performance.now() - started;
  tracker.isActive = false;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const fuzzLogs = logs.slice(fuzzLogStart);

  const byKind = new Map<CaseKind, number>();
  for (const outcome of outcomes) byKind.set(outcome.kind, (byKind.get(outcome.kind) ?? 0) + 1);
  t.comment(`fuzzed ${outcomes.length} connections in ${Math.round(fuzzMs)} ms (${CONCURRENCY} at a time), ${mutationsTried} recorded-handshake mutations tried; by kind ${JSON.stringify(Object.fromEntries(byKind))}`);
  t.ok(outcomes.length >= 1000, `a meaningful number of connections was fuzzed (${outcomes.length})`);
  t.ok(mutationsTried >= 100, `recorded handshakes were mutated (${mutationsTried})`);
  t.equal(byKind.size, weights.length, 'every kind of case ran');

  // Every connection was closed by the server; none had to be closed by the test.
  const keptOpen = outcomes.filter((outcome) => outcome.closedByTest);
  t.equal(keptOpen.length, 0, 'the server closed every fuzz connection itself', { keptOpen: keptOpen.slice(0, 5).map(({ kind, localPort }) => ({ kind, localPort })) });

  // Stalls were dropped at the handshake deadline: not before it, and not much after.
  const stalls = outcomes.filter((outcome) => STALLS.has(outcome.kind));
  const stallMs = stalls.map((outcome) => outcome.openMs);
  const latest = Math.max(...stallMs);
  const earliest = Math.min(...stallMs);
  t.comment(`${stalls.length} stalled connections closed by the server after ${Math.round(earliest)} to ${Math.round(latest)} ms (deadline ${HANDSHAKE_TIMEOUT_MS} ms)`);
  t.ok(stalls.length > 0 && stalls.every((outcome) => !outcome.closedByTest && outcome.openMs <= HANDSHAKE_TIMEOUT_MS + DEADLINE_MARGIN_MS), `every stall was closed within ${HANDSHAKE_TIMEOUT_MS} + ${DEADLINE_MARGIN_MS} ms`);
  t.ok(earliest >= HANDSHAKE_TIMEOUT_MS - 100, 'no stall was closed before the deadline (it was the deadline that closed them)');

  // Toward a stranger the server is silent: nothing comes back but the clear version/mode rejection frame.
  const rawOutcomes = outcomes.filter((outcome) => !outcome.kind.startsWith('live-'));
  const talkative = rawOutcomes.filter((outcome) => outcome.reply !== 'none' && outcome.reply !== 'rejection');
  t.equal(talkative.length, 0, 'raw fuzz connections received nothing but rejection frames', { talkative: talkative.slice(0, 5).map(({ kind, reply }) => ({ kind, reply })) });
  t.ok(rawOutcomes.some((outcome) => outcome.reply === 'rejection'), 'bad versions and modes got the clear rejection frame');

  // One log record per fuzz connection, and none of them a successful pull.
  const notOnce = outcomes.filter((outcome) => outcome.records.length !== 1);
  t.equal(notOnce.length, 0, 'the server logged each fuzz connection exactly once', { notOnce: notOnce.slice(0, 5).map(({ kind, localPort, records }) => ({ kind, localPort, records })) });
  t.equal(tracker.unattributed.length, 0, 'no log record concerns anything but a fuzz connection', { unattributed: tracker.unattributed.slice(0, 5) });
  const pulls = fuzzLogs.filter((record) => record.event === 'pull');
  t.ok(pulls.every((record) => record.outcome === 'error'), 'no fuzz connection got past HELLO', { outcomes: [...new Set(pulls.map((record) => record.outcome))] });
  const codes = new Map<string, number>();
  for (const record of fuzzLogs) codes.set(`${record.event}:${record.code ?? '-'}`, (codes.get(`${record.event}:${record.code ?? '-'}`) ?? 0) + 1);
  t.comment(`server log outcomes during the fuzz: ${JSON.stringify(Object.fromEntries(codes))}`);
  const stallCodes = new Set(stalls.flatMap((outcome) => outcome.records.map((record) => record.code)));
  t.same([...stallCodes], ['HANDSHAKE_TIMEOUT'], 'stalls are reported as HANDSHAKE_TIMEOUT');
  const liveCodes = new Set(outcomes.filter((outcome) => outcome.kind === 'live-bad-message3').flatMap((outcome) => outcome.records.map((record) => `${record.event}:${record.code}`)));
  t.ok([...liveCodes].every((code) => code === 'handshake-failed:AUTHENTICATION_FAILED' || code === 'pull:DECRYPT_FAILED'), 'a bad message 3 (or first nnpsk0 transport message) is an authentication or decrypt failure', { liveCodes: [...liveCodes] });

  // Memory stayed bounded.
  const growth = peakRss - baselineRss;
  t.comment(`rss: baseline ${(baselineRss / 2 ** 20).toFixed(1)} MiB, peak ${(peakRss / 2 ** 20).toFixed(1)} MiB (+${(growth / 2 ** 20).toFixed(1)} MiB; bound +${RSS_BOUND_BYTES / 2 ** 20} MiB)`);
  t.ok(growth <= RSS_BOUND_BYTES, 'resident memory grew by at most the bound');


  // The server is alive and serves real clients; the fuzz left no client record.
  for (const task of tasks) {
    const identityDir = join(dir, `legit-${task.mode}`);
    const result = await withTimeout(pull({ token: task.token, outDir: join(dir, `out-legit-${task.mode}`), identityDir, name: 'legit' }), 15_000, `the legitimate ${task.mode} pull`);
    t.same({ status: result.status, isAcknowledged: result.isAcknowledged }, { status: 'applied', isAcknowledged: true }, `a legitimate ${task.mode} pull succeeds after the fuzz`);
    expectedIdentities.get(task.id)!.add(identityOf(task, identityDir));
    const view = admin.showTask(task.id);
    t.same(view.clients.map((client) => client.identity).sort(), [...expectedIdentities.get(task.id)!].sort(), `${task.mode} task: only the recorded and the legitimate client have records`);
    t.ok(view.clients.every((client) => client.state === 'applied'), `${task.mode} task: both are applied`);
  }
});

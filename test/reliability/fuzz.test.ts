// A bounded network fuzzer against a real TaskServer (SPEC.md §2.2–§2.6, §4): random bytes, real preambles with
// random frames, bad and truncated length prefixes, recorded client streams with one byte changed, verbatim
// replays, live handshakes by a token holder that go wrong at message 3 or after READY, connections that stall before
// or after their first flight, and strangers (SPEC.md §2.4) that open more connections from one address than the
// per-source cap allows, or fill the handshake cap so that the oldest are evicted. Afterwards the server must be alive
// and serve a real client, must have recorded no client for any fuzz connection, must have dropped every stalled
// connection at its own deadline (first flight or whole handshake), must have accounted for every connection in its
// rate-bounded log, and must have stayed within memory.
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
import { BUSY_FRAME, eventCount, HOST, IdlePeer, randomBytesFrom, randomInt, rawConnection, RecordingProxy, SEED, seededRandom, withTimeout, type RawOutcome, xorByte } from './support.js';

const HANDSHAKE_TIMEOUT_MS = 700;
/** The first flight's deadline: the stalls before it are closed at this, those after it at HANDSHAKE_TIMEOUT_MS. */
const FIRST_FLIGHT_TIMEOUT_MS = 300;
/** The handshake cap of the eviction phase's server, small enough to fill cheaply (the fuzz's server keeps the default). */
const MAX_UNAUTHENTICATED = 192;
const PER_SOURCE = 64;
/** The fuzz's raw connections come from these addresses (127/8 is all on lo), a few each, under PER_SOURCE. */
const FUZZ_SOURCES = Array.from({ length: 8 }, (_, index) => `127.0.1.${index + 1}`);
/** A stranger case opens PER_SOURCE + this many idle connections from one address of its own. */
const OVER_SOURCE_CAP = 4;
/** How late past the deadline a stalled connection may be closed, on a loaded 2-core machine. */
const DEADLINE_MARGIN_MS = 1500;
/** The fuzzing phase runs this long, or until MAX_CONNECTIONS, whichever comes first. */
const FUZZ_MS = 35_000;
const MAX_CONNECTIONS = 30_000;
const CONCURRENCY = 64;
const RSS_BOUND_BYTES = 200 * 1024 * 1024;

type CaseKind = 'random-bytes' | 'preamble-random-frames' | 'bad-length' | 'truncated' | 'mutated-recording' | 'replay'
  | 'stall-silent' | 'stall-partial-preamble' | 'stall-partial-frame' | 'stall-after-preamble' | 'stall-after-first-flight'
  | 'live-bad-message3' | 'live-garbage-after-ready' | 'stranger-over-source-cap';

/** Stalls before the first flight is complete: closed at FIRST_FLIGHT_TIMEOUT_MS. */
const FIRST_FLIGHT_STALLS = new Set<CaseKind>(['stall-silent', 'stall-partial-preamble', 'stall-partial-frame', 'stall-after-preamble']);
/** Stalls after a valid first flight (message 2 came back): closed at HANDSHAKE_TIMEOUT_MS. */
const LATE_STALLS = new Set<CaseKind>(['stall-after-first-flight']);

interface FuzzOutcome extends Omit<RawOutcome, 'received'> {
  /**
   * For raw connections: whether what came back was nothing, a clear version/mode rejection frame, the busy frame,
   * or message 2 (after a valid first flight), else its first bytes in hex.
   */
  reply: 'none' | 'rejection' | 'busy' | 'message2' | string;
  kind: CaseKind;
  /** The client's address and port, as the server logs it. */
  address: string;
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

/** The initiator's side of a handshake with the task's PSK, with a fresh static key in xxpsk3. */
function clientHandshake(task: Task): { isXx: boolean; preamble: Buffer; handshake: HandshakeState } {
  const isXx = task.mode === 'xxpsk3';
  const preamble = encodePreamble(task.mode, task.id);
  const handshake = new HandshakeState({
    protocolName: isXx ? XXPSK3_PROTOCOL_NAME : NNPSK0_PROTOCOL_NAME,
    initiator: true,
    prologue: preamble,
    psks: [task.fields.psk],
    ...(isXx ? { staticKeyPair: generateKeyPair(), expectedRemoteStaticKey: task.fields.serverPublicKey! } : {}),
  });
  return { isXx, preamble, handshake };
}

/** A client of our own that runs a real handshake with the task's PSK, then misbehaves as told. */
function liveHandshake(port: number, task: Task, misbehaviour: 'bad-message3' | 'garbage-after-ready', random: () => number, tracker: ConnectionTracker): Promise<FuzzOutcome> {
  const kind: CaseKind = misbehaviour === 'bad-message3' ? 'live-bad-message3' : 'live-garbage-after-ready';
  return new Promise((resolve) => {
    const { isXx, preamble, handshake } = clientHandshake(task);
    // The open time counts from before the connect: the server's deadlines count from its accept, which comes after,
    // so a close is never measured as earlier than the server's timer made it (the connect handler can run late).
    const startedAt = performance.now();
    const socket = net.connect({ host: HOST, port });
    const decoder = new FrameDecoder();
    let stage: 'message2' | 'ready' | 'done' = 'message2';
    let transport: ReturnType<HandshakeState['finish']> | null = null;
    let connectedAt = 0;
    let address = '';
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
      address = `${socket.localAddress}:${socket.localPort}`;
      records = tracker.open(address);
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
      tracker.close(address);
      resolve({ kind, reply: 'none', openMs: connectedAt === 0 ? 0 : performance.now() - startedAt, closedByTest, errorCode, address, records });
    });
  });
}

/**
 * Attributes server log records to the fuzz connection they concern: by the client's address and port while its
 * socket is open. The server logs a connection's outcome before the client can see the close (the log is written in
 * the same turn as the destroy), so every record lands while its connection is still registered; ports are reused
 * only later. Past its rate the server sums events of one kind into a summary (remote `*`), which names no
 * connection: those are kept apart, with the count they stand for.
 */
class ConnectionTracker {
  readonly #open = new Map<string, LogRecord[]>();
  readonly unattributed: LogRecord[] = [];
  readonly summaries: LogRecord[] = [];
  isActive = false;

  open(address: string): LogRecord[] {
    const records: LogRecord[] = [];
    this.#open.set(address, records);
    return records;
  }

  close(address: string): void {
    this.#open.delete(address);
  }

  readonly log = (record: LogRecord): void => {
    if (record.remote === '*') {
      this.summaries.push(record);
      return;
    }
    if (!this.isActive || record.remote === undefined) return;
    const records = this.#open.get(record.remote);
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
    limits: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, firstFlightTimeoutMs: FIRST_FLIGHT_TIMEOUT_MS, maxUnauthenticatedPerSource: PER_SOURCE },
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
  const tasks: Task[] = await Promise.all((['xxpsk3', 'nnpsk0'] as const).map(async (mode) => {
    const created = await admin.createTask({ files, mode, name: `fuzz-${mode}`, advertise: { host: HOST, port } });
    return { id: created.id, token: created.token, fields: decodeToken(created.token), mode };
  }));

  // Record one real client of each task through the proxy: its bytes feed the mutation and replay cases.
  const expectedIdentities = new Map<string, Set<string>>(tasks.map((task) => [task.id, new Set<string>()]));
  const identityOf = (task: Task, identityDir: string): string => (task.mode === 'xxpsk3' ? loadClientKeyPair(identityDir).publicKey.toString('hex') : loadClientId(identityDir));
  for (const task of tasks) {
    const identityDir = join(dir, `recorded-${task.mode}`);
    const result = await pull({ token: await admin.token(task.id, { host: HOST, port: proxyPort }), outDir: join(dir, `out-recorded-${task.mode}`), identityDir, name: 'recorded' });
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
  // A fresh first flight of a client that knows the PSK (a recorded one would be refused as a replay).
  const freshFirstFlight = (task: Task): Buffer => {
    const { isXx, preamble, handshake } = clientHandshake(task);
    const message1 = handshake.writeMessage();
    handshake.dispose();
    return Buffer.concat([preamble, encodeFrame(isXx ? Buffer.concat([message1, computeMac1(deriveMac1Key(task.fields.psk), preamble, message1)]) : message1)]);
  };
  let strangerCases = 0;
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
  const runCase = (kind: CaseKind): Promise<FuzzOutcome | FuzzOutcome[]> => {
    const task = someTask();
    const raw = async (writes: Buffer[], end: boolean, extra: Partial<FuzzOutcome> = {}, options: { localAddress?: string; onConnected?: () => void } = {}): Promise<FuzzOutcome> => {
      const caseKind = kind;
      let address = '';
      let records: LogRecord[] = [];
      const outcome = await rawConnection(port, writes, {
        end,
        guardMs,
        localAddress: options.localAddress ?? FUZZ_SOURCES[randomInt(random, 0, FUZZ_SOURCES.length - 1)]!,
        onConnect: (socket) => {
          address = `${socket.localAddress}:${socket.localPort}`;
          records = tracker.open(address);
          options.onConnected?.();
        },
      });
      tracker.close(address);
      // Only a summary is kept: thousands of small Buffers would pin pool slabs and blur the memory figure.
      const { received, ...rest } = outcome;
      const reply = received.byteLength === 0 ? 'none'
        : rejections.some((frame) => frame.equals(received)) ? 'rejection'
          : received.equals(BUSY_FRAME) ? 'busy'
            : caseKind === 'stall-after-first-flight' && received.byteLength >= 2 + 48 && received.readUInt16BE(0) === (task.mode === 'xxpsk3' ? 96 : 48) ? 'message2'
              : received.subarray(0, 40).toString('hex');
      return { ...rest, kind: caseKind, address, records, reply, ...extra };
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
      case 'stall-after-first-flight':
        return raw([freshFirstFlight(task)], false);
      case 'stranger-over-source-cap': {
        // PER_SOURCE idle connections from an address of this case's own, then a few more once they are open.
        const localAddress = `127.0.2.${(strangerCases++ % 250) + 1}`;
        return (async () => {
          let connected = 0;
          let markAllConnected: () => void = () => undefined;
          const allConnected = new Promise<void>((resolve) => {
            markAllConnected = resolve;
          });
          const onConnected = (): void => {
            if (++connected === PER_SOURCE) markAllConnected();
          };
          const held = Array.from({ length: PER_SOURCE }, () => raw([], false, {}, { localAddress, onConnected }));
          await allConnected;
          const extra = Array.from({ length: OVER_SOURCE_CAP }, () => raw([], false, {}, { localAddress }));
          return Promise.all([...held, ...extra]);
        })();
      }
      case 'live-bad-message3':
        return liveHandshake(port, task, 'bad-message3', random, tracker);
      case 'live-garbage-after-ready':
        return liveHandshake(port, task, 'garbage-after-ready', random, tracker);
    }
  };
  const weights: [CaseKind, number][] = [
    ['random-bytes', 14], ['preamble-random-frames', 14], ['bad-length', 8], ['truncated', 8], ['mutated-recording', 18], ['replay', 6],
    ['stall-silent', 3], ['stall-partial-preamble', 3], ['stall-partial-frame', 3], ['stall-after-preamble', 3],
    ['stall-after-first-flight', 3], ['live-bad-message3', 6], ['live-garbage-after-ready', 6], ['stranger-over-source-cap', 0.15],
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
    while (performance.now() < deadline && outcomes.length < MAX_CONNECTIONS) {
      const outcome = await runCase(pickKind());
      if (Array.isArray(outcome)) outcomes.push(...outcome);
      else outcomes.push(outcome);
    }
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
  t.equal(keptOpen.length, 0, 'the server closed every fuzz connection itself', { keptOpen: keptOpen.slice(0, 5).map(({ kind, address }) => ({ kind, address })) });

  // Stalls were dropped at their deadline: the first flight's before it was complete, the whole handshake's after.
  for (const [stallKinds, deadlineMs, name, when] of [[FIRST_FLIGHT_STALLS, FIRST_FLIGHT_TIMEOUT_MS, 'first-flight', 'before their first flight was complete'], [LATE_STALLS, HANDSHAKE_TIMEOUT_MS, 'handshake', 'after a valid first flight']] as const) {
    const stalls = outcomes.filter((outcome) => stallKinds.has(outcome.kind) && outcome.reply !== 'busy');
    const stallMs = stalls.map((outcome) => outcome.openMs);
    const earliest = Math.min(...stallMs);
    t.comment(`${stalls.length} connections that stalled ${when} were closed by the server after ${Math.round(earliest)} to ${Math.round(Math.max(...stallMs))} ms (deadline ${deadlineMs} ms)`);
    t.ok(stalls.length > 0 && stalls.every((outcome) => !outcome.closedByTest && outcome.openMs <= deadlineMs + DEADLINE_MARGIN_MS), `every such stall was closed within ${deadlineMs} + ${DEADLINE_MARGIN_MS} ms`);
    t.ok(earliest >= deadlineMs - 100, `none was closed before the ${name} deadline (it was that deadline that closed them)`);
  }

  // Toward a stranger the server is silent: nothing comes back but the clear version/mode rejection frame, message 2
  // after a valid first flight, and the busy frame past the per-source cap.
  const rawOutcomes = outcomes.filter((outcome) => !outcome.kind.startsWith('live-'));
  const allowedReplies = (outcome: FuzzOutcome): string[] => (outcome.kind === 'stall-after-first-flight' ? ['message2'] : outcome.kind === 'stranger-over-source-cap' ? ['none', 'busy'] : ['none', 'rejection']);
  const talkative = rawOutcomes.filter((outcome) => !allowedReplies(outcome).includes(outcome.reply));
  t.equal(talkative.length, 0, 'raw fuzz connections received nothing but rejection frames, message 2 after a valid first flight, and busy frames past the per-source cap', { talkative: talkative.slice(0, 5).map(({ kind, reply }) => ({ kind, reply })) });
  t.ok(rawOutcomes.some((outcome) => outcome.reply === 'rejection'), 'bad versions and modes got the clear rejection frame');
  const strangers = outcomes.filter((outcome) => outcome.kind === 'stranger-over-source-cap');
  const busy = strangers.filter((outcome) => outcome.reply === 'busy');
  const strangerCaseCount = strangers.length / (PER_SOURCE + OVER_SOURCE_CAP);
  t.comment(`${strangerCaseCount} stranger case(s) of ${PER_SOURCE} + ${OVER_SOURCE_CAP} connections from one address: ${busy.length} got the busy frame`);
  t.ok(busy.length >= strangerCaseCount && busy.length <= strangerCaseCount * OVER_SOURCE_CAP, 'past the per-source cap the newcomers, and only they, were told the server is busy');

  // Each fuzz connection is in the log once: a line of its own, or counted in a summary of its kind (the server logs
  // strangers at a bounded rate). None of them is a successful pull.
  const twice = outcomes.filter((outcome) => outcome.records.length > 1);
  t.equal(twice.length, 0, 'no fuzz connection was logged twice', { twice: twice.slice(0, 5).map(({ kind, address, records }) => ({ kind, address, records })) });
  t.equal(tracker.unattributed.length, 0, 'no log record concerns anything but a fuzz connection', { unattributed: tracker.unattributed.slice(0, 5) });
  const pulls = fuzzLogs.filter((record) => record.event === 'pull');
  t.ok(pulls.every((record) => record.outcome === 'error'), 'no fuzz connection got past HELLO', { outcomes: [...new Set(pulls.map((record) => record.outcome))] });
  const stalls = outcomes.filter((outcome) => FIRST_FLIGHT_STALLS.has(outcome.kind) || LATE_STALLS.has(outcome.kind));
  const stallCodes = new Set(stalls.flatMap((outcome) => outcome.records.map((record) => record.code)));
  t.same([...stallCodes], ['HANDSHAKE_TIMEOUT'], 'stalls with a line of their own are reported as HANDSHAKE_TIMEOUT');
  const liveCodes = new Set(outcomes.filter((outcome) => outcome.kind === 'live-bad-message3').flatMap((outcome) => outcome.records.map((record) => `${record.event}:${record.code}`)));
  t.ok([...liveCodes].every((code) => code === 'handshake-failed:AUTHENTICATION_FAILED' || code === 'pull:DECRYPT_FAILED'), 'a bad message 3 (or first nnpsk0 transport message) is an authentication or decrypt failure', { liveCodes: [...liveCodes] });
  const ownLines = outcomes.reduce((sum, outcome) => sum + outcome.records.length, 0);

  // Memory stayed bounded.
  const growth = peakRss - baselineRss;
  t.comment(`rss: baseline ${(baselineRss / 2 ** 20).toFixed(1)} MiB, peak ${(peakRss / 2 ** 20).toFixed(1)} MiB (+${(growth / 2 ** 20).toFixed(1)} MiB; bound +${RSS_BOUND_BYTES / 2 ** 20} MiB)`);
  t.ok(growth <= RSS_BOUND_BYTES, 'resident memory grew by at most the bound');


  // Eviction, on a server of its own with the default deadlines: strangers from 32 addresses fill the handshake cap
  // behind one connection that showed the PSK; as many newcomers again evict the strangers, oldest first, while the
  // one that showed the PSK stays, and a real client gets in.
  const evictionStarted = performance.now();
  const crowded = new TaskServer({ dataDir: join(dir, 'data-eviction'), listen: { host: HOST, port: 0 }, limits: { maxUnauthenticatedConnections: MAX_UNAUTHENTICATED } });
  const crowdedPort = (await crowded.start()).port;
  t.teardown(() => crowded.stop(0));
  const crowdedTask = await crowded.admin().createTask({ files, mode: 'xxpsk3', advertise: { host: HOST, port: crowdedPort } });
  const proven = new IdlePeer(crowdedPort, HOST);
  await proven.connected;
  proven.socket.write(freshFirstFlight({ id: crowdedTask.id, token: crowdedTask.token, fields: decodeToken(crowdedTask.token), mode: 'xxpsk3' }));
  await new Promise((resolve) => proven.socket.once('data', resolve));
  const fillers: IdlePeer[] = [];
  // In batches, each accepted before the next, so that age follows the order.
  for (let index = 0; index < MAX_UNAUTHENTICATED - 1; index += 32) {
    const batch = Array.from({ length: Math.min(32, MAX_UNAUTHENTICATED - 1 - index) }, (_, offset) => new IdlePeer(crowdedPort, `127.0.3.${offset + 1}`));
    fillers.push(...batch);
    await Promise.all(batch.map((peer) => peer.connected));
  }
  const newcomers: IdlePeer[] = [];
  const evictedFillers = await withTimeout((async () => {
    const evicted: Buffer[] = [];
    for (let index = 0; index < 64; index++) {
      newcomers.push(new IdlePeer(crowdedPort, `127.0.4.${(index % 32) + 1}`));
      evicted.push(await fillers[index]!.closed);
    }
    return evicted;
  })(), 20_000, 'the oldest strangers to be evicted');
  t.ok(evictedFillers.every((received) => received.equals(BUSY_FRAME)), 'the 64 oldest strangers were evicted one by one, each told busy');
  t.ok(fillers.slice(64).every((peer) => !peer.isClosed) && !proven.isClosed, 'the younger strangers and the one that showed the PSK were kept');
  const evictionPull = await withTimeout(pull({ token: crowdedTask.token, outDir: join(dir, 'out-eviction'), identityDir: join(dir, 'legit-eviction'), name: 'legit' }), 15_000, 'a pull during the eviction phase');
  t.equal(evictionPull.status, 'applied', 'a real client pulls while strangers fill the cap');
  for (const peer of [proven, ...fillers, ...newcomers]) peer.socket.destroy();
  t.comment(`eviction phase: ${MAX_UNAUTHENTICATED} strangers, 64 newcomers and a pull in ${Math.round(performance.now() - evictionStarted)} ms`);

  // The server is alive and serves real clients; the fuzz left no client record.
  for (const task of tasks) {
    const identityDir = join(dir, `legit-${task.mode}`);
    const result = await withTimeout(pull({ token: task.token, outDir: join(dir, `out-legit-${task.mode}`), identityDir, name: 'legit' }), 15_000, `the legitimate ${task.mode} pull`);
    t.same({ status: result.status, isAcknowledged: result.isAcknowledged }, { status: 'applied', isAcknowledged: true }, `a legitimate ${task.mode} pull succeeds after the fuzz`);
    expectedIdentities.get(task.id)!.add(identityOf(task, identityDir));
    const view = await admin.showTask(task.id);
    t.same(view.clients.map((client) => client.identity).sort(), [...expectedIdentities.get(task.id)!].sort(), `${task.mode} task: only the recorded and the legitimate client have records`);
    t.ok(view.clients.every((client) => client.state === 'applied'), `${task.mode} task: all are applied`);
  }

  // Stopping reports what the rate held back; then every fuzz connection is accounted for, once.
  await server.stop(0);
  const summarized = tracker.summaries.filter((record) => record.event === 'handshake-failed' || record.event === 'refused');
  const summarizedCount = summarized.reduce((sum, record) => sum + eventCount(record), 0);
  t.comment(`log: ${ownLines} fuzz lines of their own, ${summarized.length} summaries standing for ${summarizedCount} more`);
  t.equal(ownLines + summarizedCount, outcomes.length, `every fuzz connection is in the log once, on a line of its own or in a summary's count (${ownLines} + ${summarizedCount})`);
  t.ok(summarized.length <= (Math.ceil((performance.now() - started) / 1000) + 2) * 12, 'summaries come at most once a second per kind');
});

// The server handshake state machine without sockets (SPEC.md §2.2–§2.4): random and mutated first flights,
// truncated preambles and oversize lengths, in any chunking. It never throws, ends failed or waiting, and sends a
// stranger nothing but the clear version or mode rejection; a real client's flights, however cut, complete it.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import type { ErrorCode } from '../../lib/errors.js';
import { generateKeyPair } from '../../lib/noise/dh-functions.js';
import type { TaskKey } from '../../lib/transport/channel-options.js';
import { ClientHandshake, type ClientHandshakeStep } from '../../lib/transport/client-handshake.js';
import { encodeFrame } from '../../lib/transport/framing.js';
import { MAX_UNAUTHENTICATED_FRAME_BYTES } from '../../lib/transport/limits.js';
import { encodePreamble, encodeRejection, type ChannelMode } from '../../lib/transport/preamble.js';
import { ReplayCache } from '../../lib/transport/replay-cache.js';
import { ServerHandshake, type ServerHandshakeStep } from '../../lib/transport/server-handshake.js';

const SEED = 0x5eed_c0de;

/** Checks `property` under the fixed seed, as one assertion that prints the counterexample when it fails. */
function holds<Ts>(t: Pick<Test, 'notOk'>, name: string, property: fc.IProperty<Ts>, numRuns: number): void {
  const details = fc.check(property, { seed: SEED, numRuns });
  t.notOk(details.failed, name, details.failed ? { report: fc.defaultReportMessage(details) } : {});
}
const TASK_ID = 'fuzz-task';
const PSK = Buffer.alloc(32, 0x2a);
const SERVER_KEYS = generateKeyPair();
const CLIENT_KEYS = generateKeyPair();
const MODES: readonly ChannelMode[] = ['xxpsk3', 'nnpsk0'];
/** The only bytes a server may send before the client has shown it knows the PSK (SPEC.md §2.2). */
const CLEAR_REJECTIONS = [encodeFrame(encodeRejection('UNSUPPORTED_VERSION')), encodeFrame(encodeRejection('UNSUPPORTED_MODE'))];

function newServer(isEstablishedFull = false): ServerHandshake {
  return new ServerHandshake({ staticKeyPair: SERVER_KEYS, replayCache: new ReplayCache({ now: () => 0 }), isEstablishedFull: () => isEstablishedFull });
}

function newClient(mode: ChannelMode): ClientHandshake {
  return new ClientHandshake({ mode, taskId: TASK_ID, psk: PSK, ...(mode === 'xxpsk3' ? { staticKeyPair: CLIENT_KEYS, serverPublicKey: SERVER_KEYS.publicKey } : {}) });
}

function sent(step: ServerHandshakeStep | ClientHandshakeStep): Buffer {
  return 'send' in step && step.send !== undefined ? step.send : Buffer.alloc(0);
}

/** A real client's first flight: preamble || frame(msg1 [|| mac1]). */
function firstFlight(mode: ChannelMode): Buffer {
  return sent(newClient(mode).start());
}

/** How the server answers a lookup in one run. */
type Answer = 'task' | 'unknown' | 'other-mode';

function answerFor(answer: Answer, mode: ChannelMode): TaskKey | null {
  if (answer === 'unknown') return null;
  return { psk: PSK, mode: answer === 'task' ? mode : MODES.find((other) => other !== mode)! };
}

/** Feeds `chunks` to `server`, answering its lookup; returns every step. Any throw fails the calling property. */
function drive(server: ServerHandshake, chunks: readonly Buffer[], answer: Answer, mode: ChannelMode): ServerHandshakeStep[] {
  const steps: ServerHandshakeStep[] = [];
  for (const chunk of chunks) {
    const step = server.receive(chunk);
    steps.push(step);
    if (step.status === 'lookup') steps.push(server.taskFound(answerFor(answer, mode)));
  }
  return steps;
}

/** Cuts `bytes` at the given points (any order, any repeats). */
function cut(bytes: Buffer, points: readonly number[]): Buffer[] {
  const offsets = [...new Set(points.map((point) => point % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const offset of [...offsets, bytes.byteLength]) {
    if (offset > start) chunks.push(bytes.subarray(start, offset));
    start = offset;
  }
  return chunks;
}

/**
 * What every run must show toward a peer that has not sent a real first flight: no throw (drive), nothing sent but
 * a clear rejection (and that only as the failure's answer), no proof, no busy answer, no end but failed or waiting,
 * and nothing at all once failed.
 */
function isStrangerSafe(steps: readonly ServerHandshakeStep[], server: ServerHandshake): boolean {
  let hasFailed = false;
  for (const step of steps) {
    if (hasFailed && (step.status !== 'failed' || sent(step).byteLength > 0)) return false;
    if (step.status === 'done' || step.isProven === true) return false;
    if (step.status === 'failed') {
      hasFailed = true;
      if (step.reply === 'busy') return false;
      if (step.reply === 'rejection' ? !CLEAR_REJECTIONS.some((frame) => frame.equals(sent(step))) : sent(step).byteLength > 0) return false;
    } else if (sent(step).byteLength > 0) {
      return false;
    }
  }
  if (server.isProven) return false;
  const closed = server.peerClosed();
  return closed.status === 'failed' && closed.reply === 'silent' && sent(closed).byteLength === 0;
}

const modeArbitrary = fc.constantFrom(...MODES);
const answerArbitrary = fc.constantFrom<Answer>('task', 'unknown', 'other-mode');
const cutsArbitrary = fc.array(fc.nat({ max: 2000 }), { maxLength: 12 });

t.test('random bytes, after a real preamble or none, never get more than a clear rejection', async (t) => {
  holds(t, 'random bytes never get more than a clear rejection', fc.property(modeArbitrary, answerArbitrary, fc.boolean(), fc.uint8Array({ maxLength: 1500 }), cutsArbitrary, (mode, answer, hasPreamble, noise, cuts) => {
    const bytes = Buffer.concat([hasPreamble ? encodePreamble(mode, TASK_ID) : Buffer.alloc(0), noise]);
    const server = newServer();
    return isStrangerSafe(drive(server, cut(bytes, cuts), answer, mode), server);
  }), 400);
});

type Mutation = { kind: 'flip'; at: number; mask: number } | { kind: 'delete'; at: number } | { kind: 'insert'; at: number; byte: number } | { kind: 'truncate'; at: number };

const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(bytes: Buffer, mutations: readonly Mutation[]): Buffer {
  let result = Buffer.from(bytes);
  for (const mutation of mutations) {
    if (result.byteLength === 0) break;
    const at = mutation.at % result.byteLength;
    if (mutation.kind === 'flip') result[at]! ^= mutation.mask;
    else if (mutation.kind === 'delete') result = Buffer.concat([result.subarray(0, at), result.subarray(at + 1)]);
    else if (mutation.kind === 'insert') result = Buffer.concat([result.subarray(0, at), Buffer.of(mutation.byte), result.subarray(at)]);
    else result = result.subarray(0, at);
  }
  return result;
}

t.test('a mutated first flight is treated as a stranger: no message 2, no proof, failed or waiting', async (t) => {
  holds(t, 'mutated first flights are strangers', fc.property(modeArbitrary, fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }), cutsArbitrary, (mode, mutations, cuts) => {
    const original = firstFlight(mode);
    const mutated = mutate(original, mutations);
    // A mutation that leaves a real first flight at the start (say, bytes added after it) is no stranger.
    fc.pre(!mutated.subarray(0, original.byteLength).equals(original));
    const server = newServer();
    return isStrangerSafe(drive(server, cut(mutated, cuts), 'task', mode), server);
  }), 400);
});

t.test('every truncation of a first flight waits, silent, for the rest', async (t) => {
  for (const mode of MODES) {
    const flight = firstFlight(mode);
    for (let length = 0; length < flight.byteLength; length++) {
      const server = newServer();
      const steps = drive(server, length === 0 ? [] : [flight.subarray(0, length)], 'task', mode);
      const last = steps.at(-1);
      t.ok(last === undefined || (last.status === 'waiting' && sent(last).byteLength === 0) || last.status === 'lookup', `${mode}: ${length} bytes wait`);
      t.notOk(server.hasFirstFlight, `${mode}: ${length} bytes are not a first flight`);
    }
  }
});

t.test('a length over the unauthenticated bound fails silently, in message 1 and in message 3', async (t) => {
  holds(t, 'oversize lengths after the preamble fail silently', fc.property(modeArbitrary, fc.integer({ min: MAX_UNAUTHENTICATED_FRAME_BYTES + 1, max: 0xffff }), (mode, length) => {
    const server = newServer();
    const steps = drive(server, [Buffer.concat([encodePreamble(mode, TASK_ID), Buffer.of(length >> 8, length & 0xff)])], 'task', mode);
    const last = steps.at(-1)!;
    return last.status === 'failed' && last.error.code === 'FRAME_INVALID' && last.reply === 'silent' && isStrangerSafe(steps, server);
  }), 100);

  const server = newServer();
  const steps = drive(server, [firstFlight('xxpsk3'), Buffer.of(0x04, 0x01)], 'task', 'xxpsk3');
  t.equal(steps.at(-1)!.status, 'failed');
  t.equal((steps.at(-1) as { error: { code: ErrorCode } }).error.code, 'FRAME_INVALID');
  t.equal(sent(steps.at(-1)!).byteLength, 0, 'nothing sent with the failure');
});

t.test('a real client, its flights cut anywhere, completes the handshake with the machine on both sides', async (t) => {
  holds(t, 'the two machines complete the handshake under any cuts', fc.property(modeArbitrary, cutsArbitrary, cutsArbitrary, (mode, clientCuts, serverCuts) => {
    const client = newClient(mode);
    const server = newServer();
    let toServer = sent(client.start());
    let clientDone: ClientHandshakeStep | null = null;
    let serverDone: ServerHandshakeStep | null = null;
    for (let turn = 0; turn < 3 && clientDone === null; turn++) {
      const toClient = Buffer.concat(drive(server, cut(toServer, clientCuts), 'task', mode).map((step) => {
        if (step.status === 'done') serverDone = step;
        return sent(step);
      }));
      const replies: Buffer[] = [];
      for (const chunk of cut(toClient, serverCuts)) {
        const step = client.receive(chunk);
        replies.push(sent(step));
        if (step.status === 'done') clientDone = step;
        if (step.status === 'failed') return false;
      }
      toServer = Buffer.concat(replies);
    }
    const clientResult = clientDone as ClientHandshakeStep | null;
    const serverResult = serverDone as ServerHandshakeStep | null;
    if (clientResult?.status !== 'done' || serverResult?.status !== 'done') return false;
    return clientResult.result.transport.handshakeHash.equals(serverResult.result.transport.handshakeHash)
      && serverResult.result.isConfirmed === (mode === 'xxpsk3') && server.isProven;
  }), 60);
});

t.test('a replayed first flight is refused silently before any DH', async (t) => {
  for (const mode of MODES) {
    const flight = firstFlight(mode);
    const replayCache = new ReplayCache({ now: () => 0 });
    const first = new ServerHandshake({ staticKeyPair: SERVER_KEYS, replayCache });
    t.equal(drive(first, [flight], 'task', mode).at(-1)!.status, mode === 'xxpsk3' ? 'waiting' : 'done');
    const second = new ServerHandshake({ staticKeyPair: SERVER_KEYS, replayCache });
    const last = drive(second, [flight], 'task', mode).at(-1)!;
    t.match(last, { status: 'failed', reply: 'silent', error: { code: 'REPLAY_DETECTED' } }, `${mode}: replay refused`);
    t.equal(sent(last).byteLength, 0);
  }
});

t.test('a full server answers busy only to a client that has shown the PSK, in place of message 2 or READY', async (t) => {
  for (const mode of MODES) {
    const server = newServer(true);
    const client = newClient(mode);
    const steps = drive(server, [sent(client.start())], 'task', mode);
    if (mode === 'nnpsk0') {
      t.match(steps.at(-1), { status: 'failed', reply: 'busy', isProven: true, error: { code: 'TOO_MANY_CONNECTIONS' } }, 'busy in place of message 2');
      continue;
    }
    const message2 = sent(steps.at(-1)!);
    t.ok(message2.byteLength > 0, 'xxpsk3: message 2 is sent while there is no room yet to refuse');
    const last = drive(server, [sent(client.receive(message2))], 'task', mode).at(-1)!;
    t.match(last, { status: 'failed', reply: 'busy', error: { code: 'TOO_MANY_CONNECTIONS' } }, 'busy in place of READY');
    t.equal(sent(last).byteLength, 0);
  }
  const stranger = newServer(true);
  t.ok(isStrangerSafe(drive(stranger, [Buffer.concat([encodePreamble('xxpsk3', TASK_ID), encodeFrame(Buffer.alloc(64))])], 'task', 'xxpsk3'), stranger), 'a stranger hears no busy');
});

// Strangers without a token (SPEC.md §2.3, §2.4, §2.6): the per-source cap, the first-flight deadline, eviction
// of the oldest stranger when the handshake cap is full, the busy frame a refused client really receives, the
// established-connection cap, rate-bounded refusal logs, nnpsk0 counted as unauthenticated until its first transport
// message, the idle timer that control records do not reset, and the client's busy error and retries.
import { spawnSync } from 'node:child_process';
import net, { type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { encodeFrame } from '../../lib/transport/framing.js';
import { connectSecureWithRetry, describeRetry, retryReasonOf, type RetryNotice } from '../../lib/transport/connect-with-retry.js';
import { fitConnectionCaps, readOpenFilesLimit, resolveLimits, DEFAULT_LIMITS } from '../../lib/transport/limits.js';
import { encodePreamble, type ChannelMode } from '../../lib/transport/preamble.js';
import { encodeRecord } from '../../lib/transport/records.js';
import { REPLAY_WINDOW_MS } from '../../lib/transport/limits.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { connectSecure, openSocket, secureClientSocket } from '../../lib/transport/secure-socket.js';
import { sourceAddressKey } from '../../lib/transport/source-address.js';
import { transportOfConnectionForTesting } from '../../lib/transport/testing.js';
import { REPO_ROOT } from '../support/paths.js';
import {
  HOST,
  MODES,
  OTHER_STATIC,
  RawPeer,
  WRONG_PSK,
  clientOptions,
  FrameSplitter,
  listenPlain,
  startProxy,
  startServer,
  TASK_IDS,
  waitUntil,
  type ProxyConnection,
  type ServerFixture,
} from './helpers.js';

/** What a refused or evicted client receives: a frame of 6 bytes, magic, version 1, reason 4 (SPEC.md §2.2). */
const BUSY_FRAME = Buffer.from([0x00, 0x06, 0x4e, 0x43, 0x46, 0x47, 0x01, 0x04]);

/** Connects a client to `port` and destroys it at teardown. */
async function connect(t: Test, port: number, mode: ChannelMode, overrides: Parameters<typeof clientOptions>[1] = {}): Promise<SecureConnection> {
  const client = await connectSecure(HOST, port, clientOptions(mode, overrides));
  t.teardown(() => client.destroy());
  return client;
}

/** Idle raw peers from `localAddress`, each counted by the server before the next connects (so that they are in order). */
async function holdIdle(t: Test, fixture: ServerFixture, count: number, localAddress = HOST): Promise<RawPeer[]> {
  const peers: RawPeer[] = [];
  for (let index = 0; index < count; index++) {
    const before = fixture.server.unauthenticatedConnections;
    const peer = new RawPeer(fixture.port, { localAddress });
    t.teardown(() => peer.socket.destroy());
    await peer.connected;
    await waitUntil(() => fixture.server.unauthenticatedConnections > before, `the server counts stranger ${index + 1}`);
    peers.push(peer);
  }
  return peers;
}

/**
 * A real client whose writes after its first flight are dropped: the server has its preamble and message 1 (with a
 * valid mac1, or the nnpsk0 tag) and waits for more that never comes. Returns the first flight as sent.
 */
async function stalledAfterFirstFlight(t: Test, port: number, mode: ChannelMode): Promise<{ socket: Socket; firstFlight: Buffer }> {
  const socket = await openSocket(HOST, port, 5000);
  t.teardown(() => socket.destroy());
  let firstFlight: Buffer | null = null;
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  socket.write = ((chunk: Buffer) => {
    if (firstFlight !== null) return true;
    firstFlight = Buffer.from(chunk);
    return write(chunk);
  }) as typeof socket.write;
  secureClientSocket(socket, clientOptions(mode)).catch(() => undefined);
  await waitUntil(() => firstFlight !== null, 'the client wrote its first flight');
  return { socket, firstFlight: firstFlight! };
}

/** Resolves with `promise`, or with `fallback` once `ms` have passed (a guard against a close that never comes). */
function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<T>((resolve) => {
    timer = setTimeout(resolve, ms, fallback);
  })]).finally(() => clearTimeout(timer));
}

t.test('the source key: an IPv4 address, an IPv6 /64, an IPv4-mapped IPv6 address as its IPv4', async (t) => {
  t.equal(sourceAddressKey('192.0.2.7'), '192.0.2.7');
  t.equal(sourceAddressKey('::ffff:192.0.2.7'), '192.0.2.7', 'an IPv4-mapped address cannot dodge the IPv4 count');
  t.equal(sourceAddressKey('::FFFF:192.0.2.7'), '192.0.2.7');
  t.equal(sourceAddressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.equal(sourceAddressKey('2001:db8:1:2:ffff::1'), '2001:db8:1:2::/64', 'rotating addresses inside a /64 stays one source');
  t.equal(sourceAddressKey('2001:0DB8:0001:0002::9'), '2001:db8:1:2::/64', 'spelling does not matter');
  t.equal(sourceAddressKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(sourceAddressKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'the zone is not part of the source');
  t.equal(sourceAddressKey('::1'), '0:0:0:0::/64');
  t.equal(sourceAddressKey(undefined), '?');
});

t.test('a stranger past maxUnauthenticatedPerSource gets the busy frame before anything it sent is read, and another source still gets in', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedPerSource: 4 } });
  const held = await holdIdle(t, fixture, 4, '127.0.0.2');
  // The refused stranger has written 1000 bytes the server never reads; the close must still be a FIN, not a reset
  // that would make the client's kernel drop the frame.
  const refused = new RawPeer(fixture.port, { localAddress: '127.0.0.2' });
  await refused.connected;
  refused.socket.write(Buffer.alloc(1000, 0x55));
  const outcome = await refused.closed;
  t.same(outcome.received, BUSY_FRAME, 'the fifth from 127.0.0.2 receives exactly the busy frame');
  t.equal(outcome.errorCode, null, 'and a clean close, not a reset');
  const event = await fixture.events.next((candidate) => candidate.event === 'refused');
  t.match(event, { code: 'TOO_MANY_CONNECTIONS', remoteAddress: refused.address, message: /4 unauthenticated connections from 127\.0\.0\.2 .*maxUnauthenticatedPerSource/ });
  t.equal(fixture.server.unauthenticatedConnections, 4, 'the four held ones are untouched');
  t.ok(held.every((peer) => !peer.socket.destroyed), 'and still open');

  const client = await connect(t, fixture.port, 'xxpsk3');
  await client.send(Buffer.from('from 127.0.0.1'));
  t.equal(String(await client.receive()), 'from 127.0.0.1', 'a client from another address is served');
  await waitUntil(() => fixture.server.lingeringRefusals === 0, 'the refused socket is gone');
});

t.test('a connect refused as busy is TOO_MANY_CONNECTIONS at the client, not a wrong token', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedPerSource: 1 } });
  const [holder] = await holdIdle(t, fixture, 1);
  for (const mode of MODES) {
    await t.rejects(connectSecure(HOST, fixture.port, clientOptions(mode)), { code: 'TOO_MANY_CONNECTIONS', message: /server busy/ }, `${mode}: busy`);
  }
  holder!.socket.destroy();
  await waitUntil(() => fixture.server.unauthenticatedConnections === 0, 'the holder is gone');
  const client = await connect(t, fixture.port, 'nnpsk0');
  await client.send(Buffer.from('now'));
  t.equal(String(await client.receive()), 'now', 'served once the source has room');
});

t.test('a stranger that sends half a preamble and waits is dropped at firstFlightTimeoutMs, long before the handshake deadline', async (t) => {
  const fixture = await startServer(t, { limits: { firstFlightTimeoutMs: 200, handshakeTimeoutMs: 60_000 } });
  const stranger = new RawPeer(fixture.port);
  await stranger.connected;
  stranger.socket.write(encodePreamble('xxpsk3', 'task-xx').subarray(0, 5));
  const outcome = await within(stranger.closed, 30_000, null);
  t.not(outcome, null, 'closed by the server');
  t.equal(outcome?.received.byteLength, 0, 'without a word');
  const event = await fixture.events.nextFor(stranger.address);
  t.match(event, { event: 'handshake-failed', code: 'HANDSHAKE_TIMEOUT', message: /first flight .* within 200 ms \(firstFlightTimeoutMs\)/ });

  // The first flight in time, then silence: the whole-handshake deadline applies, not the first flight's.
  // The first flight's deadline is far above the few ms a loaded machine takes between accept and that flight.
  const slow = await startServer(t, { limits: { firstFlightTimeoutMs: 1000, handshakeTimeoutMs: 2500 } });
  const { socket } = await stalledAfterFirstFlight(t, slow.port, 'xxpsk3');
  const address = `${socket.localAddress}:${socket.localPort}`;
  t.match(await slow.events.nextFor(address), { event: 'handshake-failed', code: 'HANDSHAKE_TIMEOUT', message: /handshake did not finish within 2500 ms/ }, 'a client past its first flight has the whole handshake deadline');
});

t.test('when maxUnauthenticatedConnections is full a newcomer evicts the oldest idle stranger instead of being refused', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedConnections: 4 } });
  const held = await holdIdle(t, fixture, 4, '127.0.0.2');
  const client = await connect(t, fixture.port, 'xxpsk3');
  await client.send(Buffer.from('in'));
  t.equal(String(await client.receive()), 'in', 'the newcomer is served');
  const evicted = await held[0]!.closed;
  t.same(evicted.received, BUSY_FRAME, 'the oldest stranger is told it was dropped for being busy');
  t.equal(evicted.errorCode, null, 'with a clean close');
  t.ok(held.slice(1).every((peer) => !peer.socket.destroyed), 'the three younger strangers are untouched');
  t.match(await fixture.events.next((event) => event.event === 'refused'), { code: 'TOO_MANY_CONNECTIONS', remoteAddress: held[0]!.address, message: /evicted the oldest connection that had not shown it knows a PSK/ });
});

for (const mode of MODES) {
  t.test(`${mode}: eviction takes strangers that have not shown a PSK before an older one that has (mac1 or the message-1 tag)`, async (t) => {
    const fixture = await startServer(t, { limits: { maxUnauthenticatedConnections: 3 } });
    // The oldest: a first flight that proved the PSK, then nothing (a replay, or a client that stalled).
    const proven = await stalledAfterFirstFlight(t, fixture.port, mode);
    await waitUntil(() => fixture.server.unauthenticatedConnections === 1 && proven.socket.bytesRead > 0, 'the proven connection is answered');
    const strangers = await holdIdle(t, fixture, 2, '127.0.0.2');

    // The cap is full: each newcomer evicts the oldest idle stranger; the proven connection stays.
    for (const [index, stranger] of strangers.entries()) {
      const newcomer = new RawPeer(fixture.port, { localAddress: '127.0.0.3' });
      t.teardown(() => newcomer.socket.destroy());
      await newcomer.connected;
      t.same((await stranger.closed).received, BUSY_FRAME, `newcomer ${index + 1} evicted stranger ${index + 1}`);
      t.notOk(newcomer.socket.destroyed, 'and took its place');
    }
    t.notOk(proven.socket.destroyed, 'the older connection that proved the PSK is still open');
    t.equal(fixture.server.unauthenticatedConnections, 3);
    // A real client gets in: it evicts a younger idle stranger, not the proven one.
    const client = await connect(t, fixture.port, 'xxpsk3');
    await client.send(Buffer.from('in'));
    t.equal(String(await client.receive()), 'in', 'a real client gets in while the cap is full');
    t.notOk(proven.socket.destroyed, 'still kept');

    // With only proven connections to choose from, the oldest of them goes.
    const small = await startServer(t, { limits: { maxUnauthenticatedConnections: 2 } });
    const first = await stalledAfterFirstFlight(t, small.port, mode);
    await waitUntil(() => small.server.unauthenticatedConnections === 1 && first.socket.bytesRead > 0, 'the first is answered');
    const firstAddress = `${first.socket.localAddress}:${first.socket.localPort}`;
    const second = await stalledAfterFirstFlight(t, small.port, mode);
    await waitUntil(() => small.server.unauthenticatedConnections === 2 && second.socket.bytesRead > 0, 'the second is answered');
    const newcomer = new RawPeer(small.port, { localAddress: '127.0.0.2' });
    t.teardown(() => newcomer.socket.destroy());
    await newcomer.connected;
    t.match(await small.events.next((event) => event.event === 'refused'), { code: 'TOO_MANY_CONNECTIONS', remoteAddress: firstAddress, message: /evicted the oldest connection in the handshake/ }, 'once no unproven stranger is left, the oldest proven one is evicted');
    // xxpsk3 is told busy after message 2; an nnpsk0 client already holds the keys and is cut without a word.
    const isGone = (): boolean => first.socket.readableEnded || first.socket.destroyed;
    await within(new Promise((resolve) => {
      if (isGone()) resolve(undefined);
      first.socket.once('end', resolve);
      first.socket.once('close', resolve);
    }), 10_000, undefined);
    t.ok(isGone(), 'its connection was closed by the server');
    t.equal(small.server.unauthenticatedConnections, 2, 'the younger proven one and the newcomer remain');
    t.notOk(second.socket.readableEnded || second.socket.destroyed, 'the younger proven one stays');
  });
}

t.test('a flood of refusals is logged at a bounded rate, with counts that add up to every refusal', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedPerSource: 1 }, eventRate: { eventsPerInterval: 5, intervalMs: 60_000 } });
  await holdIdle(t, fixture, 1, '127.0.0.2');
  const refusals = 40;
  const peers = Array.from({ length: refusals }, () => new RawPeer(fixture.port, { localAddress: '127.0.0.2' }));
  const outcomes = await Promise.all(peers.map((peer) => peer.closed));
  t.ok(outcomes.every((outcome) => outcome.received.equals(BUSY_FRAME)), `all ${refusals} were told they were refused`);
  await fixture.server.close();
  const logged = fixture.events.all.filter((event) => event.event === 'refused');
  const single = logged.filter((event) => event.count === undefined);
  const summaries = logged.filter((event) => event.count !== undefined);
  t.equal(single.length, 5, 'five refusals are logged one by one');
  t.equal(summaries.length, 1, 'the rest in one summary');
  t.match(summaries[0], { code: 'TOO_MANY_CONNECTIONS', remoteAddress: '*', count: refusals - 5, message: /35 more refused event\(s\) with TOO_MANY_CONNECTIONS/ });
  t.comment(`${refusals} refusals, ${logged.length} log lines`);
});

t.test('past maxEstablishedConnections a newcomer is refused with the busy frame, and one is admitted once a connection closes', async (t) => {
  const fixture = await startServer(t, { limits: { maxEstablishedConnections: 2 } });
  const first = await connect(t, fixture.port, 'xxpsk3');
  const second = await connect(t, fixture.port, 'nnpsk0');
  await second.send(Buffer.from('live'));
  t.equal(String(await second.receive()), 'live');
  await waitUntil(() => fixture.server.establishedConnections === 2, 'two established');
  for (const mode of MODES) await t.rejects(connectSecure(HOST, fixture.port, clientOptions(mode)), { code: 'TOO_MANY_CONNECTIONS' }, `${mode}: a third is busy`);
  t.match(await fixture.events.next((event) => event.event === 'refused'), { code: 'TOO_MANY_CONNECTIONS', message: /2 established connections already open \(maxEstablishedConnections\)/ });
  await first.close();
  await waitUntil(() => fixture.server.establishedConnections === 1, 'one closed');
  const third = await connect(t, fixture.port, 'xxpsk3');
  await third.send(Buffer.from('after'));
  t.equal(String(await third.receive()), 'after', 'a newcomer is served once there is room');
});

t.test('the connection caps are lowered to fit the open-files limit unless the caller set them', async (t) => {
  t.equal(readOpenFilesLimit('Limit Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n'), 1024);
  t.equal(readOpenFilesLimit('Max open files            unlimited            unlimited            files\n'), null);
  const live = readOpenFilesLimit();
  t.ok(live === null || live > 0, `this process: ${String(live)}`);

  const defaults = resolveLimits();
  t.same(fitConnectionCaps(defaults, {}, null), { maxUnauthenticatedConnections: 1024, maxEstablishedConnections: 4096, openFilesLimit: null, isLoweredForOpenFiles: false }, 'unknown limit: defaults');
  t.same(fitConnectionCaps(defaults, {}, 65_536), { maxUnauthenticatedConnections: 1024, maxEstablishedConnections: 4096, openFilesLimit: 65_536, isLoweredForOpenFiles: false }, 'room enough: defaults');
  const lowered = fitConnectionCaps(defaults, {}, 1024);
  t.same(lowered, { maxUnauthenticatedConnections: 153, maxEstablishedConnections: 614, openFilesLimit: 1024, isLoweredForOpenFiles: true }, '1024 files: both lowered in proportion, 256 kept back');
  const explicit = fitConnectionCaps(resolveLimits({ maxEstablishedConnections: 500 }), { maxEstablishedConnections: 500 }, 1024);
  t.same(explicit, { maxUnauthenticatedConnections: 268, maxEstablishedConnections: 500, openFilesLimit: 1024, isLoweredForOpenFiles: true }, 'a cap the caller set is kept; the other takes the rest');
  t.same(fitConnectionCaps(resolveLimits({ maxEstablishedConnections: 9000, maxUnauthenticatedConnections: 9000 }), { maxEstablishedConnections: 9000, maxUnauthenticatedConnections: 9000 }, 1024).isLoweredForOpenFiles, false, 'both set: both kept');

  const fixture = await startServer(t, { openFilesLimit: 1024 });
  t.same(fixture.server.connectionCaps, lowered, 'the server exposes what it chose');
  t.equal(DEFAULT_LIMITS.maxEstablishedConnections, 4096);
});

t.test('nnpsk0: a recorded message 1 replayed after the replay window stays unauthenticated, never reaches the application, and is closed at the handshake deadline', async (t) => {
  let nowMs = 1_700_000_000_000;
  const fixture = await startServer(t, { now: () => nowMs, limits: { handshakeTimeoutMs: 500, firstFlightTimeoutMs: 500 } });
  // The recording: a real client's first flight; the session itself goes well.
  const socket = await openSocket(HOST, fixture.port, 5000);
  let firstFlight: Buffer | null = null;
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  socket.write = ((chunk: Buffer) => {
    firstFlight ??= Buffer.from(chunk);
    return write(chunk);
  }) as typeof socket.write;
  const original = await secureClientSocket(socket, clientOptions('nnpsk0'));
  t.teardown(() => original.destroy());
  await original.send(Buffer.from('original'));
  t.equal(String(await original.receive()), 'original');
  await original.close();
  t.equal(fixture.connections.items.length, 1, 'the original reached the application');

  // The cache remembers a key for between one and two windows (SPEC.md §2.4): past two, it is forgotten.
  nowMs += 2 * REPLAY_WINDOW_MS + 1000;
  const replayer = new RawPeer(fixture.port);
  await replayer.connected;
  replayer.socket.write(firstFlight!);
  // Message 2 and READY: the server cannot tell a replay from the client until a transport message decrypts.
  await waitUntil(() => replayer.received.byteLength >= 2 + 48 + 2 + 1 + 16, 'the server answered message 2 and READY');
  t.equal(fixture.server.unauthenticatedConnections, 1, 'the replay is counted as unauthenticated');
  t.equal(fixture.server.establishedConnections, 0, 'not as established');
  const outcome = await within(replayer.closed, 10_000, null);
  t.not(outcome, null, 'the server closed it');
  t.match(await fixture.events.nextFor(replayer.address), { event: 'handshake-failed', code: 'HANDSHAKE_TIMEOUT', message: /within 500 ms.*no transport message from the client decrypted/ });
  t.equal(fixture.connections.items.length, 1, 'onConnection was never called for the replay');
  t.equal(fixture.events.count('authenticated'), 1, 'and it was never reported authenticated');

  // A replayer that sends garbage as its "first transport message" fails at once, as a failed handshake (another
  // two windows on: the replay above put the key back into the cache).
  nowMs += 2 * REPLAY_WINDOW_MS + 1000;
  const guesser = new RawPeer(fixture.port);
  await guesser.connected;
  guesser.socket.write(firstFlight!);
  await waitUntil(() => guesser.received.byteLength >= 2 + 48 + 2 + 1 + 16, 'answered again');
  guesser.socket.write(encodeFrame(Buffer.alloc(17 + 16, 0x33)));
  t.match(await fixture.events.nextFor(guesser.address), { event: 'handshake-failed', code: 'AUTHENTICATION_FAILED', message: /did not decrypt/ });
  t.equal(fixture.connections.items.length, 1, 'still no connection for the application');
});

for (const mode of MODES) {
  t.test(`${mode}: a peer that sends only REKEY records every 100 ms is closed at idleTimeoutMs 500 with IDLE_TIMEOUT`, async (t) => {
    const fixture = await startServer(t, { limits: { idleTimeoutMs: 500 }, onConnection: () => undefined });
    const socket = await openSocket(HOST, fixture.port, 5000);
    const client = await secureClientSocket(socket, clientOptions(mode, { limits: { idleTimeoutMs: 0 } }));
    t.teardown(() => client.destroy());
    const transport = transportOfConnectionForTesting(client);
    const sendRekey = (): void => {
      socket.write(encodeFrame(transport.encrypt(encodeRecord('REKEY'))));
      transport.rekeySend();
    };
    // nnpsk0: the first record is what hands the connection to the application; a REKEY does that too.
    sendRekey();
    const server = await fixture.connections.next();
    const rekeys = setInterval(sendRekey, 100);
    t.teardown(() => clearInterval(rekeys));
    const outcome = await within(server.receive().then(() => 'ended', (error: { code: string }) => error.code), 10_000, 'still open after 10 s');
    t.equal(outcome, 'IDLE_TIMEOUT', 'REKEY records are not activity');
  });
}

t.test('application data either way keeps a connection open past idleTimeoutMs', async (t) => {
  const fixture = await startServer(t, { limits: { idleTimeoutMs: 300 }, onConnection: () => undefined });
  const client = await connect(t, fixture.port, 'xxpsk3', { limits: { idleTimeoutMs: 0 } });
  const server = await fixture.connections.next();
  // Ten messages 100 ms apart: the connection lives three idle timeouts, and each message arrives.
  for (let index = 0; index < 10; index++) {
    await client.send(Buffer.from(`tick ${index}`));
    t.equal(String(await server.receive()), `tick ${index}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // The server sending counts too: it sends, the client stays silent.
  for (let index = 0; index < 10; index++) {
    await server.send(Buffer.from(`tock ${index}`));
    t.equal(String(await client.receive()), `tock ${index}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await t.rejects(server.receive(), { code: 'IDLE_TIMEOUT' }, 'and once both stop, the idle timeout closes it');
});

t.test('connectSecureWithRetry: busy is retried with growing jittered waits within retryForMs, then TOO_MANY_CONNECTIONS', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedPerSource: 1 } });
  const [holder] = await holdIdle(t, fixture, 1);
  await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions('xxpsk3'), { retryForMs: 0, onRetry: () => t.fail('retryForMs 0: no retry') }), { code: 'TOO_MANY_CONNECTIONS' }, 'retryForMs 0: one attempt');

  const notices: RetryNotice[] = [];
  await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions('nnpsk0'), { retryForMs: 400, random: () => 0.999, onRetry: (notice) => notices.push(notice) }), { code: 'TOO_MANY_CONNECTIONS', message: /gave up after \d+ attempts/ });
  t.ok(notices.length >= 2, `retried (${notices.length} waits)`);
  t.ok(notices.every((notice) => notice.reason === 'busy'), 'each for being busy');
  t.same(notices.slice(0, 3).map((notice) => notice.delayMs), [99, 199, 399].slice(0, Math.min(3, notices.length)).map((bound, index) => Math.min(bound, notices[index]!.delayMs)), 'the bound doubles from 100 ms');
  t.ok(notices.every((notice, index) => notice.delayMs <= 100 * 2 ** index), 'never past the bound');
  t.equal(describeRetry({ reason: 'busy', delayMs: 800, attempt: 1, error: notices[0]!.error }), 'server busy, retrying in 0.8 s');

  // The holder leaves during the waits: the next attempt gets in.
  let waits = 0;
  const connection = await connectSecureWithRetry(HOST, fixture.port, clientOptions('xxpsk3'), {
    retryForMs: 30_000,
    onRetry: () => {
      waits++;
      if (waits === 2) holder!.socket.destroy();
    },
  });
  t.teardown(() => connection.destroy());
  t.ok(waits >= 2, `connected after ${waits} waits`);
  await connection.send(Buffer.from('through'));
  t.equal(String(await connection.receive()), 'through');
});

t.test('connectSecureWithRetry never retries a wrong token, a wrong pin or an unsupported mode', async (t) => {
  const fixture = await startServer(t);
  const noRetry = { retryForMs: 30_000, onRetry: (notice: RetryNotice) => t.fail(`retried ${notice.reason}`) };
  for (const mode of MODES) {
    await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions(mode, { psk: WRONG_PSK }), noRetry), { code: 'AUTHENTICATION_FAILED' }, `${mode}: wrong PSK`);
  }
  await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions('xxpsk3', { serverPublicKey: OTHER_STATIC.publicKey }), noRetry), { code: 'REMOTE_STATIC_MISMATCH' }, 'wrong pin');
  await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions('xxpsk3', { taskId: 'no-such-task' }), noRetry), { code: 'AUTHENTICATION_FAILED' }, 'unknown task');
  // A server of another version answers with a rejection frame.
  const versionless = await listenPlain(t, (socket) => {
    socket.once('data', () => socket.end(Buffer.from([0x00, 0x06, 0x4e, 0x43, 0x46, 0x47, 0x01, 0x01])));
  });
  await t.rejects(connectSecureWithRetry(HOST, versionless.port, clientOptions('nnpsk0'), noRetry), { code: 'UNSUPPORTED_VERSION' }, 'unsupported version');
  await t.rejects(connectSecureWithRetry(HOST, fixture.port, clientOptions('xxpsk3'), { retryForMs: -1 }), { code: 'INVALID_ARGUMENT', message: /retryForMs/ });
});

t.test('a reset during the handshake is retried, and a clean close after message 1 is a wrong token', async (t) => {
  let resets = 0;
  // Reads the first flight, then resets (as a server that was cut off or restarted would).
  const resetting = await listenPlain(t, (socket) => {
    socket.once('data', () => {
      resets++;
      socket.resetAndDestroy();
    });
  });
  const notices: RetryNotice[] = [];
  await t.rejects(connectSecureWithRetry(HOST, resetting.port, clientOptions('xxpsk3'), { retryForMs: 300, onRetry: (notice) => notices.push(notice) }), { code: 'CONNECTION_FAILED', message: /reset the connection during the handshake/ });
  t.ok(notices.length >= 1 && notices.every((notice) => notice.reason === 'reset'), `a reset is retried (${notices.length} waits, ${resets} resets)`);

  const closing = await listenPlain(t, (socket) => {
    socket.once('data', () => socket.end());
  });
  await t.rejects(connectSecureWithRetry(HOST, closing.port, clientOptions('xxpsk3'), { retryForMs: 30_000, onRetry: () => t.fail('a FIN is final') }), { code: 'AUTHENTICATION_FAILED' }, 'a FIN after message 1 means the server refused the token');

  // Nobody listening: ECONNREFUSED is retried.
  const gone = await listenPlain(t, () => undefined);
  const port = gone.port;
  await new Promise<void>((resolve) => gone.server.close(() => resolve()));
  const refusedNotices: RetryNotice[] = [];
  await t.rejects(connectSecureWithRetry(HOST, port, clientOptions('nnpsk0'), { retryForMs: 200, onRetry: (notice) => refusedNotices.push(notice) }), { code: 'CONNECTION_FAILED' });
  t.ok(refusedNotices.length >= 1 && refusedNotices.every((notice) => notice.reason === 'unreachable'), 'ECONNREFUSED is retried as unreachable');
  t.match(describeRetry(refusedNotices[0]!), /^cannot reach the server \(ECONNREFUSED\), retrying in \d+\.\d s$/);
  t.equal(retryReasonOf(new Error('plain')), null, 'anything but a NoiseCfgError is final');
});

t.test('a server that never answers is HANDSHAKE_TIMEOUT, which is retried', async (t) => {
  const silent = await listenPlain(t, (socket) => socket.resume());
  const notices: RetryNotice[] = [];
  await t.rejects(connectSecureWithRetry(HOST, silent.port, clientOptions('xxpsk3', { limits: { handshakeTimeoutMs: 100 } }), { retryForMs: 1000, onRetry: (notice) => notices.push(notice) }), { code: 'HANDSHAKE_TIMEOUT' });
  t.ok(notices.length >= 1 && notices[0]!.reason === 'timeout', 'retried as a timeout');
});

t.test('a stranger\'s socket is not kept past the linger bound when it never closes its side', async (t) => {
  const fixture = await startServer(t, { limits: { maxUnauthenticatedPerSource: 1 } });
  await holdIdle(t, fixture, 1);
  // allowHalfOpen: this peer does not answer the server's FIN, so only the server's linger bound ends it.
  const stubborn = net.connect({ host: HOST, port: fixture.port, allowHalfOpen: true });
  t.teardown(() => stubborn.destroy());
  stubborn.on('error', () => undefined);
  const received: Buffer[] = [];
  stubborn.on('data', (chunk: Buffer) => received.push(chunk));
  const ended = new Promise<void>((resolve) => stubborn.once('end', () => resolve()));
  await ended;
  t.same(Buffer.concat(received), BUSY_FRAME, 'told it is busy');
  await waitUntil(() => fixture.server.lingeringRefusals === 0, 'the server let go of the refused socket');
  // The server's socket is gone: the next bytes from this side are answered with a reset.
  const closed = new Promise<string>((resolve) => {
    stubborn.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    stubborn.once('close', () => resolve('closed'));
  });
  stubborn.write(Buffer.alloc(10));
  stubborn.write(Buffer.alloc(10));
  t.not(await within(closed, 10_000, 'still open'), 'still open', 'the server closed its end');
});

t.test('a client accepted while there was room hears busy in place of READY (xxpsk3) or message 2 (nnpsk0) when there is none', async (t) => {
  // A proxy holds the client's frame 1 (xxpsk3's message 3) or frame 0 (nnpsk0's message 1) until another client
  // has taken the only established place.
  for (const [mode, heldFrame] of [['xxpsk3', 1], ['nnpsk0', 0]] as const) {
    const server = await startServer(t, { limits: { maxEstablishedConnections: 1 }, openFilesLimit: null });
    let markHeld: () => void = () => undefined;
    const isHeld = new Promise<void>((resolve) => {
      markHeld = resolve;
    });
    let heldBytes: Buffer[] | null = null;
    let heldConnection: ProxyConnection | null = null;
    const proxy = await startProxy(t, server.port, {
      onClientData: (connection, chunk) => {
        const state = connection.state as { splitter?: FrameSplitter };
        state.splitter ??= new FrameSplitter(encodePreamble(mode, TASK_IDS[mode]).byteLength);
        for (const item of state.splitter.push(chunk)) {
          if (heldBytes !== null || (item.kind === 'frame' && item.index === heldFrame)) {
            (heldBytes ??= []).push(item.bytes);
            heldConnection = connection;
            markHeld();
          } else {
            connection.toServer.write(item.bytes);
          }
        }
      },
    });
    const late = connectSecure(HOST, proxy.port, clientOptions(mode));
    late.catch(() => undefined);
    await isHeld;
    await waitUntil(() => server.server.unauthenticatedConnections === 1, 'the late client is in the handshake');
    await connect(t, server.port, 'xxpsk3');
    await waitUntil(() => server.server.establishedConnections === 1, 'the place is taken');
    for (const bytes of heldBytes!) heldConnection!.toServer.write(bytes);
    await t.rejects(late, { code: 'TOO_MANY_CONNECTIONS' }, `${mode}: the client hears busy in place of ${mode === 'xxpsk3' ? 'READY' : 'message 2'}`);
    t.match(await server.events.next((event) => event.event === 'refused'), { code: 'TOO_MANY_CONNECTIONS', message: /maxEstablishedConnections 1/ });
    t.equal(server.server.establishedConnections, 1, 'the cap held');
  }
});

t.test('a server started under ulimit -n 600 reads the limit from /proc/self/limits and lowers its caps to fit', async (t) => {
  // A child process, so that this one keeps its own limit; it runs the built library. Node raises its soft limit to
  // the hard one at start, so both are set.
  const script = `import(${JSON.stringify(`${REPO_ROOT}/dist/lib/index.js`)}).then(({ SecureServer, generateKeyPair }) => {
    const server = new SecureServer({ staticKeyPair: generateKeyPair(), resolveTask: () => null, onConnection: () => undefined });
    process.stdout.write(JSON.stringify(server.connectionCaps));
  });`;
  const quoted = script.replace(/'/g, "'\\''");
  const child = spawnSync('/bin/sh', ['-c', `ulimit -n 600 && exec "${process.execPath}" --input-type=module -e '${quoted}'`], { encoding: 'utf8' });
  t.equal(child.status, 0, 'the child ran', { stderr: child.stderr });
  // 600 - 256 reserved = 344 for 1024 + 4096, in proportion.
  t.same(JSON.parse(child.stdout || '{}'), { maxUnauthenticatedConnections: 68, maxEstablishedConnections: 275, openFilesLimit: 600, isLoweredForOpenFiles: true });
});

t.test('an nnpsk0 connection waiting for its first transport message is evicted like any stranger', async (t) => {
  let nowMs = 1_700_000_000_000;
  const fixture = await startServer(t, { now: () => nowMs, limits: { maxUnauthenticatedConnections: 1 } });
  const { socket, firstFlight } = await stalledAfterFirstFlight(t, fixture.port, 'nnpsk0');
  const address = `${socket.localAddress}:${socket.localPort}`;
  await waitUntil(() => socket.bytesRead >= 2 + 48 + 2 + 1 + 16, 'message 2 and READY arrived');
  t.equal(fixture.server.unauthenticatedConnections, 1, 'it waits, unauthenticated');
  const newcomer = new RawPeer(fixture.port);
  t.teardown(() => newcomer.socket.destroy());
  await newcomer.connected;
  t.match(await fixture.events.nextFor(address), { event: 'refused', code: 'TOO_MANY_CONNECTIONS', message: /evicted/ }, 'the newcomer evicted it');
  t.equal(fixture.connections.items.length, 0, 'it never reached the application');
  t.ok(firstFlight.byteLength > 0);
  nowMs += 1;
});

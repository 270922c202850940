/**
 * Shared tools for the channel tests: a seeded PRNG, a raw TCP peer, an event log with waiters, a server fixture,
 * and a TCP proxy on 127.0.0.1 that can record, re-chunk (one byte per write), split into frames, tamper with,
 * inject and cut the byte stream in each direction. Nothing here sleeps: every wait is on an event.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Test } from 'tap';
import { keyPairFromSecretKey, type KeyPair } from '../../lib/noise/dh-functions.js';
import type { ChannelLimits } from '../../lib/transport/limits.js';
import type { ChannelMode } from '../../lib/transport/preamble.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { SecureServer, type ChannelEvent, type SecureServerOptions } from '../../lib/transport/secure-server.js';
import type { ClientChannelOptions, TaskKey } from '../../lib/transport/secure-socket.js';

/** Every socket in these tests binds or connects here, port 0 for listeners. */
export const HOST = '127.0.0.1';

// Fixed keys: every run uses the same identities, so a failure can be reproduced.
/** The server's static key pair (its pin is the public key). */
export const SERVER_STATIC: KeyPair = keyPairFromSecretKey(Buffer.alloc(32, 0x21));
/** The client's static key pair (its identity in xxpsk3). */
export const CLIENT_STATIC: KeyPair = keyPairFromSecretKey(Buffer.alloc(32, 0x31));
/** A key pair nobody uses: a wrong pin. */
export const OTHER_STATIC: KeyPair = keyPairFromSecretKey(Buffer.alloc(32, 0x41));
/** The PSK of both fixture tasks, and a wrong one. */
export const PSK = Buffer.alloc(32, 0xa1);
export const WRONG_PSK = Buffer.alloc(32, 0xa2);
/** One task per mode, both known to every fixture server. */
export const TASK_IDS: Readonly<Record<ChannelMode, string>> = { xxpsk3: 'task-xx', nnpsk0: 'task-nn' };
/** Both channel modes, for tests that run in each. */
export const MODES: readonly ChannelMode[] = ['xxpsk3', 'nnpsk0'];

export { randomInt, seededRandom as prng } from '../support/seeded-random.js';

/** `length` bytes from `rand`. */
export function randomBytesFrom(rand: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let index = 0; index < length; index += 1) bytes[index] = Math.floor(rand() * 256);
  return bytes;
}

/** A copy of `bytes` with bit `bit` (0 = least significant) of byte `position` flipped. */
export function flipBit(bytes: Buffer, position: number, bit: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[position] = copy[position]! ^ (1 << bit);
  return copy;
}

/** A message whose bytes depend on `seed` and every position, so a reordering or a lost chunk shows. */
export function patternedMessage(length: number, seed: number): Buffer {
  const message = Buffer.allocUnsafe(length);
  for (let index = 0; index < length; index += 1) message[index] = (index * 31 + seed * 7 + (index >>> 8)) & 0xff;
  return message;
}

/** Runs `task(index)` for index 0..count-1 with at most `concurrency` at once; rejects on the first failure. */
export async function runPool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next;
      next += 1;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/**
 * Resolves once `condition()` holds, checking it every few milliseconds: a poll of state that has no event of its
 * own, not a sleep standing in for one. Rejects after `maxMs` so that a broken condition fails instead of hanging.
 */
export function waitUntil(condition: () => boolean, what: string, maxMs = 10_000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (condition()) resolve();
      else if (Date.now() - started > maxMs) reject(new Error(`timed out waiting until ${what}`));
      else setTimeout(check, 2);
    };
    check();
  });
}

/** Everything a raw TCP peer saw of a connection. */
export interface RawResult {
  received: Buffer;
  /** The socket error code, if the connection ended with one (ECONNRESET). */
  errorCode: string | null;
  /** This side's port, which the server reports in `remoteAddress`. */
  localPort: number;
}

/**
 * A plain TCP client: connects, and collects everything it receives until 'close'. Not half-open: when the server
 * ends, it ends too, so 'close' follows the server's FIN whether or not this side has finished writing.
 */
export class RawPeer {
  readonly socket: Socket;
  readonly connected: Promise<void>;
  readonly closed: Promise<RawResult>;
  readonly #chunks: Buffer[] = [];
  #errorCode: string | null = null;
  #localPort = 0;
  #localAddress = HOST;

  /** `localAddress` picks the source address (any of 127/8 on Linux), for the per-source limit. */
  constructor(port: number, options: { localAddress?: string } = {}) {
    this.socket = net.connect({ host: HOST, port, allowHalfOpen: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => {
        this.#localPort = this.socket.localPort ?? 0;
        this.#localAddress = this.socket.localAddress ?? HOST;
        resolve();
      });
      // A connection that cannot be made fails the test that waits for it instead of hanging it.
      this.socket.once('error', (error) => {
        if (this.#localPort === 0) reject(error);
      });
    });
    this.socket.on('data', (chunk: Buffer) => this.#chunks.push(chunk));
    this.socket.on('error', (error: NodeJS.ErrnoException) => {
      this.#errorCode = error.code ?? error.message;
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => {
      resolve({ received: Buffer.concat(this.#chunks), errorCode: this.#errorCode, localPort: this.#localPort });
    }));
  }

  /** What arrived so far. */
  get received(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** The address the server sees for this peer. */
  get address(): string {
    return `${this.#localAddress}:${this.#localPort}`;
  }
}

/** Connects, writes `bytes` in one write, half-closes if `end`, and resolves with what came back once closed. */
export async function rawExchange(port: number, bytes: Buffer, options: { end: boolean }): Promise<RawResult> {
  const peer = new RawPeer(port);
  await peer.connected;
  if (bytes.byteLength > 0) peer.socket.write(bytes);
  if (options.end) peer.socket.end();
  return peer.closed;
}

/** Server events, kept in order, with waiters that consume the event they match. */
export class EventLog {
  readonly all: ChannelEvent[] = [];
  readonly #counts = new Map<ChannelEvent['event'], number>();
  readonly #unclaimed: ChannelEvent[] = [];
  readonly #waiters: { match: (event: ChannelEvent) => boolean; resolve: (event: ChannelEvent) => void }[] = [];

  readonly push = (event: ChannelEvent): void => {
    this.all.push(event);
    this.#counts.set(event.event, (this.#counts.get(event.event) ?? 0) + 1);
    const index = this.#waiters.findIndex((waiter) => waiter.match(event));
    if (index >= 0) {
      const [waiter] = this.#waiters.splice(index, 1);
      waiter!.resolve(event);
      return;
    }
    this.#unclaimed.push(event);
  };

  /** The first unclaimed event (or the next one) that matches; it is claimed, so each event is returned once. */
  next(match: (event: ChannelEvent) => boolean): Promise<ChannelEvent> {
    const index = this.#unclaimed.findIndex(match);
    if (index >= 0) return Promise.resolve(this.#unclaimed.splice(index, 1)[0]!);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** The next event about the peer at `remoteAddress`. */
  nextFor(remoteAddress: string): Promise<ChannelEvent> {
    return this.next((event) => event.remoteAddress === remoteAddress);
  }

  /** How many events of this kind arrived, claimed or not. */
  count(kind: ChannelEvent['event']): number {
    return this.#counts.get(kind) ?? 0;
  }
}

/** Values that arrive over time: taken in order with next(), or looked up with find(). */
export class AsyncQueue<T> {
  readonly items: T[] = [];
  #taken = 0;
  readonly #waiters: ((value: T) => void)[] = [];
  readonly #finders: { match: (value: T) => boolean; resolve: (value: T) => void }[] = [];

  push(value: T): void {
    this.items.push(value);
    for (const finder of this.#finders.filter((entry) => entry.match(value))) {
      this.#finders.splice(this.#finders.indexOf(finder), 1);
      finder.resolve(value);
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#taken += 1;
      waiter(value);
    }
  }

  /** The next value not yet taken, in arrival order. */
  next(): Promise<T> {
    if (this.#taken < this.items.length) return Promise.resolve(this.items[this.#taken++]!);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The first value, arrived or to come, that matches (independent of next()). */
  find(match: (value: T) => boolean): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#finders.push({ match, resolve }));
  }
}

/** The echo application: every message straight back, then END after the client's END. Errors end it quietly. */
export function echo(connection: SecureConnection): void {
  void (async () => {
    for await (const message of connection) await connection.send(message);
    await connection.close();
  })().catch(() => undefined);
}

/** A SecureServer on 127.0.0.1, its port, its events and the connections it handed to the application. */
export interface ServerFixture {
  server: SecureServer;
  port: number;
  events: EventLog;
  connections: AsyncQueue<SecureConnection>;
}

/**
 * Starts a SecureServer knowing both tasks (TASK_IDS, same PSK) that echoes by default, closed at teardown.
 * `resolveTask` replaces the task table; `onConnection` replaces the echo.
 */
export async function startServer(t: Test, options: {
  limits?: Partial<ChannelLimits>;
  onConnection?: (connection: SecureConnection) => void;
  resolveTask?: (taskId: string) => TaskKey | null;
  now?: () => number;
  /** The server's event rate; by default every event passes, so that tests can find each connection's. */
  eventRate?: SecureServerOptions['eventRate'];
  openFilesLimit?: number | null;
} = {}): Promise<ServerFixture> {
  const events = new EventLog();
  const connections = new AsyncQueue<SecureConnection>();
  const server = new SecureServer({
    staticKeyPair: SERVER_STATIC,
    resolveTask: options.resolveTask ?? ((taskId) => {
      if (taskId === TASK_IDS.xxpsk3) return { psk: PSK, mode: 'xxpsk3' };
      if (taskId === TASK_IDS.nnpsk0) return { psk: PSK, mode: 'nnpsk0' };
      return null;
    }),
    onConnection: (connection) => {
      connections.push(connection);
      (options.onConnection ?? echo)(connection);
    },
    onEvent: events.push,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.now ? { now: options.now } : {}),
    eventRate: options.eventRate ?? { eventsPerInterval: Number.POSITIVE_INFINITY },
    ...(options.openFilesLimit !== undefined ? { openFilesLimit: options.openFilesLimit } : {}),
  });
  const address = await server.listen(0, HOST);
  t.teardown(() => server.close());
  return { server, port: address.port, events, connections };
}

/** Client options for the fixture's task in `mode`, with the right keys and pin. */
export function clientOptions(mode: ChannelMode, overrides: Partial<ClientChannelOptions> = {}): ClientChannelOptions {
  return {
    mode,
    taskId: TASK_IDS[mode],
    psk: PSK,
    ...(mode === 'xxpsk3' ? { staticKeyPair: CLIENT_STATIC, serverPublicKey: SERVER_STATIC.publicKey } : {}),
    ...overrides,
  };
}

/** A listening net.Server on 127.0.0.1 port 0, closed (with its sockets destroyed) at teardown. */
export async function listenPlain(t: Test, onSocket: (socket: Socket) => void, options: net.ServerOpts = {}): Promise<{ server: net.Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = net.createServer({ allowHalfOpen: true, ...options }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }));
  return { server, port: (server.address() as AddressInfo).port };
}

/** One direction of a proxied connection: where bytes go, optionally one byte per write. */
export class Pipe {
  readonly #socket: Socket;
  readonly #isByteAtATime: boolean;
  readonly #queue: Buffer[] = [];
  #isEndRequested = false;
  #isPumping = false;
  /** socket.write calls made. */
  writes = 0;
  /** Bytes written. */
  bytes = 0;

  constructor(socket: Socket, isByteAtATime: boolean) {
    this.#socket = socket;
    this.#isByteAtATime = isByteAtATime;
  }

  write(bytes: Buffer): void {
    if (bytes.byteLength === 0) return;
    if (!this.#isByteAtATime) {
      if (this.#socket.destroyed || this.#socket.writableEnded) return;
      this.writes += 1;
      this.bytes += bytes.byteLength;
      this.#socket.write(bytes);
      return;
    }
    this.#queue.push(bytes);
    this.#pump();
  }

  /** Half-closes after everything written so far. */
  end(): void {
    this.#isEndRequested = true;
    if (!this.#isByteAtATime || (this.#queue.length === 0 && !this.#isPumping)) {
      if (!this.#socket.destroyed) this.#socket.end();
      return;
    }
    this.#pump();
  }

  // One byte per write, with a setImmediate between writes so each byte leaves in its own send().
  #pump(): void {
    if (this.#isPumping) return;
    this.#isPumping = true;
    const step = (): void => {
      const head = this.#queue[0];
      if (head === undefined || this.#socket.destroyed) {
        this.#isPumping = false;
        if (this.#isEndRequested && !this.#socket.destroyed) this.#socket.end();
        return;
      }
      if (!this.#socket.writableEnded) {
        this.writes += 1;
        this.bytes += 1;
        this.#socket.write(head.subarray(0, 1));
      }
      if (head.byteLength === 1) this.#queue.shift();
      else this.#queue[0] = head.subarray(1);
      setImmediate(step);
    };
    step();
  }
}

/** One connection through the proxy. */
export interface ProxyConnection {
  index: number;
  /** Socket from the client (accepted by the proxy). */
  client: Socket;
  /** Socket to the server (opened by the proxy). */
  server: Socket;
  /** Bytes toward the server and toward the client. */
  toServer: Pipe;
  toClient: Pipe;
  /** Every chunk as the proxy received it, before any tampering. */
  fromClient: Buffer[];
  fromServer: Buffer[];
  /** Resolves when both sockets have closed. */
  closed: Promise<void>;
  /** Free slot for a tap's state. */
  state: Record<string, unknown>;
}

/** Hooks of a proxy; each default forwards the chunk or the end unchanged. */
export interface ProxyOptions {
  onClientData?: (connection: ProxyConnection, chunk: Buffer) => void;
  onServerData?: (connection: ProxyConnection, chunk: Buffer) => void;
  onClientEnd?: (connection: ProxyConnection) => void;
  onServerEnd?: (connection: ProxyConnection) => void;
  /** Deliver bytes in each direction one per write. */
  byteAtATime?: { toServer?: boolean; toClient?: boolean };
}

/** A TCP proxy to 127.0.0.1:`targetPort`, closed at teardown. */
export async function startProxy(t: Test, targetPort: number, options: ProxyOptions = {}): Promise<{ port: number; connections: AsyncQueue<ProxyConnection> }> {
  const connections = new AsyncQueue<ProxyConnection>();
  let count = 0;
  const { port } = await listenPlain(t, (client) => {
    const server = net.connect({ host: HOST, port: targetPort, allowHalfOpen: true });
    server.on('error', () => undefined);
    server.setNoDelay(true);
    client.setNoDelay(true);
    const connection: ProxyConnection = {
      index: count++,
      client,
      server,
      toServer: new Pipe(server, options.byteAtATime?.toServer ?? false),
      toClient: new Pipe(client, options.byteAtATime?.toClient ?? false),
      fromClient: [],
      fromServer: [],
      closed: Promise.all([
        new Promise((resolve) => client.once('close', resolve)),
        new Promise((resolve) => server.once('close', resolve)),
      ]).then(() => undefined),
      state: {},
    };
    client.on('data', (chunk: Buffer) => {
      connection.fromClient.push(chunk);
      if (options.onClientData) options.onClientData(connection, chunk);
      else connection.toServer.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      connection.fromServer.push(chunk);
      if (options.onServerData) options.onServerData(connection, chunk);
      else connection.toClient.write(chunk);
    });
    client.on('end', () => (options.onClientEnd ?? ((c: ProxyConnection) => c.toServer.end()))(connection));
    server.on('end', () => (options.onServerEnd ?? ((c: ProxyConnection) => c.toClient.end()))(connection));
    // A reset on one side resets the other: nothing is left half-open by accident.
    client.on('close', () => {
      if (client.errored) server.destroy();
    });
    server.on('close', () => {
      if (server.errored) client.destroy();
      else if (!client.destroyed && client.writableEnded && client.readableEnded) client.destroy();
    });
    client.on('close', () => {
      if (!server.destroyed && server.writableEnded && server.readableEnded) server.destroy();
    });
    t.teardown(() => {
      client.destroy();
      server.destroy();
    });
    connections.push(connection);
  });
  return { port, connections };
}

/** An item of a byte stream cut into frames: bytes before the frames (the preamble), or one whole frame. */
export type StreamItem = { kind: 'preamble'; bytes: Buffer } | { kind: 'frame'; index: number; bytes: Buffer };

/**
 * Cuts a byte stream into `preambleBytes` clear bytes and then 2-byte-length frames (header included), for
 * taps that work frame by frame. It knows nothing of the protocol beyond the framing.
 */
export class FrameSplitter {
  #preambleLeft: number;
  #buffer = Buffer.alloc(0);
  #index = 0;

  constructor(preambleBytes = 0) {
    this.#preambleLeft = preambleBytes;
  }

  push(chunk: Buffer): StreamItem[] {
    const items: StreamItem[] = [];
    let rest = chunk;
    if (this.#preambleLeft > 0) {
      const take = Math.min(this.#preambleLeft, rest.byteLength);
      if (take > 0) items.push({ kind: 'preamble', bytes: rest.subarray(0, take) });
      this.#preambleLeft -= take;
      rest = rest.subarray(take);
    }
    this.#buffer = Buffer.concat([this.#buffer, rest]);
    while (this.#buffer.byteLength >= 2) {
      const total = 2 + this.#buffer.readUInt16BE(0);
      if (this.#buffer.byteLength < total) break;
      items.push({ kind: 'frame', index: this.#index++, bytes: Buffer.from(this.#buffer.subarray(0, total)) });
      this.#buffer = this.#buffer.subarray(total);
    }
    return items;
  }

  /** Frames seen so far. */
  get frameCount(): number {
    return this.#index;
  }
}

/** Splits a whole recorded stream into its preamble and frames. */
export function splitStream(bytes: Buffer, preambleBytes = 0): { preamble: Buffer; frames: Buffer[]; rest: number } {
  const preamble = bytes.subarray(0, preambleBytes);
  const frames: Buffer[] = [];
  let offset = preambleBytes;
  while (bytes.byteLength - offset >= 2) {
    const total = 2 + bytes.readUInt16BE(offset);
    if (bytes.byteLength - offset < total) break;
    frames.push(bytes.subarray(offset, offset + total));
    offset += total;
  }
  return { preamble, frames, rest: bytes.byteLength - offset };
}

// Helpers of the reliability suite (test/reliability): a seeded generator, fast-check wired to tap with a fixed
// seed, a bounded pool, event waiters with deadlines, raw TCP peers and a recording proxy on 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import type { Test } from 'tap';
import { isNoiseCfgError, type ErrorCode } from '../../lib/errors.js';

/** Every socket of the suite binds or connects here; listeners use port 0. */
export const HOST = '127.0.0.1';

/** The busy frame a server sends a connection it refuses or evicts (SPEC.md §2.2, §2.4). */
export const BUSY_FRAME = Buffer.from([0x00, 0x06, 0x4e, 0x43, 0x46, 0x47, 0x01, 0x04]);

/** How many events a log record stands for: a summary (remote `*`) says so in its message, any other is one. */
export function eventCount(record: { remote?: string; message?: string }): number {
  if (record.remote !== '*') return 1;
  return Number(/^(\d+) more /.exec(record.message ?? '')?.[1] ?? 1);
}

/** The seed of every fast-check run and every generator here, so that a failure reproduces. */
export const SEED = 0x5eed_c0de;

/** The subset of a tap Test that the helpers use. */
export type TestLike = Pick<Test, 'teardown' | 'comment' | 'notOk'>;

export { randomInt, seededRandom } from '../support/seeded-random.js';

/** `length` bytes from `random`. */
export function randomBytesFrom(random: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let index = 0; index < length; index++) bytes[index] = Math.floor(random() * 256);
  return bytes;
}

/** XORs byte `index` of `bytes` with `mask`, in place. */
export function xorByte(bytes: Uint8Array, index: number, mask: number): void {
  bytes[index] = (bytes[index] ?? 0) ^ mask;
}

/** Bytes that depend on `seed` and on every position, cheap to make at any length. */
export function patterned(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let index = 0; index < length; index++) bytes[index] = (index * 31 + seed * 7 + (index >>> 8)) & 0xff;
  return bytes;
}

/**
 * Runs a fast-check property with the suite's seed and records one tap assertion: passes when every run held,
 * fails with fast-check's report (counterexample, seed and path) otherwise.
 */
export function checkProperty<Ts>(t: TestLike, name: string, property: fc.IProperty<Ts>, numRuns: number): void {
  const started = performance.now();
  const details = fc.check(property, { seed: SEED, numRuns });
  t.notOk(details.failed, name, details.failed ? { report: fc.defaultReportMessage(details) } : {});
  t.comment(`${name}: ${details.numRuns} runs in ${Math.round(performance.now() - started)} ms (seed ${SEED})`);
}

/** Calls `step` and returns its value, or the code of the NoiseCfgError it threw; any other throw propagates. */
export function codeOf<T>(step: () => T): { value: T } | { code: ErrorCode } {
  try {
    return { value: step() };
  } catch (error) {
    if (isNoiseCfgError(error)) return { code: error.code };
    throw error;
  }
}

/** Runs `task(index)` for index 0..count-1 with at most `concurrency` at once. */
export async function runPool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Resolves with `promise`, or rejects naming `what` after `ms` (a guard so that a broken wait fails, not hangs). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves once `condition()` holds, checking every few ms: a poll of state that has no event, bounded by `maxMs`. */
export function waitUntil(condition: () => boolean | Promise<boolean>, what: string, maxMs = 10_000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = async (): Promise<void> => {
      if (await condition()) resolve();
      else if (Date.now() - started > maxMs) reject(new Error(`timed out after ${maxMs} ms waiting until ${what}`));
      else setTimeout(check, 5);
    };
    check();
  });
}

/** A free TCP port on 127.0.0.1: listen on port 0, read the port, close. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What a raw connection saw. */
export interface RawOutcome {
  /** Bytes received from the server. */
  received: Buffer;
  /** Milliseconds from connect to close. */
  openMs: number;
  /** True when the test itself destroyed the socket (the server never closed it in time). */
  closedByTest: boolean;
  errorCode: string | null;
}

/**
 * A plain TCP connection to 127.0.0.1:port (from `localAddress` if given) that writes `writes` in order (each one
 * write), optionally half-closes, and resolves once the socket closes; the test destroys it only after `guardMs`,
 * and says so.
 */
export function rawConnection(port: number, writes: readonly Buffer[], options: { end: boolean; guardMs: number; onConnect?: (socket: Socket) => void; localAddress?: string }): Promise<RawOutcome> {
  return new Promise((resolve) => {
    // localAddress: any of 127/8 on Linux, so that a test can play many source addresses.
    const socket = net.connect({ host: HOST, port, allowHalfOpen: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    const chunks: Buffer[] = [];
    let connectedAt = 0;
    let closedByTest = false;
    let errorCode: string | null = null;
    const guard = setTimeout(() => {
      closedByTest = true;
      socket.destroy();
    }, options.guardMs);
    socket.on('connect', () => {
      connectedAt = performance.now();
      options.onConnect?.(socket);
      for (const bytes of writes) if (bytes.byteLength > 0) socket.write(bytes);
      if (options.end) socket.end();
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      errorCode = error.code ?? error.message;
    });
    socket.on('close', () => {
      clearTimeout(guard);
      resolve({ received: Buffer.concat(chunks), openMs: connectedAt === 0 ? 0 : performance.now() - connectedAt, closedByTest, errorCode });
    });
  });
}

/** A plain TCP peer to 127.0.0.1:port from `localAddress` that sends nothing itself; `closed` has what it received. */
export class IdlePeer {
  readonly socket: Socket;
  readonly connected: Promise<void>;
  readonly closed: Promise<Buffer>;
  isClosed = false;

  constructor(port: number, localAddress: string) {
    this.socket = net.connect({ host: HOST, port, localAddress });
    const chunks: Buffer[] = [];
    this.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    this.socket.on('error', () => undefined);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('close', () => reject(new Error('closed before connecting')));
    });
    this.connected.catch(() => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => {
      this.isClosed = true;
      resolve(Buffer.concat(chunks));
    }));
  }
}

/** A TCP proxy on 127.0.0.1 that forwards to a target and records each client's bytes, one recording per connection. */
export class RecordingProxy {
  readonly recordings: Buffer[][] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor(targetPort: number) {
    this.#server = net.createServer({ allowHalfOpen: true }, (client) => {
      const chunks: Buffer[] = [];
      this.recordings.push(chunks);
      const upstream = net.connect({ host: HOST, port: targetPort, allowHalfOpen: true });
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => {
        chunks.push(Buffer.from(chunk));
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      client.on('end', () => upstream.end());
      upstream.on('end', () => client.end());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, HOST, () => resolve()));
    this.port = (this.#server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * A one-connection-at-a-time TCP proxy on 127.0.0.1 that can hold back the server's bytes: it forwards at most
 * `serverToClientLimit` bytes toward the client and then stops reading from the server. Waiters resolve when the
 * client has sent, or the proxy has forwarded to the client, a given number of bytes.
 */
export class ControlledProxy {
  serverToClientLimit: number;
  /** When true, the client's bytes are no longer passed to the server. */
  isClientHeld = false;
  clientBytes = 0;
  forwardedBytes = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #waiters: { isDone: () => boolean; resolve: () => void }[] = [];
  port = 0;

  constructor(targetPort: number, options: { serverToClientLimit?: number } = {}) {
    this.serverToClientLimit = options.serverToClientLimit ?? Number.POSITIVE_INFINITY;
    this.#server = net.createServer({ allowHalfOpen: true }, (client) => {
      const upstream = net.connect({ host: HOST, port: targetPort, allowHalfOpen: true });
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => {
        this.clientBytes += chunk.byteLength;
        if (!this.isClientHeld) upstream.write(chunk);
        this.#wake();
      });
      upstream.on('data', (chunk: Buffer) => {
        const room = this.serverToClientLimit - this.forwardedBytes;
        if (chunk.byteLength <= room) {
          this.forwardedBytes += chunk.byteLength;
          client.write(chunk);
        } else {
          // Hold the rest: stop reading from the server, so TCP flow control stalls it too.
          if (room > 0) client.write(chunk.subarray(0, room));
          this.forwardedBytes += Math.max(0, room);
          upstream.pause();
        }
        this.#wake();
      });
      client.on('end', () => {
        if (!this.isClientHeld) upstream.end();
      });
      upstream.on('end', () => {
        if (this.forwardedBytes < this.serverToClientLimit) client.end();
      });
      client.on('close', () => upstream.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, HOST, () => resolve()));
    this.port = (this.#server.address() as AddressInfo).port;
    return this.port;
  }

  /** From now on, drops what the client sends instead of passing it to the server. */
  holdClient(): void {
    this.isClientHeld = true;
  }

  /** Resolves once the client has sent at least `count` bytes. */
  clientSent(count: number): Promise<void> {
    return this.#until(() => this.clientBytes >= count);
  }

  /** Resolves once at least `count` bytes went to the client. */
  forwarded(count: number): Promise<void> {
    return this.#until(() => this.forwardedBytes >= count);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #until(isDone: () => boolean): Promise<void> {
    if (isDone()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ isDone, resolve }));
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.isDone()) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
}

/** A child process with collected output and an awaitable exit. */
export interface ChildHandle {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `pattern` in stderr; rejects when the process exits first. */
  waitForStderr: (pattern: RegExp) => Promise<RegExpMatchArray>;
}

/** Spawns `node args…` with stdout and stderr collected (always drained, so the child never blocks on a pipe). */
export function spawnNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildHandle {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  let hasExited = false;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const listener of [...listeners]) listener();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      hasExited = true;
      for (const listener of [...listeners]) listener();
      resolve({ code, signal });
    });
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForStderr: (pattern) => new Promise((resolve, reject) => {
      const check = (): void => {
        const match = stderr.match(pattern);
        if (match) {
          listeners.delete(check);
          resolve(match);
        } else if (hasExited) {
          listeners.delete(check);
          reject(new Error(`process exited before ${pattern} appeared; stderr: ${stderr.slice(-2000)}`));
        }
      };
      listeners.add(check);
      check();
    }),
  };
}

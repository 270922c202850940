/**
 * A TCP listener that runs the server handshake on every connection (SPEC.md §2.4, §2.6): it caps connections
 * that have not yet proved they know a PSK, and reports each outcome once, without secrets, to `onEvent`.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import { resolveLimits, type ChannelLimits } from './limits.js';
import { ReplayCache } from './replay-cache.js';
import type { SecureConnection } from './secure-connection.js';
import type { ServerChannelOptions } from './channel-options.js';
import { ServerHandshake } from './server-handshake.js';

/** One line's worth of what happened to a connection; never holds a key or a PSK. */
export interface ChannelEvent {
  event: 'authenticated' | 'handshake-failed' | 'refused';
  remoteAddress: string;
  /** The failure's code, for handshake-failed and refused. */
  code?: ErrorCode;
  /** The local reason, for handshake-failed and refused. */
  message?: string;
  /** For refused: how many connections this event stands for (refusals are reported at most once a second). */
  count?: number;
  taskId?: string;
  mode?: string;
}

/** Options of a SecureServer. */
export interface SecureServerOptions extends Omit<ServerChannelOptions, 'replayCache' | 'limits'> {
  /** Called with each authenticated connection; the server does not wait for it. */
  onConnection: (connection: SecureConnection) => void;
  /** Called once per connection outcome. */
  onEvent?: (event: ChannelEvent) => void;
  limits?: Partial<ChannelLimits>;
  /** The clock for the replay cache, in milliseconds. */
  now?: () => number;
}

const REFUSAL_REPORT_INTERVAL_MS = 1000;

/** The channel's listener. */
export class SecureServer {
  readonly #options: SecureServerOptions;
  readonly #limits: ChannelLimits;
  readonly #server: Server;
  readonly #replayCache: ReplayCache;
  readonly #channelOptions: ServerChannelOptions;
  readonly #pending = new Set<Socket>();
  readonly #established = new Set<SecureConnection>();
  #refusedSinceReport = 0;
  #refusalTimer: NodeJS.Timeout | null = null;

  constructor(options: SecureServerOptions) {
    this.#options = options;
    this.#limits = resolveLimits(options.limits);
    this.#replayCache = new ReplayCache({ now: options.now ?? Date.now });
    this.#channelOptions = { ...options, replayCache: this.#replayCache, limits: this.#limits };
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). Throws CONNECTION_FAILED. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new NoiseCfgError('CONNECTION_FAILED', `cannot listen on ${host}:${port}: ${error.code ?? error.message}`, { cause: error }));
      };
      this.#server.once('error', onError);
      // A deep accept queue: a burst of connects waits in the kernel instead of a 1 s SYN retransmit.
      this.#server.listen({ port, host, backlog: 4096 }, () => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Connections still in the handshake. */
  get unauthenticatedConnections(): number {
    return this.#pending.size;
  }

  /** Authenticated connections not yet closed. */
  get establishedConnections(): number {
    return this.#established.size;
  }

  /**
   * Stops accepting, drops connections still in the handshake, and waits up to `graceMs` for established ones
   * to close before destroying them.
   */
  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#pending) socket.destroy();
    if (graceMs > 0 && this.#established.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.#established].map((connection) => connection.waitClosed())),
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const connection of this.#established) connection.destroy();
    if (this.#refusalTimer) clearTimeout(this.#refusalTimer);
    this.#reportRefusals();
    await closed;
  }

  #accept(socket: Socket): void {
    if (this.#pending.size >= this.#limits.maxUnauthenticatedConnections) {
      // Refused before reading a byte: cheaper than anything a stranger can make us do.
      socket.destroy();
      this.#refusedSinceReport += 1;
      this.#refusalTimer ??= setTimeout(() => this.#reportRefusals(), REFUSAL_REPORT_INTERVAL_MS);
      return;
    }
    this.#pending.add(socket);
    socket.on('error', () => undefined);
    // Node caches the peer's address on first read; read it now, so that a report written after the socket is
    // gone (reset, or closed by close()) still names the peer.
    void socket.remoteAddress;
    new ServerHandshake(socket, this.#channelOptions, this.#limits, (connection) => {
      this.#pending.delete(socket);
      this.#establish(connection);
      this.#options.onEvent?.({ event: 'authenticated', remoteAddress: connection.remoteAddress, taskId: connection.taskId ?? undefined, mode: connection.mode });
      this.#options.onConnection(connection);
    }, (error) => {
      this.#pending.delete(socket);
      const code = isNoiseCfgError(error) ? error.code : 'FRAME_INVALID';
      this.#options.onEvent?.({ event: 'handshake-failed', remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code, message: error.message });
    });
  }

  // A method of its own, so the close listener captures only the connection, not the accept's locals.
  #establish(connection: SecureConnection): void {
    this.#established.add(connection);
    connection.onClose(() => this.#established.delete(connection));
  }

  #reportRefusals(): void {
    this.#refusalTimer = null;
    if (this.#refusedSinceReport === 0) return;
    const count = this.#refusedSinceReport;
    this.#refusedSinceReport = 0;
    this.#options.onEvent?.({
      event: 'refused',
      remoteAddress: '*',
      code: 'TOO_MANY_CONNECTIONS',
      message: `refused ${count} connection(s): ${this.#limits.maxUnauthenticatedConnections} unauthenticated connections already open`,
      count,
    });
  }
}

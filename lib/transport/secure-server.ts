/**
 * A TCP listener that runs the server handshake on every connection (SPEC.md §2.4, §2.6): it caps connections still
 * in the handshake (in all, and per source address) and established ones, evicts the oldest stranger when the
 * handshake cap is full, tells every refused or evicted client it is busy, and reports each outcome, without
 * secrets and at a bounded rate, to `onEvent`.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import { refuseAsBusy, refuseAsBusyNow } from './busy-refusal.js';
import { fitConnectionCaps, LISTEN_BACKLOG_CONNECTIONS, MAX_LINGERING_REFUSALS, readOpenFilesLimit, resolveLimits, type ChannelLimits, type ConnectionCaps } from './limits.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { ReplayCache } from './replay-cache.js';
import type { SecureConnection } from './secure-connection.js';
import type { ServerChannelOptions } from './channel-options.js';
import { ServerHandshakeSocket, type HandshakeHooks } from './server-handshake-socket.js';
import { sourceAddressKey } from './source-address.js';

/** One line's worth of what happened to a connection; never holds a key or a PSK. */
export interface ChannelEvent {
  event: 'authenticated' | 'handshake-failed' | 'refused';
  /** The peer's address and port; `*` on a summary. */
  remoteAddress: string;
  /** The failure's code, for handshake-failed and refused. */
  code?: ErrorCode;
  /** The local reason, for handshake-failed and refused. */
  message?: string;
  /**
   * On a summary only: how many events of this kind and code it stands for (they were over the rate of
   * `eventRate`); an event without a count stands for one connection.
   */
  count?: number;
  taskId?: string;
  mode?: string;
}

/** Options of a SecureServer. */
export interface SecureServerOptions extends Omit<ServerChannelOptions, 'replayCache' | 'limits'> {
  /** Called with each authenticated connection; the server does not wait for it. */
  onConnection: (connection: SecureConnection) => void;
  /** Called once per connection outcome, or once per summary of outcomes over the rate (see `eventRate`). */
  onEvent?: (event: ChannelEvent) => void;
  limits?: Partial<ChannelLimits>;
  /** The clock for the replay cache, in milliseconds. */
  now?: () => number;
  /**
   * handshake-failed and refused events of one code that onEvent gets one by one per interval (default 10 per
   * 1000 ms); the rest of the interval's become one summary with a count. `authenticated` is never held back.
   */
  eventRate?: { eventsPerInterval?: number; intervalMs?: number };
  /** The soft limit on open files that the connection caps are fitted to; by default read from /proc/self/limits. */
  openFilesLimit?: number | null;
}

/** A connection in the handshake. */
interface Pending {
  handshake: ServerHandshakeSocket;
  source: string;
  acceptedAt: number;
}

/** The channel's listener. */
export class SecureServer {
  readonly #options: SecureServerOptions;
  readonly #limits: ChannelLimits;
  readonly #caps: ConnectionCaps;
  readonly #server: Server;
  readonly #replayCache: ReplayCache;
  readonly #channelOptions: ServerChannelOptions & { replayCache: ReplayCache };
  readonly #log: RateLimitedLog<ChannelEvent>;
  /** In the handshake and not yet past mac1 or the nnpsk0 tag, oldest first: evicted first. */
  readonly #unproven = new Map<Socket, Pending>();
  /** In the handshake after mac1 or the nnpsk0 tag verified (possibly a replay), oldest first. */
  readonly #proven = new Map<Socket, Pending>();
  /** Handshakes open per source key (sourceAddressKey). */
  readonly #perSource = new Map<string, number>();
  readonly #established = new Set<SecureConnection>();
  readonly #lingering = new Set<Socket>();
  readonly #hooks: HandshakeHooks;

  constructor(options: SecureServerOptions) {
    this.#options = options;
    const limits = resolveLimits(options.limits);
    this.#caps = fitConnectionCaps(limits, options.limits ?? {}, options.openFilesLimit === undefined ? readOpenFilesLimit() : options.openFilesLimit);
    this.#limits = { ...limits, maxUnauthenticatedConnections: this.#caps.maxUnauthenticatedConnections, maxEstablishedConnections: this.#caps.maxEstablishedConnections };
    this.#replayCache = new ReplayCache({ now: options.now ?? Date.now });
    this.#channelOptions = { ...options, replayCache: this.#replayCache, limits: this.#limits };
    this.#log = new RateLimitedLog<ChannelEvent>({
      emit: (event) => this.#options.onEvent?.(event),
      summarize: (last, count) => ({
        event: last.event,
        remoteAddress: '*',
        ...(last.code ? { code: last.code } : {}),
        message: `${count} more ${last.event} event(s) with ${last.code ?? 'no code'} in the last interval (the latest: ${last.remoteAddress}: ${last.message ?? ''})`,
        count,
      }),
      ...(options.eventRate?.eventsPerInterval !== undefined ? { eventsPerInterval: options.eventRate.eventsPerInterval } : {}),
      ...(options.eventRate?.intervalMs !== undefined ? { intervalMs: options.eventRate.intervalMs } : {}),
    });
    this.#hooks = {
      onProven: (socket) => {
        const pending = this.#unproven.get(socket);
        if (pending === undefined) return;
        this.#unproven.delete(socket);
        this.#proven.set(socket, pending);
      },
      isEstablishedFull: () => this.#established.size >= this.#limits.maxEstablishedConnections,
      refuse: (socket) => this.#refuse(socket),
    };
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). Throws CONNECTION_FAILED. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new NoiseCfgError('CONNECTION_FAILED', `cannot listen on ${host}:${port}: ${error.code ?? error.message}`, { cause: error }));
      };
      this.#server.once('error', onError);
      this.#server.listen({ port, host, backlog: LISTEN_BACKLOG_CONNECTIONS }, () => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /**
   * The connection caps in force: as given, or the defaults lowered to fit the open-files limit (log it once, at
   * start, so that an operator sees why).
   */
  get connectionCaps(): ConnectionCaps {
    return { ...this.#caps };
  }

  /** Connections still in the handshake. */
  get unauthenticatedConnections(): number {
    return this.#unproven.size + this.#proven.size;
  }

  /** Authenticated connections not yet closed. */
  get establishedConnections(): number {
    return this.#established.size;
  }

  /** Refused sockets still open for their busy frame to arrive. */
  get lingeringRefusals(): number {
    return this.#lingering.size;
  }

  /**
   * Stops accepting, drops connections still in the handshake and refused ones, and waits up to `graceMs` for
   * established ones to close before destroying them. Events held back by the rate are reported before it resolves.
   */
  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of [...this.#unproven.keys(), ...this.#proven.keys(), ...this.#lingering]) socket.destroy();
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
    await closed;
    this.#log.flush();
  }

  #accept(socket: Socket): void {
    socket.on('error', ignore);
    // Node caches the peer's address on first read; read it now, so that a report written after the socket is
    // gone (reset, or closed by close()) still names the peer.
    const address = socket.remoteAddress;
    if (this.#established.size >= this.#limits.maxEstablishedConnections) {
      this.#refuseAtAccept(socket, `${this.#established.size} established connections already open (maxEstablishedConnections)`);
      return;
    }
    const source = sourceAddressKey(address);
    const fromSource = this.#perSource.get(source) ?? 0;
    if (fromSource >= this.#limits.maxUnauthenticatedPerSource) {
      this.#refuseAtAccept(socket, `${fromSource} unauthenticated connections from ${source} already open (maxUnauthenticatedPerSource)`);
      return;
    }
    if (this.unauthenticatedConnections >= this.#limits.maxUnauthenticatedConnections) this.#evictOldest();
    this.#perSource.set(source, fromSource + 1);
    const pending: Pending = {
      source,
      acceptedAt: performance.now(),
      handshake: new ServerHandshakeSocket(socket, this.#channelOptions, this.#limits, (connection) => {
        this.#leavePending(socket);
        this.#establish(connection);
        this.#options.onEvent?.({ event: 'authenticated', remoteAddress: connection.remoteAddress, taskId: connection.taskId ?? undefined, mode: connection.mode });
        this.#options.onConnection(connection);
      }, (error) => {
        this.#leavePending(socket);
        const code = isNoiseCfgError(error) ? error.code : 'FRAME_INVALID';
        const event = code === 'TOO_MANY_CONNECTIONS' ? 'refused' : 'handshake-failed';
        this.#report({ event, remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code, message: error.message });
      }, this.#hooks),
    };
    this.#unproven.set(socket, pending);
  }

  // The oldest stranger that has not shown it knows a PSK goes first; only when every one has, the oldest of those.
  #evictOldest(): void {
    const victims = this.#unproven.size > 0 ? this.#unproven : this.#proven;
    const oldest = victims.values().next();
    if (oldest.done === true) return;
    const { handshake, acceptedAt } = oldest.value;
    const which = victims === this.#unproven ? 'the oldest connection that had not shown it knows a PSK' : 'the oldest connection in the handshake';
    handshake.evict(`evicted ${which} after ${Math.round(performance.now() - acceptedAt)} ms to admit a new one: ${this.#limits.maxUnauthenticatedConnections} unauthenticated connections open (maxUnauthenticatedConnections)`);
  }

  #leavePending(socket: Socket): void {
    const pending = this.#unproven.get(socket) ?? this.#proven.get(socket);
    if (pending === undefined) return;
    this.#unproven.delete(socket);
    this.#proven.delete(socket);
    const left = (this.#perSource.get(pending.source) ?? 1) - 1;
    if (left <= 0) this.#perSource.delete(pending.source);
    else this.#perSource.set(pending.source, left);
  }

  #refuseAtAccept(socket: Socket, reason: string): void {
    this.#report({ event: 'refused', remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code: 'TOO_MANY_CONNECTIONS', message: `server busy: ${reason}` });
    this.#refuse(socket);
  }

  // The busy frame, without reading what the client sent; the socket lingers briefly so that the frame arrives.
  #refuse(socket: Socket): void {
    if (this.#lingering.size >= MAX_LINGERING_REFUSALS) {
      refuseAsBusyNow(socket);
      return;
    }
    this.#lingering.add(socket);
    refuseAsBusy(socket, () => this.#lingering.delete(socket));
  }

  #report(event: ChannelEvent): void {
    this.#log.report(`${event.event}:${event.code ?? ''}`, event);
  }

  // A method of its own, so the close listener captures only the connection, not the accept's locals.
  #establish(connection: SecureConnection): void {
    this.#established.add(connection);
    connection.onClose(() => this.#established.delete(connection));
  }
}

function ignore(): void {
  // Socket errors end the handshake through its own listeners; this one only keeps them from being thrown.
}

/**
 * Raw mode's two ends (SPEC.md §2.7, §2.9): a client that connects within the handshake deadline and a listener,
 * both running plain Noise over the 2-byte framing; the pin (HandshakeOptions.expectedRemoteStaticKey) is checked
 * by the handshake itself. `noise-cfg channel --raw` is built on these. Uses only the transport layer's face.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { NoiseCfgError } from '../errors.js';
import type { HandshakeOptions } from '../noise/index.js';
import { openSocket, rawSecureSocket, resolveLimits, type ChannelLimits, type SecureConnection } from './index.js';

/**
 * Connects to `host:port` (the TCP connect within the handshake deadline) and runs the handshake as initiator.
 * Throws CONNECTION_FAILED, HANDSHAKE_TIMEOUT, AUTHENTICATION_FAILED, DECRYPT_FAILED, REMOTE_STATIC_MISMATCH.
 */
export async function connectRaw(host: string, port: number, options: { handshake: Omit<HandshakeOptions, 'initiator'>; limits?: Partial<ChannelLimits> }): Promise<SecureConnection> {
  const socket = await openSocket(host, port, resolveLimits(options.limits).handshakeTimeoutMs);
  return rawSecureSocket(socket, { handshake: { ...options.handshake, initiator: true }, ...(options.limits ? { limits: options.limits } : {}) });
}

/** Options of a RawServer. */
export interface RawServerOptions {
  /** The responder's handshake; an expectedRemoteStaticKey pins the initiators it accepts. */
  handshake: Omit<HandshakeOptions, 'initiator'>;
  /** Called with each connection whose handshake finished. */
  onConnection: (connection: SecureConnection) => void;
  /** Called when a handshake fails, with the peer's address (read before the socket closed) and the local reason. */
  onHandshakeFailed?: (remoteAddress: string, error: NoiseCfgError) => void;
  limits?: Partial<ChannelLimits>;
}

/** A TCP listener that runs the raw responder handshake on every connection. */
export class RawServer {
  readonly #options: RawServerOptions;
  readonly #server: Server;
  readonly #connections = new Set<SecureConnection>();

  constructor(options: RawServerOptions) {
    this.#options = options;
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
  }

  #accept(socket: Socket): void {
    // Read now: once the socket has closed (as it has when a handshake fails) Node no longer knows the peer.
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const limits = this.#options.limits ? { limits: this.#options.limits } : {};
    rawSecureSocket(socket, { handshake: { ...this.#options.handshake, initiator: false }, ...limits }).then((connection) => {
      this.#connections.add(connection);
      void connection.waitClosed().then(() => this.#connections.delete(connection));
      this.#options.onConnection(connection);
    }, (error: NoiseCfgError) => this.#options.onHandshakeFailed?.(peer, error));
  }

  /** Listens on `host:port` (port 0: any); resolves with the bound address. Throws CONNECTION_FAILED. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', (error: NodeJS.ErrnoException) => reject(new NoiseCfgError('CONNECTION_FAILED', `cannot listen on ${host}:${port}: ${error.code ?? error.message}`, { cause: error })));
      this.#server.listen(port, host, () => resolve(this.#server.address() as AddressInfo));
    });
  }

  /** Stops accepting and destroys the open connections; resolves once the listener has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      for (const connection of this.#connections) connection.destroy();
      this.#server.close(() => resolve());
    });
  }
}

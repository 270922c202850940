// A hostile token holder for test/reliability/token-holders.test.ts: it completes a real handshake with a task's
// token, then speaks update messages or writes channel records of its own choosing (FRAGMENTs that never end,
// REKEYs instead of HELLO), and can stop reading. Loopback only.
import net, { type Socket } from 'node:net';
import { generateKeyPair, type KeyPair } from '../../lib/noise/keys.js';
import { encodeMessage, decodeMessage, type UpdateMessage } from '../../lib/task/messages.js';
import { decodeToken } from '../../lib/token/token.js';
import { encodeFrame } from '../../lib/transport/framing.js';
import { encodeRecord, type RecordType } from '../../lib/transport/records.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { secureClientSocket } from '../../lib/transport/secure-socket.js';
import { transportOfConnectionForTesting } from '../../lib/transport/testing.js';

/** One established connection of a token holder. */
export interface TokenHolder {
  connection: SecureConnection;
  socket: Socket;
  /** The identity the server will see: hex static key (xxpsk3) or the clientId to send (nnpsk0). */
  identity: string;
  /** Sends a HELLO with this holder's clientId (nnpsk0) and the given fields. */
  hello: (fields?: Partial<{ name: string; have: string | null; intent: 'pull' | 'dry-run' | 'check' }>) => Promise<void>;
  /** Sends one update message through the channel. */
  send: (message: UpdateMessage) => Promise<void>;
  /** The next update message, or null after the server's END. */
  receive: () => Promise<UpdateMessage | null>;
  /**
   * Writes one record straight to the socket, encrypted under the connection's current send key: no message
   * layer, so a FRAGMENT need never be followed by FINAL. After a REKEY record the send key moves on, as the
   * channel's own would. Returns false when the socket buffer is full (wait for 'drain').
   */
  writeRecord: (type: RecordType, body?: Uint8Array) => boolean;
  /** Resolves when the server has ended its side (FIN), or the socket has closed. */
  closed: Promise<void>;
}

/** Options of openTokenHolder. */
export interface TokenHolderOptions {
  /** xxpsk3: the static key pair (default: a fresh one, a new identity). */
  keyPair?: KeyPair;
  /** nnpsk0: the clientId to claim (default: a fresh random one). */
  clientId?: string;
}

let clientIds = 0;

/** Connects to the token's server and completes the handshake. Throws what secureClientSocket throws. */
export async function openTokenHolder(token: string, options: TokenHolderOptions = {}): Promise<TokenHolder> {
  const fields = decodeToken(token);
  const socket = net.connect({ host: fields.host, port: fields.port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // The socket is half-open: the server's FIN ends the server's side, which is what the tests wait for.
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  socket.on('error', () => undefined);
  const isXx = fields.mode === 'xxpsk3';
  const keyPair = options.keyPair ?? (isXx ? generateKeyPair() : undefined);
  const clientId = options.clientId ?? `holder-${process.pid}-${++clientIds}-${Math.random().toString(36).slice(2, 10)}`;
  const connection = await secureClientSocket(socket, {
    mode: fields.mode,
    taskId: fields.taskId,
    psk: fields.psk,
    ...(isXx ? { staticKeyPair: keyPair!, serverPublicKey: fields.serverPublicKey! } : {}),
    // A hostile client keeps its own connection open for as long as the server lets it.
    limits: { idleTimeoutMs: 0, handshakeTimeoutMs: 10_000 },
  });
  const transport = transportOfConnectionForTesting(connection);
  const send = (message: UpdateMessage): Promise<void> => connection.send(encodeMessage(message));
  return {
    connection,
    socket,
    identity: isXx ? Buffer.from(keyPair!.publicKey).toString('hex') : clientId,
    hello: (hello = {}) => send({ type: 'HELLO', body: {
      protocol: 1, software: 'token-holder', name: hello.name ?? 'holder', clientId: isXx ? null : clientId,
      have: hello.have ?? null, intent: hello.intent ?? 'pull',
    } }),
    send,
    receive: async () => {
      const bytes = await connection.receive();
      return bytes === null ? null : decodeMessage(bytes);
    },
    writeRecord: (type, body = Buffer.alloc(0)) => {
      const written = socket.write(encodeFrame(transport.encrypt(encodeRecord(type, body))));
      if (type === 'REKEY') transport.rekeySend();
      return written;
    },
    closed,
  };
}

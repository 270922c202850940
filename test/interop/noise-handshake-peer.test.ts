/**
 * Interop over real TCP sockets: npm noise-handshake as the other side of NNpsk0 in raw mode (SPEC.md §2.7), in
 * both roles. The peer below frames by hand (2-byte big-endian length), runs noise-handshake's send/recv, then
 * uses its transport keys with its own cipher.js. Each side sends three messages and ends with a FIN.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import NoiseHandshake from 'noise-handshake';
import NoiseHandshakeCipher from 'noise-handshake/cipher.js';
import t, { type Test } from 'tap';
import { NNPSK0_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { openSocket, rawSecureSocket } from '../../lib/transport/secure-socket.js';

const HOST = '127.0.0.1';
const TIMEOUT_MS = 5_000;
const PROLOGUE = Buffer.from('noise-cfg raw interop prologue');
const MESSAGE_COUNT = 3;

const ourMessages = Array.from({ length: MESSAGE_COUNT }, (_, index) => Buffer.from(`noise-cfg message ${index + 1}`));
const theirMessages = Array.from({ length: MESSAGE_COUNT }, (_, index) => Buffer.from(`noise-handshake message ${index + 1}`));

/** The peer's side of the framing, written independently of lib/transport/framing.ts. */
class HandFramedSocket {
  readonly #socket: Socket;
  #buffered = Buffer.alloc(0);
  #isEnded = false;
  #failure: Error | null = null;
  #wake: (() => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.#isEnded = true;
      this.#notify();
    });
    socket.on('error', (error) => {
      this.#failure = error;
      this.#notify();
    });
  }

  write(body: Buffer): void {
    const header = Buffer.alloc(2);
    header.writeUInt16BE(body.byteLength);
    this.#socket.write(Buffer.concat([header, body]));
  }

  /** The next frame body, or null on a FIN between frames. */
  async read(): Promise<Buffer | null> {
    for (;;) {
      if (this.#buffered.byteLength >= 2) {
        const length = this.#buffered.readUInt16BE(0);
        if (this.#buffered.byteLength >= 2 + length) {
          const body = Buffer.from(this.#buffered.subarray(2, 2 + length));
          this.#buffered = this.#buffered.subarray(2 + length);
          return body;
        }
      }
      if (this.#failure) throw this.#failure;
      if (this.#isEnded) {
        if (this.#buffered.byteLength === 0) return null;
        throw new Error(`the stream ended inside a frame (${this.#buffered.byteLength} bytes left)`);
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  end(): void {
    this.#socket.end();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** noise-handshake's whole session: handshake, three messages sent, everything received until the FIN. */
async function runPeer(socket: Socket, isInitiator: boolean, psk: Buffer): Promise<{ hash: Buffer; received: Buffer[] }> {
  const framed = new HandFramedSocket(socket);
  const readFrame = async (what: string): Promise<Buffer> => {
    const frame = await framed.read();
    if (frame === null) throw new Error(`noise-handshake peer: the stream ended before ${what}`);
    return frame;
  };
  const handshake = new NoiseHandshake('NNpsk0', isInitiator, null, { psk });
  handshake.initialise(PROLOGUE);
  if (isInitiator) {
    framed.write(handshake.send());
    handshake.recv(await readFrame('handshake message 2'));
  } else {
    handshake.recv(await readFrame('handshake message 1'));
    framed.write(handshake.send());
  }
  if (!handshake.complete) throw new Error('noise-handshake peer: the handshake did not complete');
  // tx is noise-handshake's sending key and rx its receiving key.
  const sender = new NoiseHandshakeCipher(handshake.tx!);
  const receiver = new NoiseHandshakeCipher(handshake.rx!);
  for (const message of theirMessages) framed.write(sender.encrypt(message));
  framed.end();
  const received: Buffer[] = [];
  for (let frame = await framed.read(); frame !== null; frame = await framed.read()) {
    received.push(Buffer.from(receiver.decrypt(frame)));
  }
  return { hash: Buffer.from(handshake.hash!), received };
}

/** Our side after the handshake: send three messages, end, and read everything until the peer's FIN. */
async function runOurs(connection: SecureConnection): Promise<Buffer[]> {
  for (const message of ourMessages) await connection.send(message);
  await connection.close();
  const received: Buffer[] = [];
  for await (const message of connection) received.push(message);
  return received;
}

async function listen(t: Test, onConnection: (socket: Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  const sockets: Socket[] = [];
  server.on('connection', (socket) => sockets.push(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function checkExchange(t: Test, ours: { hash: Buffer; received: Buffer[] }, theirs: { hash: Buffer; received: Buffer[] }): void {
  t.equal(ours.hash.toString('hex'), theirs.hash.toString('hex'), 'same handshake hash');
  t.same(ours.received.map(String), theirMessages.map(String), 'we received noise-handshake\'s three messages');
  t.same(theirs.received.map(String), ourMessages.map(String), 'noise-handshake received our three messages');
}

t.test(`${NNPSK0_PROTOCOL_NAME} over TCP: noise-cfg initiator, noise-handshake responder`, async (t) => {
  const psk = randomBytes(32);
  let peerRun!: Promise<{ hash: Buffer; received: Buffer[] }>;
  const port = await listen(t, (socket) => {
    peerRun = runPeer(socket, false, psk);
    peerRun.catch(() => undefined); // awaited below; a failure is reported there
  });
  const socket = await openSocket(HOST, port, TIMEOUT_MS);
  t.teardown(() => socket.destroy());
  const connection = await rawSecureSocket(socket, {
    handshake: { protocolName: NNPSK0_PROTOCOL_NAME, initiator: true, prologue: PROLOGUE, psks: [psk] },
    limits: { handshakeTimeoutMs: TIMEOUT_MS },
  });
  const received = await runOurs(connection);
  checkExchange(t, { hash: connection.handshakeHash, received }, await peerRun);
});

t.test(`${NNPSK0_PROTOCOL_NAME} over TCP: noise-handshake initiator, noise-cfg responder`, async (t) => {
  const psk = randomBytes(32);
  let ourRun!: Promise<{ hash: Buffer; received: Buffer[] }>;
  const port = await listen(t, (socket) => {
    ourRun = (async () => {
      const connection = await rawSecureSocket(socket, {
        handshake: { protocolName: NNPSK0_PROTOCOL_NAME, initiator: false, prologue: PROLOGUE, psks: [psk] },
        limits: { handshakeTimeoutMs: TIMEOUT_MS },
      });
      return { hash: connection.handshakeHash, received: await runOurs(connection) };
    })();
    ourRun.catch(() => undefined); // awaited below; a failure is reported there
  });
  const socket = await openSocket(HOST, port, TIMEOUT_MS);
  t.teardown(() => socket.destroy());
  const theirs = await runPeer(socket, true, psk);
  checkExchange(t, await ourRun, theirs);
});

/**
 * Raw mode (SPEC.md §2.7): plain Noise over the 2-byte framing, no preamble, records or END. rawSecureSocket runs
 * either role over a real socket pair on 127.0.0.1; each message is one Noise transport message and the stream
 * ends with the TCP FIN.
 */
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { HandshakeOptions } from '../../lib/noise/handshake-state.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import { encodeFrame } from '../../lib/transport/framing.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { rawSecureSocket } from '../../lib/transport/secure-socket.js';
import { transportOfConnectionForTesting } from '../../lib/transport/testing.js';
import { CLIENT_STATIC, FrameSplitter, HOST, listenPlain, patternedMessage, PSK, SERVER_STATIC, startProxy, WRONG_PSK } from './helpers.js';

const NN_PROTOCOL_NAME = 'Noise_NN_25519_ChaChaPoly_BLAKE2b';
const PROLOGUE = Buffer.from('noise-cfg raw channel test');

interface RawCase {
  name: string;
  handshake: (initiator: boolean) => HandshakeOptions;
  messageCount: number;
  hasStatics: boolean;
}

const CASES: RawCase[] = [
  { name: 'NN', handshake: (initiator) => ({ protocolName: NN_PROTOCOL_NAME, initiator }), messageCount: 2, hasStatics: false },
  {
    name: 'NNpsk0 with a prologue',
    handshake: (initiator) => ({ protocolName: NNPSK0_PROTOCOL_NAME, initiator, prologue: PROLOGUE, psks: [PSK] }),
    messageCount: 2,
    hasStatics: false,
  },
  {
    name: 'XXpsk3 with static keys',
    handshake: (initiator) => ({
      protocolName: XXPSK3_PROTOCOL_NAME,
      initiator,
      prologue: PROLOGUE,
      psks: [PSK],
      staticKeyPair: initiator ? CLIENT_STATIC : SERVER_STATIC,
    }),
    messageCount: 3,
    hasStatics: true,
  },
];

interface RawPair {
  client: SecureConnection;
  server: SecureConnection;
  clientSocket: Socket;
}

/** An initiator on a plain socket to `port`, through rawSecureSocket. */
async function rawClient(t: Test, port: number, initiator: HandshakeOptions): Promise<{ client: Promise<SecureConnection>; socket: Socket }> {
  const socket = net.connect({ host: HOST, port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  const client = rawSecureSocket(socket, { handshake: initiator }).then((connection) => {
    t.teardown(() => connection.destroy());
    return connection;
  });
  client.catch(() => undefined);
  return { client, socket };
}

/** A responder on a plain net.Server and an initiator on a plain socket, both through rawSecureSocket. */
async function rawPair(t: Test, responder: HandshakeOptions, initiator: HandshakeOptions): Promise<{ pair: Promise<RawPair>; server: Promise<SecureConnection>; client: Promise<SecureConnection> }> {
  let onServer: (connection: SecureConnection) => void = () => undefined;
  let onServerError: (error: unknown) => void = () => undefined;
  const server = new Promise<SecureConnection>((resolve, reject) => {
    onServer = resolve;
    onServerError = reject;
  });
  server.catch(() => undefined);
  const { port } = await listenPlain(t, (socket) => {
    rawSecureSocket(socket, { handshake: responder }).then((connection) => {
      t.teardown(() => connection.destroy());
      onServer(connection);
    }, onServerError);
  });
  const { client, socket } = await rawClient(t, port, initiator);
  const pair = client.then(async (connection) => ({ client: connection, server: await server, clientSocket: socket }));
  pair.catch(() => undefined);
  return { pair, server, client };
}

/** Echoes every message, then closes after the peer's FIN; resolves 'clean' or the error code. */
function echo(connection: SecureConnection): Promise<string> {
  return (async () => {
    for await (const message of connection) await connection.send(message);
    await connection.close();
    return 'clean';
  })().catch((error: { code?: string }) => error.code ?? 'error');
}

for (const rawCase of CASES) {
  t.test(`raw ${rawCase.name}: both roles complete the handshake and round-trip messages`, async (t) => {
    const { pair } = await rawPair(t, rawCase.handshake(false), rawCase.handshake(true));
    const { client, server } = await pair;
    const echoed = echo(server);
    for (const size of [0, 1, 1000, 65_519]) {
      const message = patternedMessage(size, size % 13);
      await client.send(message);
      t.ok((await client.receive())?.equals(message), `${size} bytes round trip`);
    }
    t.equal(client.mode, 'raw');
    t.equal(server.mode, 'raw');
    t.equal(client.taskId, null);
    t.ok(client.handshakeHash.equals(server.handshakeHash), 'same handshake hash on both sides');
    if (rawCase.hasStatics) {
      t.ok(server.remoteStaticKey?.equals(CLIENT_STATIC.publicKey), 'the responder learned the initiator\'s static key');
      t.ok(client.remoteStaticKey?.equals(SERVER_STATIC.publicKey), 'the initiator learned the responder\'s static key');
    } else {
      t.equal(server.remoteStaticKey, null);
      t.equal(client.remoteStaticKey, null);
    }
    await client.close();
    t.equal(await echoed, 'clean', 'a plain FIN ends the responder\'s iterator cleanly (raw mode has no END)');
    t.equal(await client.receive(), null, 'and the responder\'s FIN ends the initiator\'s');
    t.equal(client.failure, null);
    t.equal(server.failure, null);
  });

  t.test(`raw ${rawCase.name}: each message is exactly one Noise transport message, at most 65519 bytes`, async (t) => {
    const upstream = await listenPlain(t, (socket) => {
      rawSecureSocket(socket, { handshake: rawCase.handshake(false) }).then(async (connection) => {
        t.teardown(() => connection.destroy());
        await echo(connection);
      }, () => undefined);
    });
    const frameSizes: number[] = [];
    const proxy = await startProxy(t, upstream.port, {
      onClientData: (connection, chunk) => {
        const state = connection.state as { splitter?: FrameSplitter };
        state.splitter ??= new FrameSplitter(0);
        for (const item of state.splitter.push(chunk)) if (item.kind === 'frame') frameSizes.push(item.bytes.byteLength - 2);
        connection.toServer.write(chunk);
      },
    });
    const client = await (await rawClient(t, proxy.port, rawCase.handshake(true))).client;
    for (const size of [0, 100, 65_519]) {
      await client.send(Buffer.alloc(size, 1));
      t.equal((await client.receive())?.byteLength, size, `${size} bytes round trip`);
    }
    await t.rejects(client.send(Buffer.alloc(65_520)), { code: 'MESSAGE_TOO_LARGE' }, '65520 bytes do not fit one transport message');
    await t.rejects(client.send(Buffer.alloc(1_000_000)), { code: 'MESSAGE_TOO_LARGE' }, 'raw mode never fragments');
    await client.send(Buffer.from('still usable'));
    t.equal(String(await client.receive()), 'still usable', 'a refused send leaves the connection usable');
    await client.close();
    t.equal(await client.receive(), null);
    const initiatorHandshakeFrames = Math.ceil(rawCase.messageCount / 2);
    t.same(frameSizes.slice(initiatorHandshakeFrames), [16, 116, 65_535, 28], 'one frame per message: plaintext + 16-byte tag, no record byte');
  });
}

t.test('raw: the responder may send at once after the handshake; the initiator gets every message', async (t) => {
  const messages = Array.from({ length: 8 }, (_, index) => Buffer.from(`pushed ${index}`));
  const upstream = await listenPlain(t, (socket) => {
    rawSecureSocket(socket, { handshake: CASES[0]!.handshake(false) }).then((connection) => {
      t.teardown(() => connection.destroy());
      for (const message of messages) void connection.send(message).catch(() => undefined);
    }, () => undefined);
  });
  const client = await (await rawClient(t, upstream.port, CASES[0]!.handshake(true))).client;
  const received: string[] = [];
  for (let index = 0; index < messages.length; index += 1) received.push(String(await client.receive()));
  t.same(received, messages.map(String));
});

t.test('raw: a different prologue or PSK fails the handshake with AUTHENTICATION_FAILED on both sides', async (t) => {
  const nnpsk0 = CASES[1]!;
  const mismatches: [string, HandshakeOptions][] = [
    ['prologue', { ...nnpsk0.handshake(true), prologue: Buffer.from('another prologue') }],
    ['PSK', { ...nnpsk0.handshake(true), psks: [WRONG_PSK] }],
  ];
  for (const [name, initiator] of mismatches) {
    const { pair, server } = await rawPair(t, nnpsk0.handshake(false), initiator);
    await t.rejects(server, { code: 'AUTHENTICATION_FAILED' }, `${name}: the responder refuses message 1`);
    await t.rejects(pair, { code: 'AUTHENTICATION_FAILED' }, `${name}: the initiator sees the responder close`);
  }
  const xx = CASES[2]!;
  const { server, client } = await rawPair(t, xx.handshake(false), { ...xx.handshake(true), psks: [WRONG_PSK] });
  await t.rejects(server, { code: 'AUTHENTICATION_FAILED' }, 'XXpsk3 with a wrong PSK: the responder refuses message 3');
  // The initiator is done once it has written message 3 (the PSK enters there); raw mode has no READY to wait for,
  // so all it can see is the stream ending with nothing in it.
  const initiator = await client;
  const outcome = await initiator.receive().then((message) => (message === null ? 'end' : 'message'), (error: { code?: string }) => error.code);
  t.ok(outcome === 'end' || outcome === 'CONNECTION_TRUNCATED', `the initiator receives nothing (${outcome})`);
});

t.test('raw: a tampered transport frame is DECRYPT_FAILED and nothing is delivered', async (t) => {
  const { pair } = await rawPair(t, CASES[0]!.handshake(false), CASES[0]!.handshake(true));
  const { client, server, clientSocket } = await pair;
  const ciphertext = transportOfConnectionForTesting(client).encrypt(Buffer.from('tampered'));
  ciphertext[3] = ciphertext[3]! ^ 0x01;
  clientSocket.write(encodeFrame(ciphertext));
  await t.rejects(server.receive(), { code: 'DECRYPT_FAILED' });
});

t.test('raw: a FIN in the middle of a frame is CONNECTION_TRUNCATED, not a clean end', async (t) => {
  const { pair } = await rawPair(t, CASES[0]!.handshake(false), CASES[0]!.handshake(true));
  const { client, server, clientSocket } = await pair;
  await client.send(Buffer.from('whole'));
  t.equal(String(await server.receive()), 'whole');
  const frame = encodeFrame(transportOfConnectionForTesting(client).encrypt(Buffer.from('cut short')));
  clientSocket.end(frame.subarray(0, 10));
  await t.rejects(server.receive(), { code: 'CONNECTION_TRUNCATED' }, 'a partial frame before the FIN is a truncation');
});

/**
 * Interop over real TCP sockets with an independent implementation: dissononce (Debian's python3-dissononce, on
 * top of pyca/cryptography) runs the other side of NNpsk0 and XXpsk3 in raw mode (SPEC.md §2.7: 2-byte framing, no
 * preamble or records, one application message per transport message, the stream ends with a FIN). Both role
 * assignments, handshake hashes and static keys compared, and a wrong PSK or pin failing on both sides.
 * The peer is test/interop/dissononce_peer.py; see its docstring for what it prints.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { isNoiseCfgError } from '../../lib/errors.js';
import { generateKeyPair, type KeyPair } from '../../lib/noise/dh-functions.js';
import type { HandshakeOptions } from '../../lib/noise/handshake-state.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import { MAX_TRANSPORT_PLAINTEXT_BYTES } from '../../lib/noise/transport-state.js';
import type { SecureConnection } from '../../lib/transport/secure-connection.js';
import { openSocket, rawSecureSocket } from '../../lib/transport/secure-socket.js';

/** Debian's interpreter, which has python3-dissononce; the pyenv python3 on PATH does not. */
const PYTHON = '/usr/bin/python3';
const PEER_SCRIPT = fileURLToPath(new URL('./dissononce_peer.py', import.meta.url));
const HOST = '127.0.0.1';
const TIMEOUT_MS = 5_000;
const PROLOGUE = Buffer.from('noise-cfg raw interop prologue');
/** The sizes the peer's --send cycles through (dissononce_peer.py SEND_SIZES). */
const SEND_SIZES = [0, 1, 1000, MAX_TRANSPORT_PLAINTEXT_BYTES];
const MESSAGE_COUNT = 8;

interface ProtocolCase {
  name: string;
  hasStatics: boolean;
}

const PROTOCOLS: ProtocolCase[] = [
  { name: NNPSK0_PROTOCOL_NAME, hasStatics: false },
  { name: XXPSK3_PROTOCOL_NAME, hasStatics: true },
];

/** Keys for one run: the PSK and, for XX, a static key pair per side. */
interface Keys {
  psk: Buffer;
  ours: KeyPair;
  theirs: KeyPair;
}

function freshKeys(): Keys {
  return { psk: randomBytes(32), ours: generateKeyPair(), theirs: generateKeyPair() };
}

/** Message `index` as the peer's --send derives it: BLAKE2b-512 of a label, repeated to the size. */
function peerMessage(index: number): Buffer {
  const size = SEND_SIZES[index % SEND_SIZES.length]!;
  const block = createHash('blake2b512').update(`noise-cfg interop message ${index}`).digest();
  return Buffer.concat(Array.from({ length: Math.ceil(size / block.byteLength) }, () => block)).subarray(0, size);
}

/** Our messages when we initiate: the same sizes, other bytes. */
function ourMessage(index: number): Buffer {
  const size = SEND_SIZES[index % SEND_SIZES.length]!;
  return Buffer.alloc(size).fill(`noise-cfg message ${index} `);
}

interface Peer {
  /** Resolves with the port once the peer prints LISTENING; rejects if it exits first. */
  listening: Promise<number>;
  /** Resolves when the peer has exited and its output is read. */
  exited: Promise<number | null>;
  /** The value of the first stdout line `NAME value`. */
  field(name: string): string | undefined;
  stderr(): string;
  /** ` (stderr: ...)` when the peer wrote to stderr, for assertion names. */
  note(): string;
}

function startPeer(t: Test, args: string[]): Peer {
  const child: ChildProcess = spawn(PYTHON, [PEER_SCRIPT, '--timeout', String(TIMEOUT_MS / 1000), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const listening = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const match = /^LISTENING (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
    exited.then(
      (code) => reject(new Error(`dissononce peer exited (${code}) before listening: ${stderr.trim()}`)),
      reject,
    );
  });
  listening.catch(() => undefined);
  return {
    listening,
    exited,
    field: (name) => lines.find((line) => line.startsWith(`${name} `))?.slice(name.length + 1),
    stderr: () => stderr.trim(),
    note: () => (stderr.trim() === '' ? '' : ` (stderr: ${stderr.trim()})`),
  };
}

function peerArgs(protocol: ProtocolCase, keys: Keys, psk: Buffer = keys.psk): string[] {
  const args = ['--protocol', protocol.name, '--psk', psk.toString('hex'), '--prologue', PROLOGUE.toString('hex')];
  if (protocol.hasStatics) args.push('--static-secret', keys.theirs.secretKey.toString('hex'));
  return args;
}

function ourHandshake(protocol: ProtocolCase, keys: Keys, initiator: boolean, expectedRemoteStaticKey?: Buffer): HandshakeOptions {
  return {
    protocolName: protocol.name,
    initiator,
    prologue: PROLOGUE,
    psks: [keys.psk],
    ...(protocol.hasStatics ? { staticKeyPair: keys.ours, expectedRemoteStaticKey: expectedRemoteStaticKey ?? keys.theirs.publicKey } : {}),
  };
}

/** Our side as initiator: connects to the listening peer and runs the handshake. */
async function connectToPeer(t: Test, peer: Peer, handshake: HandshakeOptions): Promise<SecureConnection> {
  const socket = await openSocket(HOST, await peer.listening, TIMEOUT_MS);
  t.teardown(() => socket.destroy());
  return rawSecureSocket(socket, { handshake, limits: { handshakeTimeoutMs: TIMEOUT_MS } });
}

/** A one-connection server for our side as responder. */
async function listen(t: Test): Promise<{ port: number; accept: (peer: Peer) => Promise<Socket> }> {
  const server = net.createServer({ allowHalfOpen: true });
  const sockets: Socket[] = [];
  server.on('connection', (socket) => sockets.push(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const accepted = once(server, 'connection').then(([socket]) => socket as Socket);
  return {
    port: (server.address() as AddressInfo).port,
    // Fails fast when the peer dies before it connects.
    accept: (peer) =>
      Promise.race([accepted, peer.exited.then((code) => Promise.reject(new Error(`dissononce peer exited (${code}) before connecting: ${peer.stderr()}`)))]),
  };
}

/** What the next receive() gives: a message, the end of the stream, or the error code it rejects with. */
async function nextOutcome(connection: SecureConnection): Promise<string> {
  try {
    const message = await connection.receive();
    return message === null ? 'end of stream' : `a message of ${message.byteLength} bytes`;
  } catch (error) {
    return isNoiseCfgError(error) ? error.code : String(error);
  }
}

function checkStatics(t: Test, peer: Peer, connection: SecureConnection, keys: Keys): void {
  t.equal(peer.field('LOCAL_STATIC'), keys.theirs.publicKey.toString('hex'), 'dissononce derives the same public key from its secret');
  t.equal(connection.remoteStaticKey?.toString('hex'), keys.theirs.publicKey.toString('hex'), 'we received dissononce\'s static key');
  t.equal(peer.field('REMOTE_STATIC'), keys.ours.publicKey.toString('hex'), 'dissononce received our static key');
}

function registerTests(): void {
  for (const protocol of PROTOCOLS) {
    t.test(`${protocol.name}: noise-cfg initiator, dissononce responder`, async (t) => {
      const keys = freshKeys();
      const peerPin = protocol.hasStatics ? ['--expect-remote-static', keys.ours.publicKey.toString('hex')] : [];
      const peer = startPeer(t, ['--role', 'responder', '--listen', `${HOST}:0`, ...peerArgs(protocol, keys), ...peerPin]);
      const connection = await connectToPeer(t, peer, ourHandshake(protocol, keys, true));

      // All sent before any echo is read, so several frames share TCP segments both ways.
      const messages = Array.from({ length: MESSAGE_COUNT }, (_, index) => ourMessage(index));
      for (const message of messages) await connection.send(message);
      for (const [index, message] of messages.entries()) {
        const echo = await connection.receive();
        t.ok(echo !== null && echo.equals(message), `echo ${index + 1} (${message.byteLength} bytes) matches`);
      }
      await connection.close();
      t.equal(await connection.receive(), null, 'dissononce ends the stream after our FIN');

      t.equal(await peer.exited, 0, `dissononce exits 0${peer.note()}`);
      t.equal(peer.field('ECHOED'), String(MESSAGE_COUNT), 'dissononce echoed every message');
      t.equal(peer.field('HANDSHAKE_HASH'), connection.handshakeHash.toString('hex'), 'same handshake hash');
      if (protocol.hasStatics) checkStatics(t, peer, connection, keys);
      else t.equal(connection.remoteStaticKey, null, 'no static key in NNpsk0');
    });

    t.test(`${protocol.name}: dissononce initiator, noise-cfg responder`, async (t) => {
      const keys = freshKeys();
      const server = await listen(t);
      const peerPin = protocol.hasStatics ? ['--expect-remote-static', keys.ours.publicKey.toString('hex')] : [];
      const peer = startPeer(t, ['--role', 'initiator', '--connect', `${HOST}:${server.port}`, '--send', String(MESSAGE_COUNT), ...peerArgs(protocol, keys), ...peerPin]);
      const socket = await server.accept(peer);
      const connection = await rawSecureSocket(socket, { handshake: ourHandshake(protocol, keys, false), limits: { handshakeTimeoutMs: TIMEOUT_MS } });

      let index = 0;
      for await (const message of connection) {
        t.ok(message.equals(peerMessage(index)), `message ${index + 1} (${message.byteLength} bytes) is the one dissononce derived`);
        await connection.send(message);
        index += 1;
      }
      t.equal(index, MESSAGE_COUNT, 'every message arrived before the FIN');
      await connection.close();

      t.equal(await peer.exited, 0, `dissononce exits 0: every echo matched${peer.note()}`);
      t.equal(peer.field('SENT_OK'), String(MESSAGE_COUNT), 'dissononce checked every echo');
      t.equal(peer.field('HANDSHAKE_HASH'), connection.handshakeHash.toString('hex'), 'same handshake hash');
      if (protocol.hasStatics) checkStatics(t, peer, connection, keys);
      else t.equal(connection.remoteStaticKey, null, 'no static key in NNpsk0');
    });

    t.test(`${protocol.name}: a wrong PSK fails, noise-cfg initiator`, async (t) => {
      const keys = freshKeys();
      const peer = startPeer(t, ['--role', 'responder', '--listen', `${HOST}:0`, ...peerArgs(protocol, keys, randomBytes(32))]);
      if (protocol.name === NNPSK0_PROTOCOL_NAME) {
        // Message 1 is sealed under the PSK: dissononce refuses it and closes; we see the close as the refusal.
        await t.rejects(connectToPeer(t, peer, ourHandshake(protocol, keys, true)), { code: 'AUTHENTICATION_FAILED' }, 'our handshake fails');
      } else {
        // The psk token is in message 3, which we send last: XXpsk3 gives its initiator no key confirmation, so our
        // handshake completes and the refusal shows only as a stream that ends with no message.
        const connection = await connectToPeer(t, peer, ourHandshake(protocol, keys, true));
        await peer.exited;
        const outcome = await nextOutcome(connection);
        t.ok(['end of stream', 'CONNECTION_TRUNCATED'].includes(outcome), `no message arrives, the stream just ends (${outcome})`);
      }
      t.equal(await peer.exited, 1, 'dissononce exits 1');
      t.match(peer.stderr(), /did not decrypt/, 'dissononce says why');
      t.equal(peer.field('HANDSHAKE_HASH'), undefined, 'dissononce never finished');
    });

    t.test(`${protocol.name}: a wrong PSK fails, dissononce initiator`, async (t) => {
      const keys = freshKeys();
      const server = await listen(t);
      const peer = startPeer(t, ['--role', 'initiator', '--connect', `${HOST}:${server.port}`, '--send', '1', ...peerArgs(protocol, keys, randomBytes(32))]);
      const socket = await server.accept(peer);
      await t.rejects(
        rawSecureSocket(socket, { handshake: ourHandshake(protocol, keys, false), limits: { handshakeTimeoutMs: TIMEOUT_MS } }),
        { code: 'AUTHENTICATION_FAILED' },
        'our handshake fails',
      );
      t.equal(await peer.exited, 1, 'dissononce exits 1: we closed without a word');
      t.equal(peer.field('SENT_OK'), undefined, 'no echo reached dissononce');
    });
  }

  t.test(`${XXPSK3_PROTOCOL_NAME}: our pin refuses dissononce's static key`, async (t) => {
    const keys = freshKeys();
    const peer = startPeer(t, ['--role', 'responder', '--listen', `${HOST}:0`, ...peerArgs(PROTOCOLS[1]!, keys)]);
    const otherKey = generateKeyPair().publicKey;
    await t.rejects(connectToPeer(t, peer, ourHandshake(PROTOCOLS[1]!, keys, true, otherKey)), { code: 'REMOTE_STATIC_MISMATCH' }, 'message 2 carries another key');
    t.equal(await peer.exited, 1, 'dissononce exits 1: message 3 never came');
    t.match(peer.stderr(), /closed the connection during the handshake|socket error/, 'dissononce saw the close');
  });

  t.test(`${XXPSK3_PROTOCOL_NAME}: dissononce's pin refuses our static key`, async (t) => {
    const keys = freshKeys();
    const server = await listen(t);
    const otherKey = generateKeyPair().publicKey.toString('hex');
    const peer = startPeer(t, [
      '--role', 'initiator', '--connect', `${HOST}:${server.port}`, '--send', '1', ...peerArgs(PROTOCOLS[1]!, keys), '--expect-remote-static', otherKey,
    ]);
    const socket = await server.accept(peer);
    await t.rejects(
      rawSecureSocket(socket, { handshake: ourHandshake(PROTOCOLS[1]!, keys, false), limits: { handshakeTimeoutMs: TIMEOUT_MS } }),
      { code: 'AUTHENTICATION_FAILED' },
      'dissononce closes instead of sending message 3',
    );
    t.equal(await peer.exited, 1, 'dissononce exits 1');
    t.match(peer.stderr(), /is not the expected/, 'dissononce says why');
  });
}

const probe = spawnSync(PYTHON, ['-c', 'import dissononce, cryptography'], { encoding: 'utf8' });
// The last stderr line of a failed import is the ModuleNotFoundError itself.
const probeFailure = probe.error ? probe.error.message : probe.status !== 0 ? (probe.stderr.trim().split('\n').pop() || `exit ${probe.status}`) : null;
if (probeFailure !== null) {
  t.fail(
    `${PYTHON} cannot import dissononce (${probeFailure}). These interop tests need Debian's python3-dissononce: ` +
      '.ci/run must run `apt-get install -y python3-dissononce` before `npm test`.',
  );
} else {
  registerTests();
}

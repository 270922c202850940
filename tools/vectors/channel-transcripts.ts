/**
 * Channel transcripts for vectors/noise-cfg-channel.json (SPEC.md §2.10). The file is generated from the channel's
 * handshake state machines run against each other in memory, with fixed keys, and the records each side's
 * transport key seals after them; recordChannelTranscriptOverTcp has the real client and server talk through a
 * recording proxy on 127.0.0.1 instead, and must give the same bytes. checkChannelTranscript re-derives every
 * frame from SPEC.md §2 with the Noise core alone.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import { keyPairFromSecretKey, type KeyPair } from '../../lib/noise/dh-functions.js';
import { NNPSK0_PROTOCOL_NAME, XXPSK3_PROTOCOL_NAME } from '../../lib/noise/protocols.js';
import { createHandshakeStateWithFixedEphemeralForTesting } from '../../lib/noise/testing.js';
import { FrameDecoder, encodeFrame } from '../../lib/transport/framing.js';
import { computeMac1, deriveMac1Key } from '../../lib/transport/mac1.js';
import { encodePreamble, type ChannelMode } from '../../lib/transport/preamble.js';
import { encodeRecord } from '../../lib/transport/records.js';
import { ReplayCache } from '../../lib/transport/replay-cache.js';
import type { TransportState } from '../../lib/noise/transport-state.js';
import { ClientHandshake, type ClientHandshakeStep } from '../../lib/transport/client-handshake.js';
import { acceptSecureSocket, connectSecure } from '../../lib/transport/secure-socket.js';
import { ServerHandshake, type ServerHandshakeStep } from '../../lib/transport/server-handshake.js';
import { EPHEMERAL_FOR_TESTING } from '../../lib/transport/testing.js';
import { labelledBytes } from './core-vectors.js';

/** One transcript as published. Secret keys are included: these keys exist only for the vectors. */
export interface ChannelTranscript {
  mode: ChannelMode;
  protocol_name: string;
  task_id: string;
  psk: string;
  client_static?: string;
  server_static?: string;
  client_ephemeral: string;
  server_ephemeral: string;
  preamble: string;
  prologue: string;
  client_messages: string[];
  server_messages: string[];
  handshake_hash: string;
  client_to_server: { frame: string; meaning: string }[];
  server_to_client: { frame: string; meaning: string }[];
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const PROTOCOLS: Record<ChannelMode, string> = { xxpsk3: XXPSK3_PROTOCOL_NAME, nnpsk0: NNPSK0_PROTOCOL_NAME };
const CLIENT_MESSAGES = ['hello from the client', ''];
const SERVER_MESSAGES = ['hello from the server'];

function fixedKey(label: string): KeyPair {
  return keyPairFromSecretKey(labelledBytes(`channel/${label}`, 32));
}

function splitFrames(bytes: Buffer): Buffer[] {
  return new FrameDecoder().push(bytes).map((body) => encodeFrame(body));
}

/** The fixed keys and names of one mode's session. */
interface SessionSetup {
  mode: ChannelMode;
  taskId: string;
  psk: Buffer;
  clientStatic: KeyPair;
  serverStatic: KeyPair;
  clientEphemeral: KeyPair;
  serverEphemeral: KeyPair;
}

function sessionSetup(mode: ChannelMode): SessionSetup {
  return {
    mode,
    taskId: `vector-${mode}`,
    psk: labelledBytes(`channel/${mode}/psk`, 32),
    clientStatic: fixedKey(`${mode}/client_static`),
    serverStatic: fixedKey(`${mode}/server_static`),
    clientEphemeral: fixedKey(`${mode}/client_ephemeral`),
    serverEphemeral: fixedKey(`${mode}/server_ephemeral`),
  };
}

/** The transcript of a session, from every byte each side sent (the client's starting with the preamble). */
function transcriptOf(setup: SessionSetup, clientBytes: Buffer, serverBytes: Buffer, handshakeHash: Buffer): ChannelTranscript {
  const { mode, taskId, psk, clientStatic, serverStatic, clientEphemeral, serverEphemeral } = setup;
  const isXx = mode === 'xxpsk3';
  const preamble = encodePreamble(mode, taskId);
  const clientFrames = splitFrames(clientBytes.subarray(preamble.byteLength));
  const serverFrames = splitFrames(serverBytes);
  const clientMeanings = [isXx ? 'msg1 || mac1' : 'msg1', ...(isXx ? ['msg3'] : []),
    ...CLIENT_MESSAGES.map(() => 'transport: FINAL record'), 'transport: END record'];
  const serverMeanings = ['msg2', 'transport: READY record', ...SERVER_MESSAGES.map(() => 'transport: FINAL record'), 'transport: END record'];
  return {
    mode,
    protocol_name: PROTOCOLS[mode],
    task_id: taskId,
    psk: hex(psk),
    ...(isXx ? { client_static: hex(clientStatic.secretKey), server_static: hex(serverStatic.secretKey) } : {}),
    client_ephemeral: hex(clientEphemeral.secretKey),
    server_ephemeral: hex(serverEphemeral.secretKey),
    preamble: hex(clientBytes.subarray(0, preamble.byteLength)),
    prologue: hex(preamble),
    client_messages: CLIENT_MESSAGES.map((message) => hex(Buffer.from(message))),
    server_messages: SERVER_MESSAGES.map((message) => hex(Buffer.from(message))),
    handshake_hash: hex(handshakeHash),
    client_to_server: clientFrames.map((frame, index) => ({ frame: hex(frame), meaning: clientMeanings[index] ?? 'unexpected' })),
    server_to_client: serverFrames.map((frame, index) => ({ frame: hex(frame), meaning: serverMeanings[index] ?? 'unexpected' })),
  };
}

function sent(step: ClientHandshakeStep | ServerHandshakeStep): Buffer[] {
  if (step.status === 'failed') throw new Error(`vector handshake failed: ${step.error.message}`);
  return 'send' in step && step.send !== undefined ? [step.send] : [];
}

/** Application messages as one FINAL record each, then END, sealed under `transport`: what a connection sends. */
function sealedRecords(transport: TransportState, messages: readonly string[]): Buffer[] {
  return [...messages.map((message) => encodeRecord('FINAL', Buffer.from(message))), encodeRecord('END')]
    .map((record) => encodeFrame(transport.encrypt(record)));
}

/** Runs one session's handshake between the two state machines in memory, and returns its transcript. */
export function channelTranscriptFromStateMachines(mode: ChannelMode): ChannelTranscript {
  const setup = sessionSetup(mode);
  const { taskId, psk, clientStatic, serverStatic, clientEphemeral, serverEphemeral } = setup;
  const client = new ClientHandshake({
    mode, taskId, psk,
    ...(mode === 'xxpsk3' ? { staticKeyPair: clientStatic, serverPublicKey: serverStatic.publicKey } : {}),
    [EPHEMERAL_FOR_TESTING]: clientEphemeral,
  } as ConstructorParameters<typeof ClientHandshake>[0]);
  const server = new ServerHandshake({ staticKeyPair: serverStatic, replayCache: new ReplayCache({ now: () => 0 }), testing: { [EPHEMERAL_FOR_TESTING]: serverEphemeral } });
  const toServer = sent(client.start());
  const toClient: Buffer[] = [];
  let clientDone: ClientHandshakeStep | null = null;
  let serverDone: ServerHandshakeStep | null = null;
  for (let flight = 0; clientDone === null; flight++) {
    if (flight > 2) throw new Error('vector handshake did not finish');
    const answers: Buffer[] = [];
    for (const bytes of toServer.slice(flight === 0 ? 0 : -1)) {
      let step = server.receive(bytes);
      if (step.status === 'lookup') step = server.taskFound(step.taskId === taskId ? { psk, mode } : null);
      if (step.status === 'done') serverDone = step;
      answers.push(...sent(step));
    }
    toClient.push(...answers);
    const replies: Buffer[] = [];
    for (const bytes of answers) {
      const step = client.receive(bytes);
      if (step.status === 'done') clientDone = step;
      replies.push(...sent(step));
    }
    toServer.push(Buffer.concat(replies));
  }
  const clientResult = (clientDone as ClientHandshakeStep & { status: 'done' }).result;
  const serverResult = (serverDone as ServerHandshakeStep | null);
  if (serverResult?.status !== 'done') throw new Error('vector handshake: the server did not finish');
  toServer.push(...sealedRecords(clientResult.transport, CLIENT_MESSAGES));
  toClient.push(...sealedRecords(serverResult.result.transport, SERVER_MESSAGES));
  return transcriptOf(setup, Buffer.concat(toServer), Buffer.concat(toClient), clientResult.transport.handshakeHash);
}

/** Runs one session between the real client and server through a recording proxy, and returns its transcript. */
export async function recordChannelTranscriptOverTcp(mode: ChannelMode): Promise<ChannelTranscript> {
  const setup = sessionSetup(mode);
  const { taskId, psk, clientStatic, serverStatic, clientEphemeral, serverEphemeral } = setup;
  const isXx = mode === 'xxpsk3';
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    void acceptSecureSocket(socket, {
      staticKeyPair: serverStatic,
      resolveTask: (id) => (id === taskId ? { psk, mode } : null),
      replayCache: new ReplayCache({ now: () => 0 }),
      [EPHEMERAL_FOR_TESTING]: serverEphemeral,
    } as Parameters<typeof acceptSecureSocket>[1]).then(async (connection) => {
      const received: Buffer[] = [];
      for await (const message of connection) received.push(message);
      for (const message of SERVER_MESSAGES) await connection.send(Buffer.from(message));
      await connection.close();
    });
  });
  const proxy = net.createServer({ allowHalfOpen: true }, (clientSide) => {
    const serverSide: Socket = net.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    clientSide.on('data', (chunk: Buffer) => {
      toServer.push(chunk);
      serverSide.write(chunk);
    });
    serverSide.on('data', (chunk: Buffer) => {
      toClient.push(chunk);
      clientSide.write(chunk);
    });
    clientSide.on('end', () => serverSide.end());
    serverSide.on('end', () => clientSide.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    const connection = await connectSecure('127.0.0.1', (proxy.address() as AddressInfo).port, {
      mode, taskId, psk,
      ...(isXx ? { staticKeyPair: clientStatic, serverPublicKey: serverStatic.publicKey } : {}),
      [EPHEMERAL_FOR_TESTING]: clientEphemeral,
    } as Parameters<typeof connectSecure>[2]);
    for (const message of CLIENT_MESSAGES) await connection.send(Buffer.from(message));
    await connection.close();
    while ((await connection.receive()) !== null);
    await connection.waitClosed();
    return transcriptOf(setup, Buffer.concat(toServer), Buffer.concat(toClient), connection.handshakeHash);
  } finally {
    proxy.close();
    server.close();
  }
}

/** The contents of vectors/noise-cfg-channel.json, from the state machines. */
export function channelTranscriptsText(): string {
  return transcriptsText([channelTranscriptFromStateMachines('xxpsk3'), channelTranscriptFromStateMachines('nnpsk0')]);
}

/** The same contents as recorded on the wire between the real client and server. */
export async function recordedChannelTranscriptsText(): Promise<string> {
  return transcriptsText([await recordChannelTranscriptOverTcp('xxpsk3'), await recordChannelTranscriptOverTcp('nnpsk0')]);
}

function transcriptsText(transcripts: ChannelTranscript[]): string {
  return `${JSON.stringify({ transcripts }, null, 2)}\n`;
}

/**
 * Rebuilds every frame of a transcript from SPEC.md §2 with the Noise core, the framing and the record and mac1
 * encodings, and returns the first difference, or null when the transcript is exactly what the spec prescribes.
 */
export function checkChannelTranscript(transcript: ChannelTranscript): string | null {
  const isXx = transcript.mode === 'xxpsk3';
  const preamble = encodePreamble(transcript.mode, transcript.task_id);
  if (hex(preamble) !== transcript.preamble || transcript.prologue !== transcript.preamble) return 'preamble or prologue differs';
  const psk = Buffer.from(transcript.psk, 'hex');
  const key = (field?: string): KeyPair | undefined => (field ? keyPairFromSecretKey(Buffer.from(field, 'hex')) : undefined);
  const clientStatic = key(transcript.client_static);
  const serverStatic = key(transcript.server_static);
  const client = createHandshakeStateWithFixedEphemeralForTesting({
    protocolName: transcript.protocol_name, initiator: true, prologue: preamble, psks: [psk],
    ...(clientStatic ? { staticKeyPair: clientStatic } : {}),
  }, key(transcript.client_ephemeral)!);
  const server = createHandshakeStateWithFixedEphemeralForTesting({
    protocolName: transcript.protocol_name, initiator: false, prologue: preamble, psks: [psk],
    ...(serverStatic ? { staticKeyPair: serverStatic } : {}),
  }, key(transcript.server_ephemeral)!);

  const expectedClient: Buffer[] = [];
  const expectedServer: Buffer[] = [];
  const message1 = client.writeMessage();
  server.readMessage(message1);
  expectedClient.push(encodeFrame(isXx ? Buffer.concat([message1, computeMac1(deriveMac1Key(psk), preamble, message1)]) : message1));
  const message2 = server.writeMessage();
  client.readMessage(message2);
  expectedServer.push(encodeFrame(message2));
  if (isXx) {
    const message3 = client.writeMessage();
    server.readMessage(message3);
    expectedClient.push(encodeFrame(message3));
  }
  const clientTransport = client.finish();
  const serverTransport = server.finish();
  if (hex(clientTransport.handshakeHash) !== transcript.handshake_hash) return 'handshake hash differs';
  expectedServer.push(encodeFrame(serverTransport.encrypt(encodeRecord('READY'))));
  for (const message of transcript.client_messages) expectedClient.push(encodeFrame(clientTransport.encrypt(encodeRecord('FINAL', Buffer.from(message, 'hex')))));
  expectedClient.push(encodeFrame(clientTransport.encrypt(encodeRecord('END'))));
  for (const message of transcript.server_messages) expectedServer.push(encodeFrame(serverTransport.encrypt(encodeRecord('FINAL', Buffer.from(message, 'hex')))));
  expectedServer.push(encodeFrame(serverTransport.encrypt(encodeRecord('END'))));

  const compare = (direction: string, expected: Buffer[], actual: { frame: string }[]): string | null => {
    if (expected.length !== actual.length) return `${direction}: ${actual.length} frames, spec gives ${expected.length}`;
    for (const [index, frame] of expected.entries()) {
      if (hex(frame) !== actual[index]!.frame) return `${direction} frame ${index} differs\n  expected ${hex(frame)}\n  actual   ${actual[index]!.frame}`;
    }
    return null;
  };
  return compare('client_to_server', expectedClient, transcript.client_to_server) ?? compare('server_to_client', expectedServer, transcript.server_to_client);
}

/**
 * `noise-cfg demo`: a handshake and transport round trip of both product protocols in one process, printed step
 * by step. Shows the library working with no setup; it opens no socket and prints no secret.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import {
  HandshakeState,
  NNPSK0_PROTOCOL_NAME,
  PSK_BYTES,
  XXPSK3_PROTOCOL_NAME,
  generateKeyPair,
  isNoiseCfgError,
  type TransportState,
} from '../../lib/index.js';
import { randomBytes } from 'node:crypto';
import { printResult } from '../output.js';

interface DemoArguments {
  json: boolean;
}

interface DemoStep {
  protocol: string;
  step: string;
  bytes?: number;
  detail?: string;
}

export const command = 'demo';
export const describe = 'Run both product handshakes and a transport round trip in one process, step by step';

export function builder(yargs: Argv): Argv<DemoArguments> {
  return yargs.option('json', { type: 'boolean', default: false, describe: 'Print the steps as one JSON array' });
}

function shortHex(bytes: Uint8Array): string {
  return `${Buffer.from(bytes).toString('hex').slice(0, 16)}…`;
}

function runProtocol(protocolName: string, steps: DemoStep[]): void {
  const add = (step: string, bytes?: number, detail?: string): void => {
    steps.push({ protocol: protocolName, step, ...(bytes === undefined ? {} : { bytes }), ...(detail === undefined ? {} : { detail }) });
  };
  const psk = randomBytes(PSK_BYTES);
  const isXx = protocolName === XXPSK3_PROTOCOL_NAME;
  const serverKeys = isXx ? generateKeyPair() : undefined;
  const clientKeys = isXx ? generateKeyPair() : undefined;
  add(`fresh ${PSK_BYTES}-byte PSK shared by both sides (not shown)`);
  const client = new HandshakeState({
    protocolName, initiator: true, psks: [psk], prologue: Buffer.from('noise-cfg demo'),
    ...(clientKeys ? { staticKeyPair: clientKeys, expectedRemoteStaticKey: serverKeys!.publicKey } : {}),
  });
  const server = new HandshakeState({
    protocolName, initiator: false, psks: [psk], prologue: Buffer.from('noise-cfg demo'),
    ...(serverKeys ? { staticKeyPair: serverKeys } : {}),
  });
  if (serverKeys) add('client pins the server static key', undefined, shortHex(serverKeys.publicKey));
  let index = 1;
  while (!client.isFinished || !server.isFinished) {
    const [sender, receiver, arrow] = client.isMyTurn ? [client, server, '->'] : [server, client, '<-'];
    const message = sender.writeMessage();
    receiver.readMessage(message);
    add(`${arrow} handshake message ${index++}`, message.byteLength, 'the other side read it and its tag verified');
  }
  const clientTransport: TransportState = client.finish();
  const serverTransport: TransportState = server.finish();
  const hashesMatch = clientTransport.handshakeHash.equals(serverTransport.handshakeHash);
  add('handshake hash equal on both sides', undefined, `${hashesMatch} (${shortHex(clientTransport.handshakeHash)})`);
  if (serverTransport.remoteStaticKey) add('server learned the client identity', undefined, shortHex(serverTransport.remoteStaticKey));

  const request = Buffer.from('hello from the client');
  const sealed = clientTransport.encrypt(request);
  add('-> transport message', sealed.byteLength, `decrypts to "${serverTransport.decrypt(sealed).toString()}"`);
  const reply = serverTransport.encrypt(Buffer.from('hello from the server'));
  add('<- transport message', reply.byteLength, `decrypts to "${clientTransport.decrypt(reply).toString()}"`);
  clientTransport.rekeySend();
  serverTransport.rekeyReceive();
  const afterRekey = clientTransport.encrypt(Buffer.from('after rekey'));
  add('-> transport message after rekey', afterRekey.byteLength, `decrypts to "${serverTransport.decrypt(afterRekey).toString()}"`);
  const tampered = clientTransport.encrypt(Buffer.from('tampered in flight'));
  tampered[0]! ^= 1;
  try {
    serverTransport.decrypt(tampered);
    add('tampered message', tampered.byteLength, 'ACCEPTED (this is a bug)');
  } catch (error) {
    add('tampered message rejected', tampered.byteLength, isNoiseCfgError(error) ? error.code : String(error));
  }
  clientTransport.dispose();
  serverTransport.dispose();
}

export function handler(argv: ArgumentsCamelCase<DemoArguments>): void {
  const steps: DemoStep[] = [];
  runProtocol(XXPSK3_PROTOCOL_NAME, steps);
  runProtocol(NNPSK0_PROTOCOL_NAME, steps);
  const text = steps
    .map((step, index) => {
      const header = index === 0 || steps[index - 1]!.protocol !== step.protocol ? `${step.protocol}\n` : '';
      const bytes = step.bytes === undefined ? '' : ` (${step.bytes} bytes)`;
      return `${header}  ${step.step}${bytes}${step.detail ? `: ${step.detail}` : ''}`;
    })
    .join('\n');
  printResult(steps, argv.json, text);
}

/**
 * `noise-cfg channel listen|connect`: the secure channel alone, like `openssl s_server` / `s_client`. Stdin lines
 * become messages and received messages go to stdout, one per line. `--raw` speaks plain Noise over the 2-byte
 * framing (SPEC.md §2.7) for interop with other Noise implementations.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Argv } from 'yargs';
import {
  connectSecure,
  generateKeyPair,
  keyFromHex,
  NNPSK0_PROTOCOL_NAME,
  NoiseCfgError,
  rawSecureSocket,
  SecureServer,
  XXPSK3_PROTOCOL_NAME,
  type ChannelMode,
  type HandshakeOptions,
  type KeyPair,
  type SecureConnection,
} from '../../lib/index.js';
import { parseHostPort } from '../host-port.js';
import { loadOrCreateKeyFile, readPskFile } from '../key-files.js';
import { printStatus, UsageError } from '../output.js';

interface ChannelArguments {
  mode: ChannelMode;
  pskFile: string;
  keyFile?: string;
  pin?: string;
  taskId: string;
  raw: boolean;
  prologue?: string;
  echo: boolean;
  listen?: string;
  address?: string;
}

export const command = 'channel';
export const describe = 'Run the secure channel alone: stdin lines become messages, messages go to stdout';

export function builder(yargs: Argv): Argv<ChannelArguments> {
  return yargs
    .command('listen', 'Accept channel connections', (sub) => sub
      .option('listen', { type: 'string', requiresArg: true, demandOption: true, describe: 'Address to listen on, HOST:PORT' })
      .option('echo', { type: 'boolean', default: false, describe: 'Send every received message back' }),
    (argv) => listen(argv as unknown as ChannelArguments))
    .command('connect <address>', 'Connect to a channel listener at HOST:PORT', (sub) => sub
      .positional('address', { type: 'string', describe: 'HOST:PORT of the listener' })
      // Before anything is read or created: a key file made for a connect that cannot start would be litter.
      .check((argv) => {
        if (argv['mode'] === 'xxpsk3' && !argv['raw'] && argv['pin'] === undefined) throw new UsageError('connecting in xxpsk3 needs --pin (the listener\'s public key)');
        parseHostPort(String(argv['address']), 'address');
        return true;
      }),
    (argv) => connect(argv as unknown as ChannelArguments))
    .demandCommand(1, 'name an action: listen or connect')
    .option('mode', { choices: ['xxpsk3', 'nnpsk0'] as const, default: 'xxpsk3' as ChannelMode, describe: 'Noise protocol: xxpsk3 (Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b) or nnpsk0' })
    .option('psk-file', { type: 'string', requiresArg: true, demandOption: true, describe: 'File holding the 32-byte PSK as 64 hex characters (mode 0600)' })
    .option('key-file', { type: 'string', requiresArg: true, describe: 'Our static X25519 secret key, 64 hex characters; created 0600 with a new key if missing (xxpsk3)' })
    .option('pin', { type: 'string', requiresArg: true, describe: 'Expected remote static public key, 64 hex characters (required to connect in xxpsk3)' })
    .option('task-id', { type: 'string', requiresArg: true, default: 'channel', describe: 'Task id sent in the preamble (not with --raw)' })
    .option('raw', { type: 'boolean', default: false, describe: 'Plain Noise over 2-byte length framing: no preamble, END or rekey schedule' })
    .option('prologue', { type: 'string', requiresArg: true, describe: 'Prologue as hex (only with --raw; default empty)' })
    .check((argv) => {
      if (argv.prologue !== undefined && !argv.raw) throw new UsageError('--prologue goes with --raw');
      if (argv.prologue !== undefined && !/^([0-9a-fA-F]{2})*$/.test(argv.prologue)) throw new UsageError('--prologue must be hex');
      return true;
    }) as unknown as Argv<ChannelArguments>;
}

interface Setup {
  psk: Buffer;
  keyPair: KeyPair | undefined;
  pin: Buffer | undefined;
}

function loadSetup(argv: ChannelArguments): Setup {
  const psk = readPskFile(argv.pskFile);
  const pin = argv.pin === undefined ? undefined : keyFromHex(argv.pin, '--pin');
  let keyPair: KeyPair | undefined;
  if (argv.mode === 'xxpsk3') {
    if (argv.keyFile === undefined) throw new NoiseCfgError('KEY_MISSING', 'xxpsk3 needs --key-file (our static key; created if missing)');
    const loaded = loadOrCreateKeyFile(argv.keyFile);
    keyPair = loaded.keyPair;
    if (loaded.isNew) printStatus(`created key file ${argv.keyFile}`);
    printStatus(`our public key: ${keyPair.publicKey.toString('hex')}`);
  }
  return { psk, keyPair, pin };
}

function rawHandshake(argv: ChannelArguments, setup: Setup, initiator: boolean): HandshakeOptions {
  return {
    protocolName: argv.mode === 'xxpsk3' ? XXPSK3_PROTOCOL_NAME : NNPSK0_PROTOCOL_NAME,
    initiator,
    prologue: Buffer.from(argv.prologue ?? '', 'hex'),
    psks: [setup.psk],
    ...(setup.keyPair ? { staticKeyPair: setup.keyPair } : {}),
    ...(setup.pin ? { expectedRemoteStaticKey: setup.pin } : {}),
  };
}

// Prints every message as a line; resolves when the peer ends, rejects with the channel's error.
async function printMessages(connection: SecureConnection, echo: boolean): Promise<void> {
  for await (const message of connection) {
    process.stdout.write(`${message.toString('utf8')}\n`);
    if (echo) await connection.send(message);
  }
}

function describePeer(connection: SecureConnection): string {
  const identity = connection.remoteStaticKey ? ` key ${connection.remoteStaticKey.toString('hex')}` : '';
  return `${connection.remoteAddress}${identity}`;
}

async function listen(argv: ChannelArguments): Promise<void> {
  const address = parseHostPort(argv.listen!, '--listen');
  const setup = loadSetup(argv);
  const connections = new Set<SecureConnection>();
  const serve = (connection: SecureConnection): void => {
    if (setup.pin && (!connection.remoteStaticKey || !connection.remoteStaticKey.equals(setup.pin))) {
      printStatus(`refused ${connection.remoteAddress}: its static key is not the pinned one`);
      connection.destroy();
      return;
    }
    connections.add(connection);
    printStatus(`connected: ${describePeer(connection)}`);
    printMessages(connection, argv.echo)
      .then(() => connection.close())
      .catch((error: NoiseCfgError) => printStatus(`connection ${connection.remoteAddress} failed: ${error.message} (${error.code})`))
      .finally(() => {
        connections.delete(connection);
        printStatus(`closed: ${connection.remoteAddress}`);
      });
  };

  let stop: () => Promise<void>;
  if (argv.raw) {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      // Read now: once the socket has closed (as it has when a handshake fails) Node no longer knows the peer.
      const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      rawSecureSocket(socket, { handshake: rawHandshake(argv, setup, false) }).then(serve, (error: NoiseCfgError) => {
        printStatus(`handshake from ${peer} failed: ${error.message} (${error.code})`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new NoiseCfgError('CONNECTION_FAILED', `cannot listen on ${argv.listen}: ${error.code ?? error.message}`)));
      server.listen(address.port, address.host, () => resolve());
    });
    const bound = server.address() as net.AddressInfo;
    printStatus(`listening on ${bound.address}:${bound.port} (raw ${argv.mode})`);
    stop = () => new Promise((resolve) => {
      for (const connection of connections) connection.destroy();
      server.close(() => resolve());
    });
  } else {
    const server = new SecureServer({
      staticKeyPair: setup.keyPair ?? generateKeyPair(),
      resolveTask: (taskId) => (taskId === argv.taskId ? { psk: setup.psk, mode: argv.mode } : null),
      onConnection: serve,
      onEvent: (event) => {
        if (event.event !== 'authenticated') printStatus(`${event.event} ${event.remoteAddress}: ${event.message ?? ''} (${event.code})`);
      },
    });
    const bound = await server.listen(address.port, address.host);
    printStatus(`listening on ${bound.address}:${bound.port} (${argv.mode}, task id ${argv.taskId})`);
    stop = () => server.close(1000);
  }

  if (!argv.echo) {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      for (const connection of connections) connection.send(Buffer.from(line, 'utf8')).catch(() => undefined);
    });
  }
  await new Promise<void>((resolve) => {
    const onSignal = (): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      printStatus('stopping');
      void stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

async function connect(argv: ChannelArguments): Promise<void> {
  const address = parseHostPort(argv.address!, 'address');
  const setup = loadSetup(argv);
  let connection: SecureConnection;
  if (argv.raw) {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const candidate = net.connect({ host: address.host, port: address.port, allowHalfOpen: true }, () => resolve(candidate));
      candidate.once('error', (error: NodeJS.ErrnoException) => reject(new NoiseCfgError('CONNECTION_FAILED', `could not connect to ${argv.address}: ${error.code ?? error.message}`)));
    });
    connection = await rawSecureSocket(socket, { handshake: rawHandshake(argv, setup, true) });
  } else {
    connection = await connectSecure(address.host, address.port, {
      mode: argv.mode,
      taskId: argv.taskId,
      psk: setup.psk,
      ...(setup.keyPair ? { staticKeyPair: setup.keyPair } : {}),
      ...(setup.pin ? { serverPublicKey: setup.pin } : {}),
    });
  }
  printStatus(`connected: ${describePeer(connection)}, handshake hash ${connection.handshakeHash.toString('hex').slice(0, 16)}…`);
  const received = printMessages(connection, false);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) await connection.send(Buffer.from(line, 'utf8'));
  await connection.close();
  await received;
}

/** The subcommands do the work. */
export function handler(): void {}

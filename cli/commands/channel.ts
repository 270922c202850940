/**
 * `noise-cfg channel listen|connect`: the secure channel alone, like `openssl s_server` / `s_client`. Stdin lines
 * become messages and received messages go to stdout, one per line. `--raw` speaks plain Noise over the 2-byte
 * framing (SPEC.md §2.7) for interop with other Noise implementations.
 */
import { createInterface } from 'node:readline';
import type { Argv } from 'yargs';
import {
  connectRaw,
  connectSecure,
  generateKeyPair,
  keyFromHex,
  NoiseCfgError,
  PROTOCOL_BY_MODE,
  PSK_BYTES,
  RawServer,
  SecureServer,
  TASK_MODES,
  DEFAULT_TASK_MODE,
  type HandshakeOptions,
  type KeyPair,
  type SecureConnection,
} from '../../lib/index.js';
import type { ArgumentsOf } from '../arguments-of.js';
import { parseHostPort } from '../host-port.js';
import { loadOrCreateKeyFile, readPskFile } from '../key-files.js';
import { printStatus, UsageError } from '../output.js';

export const command = 'channel';
export const describe = 'Run the secure channel alone: stdin lines become messages, messages go to stdout';

// The options of both actions, declared on `channel` (so that `channel --help` lists them) before the actions, so
// that each action's builder and handler see their types.
function channelOptions(yargs: Argv) {
  return yargs
    .option('mode', { choices: TASK_MODES, default: DEFAULT_TASK_MODE, describe: 'Noise protocol: xxpsk3 (Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b) or nnpsk0' })
    .option('psk-file', { type: 'string', requiresArg: true, demandOption: true, describe: `File holding the ${PSK_BYTES}-byte PSK as ${2 * PSK_BYTES} hex characters (mode 0600)` })
    .option('key-file', { type: 'string', requiresArg: true, describe: 'Our static X25519 secret key, 64 hex characters; created 0600 with a new key if missing (xxpsk3)' })
    .option('pin', { type: 'string', requiresArg: true, describe: 'Expected remote static public key, 64 hex characters (required to connect in xxpsk3)' })
    .option('task-id', { type: 'string', requiresArg: true, default: 'channel', describe: 'Task id sent in the preamble (not with --raw)' })
    .option('raw', { type: 'boolean', default: false, describe: 'Plain Noise over 2-byte length framing: no preamble, END or rekey schedule' })
    .option('prologue', { type: 'string', requiresArg: true, describe: 'Prologue as hex (only with --raw; default empty)' });
}

type ChannelArguments = ArgumentsOf<typeof channelOptions>;
/** What channelOptions declares, as an action's builder receives it. */
type ChannelOptions = ReturnType<typeof channelOptions> extends Argv<infer Parsed> ? Parsed : never;

function listenOptions(yargs: Argv<ChannelOptions>) {
  return yargs
    .option('listen', { type: 'string', requiresArg: true, demandOption: true, describe: 'Address to listen on, HOST:PORT' })
    .option('echo', { type: 'boolean', default: false, describe: 'Send every received message back' });
}

function connectOptions(yargs: Argv<ChannelOptions>) {
  return yargs
    .positional('address', { type: 'string', demandOption: true, describe: 'HOST:PORT of the listener' })
    // Before anything is read or created: a key file made for a connect that cannot start would be litter.
    .check((argv) => {
      if (argv.mode === 'xxpsk3' && !argv.raw && argv.pin === undefined) throw new UsageError('connecting in xxpsk3 needs --pin (the listener\'s public key)');
      parseHostPort(String(argv.address), 'address');
      return true;
    });
}

export function builder(yargs: Argv) {
  return channelOptions(yargs)
    .command('listen', 'Accept channel connections', listenOptions, (argv) => listen(argv))
    .command('connect <address>', 'Connect to a channel listener at HOST:PORT', connectOptions, (argv) => connect(argv))
    .demandCommand(1, 'name an action: listen or connect')
    .check((argv) => {
      if (argv.prologue !== undefined && !argv.raw) throw new UsageError('--prologue goes with --raw');
      if (argv.prologue !== undefined && !/^([0-9a-fA-F]{2})*$/.test(argv.prologue)) throw new UsageError('--prologue must be hex');
      return true;
    });
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

function rawHandshake(argv: ChannelArguments, setup: Setup): Omit<HandshakeOptions, 'initiator'> {
  return {
    protocolName: PROTOCOL_BY_MODE[argv.mode],
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

async function listen(argv: ArgumentsOf<typeof listenOptions>): Promise<void> {
  const address = parseHostPort(argv.listen, '--listen');
  const setup = loadSetup(argv);
  const connections = new Set<SecureConnection>();
  const serve = (connection: SecureConnection): void => {
    // The raw handshake checks the pin itself; the channel's server serves any client key, so it is checked here.
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
    const server = new RawServer({
      handshake: rawHandshake(argv, setup),
      onConnection: serve,
      onHandshakeFailed: (peer, error) => printStatus(`handshake from ${peer} failed: ${error.message} (${error.code})`),
    });
    const bound = await server.listen(address.port, address.host);
    printStatus(`listening on ${bound.address}:${bound.port} (raw ${argv.mode})`);
    stop = () => server.close();
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

async function connect(argv: ArgumentsOf<typeof connectOptions>): Promise<void> {
  const address = parseHostPort(argv.address, 'address');
  const setup = loadSetup(argv);
  const connection = argv.raw
    ? await connectRaw(address.host, address.port, { handshake: rawHandshake(argv, setup) })
    : await connectSecure(address.host, address.port, {
      mode: argv.mode,
      taskId: argv.taskId,
      psk: setup.psk,
      ...(setup.keyPair ? { staticKeyPair: setup.keyPair } : {}),
      ...(setup.pin ? { serverPublicKey: setup.pin } : {}),
    });
  printStatus(`connected: ${describePeer(connection)}, handshake hash ${connection.handshakeHash.toString('hex').slice(0, 16)}…`);
  const received = printMessages(connection, false);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) await connection.send(Buffer.from(line, 'utf8'));
  await connection.close();
  await received;
}

/** The subcommands do the work. */
export function handler(): void {}

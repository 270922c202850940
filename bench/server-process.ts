/**
 * A bench server in its own process, so its CPU time and memory are its own: a noise-cfg channel, TLS-PSK, raw
 * TCP, or the whole task server. Talks to the parent over IPC: sends `{ port }` (and `token` for pulls), answers
 * `stats` with ServerStats, stops on `stop`.
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseStoreLocation, SecureServer, TaskAdmin, TaskServer, type SecureConnection } from '../lib/index.js';
import { BENCH_PSK, BENCH_TASK_ID, BENCH_TASK_SERVER_LIMITS, NODE_DATA_DIR_ENV, NODE_STORE_ENV, SERVER_KEYS, TLS_IDENTITY, TLS_OPTIONS, type ServerBehaviour, type ServerKind, type ServerStats } from './fixtures.js';

const [kind, behaviour, bulkBytesText, taskBytesText] = process.argv.slice(2) as [ServerKind, ServerBehaviour, string, string];
const bulkBytes = Number(bulkBytesText ?? 0);
const CHUNK = Buffer.alloc(1024 * 1024, 0x5a);
/** noise-cfg bulk sends messages of this size: 1 MiB by default, NOISE_CFG_BENCH_MESSAGE_BYTES to compare. */
const NOISE_MESSAGE_BYTES = Number(process.env['NOISE_CFG_BENCH_MESSAGE_BYTES'] ?? CHUNK.byteLength);
/** Idle connections still open. */
const held = new Set<unknown>();
let connections = 0;
let commits = (): number => 0;
let stop: () => Promise<void> = async () => undefined;

function send(message: unknown): void {
  process.send!(message);
}

async function writeBulk(socket: Socket): Promise<void> {
  let left = bulkBytes;
  while (left > 0) {
    const piece = left >= CHUNK.byteLength ? CHUNK : CHUNK.subarray(0, left);
    left -= piece.byteLength;
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
}

function serveSocket(socket: Socket): void {
  connections++;
  socket.on('error', () => undefined);
  if (behaviour === 'idle') {
    held.add(socket);
    socket.once('close', () => held.delete(socket));
  }
  else if (behaviour === 'bulk') void writeBulk(socket);
  else socket.end();
}

async function serveNoise(connection: SecureConnection): Promise<void> {
  connections++;
  if (behaviour === 'idle') {
    held.add(connection);
    connection.onClose(() => held.delete(connection));
    return;
  }
  if (behaviour === 'bulk') {
    let left = bulkBytes;
    while (left > 0) {
      const piece = CHUNK.subarray(0, Math.min(left, NOISE_MESSAGE_BYTES));
      left -= piece.byteLength;
      await connection.send(piece);
    }
  }
  await connection.close().catch(() => undefined);
}

async function main(): Promise<void> {
  let port: number;
  if (kind === 'noise-xxpsk3' || kind === 'noise-nnpsk0') {
    const mode = kind === 'noise-xxpsk3' ? 'xxpsk3' : 'nnpsk0';
    const server = new SecureServer({
      staticKeyPair: SERVER_KEYS,
      resolveTask: (taskId) => (taskId === BENCH_TASK_ID ? { psk: BENCH_PSK, mode } : null),
      onConnection: (connection) => void serveNoise(connection),
      // The bench opens its connections from one address, 100 at a time: no per-source or established cap applies.
      limits: { maxUnauthenticatedConnections: 100_000, maxUnauthenticatedPerSource: 100_000, maxEstablishedConnections: 100_000, idleTimeoutMs: 0 },
    });
    port = (await server.listen(0, '127.0.0.1')).port;
    stop = () => server.close();
  } else if (kind === 'tls13' || kind === 'tls12' || kind === 'raw') {
    const server = kind === 'raw'
      ? net.createServer(serveSocket)
      : tls.createServer({ ...TLS_OPTIONS[kind], pskCallback: (_socket, identity) => (identity === TLS_IDENTITY ? BENCH_PSK : null) }, serveSocket);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    stop = () => new Promise((resolve) => server.close(() => resolve()));
  } else if (kind === 'pull-node') {
    // The parent made the data directory (the fleet's keys) and the task; this node only serves.
    const store = parseStoreLocation(process.env[NODE_STORE_ENV]!);
    const server = new TaskServer({ dataDir: process.env[NODE_DATA_DIR_ENV]!, store, listen: { host: '127.0.0.1', port: 0 }, limits: BENCH_TASK_SERVER_LIMITS });
    port = (await server.start()).port;
    commits = () => server.store.commitCount;
    stop = () => server.stop(0);
  } else {
    const dataDir = mkdtempSync(join(tmpdir(), 'noise-cfg-bench-'));
    const server = new TaskServer({ dataDir, listen: { host: '127.0.0.1', port: 0 }, limits: BENCH_TASK_SERVER_LIMITS });
    port = (await server.start()).port;
    const admin = await TaskAdmin.open(dataDir);
    const { token } = await admin.createTask({ files: [{ path: 'bench/payload.bin', content: Buffer.alloc(Number(taskBytesText), 0x42) }], ttlSeconds: 3600 });
    await admin.close();
    commits = () => server.store.commitCount;
    stop = async () => {
      await server.stop(0);
      rmSync(dataDir, { recursive: true, force: true });
    };
    send({ port, token });
    return;
  }
  send({ port });
}

process.on('message', (message: string) => {
  if (message === 'stats' || message === 'gc-stats') {
    if (message === 'gc-stats') (globalThis as { gc?: () => void }).gc?.();
    const cpu = process.cpuUsage();
    const stats: ServerStats = { cpuMicros: cpu.user + cpu.system, rss: process.memoryUsage().rss, connections, open: held.size, commits: commits() };
    send(stats);
  } else if (message === 'drop-idle') {
    // The clients have gone; a server keeps half-open sockets until its application closes them.
    for (const connection of held) (connection as { destroy(): void }).destroy();
    send({ dropped: true });
  } else if (message === 'stop') {
    void stop().finally(() => process.exit(0));
  }
});

void main().catch((error: Error) => {
  process.stderr.write(`bench server failed: ${error.message}\n`);
  process.exit(1);
});

// A slowloris stranger for test/reliability/overload.test.ts, run as a child process so that its sockets and CPU are
// not the test's: it holds `count` idle TCP connections to 127.0.0.1:port from the given source addresses (any of
// 127/8 on Linux), sends nothing, and opens a new one whenever one is closed. A connection closed within
// `quickCloseMs` of its connect (refused or evicted at once) is replaced after a pause of `pauseMs` to `2 * pauseMs`,
// so that the flood keeps every slot filled without spinning both cores. Bounded: it stops on "stop" or after
// `maxMs`. Reports its counters on "stats".
import net from 'node:net';

const [port, count, sources, pauseMs, maxMs] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4].split(','), Number(process.argv[5]), Number(process.argv[6])];
const quickCloseMs = 100;
const busyFrame = Buffer.from([0x00, 0x06, 0x4e, 0x43, 0x46, 0x47, 0x01, 0x04]);
const stats = { connects: 0, connected: 0, open: 0, peakOpen: 0, closedQuickly: 0, busyFrames: 0, errors: 0 };
const sockets = new Set();
let isStopping = false;

function open(slot) {
  if (isStopping) return;
  stats.connects++;
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: sources[slot % sources.length] });
  sockets.add(socket);
  let connectedAt = 0;
  let received = Buffer.alloc(0);
  socket.on('connect', () => {
    connectedAt = performance.now();
    stats.connected++;
    stats.open++;
    stats.peakOpen = Math.max(stats.peakOpen, stats.open);
  });
  socket.on('data', (chunk) => {
    received = Buffer.concat([received, chunk]).subarray(0, 64);
  });
  socket.on('error', () => {
    stats.errors++;
  });
  socket.on('close', () => {
    sockets.delete(socket);
    if (connectedAt > 0) stats.open--;
    if (received.equals(busyFrame)) stats.busyFrames++;
    const isQuick = connectedAt === 0 || performance.now() - connectedAt < quickCloseMs;
    if (isQuick) stats.closedQuickly++;
    if (isStopping) return;
    if (isQuick) setTimeout(open, pauseMs + Math.floor(Math.random() * pauseMs), slot);
    else setImmediate(open, slot);
  });
}

function stop() {
  isStopping = true;
  for (const socket of sockets) socket.destroy();
  process.send?.({ type: 'stopped', stats });
  setImmediate(() => process.exit(0));
}

process.on('message', (message) => {
  if (message === 'stats') process.send?.({ type: 'stats', stats });
  else if (message === 'stop') stop();
});
process.on('disconnect', stop);
setTimeout(stop, maxMs).unref();

// Open the slots in batches that the server can accept, then report that the flood is up.
const BATCH = 128;
for (let slot = 0; slot < count; slot += BATCH) {
  for (let index = slot; index < Math.min(count, slot + BATCH); index++) open(index);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
// Ready once every slot has connected at least once (most are refused or evicted at once, and come back).
const started = performance.now();
while (stats.connected < count && performance.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 20));
process.send?.({ type: 'ready', stats });

// Progress of long transfers in `task watch` (issue 12 item 8, SPEC.md §4.4): the server saves how many bytes a
// transfer has been sent about once a second, watch (and SSE) sends them when they change, the terminal frame shows
// them per receiving client, and a task without maxClients never draws a bar that looks complete.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { pull } from '../../lib/task/client.js';
import type { TaskProgress, TaskStreamEvent } from '../../lib/task/task.js';
import { renderWatchFrame } from '../../cli/watch-view.js';
import { openTokenHolder } from '../reliability/token-holder-client.js';
import { openAdmin, startServer } from './support.js';

// Large enough that loopback's socket buffers cannot take it all while the client does not read.
const TOTAL_BYTES = 32 * 1024 * 1024;
const FILES = [{ path: 'data/blob.bin', content: Buffer.alloc(TOTAL_BYTES, 0x62) }];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function nextProgress(events: AsyncGenerator<TaskStreamEvent>, accept: (progress: TaskProgress) => boolean): Promise<TaskProgress> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no such progress within 10 s')), Math.max(0, deadline - Date.now()));
    });
    const step = await Promise.race([events.next(), timeout]).finally(() => clearTimeout(timer));
    if (step.done) throw new Error('the watch ended before the progress came');
    if (step.value.type === 'progress' && accept(step.value.progress)) return step.value.progress;
  }
}

t.test('a transfer that lasts is seen in watch with its bytes, and leaves it when it ends', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const created = await admin.createTask({ files: FILES, advertise: { host: '127.0.0.1', port: running.port } });
  const holder = await openTokenHolder(created.token, { keyPair: loadClientKeyPair(join(dir, 'identity')) });
  t.teardown(() => holder.socket.destroy());
  // A client that does not read for longer than the progress interval, then takes a few chunks and stops again.
  holder.socket.pause();
  await holder.hello({ name: 'web-1' });
  await sleep(1200);
  holder.socket.resume();
  t.equal((await holder.receive())?.type, 'OFFER');
  // More than the socket buffers held while paused (about 4 MiB on loopback), so the server sent some after the pause.
  let chunks = 0;
  while (chunks < 100 && (await holder.receive())?.type === 'CHUNK') chunks++;
  t.equal(chunks, 100, 'the client read 100 chunks');
  holder.socket.pause();

  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const events = admin.watch(created.id, { pollMs: 50, signal: abort.signal });
  const progress = await nextProgress(events, (seen) => seen.transfers.length === 1);
  t.equal(progress.taskId, created.id);
  t.equal(progress.totalBytes, TOTAL_BYTES);
  const [transfer] = progress.transfers;
  t.equal(transfer?.identity, holder.identity, 'the receiving client');
  t.equal(transfer?.name, 'web-1');
  t.ok(transfer!.bytesSent > 0 && transfer!.bytesSent < TOTAL_BYTES, `part of the content: ${transfer?.bytesSent} bytes`);
  t.match(transfer?.at, /^\d{4}-\d\d-\d\dT/);

  const frame = renderWatchFrame(await admin.showTask(created.id), [], progress);
  t.match(frame, new RegExp(`receiving web-1 ${holder.identity.slice(0, 16)}  \\d+\\.\\d MiB of 32\\.0 MiB \\(\\d+%\\)`), 'the frame shows the bytes');

  holder.socket.destroy();
  const after = await nextProgress(events, (seen) => seen.transfers.length === 0);
  t.same(after.transfers, [], 'an interrupted client is no longer receiving');
});

t.test('a short pull saves no progress; without maxClients the bar never looks complete', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const open = await admin.createTask({ files: [{ path: 'a.conf', content: Buffer.from('a\n') }], advertise: { host: '127.0.0.1', port: running.port } });
  await pull({ token: open.token, outDir: join(dir, 'out'), identityDir: join(dir, 'identity') });
  running.server.store.flush();
  const db = new Database(join(data, 'noise-cfg.db'), { readonly: true });
  t.teardown(() => db.close());
  t.equal((db.prepare('SELECT count(*) AS rows FROM transfers').get() as { rows: number }).rows, 0, 'no progress row');

  const openFrame = renderWatchFrame(await admin.showTask(open.id), []);
  t.match(openFrame, /1 applied of 1 seen \(no --max-clients: open until it expires or is cancelled\)/);
  t.notMatch(openFrame, /\[#+\]/, 'no full bar');

  const bounded = await admin.createTask({ files: [{ path: 'a.conf', content: Buffer.from('a\n') }], maxClients: 2, advertise: { host: '127.0.0.1', port: running.port } });
  await pull({ token: bounded.token, outDir: join(dir, 'out2'), identityDir: join(dir, 'identity') });
  t.match(renderWatchFrame(await admin.showTask(bounded.id), []), /\[#{15}\.{15}\] 1\/2 applied/, 'with maxClients: a bar of the slots');
});

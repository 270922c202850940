// The socket plumbing under the channel: the shared read buffer of client sockets (lib/transport/socket-chunks.ts)
// and the pool of send buffers (lib/transport/send-buffer-pool.ts).
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { copyLent, viewLent } from '../../lib/transport/lent-bytes.js';
import { POOLED_BUFFER_BYTES, takeSendBuffer } from '../../lib/transport/send-buffer-pool.js';
import { connectReadingShared, onChunks } from '../../lib/transport/socket-chunks.js';

t.test('bytes that arrive before anyone subscribes are kept and handed to the first subscriber, in order', async (t) => {
  const greeting = Buffer.from('sent by the server before the client listens');
  const server = net.createServer((socket) => {
    socket.end(greeting);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const socket = connectReadingShared('127.0.0.1', (server.address() as AddressInfo).port);
  t.teardown(() => socket.destroy());
  await once(socket, 'end');
  const received: Buffer[] = [];
  const stop = onChunks(socket, (chunk) => received.push(copyLent(chunk)));
  t.same(Buffer.concat(received), greeting, 'the early bytes, whole');
  stop();
});

t.test('sockets of the shared buffer hand out views of one reused buffer; other sockets keep data events', async (t) => {
  const server = net.createServer((socket) => {
    socket.write('one');
    setTimeout(() => socket.end('two'), 20);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as AddressInfo).port;

  const shared = connectReadingShared('127.0.0.1', port);
  t.teardown(() => shared.destroy());
  const views: Buffer[] = [];
  const texts: string[] = [];
  onChunks(shared, function (this: net.Socket, chunk) {
    t.equal(this, shared, 'the handler is called with the socket as this');
    // Kept past the call on purpose, to see what each view is a view of.
    views.push(viewLent(chunk));
    texts.push(viewLent(chunk).toString());
  });
  await once(shared, 'end');
  t.same(texts.join(''), 'onetwo', 'every byte arrives');
  t.ok(views.length >= 2 && views.every((view) => view.buffer === views[0]!.buffer), 'every chunk views the same buffer');

  const plain = net.connect({ host: '127.0.0.1', port });
  t.teardown(() => plain.destroy());
  const chunks: Buffer[] = [];
  onChunks(plain, (chunk) => chunks.push(copyLent(chunk)));
  await once(plain, 'end');
  t.equal(Buffer.concat(chunks).toString(), 'onetwo', 'a plain socket delivers through its data events');
});

t.test('send buffers: exact sizes, pooled ones reused only after release, small and odd sizes not pooled', async (t) => {
  const small = takeSendBuffer(100);
  t.equal(small.buffer.byteLength, 100);
  t.equal(small.release, null, 'a small buffer is not pooled');
  const between = takeSendBuffer(100 * 1024);
  t.equal(between.release, null, 'between the two pooled sizes: allocated as usual');
  const tooBig = takeSendBuffer(POOLED_BUFFER_BYTES + 1);
  t.equal(tooBig.release, null, 'over the largest pooled size: allocated as usual');

  // One full record on the wire (2 + 1 + 65,518 + 16 bytes: a CHUNK), and a batch of 16 of them.
  for (const bytes of [65_537, POOLED_BUFFER_BYTES]) {
    const first = takeSendBuffer(bytes);
    t.equal(first.buffer.byteLength, bytes, `${bytes} bytes asked, ${bytes} given`);
    const second = takeSendBuffer(bytes);
    t.not(second.buffer.buffer, first.buffer.buffer, 'a buffer not yet released is not handed out again');
    first.release!();
    const third = takeSendBuffer(bytes - 10);
    t.equal(third.buffer.buffer, first.buffer.buffer, 'a released buffer is taken again');
    t.equal(third.buffer.byteLength, bytes - 10);
    second.release!();
    third.release!();
  }
});

t.test('a send buffer released twice is pooled once: two takers never share it', async (t) => {
  const taken = takeSendBuffer(POOLED_BUFFER_BYTES);
  taken.release!();
  taken.release!();
  const first = takeSendBuffer(POOLED_BUFFER_BYTES);
  const second = takeSendBuffer(POOLED_BUFFER_BYTES);
  t.equal(first.buffer.buffer, taken.buffer.buffer, 'the released buffer is taken again');
  t.not(second.buffer.buffer, first.buffer.buffer, 'and only once');
  first.release!();
  second.release!();
});

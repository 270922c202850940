// Issue 12 item 9, the rest (SPEC.md §4.7, §6): a server that goes away in the middle of the content is
// TRANSFER_INTERRUPTED, exit 11, with "retry" advice; nothing is applied and --out keeps its version.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { clientSetup, textFiles } from './client-support.js';
import { runCli } from './support.js';

const BIG = [{ path: 'big.bin', content: randomBytes(8 * 1024 * 1024) }];

/**
 * A TCP proxy to 127.0.0.1:`targetPort` that forwards `cutAfterBytes` bytes from the server and then destroys
 * both sides, as a server that stops in the middle of the content looks to the client.
 */
async function startCuttingProxy(t: Test, targetPort: number, cutAfterBytes: number): Promise<number> {
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let forwarded = 0;
    client.on('data', (data) => upstream.write(data));
    upstream.on('data', (data) => {
      const room = cutAfterBytes - forwarded;
      forwarded += data.byteLength;
      if (room > 0) client.write(data.subarray(0, room));
      if (forwarded >= cutAfterBytes) {
        client.destroy();
        upstream.destroy();
      }
    });
    for (const socket of [client, upstream]) socket.on('error', () => undefined).on('close', () => {
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    proxy.close(() => resolve());
  }));
  return (proxy.address() as net.AddressInfo).port;
}

t.test('a server stopping mid-transfer is TRANSFER_INTERRUPTED with retry advice; the previous version stays, no staging is left', async (t) => {
  const s = await clientSetup(t);
  t.equal((await s.pullInto((await s.create(textFiles({ 'app.conf': 'old\n' }))).token)).status, 'applied');
  const link = readlinkSync(s.outDir);
  const { token } = await s.create(BIG);
  let isStopping = false;
  const pulling = s.pullInto(token, {
    onTransferProgress: (receivedBytes) => {
      if (receivedBytes > 0 && !isStopping) {
        isStopping = true;
        void s.running.server.stop(0);
      }
    },
  });
  await t.rejects(pulling, { code: 'TRANSFER_INTERRUPTED', message: /the server closed the connection mid-transfer \(after \d+ of 8388608 bytes.*nothing was applied.*; retry$/ });
  t.ok(isStopping, 'the server was stopped while content was arriving');
  t.equal(readlinkSync(s.outDir), link, '--out still links to the previous version');
  t.equal(readFileSync(join(s.outDir, 'app.conf'), 'utf8'), 'old\n');
  t.same(readdirSync(join(s.dir, '.out.noise-cfg')).filter((name) => name.startsWith('.staging-')), [], 'the staged part was removed');
});

t.test('the CLI exits 11 and says to retry when the connection is cut mid-transfer', async (t) => {
  const s = await clientSetup(t);
  const created = await s.admin.createTask({ files: BIG, mode: 'xxpsk3', advertise: { host: '127.0.0.1', port: await startCuttingProxy(t, s.running.port, 1024 * 1024) } });
  const result = await runCli(t, ['pull', '--out', s.outDir, '--identity-dir', s.identityDir, '--retry', '0'], { env: { NOISE_CFG_TOKEN: created.token } });
  t.equal(result.code, 11, `exit 11 (${result.stderr.trim()})`);
  t.match(result.stderr, /the server closed the connection mid-transfer .*; retry \(TRANSFER_INTERRUPTED\)/);
  t.notMatch(result.stderr, /unexpected error/);
});

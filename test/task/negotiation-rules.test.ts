// The negotiation rules of SPEC.md §4.4 and §4.6 over a real server: an ended task completes the handshake and is
// refused after HELLO, a task the server does not hold fails the handshake, a check is answered as a pull would
// be, a malformed HELLO gets REJECT bad-request and then END, and an xxpsk3 HELLO must not carry a clientId.
import { join } from 'node:path';
import t from 'tap';
import { pull } from '../../lib/task/client.js';
import { encodeMessage } from '../../lib/task/messages.js';
import { openTokenHolder } from '../reliability/token-holder-client.js';
import { clientSetup, textFiles } from './client-support.js';
import { openAdmin, startServer } from './support.js';

const FILES = textFiles({ 'app.conf': 'x=1\n' });

t.test('an ended task completes the handshake and is refused after HELLO; a task the server does not hold fails the handshake', async (t) => {
  const s = await clientSetup(t);
  const cancelled = await s.create(FILES);
  await s.admin.cancelTask(cancelled.id);
  await t.rejects(s.pullInto(cancelled.token), { code: 'REJECTED', message: /refused the pull: cancelled/ }, 'cancelled: REJECT cancelled');

  const completed = await s.create(FILES, { maxClients: 1 });
  t.equal((await s.pullInto(completed.token, { outDir: join(s.dir, 'first'), identityDir: join(s.dir, 'first-id') })).status, 'applied');
  t.equal((await s.admin.showTask(completed.id)).state, 'completed');
  await t.rejects(s.pullInto(completed.token, { outDir: join(s.dir, 'second') }), { code: 'REJECTED', message: /refused the pull: completed/ }, 'completed, a new identity: REJECT completed');

  const deleted = await s.create(FILES);
  await s.admin.deleteTask(deleted.id);
  await t.rejects(s.pullInto(deleted.token), { code: 'AUTHENTICATION_FAILED', message: /does not hold the task/ }, 'deleted: the handshake fails');
  const logs = await s.running.waitForPullLogs(3);
  t.same(logs.map((record) => record.outcome).sort(), ['applied', 'rejected:cancelled', 'rejected:completed'], 'the refusals came after the handshake, at HELLO');
});

t.test('a task expired by the server\'s clock, not the client\'s: REJECT expired after the handshake', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'data');
  const running = await startServer(t, dataDir, { now: () => Date.now() + 7_200_000 });
  const admin = await openAdmin(t, dataDir);
  const { token } = await admin.createTask({ files: FILES, ttlSeconds: 3600, advertise: { host: '127.0.0.1', port: running.port } });
  await t.rejects(pull({ token, outDir: join(dir, 'out'), identityDir: join(dir, 'id'), retryForMs: 0 }), { code: 'REJECTED', message: /refused the pull: expired/ });
});

t.test('a check is answered as a pull would be: a full or completed task refuses a new identity, a slot holder is checked', async (t) => {
  const s = await clientSetup(t);
  const task = await s.create(FILES, { maxClients: 1 });
  const holder = { outDir: join(s.dir, 'holder'), identityDir: join(s.dir, 'holder-id') };
  t.equal((await s.pullInto(task.token, { intent: 'check', ...holder })).status, 'checked', 'before anyone took a slot');
  t.equal((await s.pullInto(task.token, holder)).status, 'applied');
  t.equal((await s.admin.showTask(task.id)).state, 'completed');
  await t.rejects(s.pullInto(task.token, { intent: 'check' }), { code: 'REJECTED', message: /completed/ }, 'a new identity checking a completed task');
  t.equal((await s.pullInto(task.token, { intent: 'check', ...holder })).status, 'checked', 'the slot holder may still pull, so its check passes');

  const full = await s.create(FILES, { maxClients: 1, mode: 'nnpsk0' });
  const taker = { outDir: join(s.dir, 'taker'), identityDir: join(s.dir, 'taker-id'), exec: 'exit 3' };
  t.equal((await s.pullInto(full.token, taker)).status, 'failed', 'the only slot is taken by a client that failed: full, not completed');
  await t.rejects(s.pullInto(full.token, { intent: 'check' }), { code: 'REJECTED', message: /full/ }, 'a new identity checking a full task');
});

for (const mode of ['xxpsk3', 'nnpsk0'] as const) {
  t.test(`${mode}: a malformed HELLO gets REJECT bad-request naming the fault, then the server's END`, async (t) => {
    const s = await clientSetup(t);
    const { id, token } = await s.create(FILES, { mode });
    const bad: [string, Buffer, RegExp][] = [
      ['not JSON', Buffer.concat([Buffer.of(1), Buffer.from('{"protocol":')]), /HELLO body is not JSON/],
      ['a missing field', encodeMessage({ type: 'HELLO', body: { protocol: 1, software: 's', name: 'n', clientId: null, have: null } as never }), /field "intent"/],
      ['a RESULT in its place', encodeMessage({ type: 'RESULT', body: { status: 'applied', exitCode: null, message: '', digest: 'a'.repeat(64) } }), /got RESULT where HELLO was expected/],
      ['an unknown type', Buffer.of(99), /unknown message type 99/],
    ];
    for (const [what, bytes, message] of bad) {
      const holder = await openTokenHolder(token);
      await holder.connection.send(bytes);
      t.match(await holder.receive(), { type: 'REJECT', body: { reason: 'bad-request', message } }, `${what}: REJECT bad-request`);
      t.equal(await holder.receive(), null, `${what}: then END`);
      holder.connection.destroy();
    }
    const logs = await s.running.waitForPullLogs(bad.length);
    t.ok(logs.every((record) => record.outcome === 'rejected:bad-request' && record.code === 'PROTOCOL_ERROR'), 'each logged as rejected:bad-request, PROTOCOL_ERROR');
    t.same((await s.admin.showTask(id)).clients, [], 'nothing recorded');
  });
}

t.test('xxpsk3: a HELLO with a clientId is REJECT bad-request', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  const holder = await openTokenHolder(token);
  await holder.send({ type: 'HELLO', body: { protocol: 1, software: 's', name: 'n', clientId: 'my-id', have: null, intent: 'pull' } });
  t.match(await holder.receive(), { type: 'REJECT', body: { reason: 'bad-request', message: /null clientId/ } });
  t.equal(await holder.receive(), null, 'then END');
  holder.connection.destroy();
});

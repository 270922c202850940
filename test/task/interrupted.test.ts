// Interrupted pulls (issue 12 item 6, SPEC.md §4.4): a client whose session ends after the offer and before a
// RESULT becomes `interrupted`, in task show, the counts, the events (watch, SSE) and the API; a server starting on
// a store whose clients a previous process left `offered` marks them interrupted; a later successful pull by that
// identity moves it on to `applied`.
import t from 'tap';
import { join } from 'node:path';
import { createApiApp } from '../../lib/api/server.js';
import { loadClientKeyPair } from '../../lib/task/identity.js';
import { pull } from '../../lib/task/client.js';
import { TaskStore } from '../../lib/task/store.js';
import { TaskAdmin } from '../../lib/task/admin.js';
import { openTokenHolder } from '../reliability/token-holder-client.js';
import { openAdmin, startServer } from './support.js';

const FILES = [{ path: 'etc/app.conf', content: Buffer.alloc(300_000, 0x61) }];

t.test('a client that disconnects mid-transfer becomes interrupted, and a later pull by it applies', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const created = await admin.createTask({ files: FILES, advertise: { host: '127.0.0.1', port: running.port } });
  const identityDir = join(dir, 'identity');

  const holder = await openTokenHolder(created.token, { keyPair: loadClientKeyPair(identityDir) });
  await holder.hello({ name: 'web-1' });
  const offer = await holder.receive();
  t.equal(offer?.type, 'OFFER', 'the server offered the files');
  holder.socket.destroy();
  const logged = await running.waitForLog((record) => record.event === 'pull' && record.outcome === 'error');
  t.ok(logged.code, 'the session ended with an error');
  // The server queued the write before it logged the line; commit it now rather than wait for the batch.
  running.server.store.flush();
  const events = (await admin.events(created.id)).find((event) => event.state === 'interrupted');
  t.equal(events?.name, 'web-1', 'an interrupted event, with the client name (watch and SSE follow events)');
  t.match(events?.detail ?? '', /CONNECTION_|SESSION_/, 'the event says why');
  const shown = await admin.showTask(created.id);
  t.equal(shown.clients[0]?.state, 'interrupted', 'task show: interrupted, not receiving');
  t.equal(shown.counts.interrupted, 1);
  t.equal(shown.counts.offered, 0, 'nobody is left "receiving"');

  const result = await pull({ token: created.token, outDir: join(dir, 'out'), identityDir, name: 'web-1' });
  t.equal(result.status, 'applied', 'the same identity pulls again and applies');
  const after = await admin.showTask(created.id);
  t.equal(after.clients.length, 1, 'the same client record');
  t.equal(after.clients[0]?.state, 'applied', 'interrupted moved on to applied');
  t.equal(after.counts.interrupted, 0);
});

t.test('a server starting on a store with a client left offered marks it interrupted; the API shows it', async (t) => {
  const data = join(t.testdir(), 'data');
  const setup = await TaskAdmin.open(data, { create: true });
  const created = await setup.createTask({ files: FILES, advertise: { host: '127.0.0.1', port: 7447 } });
  setup.close();
  // What a server killed mid-pull leaves: a client offered the files, with no result.
  const store = TaskStore.open(join(data, 'noise-cfg.db'));
  const now = Date.now();
  await store.saveClient({
    taskId: created.id, identity: 'ab'.repeat(32), name: 'db-1', remoteAddress: '127.0.0.1:5000', state: 'offered',
    firstSeenAt: now, updatedAt: now, exitCode: null, message: null, appliedDigest: null, hasSlot: true,
  });
  store.close();

  const running = await startServer(t, data);
  const listening = await running.waitForLog((record) => record.event === 'listening');
  t.match(listening.message, /1 session\(s\) a previous run left open are now interrupted/, 'serve says so at start');
  const admin = running.server.admin();
  const shown = await admin.showTask(created.id);
  t.equal(shown.clients[0]?.state, 'interrupted');
  t.ok((await admin.events(created.id)).some((event) => event.state === 'interrupted' && event.detail === 'the server restarted while this client was receiving'), 'an event says why');

  const app = createApiApp({ admin, adminToken: running.server.dataDir.adminToken });
  t.teardown(() => app.close());
  const response = await app.inject({ method: 'GET', url: `/v1/tasks/${created.id}`, headers: { authorization: `Bearer ${running.server.dataDir.adminToken}` } });
  t.equal(response.statusCode, 200);
  const body = response.json() as { counts: Record<string, number>; clients: { state: string }[] };
  t.equal(body.clients[0]?.state, 'interrupted', 'GET /v1/tasks/{id} shows interrupted');
  t.equal(body.counts['interrupted'], 1);
  const document = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as { paths: Record<string, { get?: { responses: Record<string, { content: Record<string, { schema: { properties: { clients: { items: { properties: { state: { enum: string[] } } } } } } }> }> } }> };
  t.ok(document.paths['/v1/tasks/{id}']?.get?.responses['200']?.content['application/json']?.schema.properties.clients.items.properties.state.enum.includes('interrupted'), 'the OpenAPI document lists the state');

  // A second start finds nothing more to mark.
  await running.server.stop(0);
  const again = await startServer(t, data);
  const second = await again.waitForLog((record) => record.event === 'listening');
  t.notMatch(second.message, /interrupted/);
});

t.test('a version-2 database migrates forward with its clients, and interrupted is accepted', async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  const { default: Database } = await import('better-sqlite3');
  const store = TaskStore.open(path);
  store.close();
  // Back to version 2: the clients table without `interrupted` in its CHECK, and one client row.
  const db = new Database(path);
  db.exec(`DROP TABLE transfers; DROP TABLE clients; ALTER TABLE tasks DROP COLUMN slots_taken; CREATE TABLE clients (
     task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE, identity TEXT NOT NULL, name TEXT NOT NULL, remote_address TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('connected', 'offered', 'applied', 'failed', 'revoked')), first_seen_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL, exit_code INTEGER, message TEXT, applied_digest TEXT, has_slot INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (task_id, identity));
     INSERT INTO tasks (id, name, mode, created_at, expires_at, max_clients, state, ended_at, digest, total_bytes, file_count) VALUES ('0000000000000000', '', 'xxpsk3', 1, 2, NULL, 'active', NULL, 'd', 0, 0);
     INSERT INTO clients VALUES ('0000000000000000', 'id-1', 'n', 'r', 'offered', 1, 1, NULL, NULL, NULL, 1);
     PRAGMA user_version = 2;`);
  db.close();
  const migrated = TaskStore.open(path);
  t.teardown(() => migrated.close());
  t.equal(migrated.getClient('0000000000000000', 'id-1')?.state, 'offered', 'the row survived the rebuild');
  t.equal(migrated.interruptLostSessions(5, 'test', 'all'), 1);
  t.equal(migrated.getClient('0000000000000000', 'id-1')?.state, 'interrupted', 'the new CHECK accepts interrupted');
});

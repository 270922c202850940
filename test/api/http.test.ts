// The REST API (SPEC.md §8) through real HTTP: every route with its success answer, every error status with its
// JSON body, and a real pull with a token the API handed out.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isNoiseCfgError } from '../../lib/errors.js';
import { startApiServer } from '../../lib/api/server.js';
import type { TaskView } from '../../lib/task/task.js';
import { REPO_ROOT } from '../support/paths.js';
import { pullAs, startApi, taskBody } from './support.js';

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const root = t.testdir();
const api = await startApi(t, join(root, 'data'));
const admin = api.server.admin();

/** Every response body this file received, to check that the admin token never appears in one. */
const bodies: string[] = [];

interface Answer {
  status: number;
  contentType: string;
  text: string;
  json: any;
}

async function call(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; base?: string } = {}): Promise<Answer> {
  const hasBody = options.body !== undefined;
  const response = await fetch(`${options.base ?? api.base}${path}`, {
    method,
    headers: options.headers ?? api.headers(hasBody),
    ...(hasBody ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  bodies.push(text);
  const contentType = response.headers.get('content-type') ?? '';
  return { status: response.status, contentType, text, json: contentType.startsWith('application/json') ? JSON.parse(text) : null };
}

async function createTask(files: Record<string, string>, extra: Record<string, unknown> = {}): Promise<{ id: string; token: string; expiresAt: string; task: TaskView }> {
  const answer = await call('POST', '/v1/tasks', { body: taskBody(files, extra) });
  if (answer.status !== 201) throw new Error(`POST /v1/tasks answered ${answer.status}: ${answer.text}`);
  return answer.json;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TASK_KEYS = ['id', 'name', 'mode', 'state', 'createdAt', 'expiresAt', 'endedAt', 'maxClients', 'digest', 'files', 'totalBytes', 'counts', 'clients'];
const CLIENT_KEYS = ['identity', 'name', 'remoteAddress', 'state', 'firstSeenAt', 'updatedAt', 'result'];

t.test('POST /v1/tasks answers 201 with id, token, expiresAt and the task', async (t) => {
  const before = Date.now();
  const answer = await call('POST', '/v1/tasks', { body: taskBody({ 'app/a.conf': 'alpha\n' }, { ttlSeconds: 600, maxClients: 3, mode: 'nnpsk0', name: 'first' }) });
  t.equal(answer.status, 201);
  t.match(answer.contentType, /^application\/json/);
  t.same(Object.keys(answer.json).sort(), ['expiresAt', 'id', 'task', 'token']);
  t.match(answer.json.id, /^[0-9a-hjkmnp-tv-z]{16}$/);
  t.match(answer.json.token, /^ncfg1[1-9A-HJ-NP-Za-km-z]+$/);
  t.match(answer.json.expiresAt, ISO);
  const expiresMs = Date.parse(answer.json.expiresAt);
  t.ok(expiresMs >= Math.floor(before / 1000) * 1000 + 600_000 && expiresMs <= Date.now() + 600_000, 'expires ttlSeconds from now');
  const task = answer.json.task as TaskView;
  t.same(Object.keys(task).sort(), [...TASK_KEYS].sort());
  t.match(task, { id: answer.json.id, name: 'first', mode: 'nnpsk0', state: 'active', maxClients: 3, endedAt: null, totalBytes: 6, clients: [] });
  t.same(task.files.map((file) => [file.path, file.size, file.mode]), [['app/a.conf', 6, '0644']]);
  t.same(task.counts, { connected: 0, offered: 0, applied: 0, failed: 0, revoked: 0, interrupted: 0 });
});

t.test('GET /v1/tasks lists the tasks newest first, as the store has them', async (t) => {
  const older = await createTask({ 'one.txt': '1' });
  const newer = await createTask({ 'two.txt': '2' });
  const answer = await call('GET', '/v1/tasks');
  t.equal(answer.status, 200);
  t.ok(Array.isArray(answer.json));
  const ids = (answer.json as TaskView[]).map((task) => task.id);
  t.ok(ids.indexOf(newer.id) < ids.indexOf(older.id) && ids.indexOf(older.id) !== -1, 'the newer task comes first');
  t.same(answer.json, await admin.listTasks());
});

t.test('a real pull with the token from POST applies the files; show, revoke, events and cancel follow it', async (t) => {
  const created = await createTask({ 'etc/app.conf': 'port = 8080\n', 'motd': 'hello\n' }, { name: 'pulled' });
  const first = await pullAs(root, 'one', created.token);
  t.equal(first.status, 'applied');
  t.same(first.files.sort(), ['etc/app.conf', 'motd']);
  t.equal(readFileSync(join(root, 'out-one', 'etc', 'app.conf'), 'utf8'), 'port = 8080\n');
  t.equal(readFileSync(join(root, 'out-one', 'motd'), 'utf8'), 'hello\n');

  const shown = await call('GET', `/v1/tasks/${created.id}`);
  t.equal(shown.status, 200);
  t.same(shown.json, await admin.showTask(created.id), 'the same object as task show --json');
  t.same(Object.keys(shown.json).sort(), [...TASK_KEYS].sort());
  t.equal(shown.json.clients.length, 1);
  const client = shown.json.clients[0];
  t.same(Object.keys(client).sort(), [...CLIENT_KEYS].sort());
  t.match(client, { name: 'one', state: 'applied', identity: /^[0-9a-f]{64}$/, result: { exitCode: null, message: 'applied' } });
  t.match(client.firstSeenAt, ISO);

  const revoked = await call('DELETE', `/v1/tasks/${created.id}/clients/${client.identity}`, { headers: api.headers() });
  t.equal(revoked.status, 200);
  t.equal(revoked.json.id, created.id);
  t.equal(revoked.json.clients[0].state, 'revoked');
  t.equal(revoked.json.counts.revoked, 1);
  const again = await pullAs(root, 'one', created.token).then(() => null, (error: unknown) => error);
  t.ok(isNoiseCfgError(again) && again.code === 'REJECTED' && /revoked/.test(again.message), 'the revoked client is refused');
  const other = await pullAs(root, 'two', created.token);
  t.equal(other.status, 'applied', 'the others go on');

  const cancelled = await call('DELETE', `/v1/tasks/${created.id}`, { headers: api.headers() });
  t.equal(cancelled.status, 200);
  t.match(cancelled.json, { id: created.id, state: 'cancelled', endedAt: ISO });

  // On an ended task the stream holds the task and its end, then closes.
  const events = await call('GET', `/v1/tasks/${created.id}/events`);
  t.equal(events.status, 200);
  t.match(events.contentType, /^text\/event-stream/);
  t.match(events.text, /^event: task\ndata: \{.*\}\n\n/);
  t.match(events.text, /event: end\ndata: \{.*"state":"cancelled".*\}\n\n$/);
});

t.test('health and the OpenAPI document need no token', async (t) => {
  const health = await call('GET', '/v1/health', { headers: {} });
  t.equal(health.status, 200);
  t.same(Object.keys(health.json).sort(), ['status', 'uptimeSeconds', 'version']);
  t.match(health.json, { status: 'ok', uptimeSeconds: Number });
  t.equal(health.json.version, PACKAGE_VERSION, 'the version of package.json');
  t.ok(health.json.uptimeSeconds >= 0);
  const openapi = await call('GET', '/v1/openapi.json', { headers: {} });
  t.equal(openapi.status, 200);
  t.match(openapi.contentType, /^application\/json/);
  t.equal(openapi.json.openapi, '3.1.0');
  t.ok(openapi.json.paths['/v1/tasks'], 'the document describes the routes');
});

t.test('401 for a missing header, a wrong token, the Basic scheme, or a token with one character changed', async (t) => {
  const task = await createTask({ 'x.txt': 'x' });
  const changed = `${api.adminToken.slice(0, 20)}${api.adminToken[20] === 'A' ? 'B' : 'A'}${api.adminToken.slice(21)}`;
  t.equal(changed.length, api.adminToken.length);
  t.not(changed, api.adminToken);
  const badHeaders: Record<string, Record<string, string>> = {
    'no header': {},
    'a wrong token': { authorization: 'Bearer not-the-admin-token' },
    'the Basic scheme': { authorization: `Basic ${api.adminToken}` },
    'one character changed': { authorization: `Bearer ${changed}` },
    'the token with a prefix': { authorization: `Bearer x${api.adminToken}` },
  };
  const routes: [string, string, unknown?][] = [
    ['POST', '/v1/tasks', taskBody({ 'y.txt': 'y' })],
    ['GET', '/v1/tasks'],
    ['GET', `/v1/tasks/${task.id}`],
    ['DELETE', `/v1/tasks/${task.id}/clients/abcd`],
    ['GET', `/v1/tasks/${task.id}/events`],
    ['DELETE', `/v1/tasks/${task.id}`],
  ];
  for (const [what, headers] of Object.entries(badHeaders)) {
    for (const [method, path, body] of routes) {
      const answer = await call(method, path, { headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body } : {}) });
      t.equal(answer.status, 401, `${method} ${path} with ${what}`);
      t.equal(answer.json?.error?.code, 'UNAUTHORIZED', `${method} ${path} with ${what}: code`);
      t.notMatch(answer.text, changed, 'the presented token is not echoed');
    }
  }
  t.equal((await admin.showTask(task.id)).state, 'active', 'the unauthenticated DELETE cancelled nothing');
  t.equal((await admin.listTasks()).filter((view) => view.files.some((file) => file.path === 'y.txt')).length, 0, 'the unauthenticated POST created nothing');
});

t.test('400 INVALID_REQUEST names the field at fault', async (t) => {
  const good = { path: 'a.txt', content: Buffer.from('a').toString('base64') };
  const cases: [string, unknown, string][] = [
    ['files empty', { files: [] }, 'body.files'],
    ['content not base64', { files: [{ path: 'a.txt', content: 'not base64!' }] }, 'body.files[0].content'],
    ['content a number', { files: [{ path: 'a.txt', content: 42 }] }, 'body.files[0].content'],
    ['content of the second file', { files: [good, { path: 'b.txt', content: false }] }, 'body.files[1].content'],
    ['file mode out of range', { files: [{ ...good, mode: 512 }] }, 'body.files[0].mode'],
    ['bad mode', { files: [good], mode: 'xxpsk9' }, 'body.mode'],
    ['extra field', { files: [good], owner: 'root' }, 'body.owner'],
    ['extra field in a file', { files: [{ ...good, owner: 'root' }] }, 'body.files[0].owner'],
    ['ttlSeconds zero', { files: [good], ttlSeconds: 0 }, 'body.ttlSeconds'],
    ['ttlSeconds a string', { files: [good], ttlSeconds: '60' }, 'body.ttlSeconds'],
    ['ttlSeconds fractional', { files: [good], ttlSeconds: 1.5 }, 'body.ttlSeconds'],
    ['ttlSeconds over a year', { files: [good], ttlSeconds: 31536001 }, 'body.ttlSeconds'],
    ['maxClients zero', { files: [good], maxClients: 0 }, 'body.maxClients'],
  ];
  const before = (await admin.listTasks()).length;
  for (const [what, body, field] of cases) {
    const answer = await call('POST', '/v1/tasks', { body });
    t.equal(answer.status, 400, `${what}: status`);
    t.equal(answer.json?.error?.code, 'INVALID_REQUEST', `${what}: code`);
    t.equal(answer.json?.error?.field, field, `${what}: field`);
    t.type(answer.json?.error?.message, 'string', `${what}: message`);
  }
  // Base64 without its padding passes the pattern; the server still refuses it, naming the field.
  const unpadded = await call('POST', '/v1/tasks', { body: { files: [{ path: 'a.txt', content: 'QQ' }] } });
  t.equal(unpadded.status, 400);
  t.match(unpadded.json.error, { code: /^INVALID_(REQUEST|ARGUMENT)$/, field: 'body.files[0].content' });
  const notJson = await call('POST', '/v1/tasks', { body: '{"files": [' });
  t.equal(notJson.status, 400);
  t.equal(notJson.json.error.code, 'INVALID_REQUEST');
  t.equal((await admin.listTasks()).length, before, 'no task was created');

  // A string that is not a task id names no task: 404 TASK_NOT_FOUND, as `task show` on the data directory (exit 3).
  for (const path of ['/v1/tasks/abc', '/v1/tasks/0123456789ABCDEF', '/v1/tasks/0123456789abcdefg', '/v1/tasks/abc/events', '/v1/tasks/abc/token']) {
    const answer = await call('GET', path);
    t.equal(answer.status, 404, `GET ${path}`);
    t.match(answer.json?.error, { code: 'TASK_NOT_FOUND' }, `GET ${path}`);
  }
  for (const path of ['/v1/tasks/abc', '/v1/tasks/abc?purge=true', '/v1/tasks/abc/clients/00ff']) {
    const answer = await call('DELETE', path, { headers: api.headers() });
    t.equal(answer.status, 404, `DELETE ${path}`);
    t.match(answer.json?.error, { code: 'TASK_NOT_FOUND' }, `DELETE ${path}`);
  }
});

t.test('400 for a missing required property names that property in error.field', async (t) => {
  const cases: [string, unknown, string][] = [
    ['files missing', { ttlSeconds: 60 }, 'body.files'],
    ['path missing', { files: [{ content: 'QQ==' }] }, 'body.files[0].path'],
    ['content missing', { files: [{ path: 'a.txt' }] }, 'body.files[0].content'],
  ];
  for (const [what, body, field] of cases) {
    const answer = await call('POST', '/v1/tasks', { body });
    t.equal(answer.status, 400, `${what}: status`);
    t.equal(answer.json?.error?.code, 'INVALID_REQUEST', `${what}: code`);
    t.equal(answer.json?.error?.field, field, `${what}: field`);
  }
});

t.test('an identity in the path up to its schema limit of 128 characters is checked by the API, not cut by the router', async (t) => {
  const task = await createTask({ 'z.txt': 'z' });
  const unknown = await call('DELETE', `/v1/tasks/${task.id}/clients/${'a'.repeat(128)}`, { headers: api.headers() });
  t.equal(unknown.status, 404, '128 characters: a well-formed identity of no client');
  t.equal(unknown.json?.error?.code, 'CLIENT_NOT_FOUND');
  const tooLong = await call('DELETE', `/v1/tasks/${task.id}/clients/${'a'.repeat(129)}`, { headers: api.headers() });
  t.equal(tooLong.status, 400, '129 characters: over the schema limit');
  t.match(tooLong.json?.error, { code: 'INVALID_REQUEST', field: 'params.identity' });
});

t.test('400 PATH_UNSAFE for a path that climbs out of the output directory', async (t) => {
  const before = (await admin.listTasks()).length;
  for (const path of ['../x', 'a/../../x', '/etc/passwd']) {
    const answer = await call('POST', '/v1/tasks', { body: taskBody({ [path]: 'evil' }) });
    t.equal(answer.status, 400, path);
    t.equal(answer.json?.error?.code, 'PATH_UNSAFE', path);
  }
  t.equal((await admin.listTasks()).length, before, 'no task was created');
});

t.test('413 BODY_TOO_LARGE for a body over the limit', async (t) => {
  const small = await startApiServer({ admin, adminToken: api.adminToken, bodyLimitBytes: 2048 }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => small.app.close());
  const base = `http://127.0.0.1:${small.port}`;
  const fits = await call('POST', '/v1/tasks', { base, body: taskBody({ 'fits.txt': 'x'.repeat(1000) }) });
  t.equal(fits.status, 201, 'a body under the limit is taken');
  const before = (await admin.listTasks()).length;
  const over = await call('POST', '/v1/tasks', { base, body: taskBody({ 'big.txt': 'x'.repeat(3000) }) });
  t.equal(over.status, 413);
  t.equal(over.json?.error?.code, 'BODY_TOO_LARGE');
  t.equal((await admin.listTasks()).length, before, 'no task was created');
});

t.test('404 for an unknown task, an unknown client and an unknown route', async (t) => {
  const unknown = '0123456789abcdef';
  for (const [method, path] of [['GET', `/v1/tasks/${unknown}`], ['DELETE', `/v1/tasks/${unknown}`], ['GET', `/v1/tasks/${unknown}/events`], ['DELETE', `/v1/tasks/${unknown}/clients/00ff`]] as const) {
    const answer = await call(method, path, { headers: api.headers() });
    t.equal(answer.status, 404, `${method} ${path}`);
    t.equal(answer.json?.error?.code, 'TASK_NOT_FOUND', `${method} ${path}`);
  }
  const task = await createTask({ 'c.txt': 'c' });
  const noClient = await call('DELETE', `/v1/tasks/${task.id}/clients/${'ab'.repeat(32)}`, { headers: api.headers() });
  t.equal(noClient.status, 404);
  t.equal(noClient.json?.error?.code, 'CLIENT_NOT_FOUND');
  for (const [method, path] of [['GET', '/v1/nothing'], ['GET', '/v2/tasks'], ['PUT', `/v1/tasks/${task.id}`], ['GET', '/']] as const) {
    const answer = await call(method, path, { headers: api.headers() });
    t.equal(answer.status, 404, `${method} ${path}`);
    t.equal(answer.json?.error?.code, 'NOT_FOUND', `${method} ${path}`);
  }
});

t.test('409 TASK_ENDED for cancelling a task twice', async (t) => {
  const task = await createTask({ 'd.txt': 'd' });
  const first = await call('DELETE', `/v1/tasks/${task.id}`, { headers: api.headers() });
  t.equal(first.status, 200);
  t.equal(first.json.state, 'cancelled');
  const second = await call('DELETE', `/v1/tasks/${task.id}`, { headers: api.headers() });
  t.equal(second.status, 409);
  t.equal(second.json?.error?.code, 'TASK_ENDED');
  t.match(second.json?.error?.message, /cancelled/);
  t.equal((await admin.showTask(task.id)).state, 'cancelled');
});

t.test('the admin token appears in no response body, error or not', async (t) => {
  t.ok(bodies.length > 50, `checked ${bodies.length} bodies`);
  t.equal(api.adminToken.length, 43);
  const leaks = bodies.filter((body) => body.includes(api.adminToken));
  t.same(leaks, [], 'no body holds the admin token');
});

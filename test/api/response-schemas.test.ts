// Every response of the REST API has a closed schema (SPEC.md §8): fastify serializes through it, the OpenAPI
// document carries the same one, and the real answers of every route and status validate against it. A failure on
// the server's side (a store error in a route or in an event stream) is logged with its code, and the client gets
// the mapped status (or, mid-stream, an `error` event with the code).
import t, { type Test } from 'tap';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ApiClient } from '../../lib/api/client.js';
import { buildOpenApiDocument } from '../../lib/api/openapi.js';
import { ROUTES } from '../../lib/api/routes.js';
import { startApiServer, type ApiLogRecord } from '../../lib/api/server.js';
import { NoiseCfgError } from '../../lib/errors.js';
import type { Operator } from '../../lib/task/operator.js';
import type { TaskView } from '../../lib/task/task.js';
import { openEvents, pullAs, startApi, taskBody } from './support.js';

// fastify's own validator (a dependency of fastify), so the schemas are read as fastify reads them.
const requireFromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
const Ajv = requireFromFastify('ajv') as typeof import('ajv').default;
const addFormats = requireFromFastify('ajv-formats') as typeof import('ajv-formats').default;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);

const document = buildOpenApiDocument() as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }>; 'x-events'?: Record<string, object> }> }>> };

function routeOf(name: string) {
  return ROUTES.find((route) => route.name === name)!;
}

function check(t: Test, name: string, status: number, body: unknown): void {
  const response = routeOf(name).responses[status];
  t.ok(response?.schema, `${name} declares ${status}`);
  if (!response?.schema) return;
  const validate = ajv.compile(response.schema);
  t.ok(validate(body), `${name} ${status} validates: ${ajv.errorsText(validate.errors)}`);
}

// Closed: every object schema names its properties and refuses others (the OpenAPI document alone is open).
function openObjects(schema: unknown, path: string): string[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const node = schema as Record<string, unknown>;
  const here = node['type'] === 'object' && node['additionalProperties'] !== false ? [path] : [];
  return [...here, ...Object.entries(node).flatMap(([key, value]) => (Array.isArray(value) ? value.flatMap((item, index) => openObjects(item, `${path}.${key}[${index}]`)) : openObjects(value, `${path}.${key}`)))];
}

t.test('every response schema is closed, and the OpenAPI document carries each one', async (t) => {
  for (const route of ROUTES) {
    for (const [status, response] of Object.entries(route.responses)) {
      const carried = document.paths[route.path]![route.method.toLowerCase()]!.responses[status]!;
      t.same(carried.content?.[response.contentType ?? 'application/json']?.schema, response.schema, `${route.name} ${status}: the document's schema`);
      if (response.events) t.same(carried['x-events'], response.events, `${route.name} ${status}: the event schemas`);
      if (route.name !== 'openapi' || status !== '200') t.same(openObjects(response.schema, 'schema'), [], `${route.name} ${status}: closed`);
      for (const [event, schema] of Object.entries(response.events ?? {})) t.same(openObjects(schema, event), [], `${route.name} ${status} ${event}: closed`);
    }
    if (route.isAuthenticated) {
      for (const status of [401, 500, 503]) t.ok(route.responses[status], `${route.name} declares ${status}`);
    }
  }
});

t.test('the real answers of every route and status validate against their schemas', async (t) => {
  const root = t.testdir();
  const api = await startApi(t, join(root, 'data'));
  const admin = api.server.admin();
  const call = async (method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}) => {
    const response = await fetch(`${api.base}${path}`, {
      method,
      headers: options.headers ?? api.headers(options.body !== undefined),
      ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
    });
    return { status: response.status, body: await response.json() as unknown };
  };

  const created = await call('POST', '/v1/tasks', { body: taskBody({ 'a.conf': 'a = 1\n' }, { name: 'schemas', maxClients: 3 }) });
  t.equal(created.status, 201);
  check(t, 'createTask', 201, created.body);
  const id = (created.body as { id: string }).id;
  const task = created.body as { token: string; task: TaskView };
  t.same(task.task, await admin.showTask(id), 'nothing of the view is dropped by the serializer');
  t.equal((await pullAs(root, 'schemas', task.token)).status, 'applied');

  const list = await call('GET', '/v1/tasks');
  check(t, 'listTasks', 200, list.body);
  t.same(list.body, await admin.listTasks(), 'the list, whole');
  check(t, 'showTask', 200, (await call('GET', `/v1/tasks/${id}`)).body);
  check(t, 'taskToken', 200, (await call('GET', `/v1/tasks/${id}/token`)).body);
  const revoked = await call('DELETE', `/v1/tasks/${id}/clients/schemas`);
  t.equal(revoked.status, 200);
  check(t, 'revokeClient', 200, revoked.body);
  t.same(revoked.body, await admin.showTask(id), 'with its client and result');

  const { reader } = await openEvents(t, api, id);
  const cancelled = await call('DELETE', `/v1/tasks/${id}`);
  check(t, 'cancelTask', 200, cancelled.body);
  const events = routeOf('taskEvents').responses[200]!.events!;
  for (const event of await reader.untilEnd()) {
    const validate = ajv.compile(events[event.event]!);
    t.ok(validate(JSON.parse(event.data)), `event ${event.event} validates: ${ajv.errorsText(validate.errors)}`);
  }
  for (const [name, status, answer] of [
    ['cancelTask', 409, await call('DELETE', `/v1/tasks/${id}`)],
    ['taskToken', 409, await call('GET', `/v1/tasks/${id}/token`)],
    ['revokeClient', 409, await call('DELETE', `/v1/tasks/${id}/clients/schemas`)],
    ['showTask', 404, await call('GET', '/v1/tasks/0123456789abcdef')],
    ['showTask', 401, await call('GET', `/v1/tasks/${id}`, { headers: {} })],
    ['createTask', 400, await call('POST', '/v1/tasks', { body: { files: [] } })],
    ['createTask', 415, await call('POST', '/v1/tasks', { body: 'x', headers: { ...api.headers(), 'content-type': 'application/xml' } })],
    ['pruneTasks', 400, await call('POST', '/v1/tasks/prune', { body: { endedBeforeMs: -1 } })],
  ] as const) {
    t.equal(answer.status, status, `${name} answers ${status}`);
    check(t, name, status, answer.body);
  }
  const purged = await call('DELETE', `/v1/tasks/${id}?purge=true`);
  check(t, 'cancelTask', 200, purged.body);
  check(t, 'pruneTasks', 200, (await call('POST', '/v1/tasks/prune', { body: { endedBeforeMs: 0, dryRun: true } })).body);
  check(t, 'health', 200, (await call('GET', '/v1/health', { headers: {} })).body);
  check(t, 'openapi', 200, (await call('GET', '/v1/openapi.json', { headers: {} })).body);
});

t.test('a store error in a route or in an event stream is logged with its code; the client gets the mapped status', async (t) => {
  const root = t.testdir();
  const real = await startApi(t, join(root, 'data'));
  const view = (await real.server.admin().createTask({ files: [{ path: 'a.conf', content: Buffer.from('a\n') }] })).task;
  const fail = (code: 'STORE_UNAVAILABLE' | 'STORE_CORRUPT') => () => {
    throw new NoiseCfgError(code, `the task database failed (${code})`);
  };
  // An operator whose store fails: listing says it is busy, showing that it is damaged, and a watch breaks after its
  // first event; anything else is a bug of the operator (a plain Error).
  const broken = {
    ...Object.fromEntries(['createTask', 'taskToken', 'cancelTask', 'revokeClient', 'deleteTask', 'pruneTasks', 'close'].map((name) => [name, () => {
      throw new Error(`${name} has a bug`);
    }])),
    listTasks: fail('STORE_UNAVAILABLE'),
    showTask: fail('STORE_CORRUPT'),
    async *watch() {
      yield { type: 'task' as const, task: view };
      fail('STORE_UNAVAILABLE')();
    },
  } as unknown as Operator;
  const records: ApiLogRecord[] = [];
  const api = await startApiServer({ admin: broken, adminToken: real.adminToken, log: (record) => records.push(record) }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => api.app.close());
  const base = `http://127.0.0.1:${api.port}`;
  const headers = real.headers();

  const list = await fetch(`${base}/v1/tasks`, { headers });
  t.equal(list.status, 503);
  const listBody = await list.json();
  t.match(listBody, { error: { code: 'STORE_UNAVAILABLE' } });
  check(t, 'listTasks', 503, listBody);
  const show = await fetch(`${base}/v1/tasks/${view.id}`, { headers });
  t.equal(show.status, 500);
  check(t, 'showTask', 500, await show.json());
  const token = await fetch(`${base}/v1/tasks/${view.id}/token`, { headers });
  t.equal(token.status, 500);
  t.same(await token.json(), { error: { code: 'INTERNAL', message: 'internal error' } }, 'an unforeseen error tells the client nothing more');

  const client = new ApiClient(base, real.adminToken);
  const seen: string[] = [];
  await t.rejects((async () => {
    for await (const event of client.watch(view.id)) seen.push(event.type);
  })(), { code: 'STORE_UNAVAILABLE' }, 'the stream ends with the error event, and the client throws its code');
  t.same(seen, ['task'], 'after the events that came before it');

  t.match(records, [
    { event: 'api-error', method: 'GET', route: '/v1/tasks', status: 503, code: 'STORE_UNAVAILABLE', time: String },
    { event: 'api-error', method: 'GET', route: '/v1/tasks/:id', status: 500, code: 'STORE_CORRUPT' },
    { event: 'api-error', method: 'GET', route: '/v1/tasks/:id/token', status: 500, code: 'INTERNAL', message: 'taskToken has a bug' },
    { event: 'api-error', method: 'GET', route: '/v1/tasks/:id/events', status: 503, code: 'STORE_UNAVAILABLE' },
  ]);
  t.equal(records.length, 4, 'one record per failure, none for the requests that succeeded');
  t.notOk(JSON.stringify(records).includes(view.id), 'the log names the route, not the task id');
});

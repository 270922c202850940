// The OpenAPI document (SPEC.md §8): valid OpenAPI 3.1 by an independent validator, the same as served, and
// describing every route of the route table with its method and its 401.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { buildOpenApiDocument } from '../../lib/api/openapi.js';
import { ROUTES } from '../../lib/api/routes.js';
import { startApiServer } from '../../lib/api/server.js';
import { TaskAdmin } from '../../lib/task/admin.js';
import { REPO_ROOT } from '../support/paths.js';

type Operation = {
  operationId: string;
  security?: unknown[];
  parameters?: { name: string; in: string; required: boolean }[];
  requestBody?: unknown;
  responses: Record<string, { description?: string; content?: Record<string, unknown> }>;
};
type Document = { openapi: string; info: { version: string }; paths: Record<string, Record<string, Operation>>; security?: unknown[]; components?: unknown };

async function validate(document: unknown): Promise<{ valid: boolean; errors: unknown }> {
  const validator = new Validator();
  // The validator may keep or annotate what it is given; it gets a copy.
  const result = await validator.validate(structuredClone(document) as Record<string, unknown>);
  return { valid: result.valid, errors: result.errors };
}

const document = buildOpenApiDocument() as unknown as Document;

t.test('the document is valid OpenAPI 3.1 for the validator', async (t) => {
  t.equal(document.openapi, '3.1.0');
  t.equal(document.info.version, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version, 'the version of package.json');
  const result = await validate(document);
  t.equal(result.valid, true, `validator errors: ${JSON.stringify(result.errors)}`);
});

t.test('a tampered document is reported invalid', async (t) => {
  const noDescription = structuredClone(document);
  delete noDescription.paths['/v1/tasks']!['post']!.responses['201']!.description;
  t.equal((await validate(noDescription)).valid, false, 'a response without description');

  const badParameter = structuredClone(document);
  badParameter.paths['/v1/tasks/{id}']!['get']!.parameters![0]!.in = 'body';
  t.equal((await validate(badParameter)).valid, false, 'a parameter in "body"');

  const noInfo = structuredClone(document) as Partial<Document>;
  delete noInfo.info;
  t.equal((await validate(noInfo)).valid, false, 'no info');
});

t.test('every route of the route table appears with its method, and nothing else', async (t) => {
  const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
  t.same(operations.sort(), ROUTES.map((route) => `${route.method} ${route.path}`).sort());
  t.same(ROUTES.map((route) => route.name).sort(), ['cancelTask', 'createTask', 'health', 'listTasks', 'openapi', 'pruneTasks', 'revokeClient', 'showTask', 'taskEvents', 'taskToken']);
  for (const route of ROUTES) {
    const operation = document.paths[route.path]?.[route.method.toLowerCase()];
    t.equal(operation?.operationId, route.name, `${route.method} ${route.path} is ${route.name}`);
    const pathParameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
    t.same((operation?.parameters ?? []).filter((parameter) => parameter.in === 'path').map((parameter) => [parameter.name, parameter.in, parameter.required]), pathParameters.map((name) => [name, 'path', true]), `${route.name}: its path parameters`);
    t.equal(operation?.requestBody !== undefined, route.method === 'POST', `${route.name}: a request body only for POST`);
  }
});

t.test('every authenticated route requires the bearer token and declares 401; the others need none', async (t) => {
  t.same(document.security, [{ adminToken: [] }]);
  t.match(document.components, { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } });
  t.same(ROUTES.filter((route) => !route.isAuthenticated).map((route) => route.path).sort(), ['/v1/health', '/v1/openapi.json']);
  for (const route of ROUTES) {
    const operation = document.paths[route.path]![route.method.toLowerCase()]!;
    if (route.isAuthenticated) {
      t.equal(operation.security, undefined, `${route.name} keeps the document's security`);
      t.ok(operation.responses['401'], `${route.name} declares 401`);
      t.ok(operation.responses['401']?.content?.['application/json'], `${route.name}: 401 has a JSON body`);
    } else {
      t.same(operation.security, [], `${route.name} needs no token`);
      t.notOk(operation.responses['401'], `${route.name} has no 401`);
    }
    const success = Object.keys(operation.responses).filter((status) => status.startsWith('2'));
    t.equal(success.length, 1, `${route.name} has one success status`);
  }
  t.ok(document.paths['/v1/tasks/{id}/events']!['get']!.responses['200']!.content!['text/event-stream'], 'events are text/event-stream');
});

t.test('the served document is identical to the built one, and every documented route is served', async (t) => {
  const admin = await TaskAdmin.open(join(t.testdir(), 'data'), { create: true });
  t.teardown(() => admin.close());
  const api = await startApiServer({ admin, adminToken: 'x'.repeat(43) }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => api.app.close());
  const base = `http://127.0.0.1:${api.port}`;
  const response = await fetch(`${base}/v1/openapi.json`);
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^application\/json/);
  const served = await response.json();
  t.same(served, document);
  t.equal((await validate(served)).valid, true);

  // Each documented operation exists on the server: without a token it is a 401 (or 200 when open), never NOT_FOUND.
  for (const route of ROUTES) {
    const path = route.path.replace('{id}', '0123456789abcdef').replace('{identity}', 'ab');
    const answer = await fetch(`${base}${path}`, { method: route.method });
    const text = await answer.text();
    t.equal(answer.status, route.isAuthenticated ? 401 : 200, `${route.method} ${route.path}: ${text.slice(0, 120)}`);
  }
});

/**
 * The REST API (SPEC.md §8) on fastify: bearer authentication compared in constant time, every body and
 * parameter checked against the JSON schemas of schemas.ts, errors as JSON with a stable code, and server-sent
 * events for following a task. It shares the running server's store and never touches the Noise listener.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import sodium from 'sodium-native';
import { NoiseCfgError, isNoiseCfgError } from '../errors.js';
import type { TaskAdmin } from '../task/admin.js';
import type { TaskFileInput } from '../task/file-set.js';
import type { TaskView } from '../task/task.js';
import { HTTP_STATUS_BY_ERROR } from './http-status.js';
import { buildOpenApiDocument } from './openapi.js';
import { ROUTES, type RouteSpec } from './routes.js';

/** The default limit on a request body, in bytes (base64 inflates file contents by a third). */
export const DEFAULT_API_BODY_LIMIT_BYTES = 64 * 1024 * 1024;
/** How often an event stream looks for changes, in milliseconds. */
export const EVENT_POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

/** What the API serves. */
export interface ApiServerOptions {
  admin: TaskAdmin;
  /** The bearer token clients must present (DATA_DIR/admin.token). */
  adminToken: string;
  version: string;
  bodyLimitBytes?: number;
  eventPollMs?: number;
}

interface CreateTaskBody {
  files: { path: string; content: string; mode?: number }[];
  ttlSeconds?: number;
  maxClients?: number;
  mode?: 'xxpsk3' | 'nnpsk0';
  name?: string;
}

function tokenDigest(token: string): Buffer {
  const digest = Buffer.alloc(32);
  sodium.crypto_generichash(digest, Buffer.from(token, 'utf8'));
  return digest;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string, field?: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { code, message, ...(field !== undefined ? { field } : {}) } });
}

// `body` + `/files/0/content` -> `body.files[0].content`.
function fieldPath(context: string, instancePath: string): string {
  return instancePath.split('/').filter((segment) => segment !== '').reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : `${path}.${segment}`), context);
}

function decodeFiles(files: CreateTaskBody['files']): TaskFileInput[] {
  return files.map((file, index) => {
    const content = Buffer.from(file.content, 'base64');
    // Strict base64: what decodes must encode back to the same text (padding included).
    if (content.toString('base64') !== file.content) {
      throw Object.assign(new NoiseCfgError('INVALID_ARGUMENT', `files[${index}].content is not canonical base64`), { field: `body.files[${index}].content` });
    }
    return { path: file.path, content, ...(file.mode !== undefined ? { mode: file.mode } : {}) };
  });
}

/** Builds the fastify app (not listening), for the server and for tests with inject(). */
export function createApiApp(options: ApiServerOptions): FastifyInstance {
  // maxParamLength: the schemas, not fastify's default of 100 characters, decide how long a path parameter may be.
  const app = Fastify({ maxParamLength: 1024, bodyLimit: options.bodyLimitBytes ?? DEFAULT_API_BODY_LIMIT_BYTES, logger: false, ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } } });
  const expected = tokenDigest(options.adminToken);
  const admin = options.admin;
  const openApi = buildOpenApiDocument(options.version);
  const started = Date.now();

  app.setErrorHandler((error: FastifyError & { field?: string }, _request, reply) => {
    if (error.validation) {
      const issue = error.validation[0];
      const issueParams = issue?.params as { additionalProperty?: string; missingProperty?: string } | undefined;
      const extra = issueParams?.additionalProperty ?? issueParams?.missingProperty;
      const field = fieldPath(error.validationContext ?? 'body', `${issue?.instancePath ?? ''}${extra ? `/${extra}` : ''}`);
      return sendError(reply, 400, 'INVALID_REQUEST', `${field} ${issue?.message ?? 'is invalid'}`, field);
    }
    if (error.statusCode === 413) return sendError(reply, 413, 'BODY_TOO_LARGE', error.message);
    if (error.statusCode === 415) return sendError(reply, 415, 'INVALID_REQUEST', 'the body must be application/json');
    if (error.statusCode === 400) return sendError(reply, 400, 'INVALID_REQUEST', error.message);
    if (isNoiseCfgError(error)) return sendError(reply, HTTP_STATUS_BY_ERROR[error.code], error.code, error.message, (error as { field?: string }).field);
    return sendError(reply, 500, 'INTERNAL', 'internal error');
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));

  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer ([^\s]+)$/.exec(header);
    if (!match || !sodium.sodium_memcmp(tokenDigest(match[1]!), expected)) {
      await sendError(reply, 401, 'UNAUTHORIZED', 'missing or wrong bearer token (Authorization: Bearer <DATA_DIR/admin.token>)');
    }
  };

  const handlers: Record<RouteSpec['name'], (request: FastifyRequest, reply: FastifyReply) => unknown> = {
    createTask: async (request, reply) => {
      const body = request.body as CreateTaskBody;
      const created = admin.createTask({
        files: decodeFiles(body.files),
        ...(body.ttlSeconds !== undefined ? { ttlSeconds: body.ttlSeconds } : {}),
        ...(body.maxClients !== undefined ? { maxClients: body.maxClients } : {}),
        ...(body.mode !== undefined ? { mode: body.mode } : {}),
        ...(body.name !== undefined ? { name: body.name } : {}),
      });
      return reply.code(201).send({ id: created.id, token: created.token, expiresAt: created.expiresAt, task: created.task });
    },
    listTasks: async () => admin.listTasks(),
    showTask: async (request) => admin.showTask((request.params as { id: string }).id),
    cancelTask: async (request) => admin.cancelTask((request.params as { id: string }).id),
    revokeClient: async (request) => {
      const params = request.params as { id: string; identity: string };
      return admin.revokeClient(params.id, params.identity);
    },
    taskEvents: async (request, reply) => streamEvents(request, reply, admin, options.eventPollMs ?? EVENT_POLL_MS),
    health: async () => ({ status: 'ok', version: options.version, uptimeSeconds: Math.round((Date.now() - started) / 1000) }),
    openapi: async () => openApi,
  };

  for (const route of ROUTES) {
    app.route({
      method: route.method,
      url: route.path.replace(/\{(\w+)\}/g, ':$1'),
      schema: { ...(route.params ? { params: route.params } : {}), ...(route.body ? { body: route.body } : {}) },
      ...(route.isAuthenticated ? { onRequest: authenticate } : {}),
      handler: handlers[route.name],
    });
  }
  return app;
}

async function streamEvents(request: FastifyRequest, reply: FastifyReply, admin: TaskAdmin, pollMs: number): Promise<void> {
  const id = (request.params as { id: string }).id;
  const view = admin.showTask(id);
  const lastEventId = Number(request.headers['last-event-id']);
  const existing = admin.events(id);
  let after = Number.isSafeInteger(lastEventId) && lastEventId >= 0 ? lastEventId : (existing.at(-1)?.id ?? 0);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const send = (event: string, data: unknown, eventId?: number): void => {
    raw.write(`${eventId !== undefined ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  send('task', view);
  await new Promise<void>((resolve) => {
    let lastWrite = Date.now();
    const finish = (): void => {
      clearInterval(timer);
      resolve();
    };
    const poll = (): void => {
      try {
        // The state is read before the events: a change committed between the two reads is then never lost.
        const current: TaskView = admin.showTask(id);
        for (const event of admin.events(id, after)) {
          send('change', { ...event, at: new Date(event.at).toISOString() }, event.id);
          after = event.id;
          lastWrite = Date.now();
        }
        if (current.state !== 'active') {
          send('end', current);
          raw.end();
          finish();
        } else if (Date.now() - lastWrite > HEARTBEAT_MS) {
          raw.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      } catch {
        raw.end();
        finish();
      }
    };
    const timer = setInterval(poll, pollMs);
    request.raw.on('close', finish);
    poll();
  });
}

/** Starts the API on `host:port`; resolves with the bound address. Throws CONNECTION_FAILED. */
export async function startApiServer(options: ApiServerOptions, listen: { host: string; port: number }): Promise<{ app: FastifyInstance; host: string; port: number }> {
  const app = createApiApp(options);
  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (error) {
    throw new NoiseCfgError('CONNECTION_FAILED', `cannot listen on ${listen.host}:${listen.port} for the API: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  return { app, host: listen.host, port };
}

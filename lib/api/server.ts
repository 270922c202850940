/**
 * The REST API (SPEC.md §8) on fastify: bearer authentication compared in constant time, every body and
 * parameter checked against the JSON schemas of schemas.ts and every response serialized through its closed
 * schema, errors as JSON with a stable code (a server-side failure also logged with it), and server-sent events
 * for following a task. It serves an Operator (the running server's TaskAdmin) and never touches the Noise
 * listener.
 */
import { createRequire } from 'node:module';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, fastify } from 'fastify';
import sodium from 'sodium-native';
import { NoiseCfgError, isNoiseCfgError, type ApiErrorCode, type ErrorCode } from '../errors.js';
import { VERSION } from '../version.js';
import { DEFAULT_WATCH_POLL_MS, type Operator, type TaskMode, type TaskFileInput, type TaskStreamEvent } from '../task/index.js';
import { HTTP_STATUS_BY_API_ERROR, HTTP_STATUS_BY_ERROR } from './http-status.js';
import { buildOpenApiDocument } from './openapi.js';
import { ROUTES, type RouteSpec } from './routes.js';

/** The default limit on a request body, in bytes (base64 inflates file contents by a third). */
export const DEFAULT_API_BODY_LIMIT_BYTES = 64 * 1024 * 1024;
/** How often an event stream looks for changes, in milliseconds. */
export const EVENT_POLL_MS = DEFAULT_WATCH_POLL_MS;
const HEARTBEAT_MS = 15_000;

/** One line about a request that failed on the server's side (a 5xx answer, or an event stream that broke). */
export interface ApiLogRecord {
  time: string;
  event: 'api-error';
  method: string;
  /** The route's path (`/v1/tasks/:id`), not the URL: no id or query in the log. */
  route: string;
  status: number;
  code: ErrorCode | ApiErrorCode;
  message: string;
}

/** What the API serves. */
export interface ApiServerOptions {
  /** The operator the routes act through: the running server's TaskAdmin. */
  admin: Operator;
  /** Where server-side failures are reported, one record each (default: nowhere). Client errors (4xx) are not. */
  log?: (record: ApiLogRecord) => void;
  /** The bearer token clients must present (DATA_DIR/admin.token). */
  adminToken: string;
  bodyLimitBytes?: number;
  eventPollMs?: number;
}

interface CreateTaskBody {
  files: { path: string; content: string; mode?: number }[];
  ttlSeconds?: number;
  maxClients?: number;
  mode?: TaskMode;
  name?: string;
}

/** BLAKE2b-256, sodium's default generichash length: the admin tokens are compared as digests of this size. */
const ADMIN_TOKEN_DIGEST_BYTES = 32;

function tokenDigest(token: string): Buffer {
  const digest = Buffer.alloc(ADMIN_TOKEN_DIGEST_BYTES);
  sodium.crypto_generichash(digest, Buffer.from(token, 'utf8'));
  return digest;
}

function sendError(reply: FastifyReply, status: number, code: ErrorCode | ApiErrorCode, message: string, field?: string): FastifyReply {
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

// fastify is loaded when an API is built, not when the library is imported: a client (pull) never needs it, and
// it is an optional dependency so that a client installs without the server's packages.
function loadFastify(): typeof fastify {
  try {
    return createRequire(import.meta.url)('fastify') as typeof fastify;
  } catch (error) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `the REST API needs the optional package fastify, which is not installed here: install it where noise-cfg is installed (npm install fastify), or run serve with --api off`, { cause: error });
  }
}

/** Reports a server-side failure of `request` (ApiServerOptions.log). */
type FailureLog = (request: FastifyRequest, status: number, code: ErrorCode | ApiErrorCode, message: string) => void;

// Every error becomes `{error: {code, message, field?}}` with its status; a server-side one (5xx) is also logged.
function errorHandler(log: FailureLog) {
  return (error: FastifyError & { field?: string }, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (error.validation) {
      const issue = error.validation[0];
      const issueParams = issue?.params as { additionalProperty?: string; missingProperty?: string } | undefined;
      const extra = issueParams?.additionalProperty ?? issueParams?.missingProperty;
      const field = fieldPath(error.validationContext ?? 'body', `${issue?.instancePath ?? ''}${extra ? `/${extra}` : ''}`);
      return sendError(reply, HTTP_STATUS_BY_API_ERROR.INVALID_REQUEST, 'INVALID_REQUEST', `${field} ${issue?.message ?? 'is invalid'}`, field);
    }
    if (error.statusCode === 413) return sendError(reply, HTTP_STATUS_BY_API_ERROR.BODY_TOO_LARGE, 'BODY_TOO_LARGE', error.message);
    if (error.statusCode === 415) return sendError(reply, 415, 'INVALID_REQUEST', 'the body must be application/json');
    if (error.statusCode === 400) return sendError(reply, HTTP_STATUS_BY_API_ERROR.INVALID_REQUEST, 'INVALID_REQUEST', error.message);
    if (isNoiseCfgError(error)) {
      const status = HTTP_STATUS_BY_ERROR[error.code];
      if (status >= 500) log(request, status, error.code, error.message);
      return sendError(reply, status, error.code, error.message, (error as { field?: string }).field);
    }
    // Unforeseen: the log gets what it was, the client only that it happened.
    log(request, HTTP_STATUS_BY_API_ERROR.INTERNAL, 'INTERNAL', error instanceof Error ? error.message : String(error));
    return sendError(reply, HTTP_STATUS_BY_API_ERROR.INTERNAL, 'INTERNAL', 'internal error');
  };
}

// What each route does, by the route table's names.
function routeHandlers(options: ApiServerOptions, log: FailureLog): Record<RouteSpec['name'], (request: FastifyRequest, reply: FastifyReply) => unknown> {
  const admin = options.admin;
  const openApi = buildOpenApiDocument();
  const started = Date.now();
  const id = (request: FastifyRequest): string => (request.params as { id: string }).id;
  return {
    createTask: async (request, reply) => {
      const body = request.body as CreateTaskBody;
      const created = await admin.createTask({
        files: decodeFiles(body.files),
        ...(body.ttlSeconds !== undefined ? { ttlSeconds: body.ttlSeconds } : {}),
        ...(body.maxClients !== undefined ? { maxClients: body.maxClients } : {}),
        ...(body.mode !== undefined ? { mode: body.mode } : {}),
        ...(body.name !== undefined ? { name: body.name } : {}),
      });
      return reply.code(201).send(created);
    },
    listTasks: async () => admin.listTasks(),
    showTask: async (request) => admin.showTask(id(request)),
    taskToken: async (request) => admin.taskToken(id(request)),
    // DELETE without purge stays a cancel (CONTRACT.md): a script written for it must not start erasing records.
    cancelTask: async (request) => ((request.query as { purge?: string }).purge === 'true' ? admin.deleteTask(id(request)) : admin.cancelTask(id(request))),
    revokeClient: async (request) => admin.revokeClient(id(request), (request.params as { identity: string }).identity),
    pruneTasks: async (request) => {
      const body = request.body as { endedBeforeMs: number; dryRun?: boolean };
      return admin.pruneTasks({ endedBeforeMs: body.endedBeforeMs, ...(body.dryRun !== undefined ? { dryRun: body.dryRun } : {}) });
    },
    taskEvents: async (request, reply) => streamEvents(request, reply, admin, options.eventPollMs ?? EVENT_POLL_MS, log),
    health: async () => ({ status: 'ok', version: VERSION, uptimeSeconds: Math.round((Date.now() - started) / 1000) }),
    openapi: async () => openApi,
  };
}

/** Builds the fastify app (not listening), for the server and for tests with inject(). */
export function createApiApp(options: ApiServerOptions): FastifyInstance {
  const Fastify = loadFastify();
  // maxParamLength: the schemas, not fastify's default of 100 characters, decide how long a path parameter may be.
  const app = Fastify({ routerOptions: { maxParamLength: 1024 }, bodyLimit: options.bodyLimitBytes ?? DEFAULT_API_BODY_LIMIT_BYTES, logger: false, ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } } });
  const expected = tokenDigest(options.adminToken);
  const log: FailureLog = (request, status, code, message) => {
    options.log?.({ time: new Date().toISOString(), event: 'api-error', method: request.method, route: request.routeOptions.url ?? 'unknown', status, code, message });
  };
  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler((request, reply) => sendError(reply, HTTP_STATUS_BY_API_ERROR.NOT_FOUND, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));

  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer ([^\s]+)$/.exec(header);
    if (!match || !sodium.sodium_memcmp(tokenDigest(match[1]!), expected)) {
      await sendError(reply, HTTP_STATUS_BY_API_ERROR.UNAUTHORIZED, 'UNAUTHORIZED', 'missing or wrong bearer token (Authorization: Bearer <DATA_DIR/admin.token>)');
    }
  };
  const handlers = routeHandlers(options, log);
  for (const route of ROUTES) {
    app.route({
      method: route.method,
      url: route.path.replace(/\{(\w+)\}/g, ':$1'),
      schema: {
        ...(route.params ? { params: route.params } : {}),
        ...(route.query ? { querystring: route.query } : {}),
        ...(route.body ? { body: route.body } : {}),
        // Serialized through these, so a field that is not in the schema is never sent; an event stream is written raw.
        response: Object.fromEntries(Object.entries(route.responses).filter(([, response]) => response.contentType === undefined && response.schema).map(([status, response]) => [status, response.schema])),
      },
      ...(route.isAuthenticated ? { onRequest: authenticate } : {}),
      handler: handlers[route.name],
    });
  }
  return app;
}

// The stream is TaskAdmin.watch's: the whole task at the start and at the end, and in between only the changes,
// so an open stream costs the same whatever the number of clients. A reader that does not keep up is waited for
// (the socket's buffer never grows past one event), and its close ends the following at once.
async function streamEvents(request: FastifyRequest, reply: FastifyReply, admin: Operator, pollMs: number, log: FailureLog): Promise<void> {
  const id = (request.params as { id: string }).id;
  const lastEventId = Number(request.headers['last-event-id']);
  const stop = new AbortController();
  const events = admin.watch(id, {
    pollMs,
    signal: stop.signal,
    ...(request.headers['last-event-id'] !== undefined && Number.isSafeInteger(lastEventId) && lastEventId >= 0 ? { afterEventId: lastEventId } : {}),
  });
  // Before the stream starts: an unknown task is still a JSON error with its status.
  const first = await events.next();
  reply.hijack();
  const raw = reply.raw;
  const onClose = (): void => stop.abort();
  request.raw.on('close', onClose);
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const heartbeat = setTimeout(function beat() {
    raw.write(': keep-alive\n\n');
    heartbeat.refresh();
  }, HEARTBEAT_MS);
  const send = async (event: string, data: unknown, eventId?: number): Promise<void> => {
    heartbeat.refresh();
    if (raw.write(`${eventId !== undefined ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) || stop.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        raw.off('drain', done);
        stop.signal.removeEventListener('abort', done);
        resolve();
      };
      raw.on('drain', done);
      stop.signal.addEventListener('abort', done);
    });
  };
  try {
    for (let step = first; !step.done && !stop.signal.aborted; step = await events.next()) {
      const event: TaskStreamEvent = step.value;
      if (event.type === 'change') await send('change', event.change, event.change.id);
      else if (event.type === 'progress') await send('progress', event.progress);
      else await send(event.type, event.task);
    }
  } catch (error) {
    // The status line has gone out already: the failure is logged, and the stream ends with an `error` event that
    // carries its code, as a JSON answer would.
    const code = isNoiseCfgError(error) ? error.code : 'INTERNAL';
    const message = error instanceof Error ? error.message : String(error);
    log(request, isNoiseCfgError(error) ? HTTP_STATUS_BY_ERROR[error.code] : HTTP_STATUS_BY_API_ERROR.INTERNAL, code, message);
    if (!stop.signal.aborted) raw.write(`event: error\ndata: ${JSON.stringify({ error: { code, message: isNoiseCfgError(error) ? message : 'internal error' } })}\n\n`);
  } finally {
    clearTimeout(heartbeat);
    request.raw.off('close', onClose);
    await events.return(undefined);
    raw.end();
  }
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

/**
 * The REST API's routes as data (SPEC.md §8): method, path, schemas and every response with its schema. The server
 * registers them (fastify validates requests and serializes responses with the schemas) and openapi.ts describes
 * them, from the same objects.
 */
import {
  CREATE_TASK_BODY, CREATED_TASK_SCHEMA, DELETED_TASKS_SCHEMA, DELETE_TASK_QUERY, ERROR_SCHEMA, HEALTH_SCHEMA, PRUNE_TASKS_BODY, REVOKE_PARAMS,
  TASK_CHANGE_SCHEMA, TASK_ID_PARAMS, TASK_PROGRESS_SCHEMA, TASK_SCHEMA, TASK_TOKEN_SCHEMA,
} from './schemas.js';

/** One response of a route. */
export interface ResponseSpec {
  description: string;
  schema?: object;
  contentType?: string;
  /** For an event stream: the schema of each event's data, by event name. */
  events?: Record<string, object>;
}

/** One route. `path` is in OpenAPI form (`/v1/tasks/{id}`). */
export interface RouteSpec {
  name: 'createTask' | 'listTasks' | 'showTask' | 'taskToken' | 'cancelTask' | 'revokeClient' | 'pruneTasks' | 'taskEvents' | 'health' | 'openapi';
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  summary: string;
  isAuthenticated: boolean;
  params?: object;
  /** The query string's JSON schema (an object of string properties). */
  query?: object;
  body?: object;
  responses: Record<number, ResponseSpec>;
}

const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'Invalid request; `error.field` names the field',
  401: 'Missing or wrong bearer token',
  404: 'No such task (or client); also an id that is not a task id',
  409: 'The task has already ended (or the client is already revoked)',
  413: 'Body over the size limit',
  415: 'The body is not application/json',
  500: 'The data directory or its database failed (STORE_CORRUPT, DATA_DIR_INSECURE), or an error the server did not foresee (INTERNAL); logged with its code',
  503: 'The database is unavailable now (STORE_UNAVAILABLE: busy, read-only, full); retry later',
};

// Every route can fail on the server's side; the others are the route's own.
const errors = (...statuses: number[]): Record<number, ResponseSpec> => Object.fromEntries([...statuses, 500, 503].map((status) => [status, { description: ERROR_DESCRIPTIONS[status]!, schema: ERROR_SCHEMA }]));

/** Every route of /v1. */
export const ROUTES: readonly RouteSpec[] = [
  {
    name: 'createTask', method: 'POST', path: '/v1/tasks', summary: 'Create a task and get its token', isAuthenticated: true,
    body: CREATE_TASK_BODY,
    responses: { 201: { description: 'Created', schema: CREATED_TASK_SCHEMA }, ...errors(400, 401, 413, 415) },
  },
  {
    name: 'listTasks', method: 'GET', path: '/v1/tasks', summary: 'List tasks, newest first', isAuthenticated: true,
    responses: { 200: { description: 'The tasks', schema: { type: 'array', items: TASK_SCHEMA } }, ...errors(401) },
  },
  {
    name: 'showTask', method: 'GET', path: '/v1/tasks/{id}', summary: 'One task with its files and clients', isAuthenticated: true,
    params: TASK_ID_PARAMS,
    responses: { 200: { description: 'The task', schema: TASK_SCHEMA }, ...errors(400, 401, 404) },
  },
  {
    name: 'taskToken', method: 'GET', path: '/v1/tasks/{id}/token', summary: 'The token of an active task, again', isAuthenticated: true,
    params: TASK_ID_PARAMS,
    responses: { 200: { description: 'The token', schema: TASK_TOKEN_SCHEMA }, ...errors(400, 401, 404, 409) },
  },
  {
    name: 'cancelTask', method: 'DELETE', path: '/v1/tasks/{id}', isAuthenticated: true,
    summary: 'Cancel a task; with purge=true, delete it (cancelled first if active) with its files, clients and events',
    params: TASK_ID_PARAMS,
    query: DELETE_TASK_QUERY,
    responses: {
      200: { description: 'The cancelled task; with purge=true, what was deleted', schema: { anyOf: [TASK_SCHEMA, DELETED_TASKS_SCHEMA] } },
      ...errors(400, 401, 404, 409),
    },
  },
  {
    name: 'revokeClient', method: 'DELETE', path: '/v1/tasks/{id}/clients/{identity}', summary: 'Refuse one client of a task from now on', isAuthenticated: true,
    params: REVOKE_PARAMS,
    responses: { 200: { description: 'The task after the revocation', schema: TASK_SCHEMA }, ...errors(400, 401, 404, 409) },
  },
  {
    name: 'pruneTasks', method: 'POST', path: '/v1/tasks/prune', summary: 'Delete every task that ended longer ago than endedBeforeMs (with dryRun, only list them)', isAuthenticated: true,
    body: PRUNE_TASKS_BODY,
    responses: { 200: { description: 'What was (or would be) deleted', schema: DELETED_TASKS_SCHEMA }, ...errors(400, 401, 413, 415) },
  },
  {
    name: 'taskEvents', method: 'GET', path: '/v1/tasks/{id}/events', summary: 'Server-sent events: the task, each client state change, and a final end event', isAuthenticated: true,
    params: TASK_ID_PARAMS,
    responses: {
      200: {
        description: 'An event stream: `task` (the task now), `change` (one state change), `progress` (bytes sent to each client receiving now, when that changed), `end` (the task as it ended), or `error` (the stream failed on the server; its data is the error object); `x-events` gives each event\'s data schema',
        contentType: 'text/event-stream',
        schema: { type: 'string' },
        events: { task: TASK_SCHEMA, change: TASK_CHANGE_SCHEMA, progress: TASK_PROGRESS_SCHEMA, end: TASK_SCHEMA, error: ERROR_SCHEMA },
      },
      ...errors(400, 401, 404),
    },
  },
  {
    name: 'health', method: 'GET', path: '/v1/health', summary: 'Liveness; needs no token', isAuthenticated: false,
    responses: { 200: { description: 'The server is up', schema: HEALTH_SCHEMA }, 500: { description: ERROR_DESCRIPTIONS[500]!, schema: ERROR_SCHEMA } },
  },
  {
    name: 'openapi', method: 'GET', path: '/v1/openapi.json', summary: 'This document; needs no token', isAuthenticated: false,
    // The one open schema: the document is described by the OpenAPI specification, not here.
    responses: { 200: { description: 'The OpenAPI document', schema: { type: 'object', additionalProperties: true } }, 500: { description: ERROR_DESCRIPTIONS[500]!, schema: ERROR_SCHEMA } },
  },
];

/**
 * JSON schemas of the REST API (SPEC.md §8): fastify validates requests with them, and openapi.ts builds the
 * OpenAPI document from the same objects, so the two cannot drift apart.
 */
import { TASK_MODES } from '../task/index.js';

export const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'A stable code: an error code of SPEC.md §6, or UNAUTHORIZED, INVALID_REQUEST, BODY_TOO_LARGE, NOT_FOUND' },
        message: { type: 'string' },
        field: { type: 'string', description: 'For INVALID_REQUEST: the JSON path of the field at fault' },
      },
    },
  },
} as const;

export const CREATE_TASK_BODY = {
  type: 'object',
  required: ['files'],
  additionalProperties: false,
  properties: {
    files: {
      type: 'array',
      minItems: 1,
      maxItems: 10000,
      items: {
        type: 'object',
        required: ['path', 'content'],
        additionalProperties: false,
        properties: {
          path: { type: 'string', minLength: 1, maxLength: 1024, description: 'Relative path under the client\'s output directory' },
          content: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'File content, base64' },
          mode: { type: 'integer', minimum: 0, maximum: 511, description: 'Permission bits (default 420 = 0644)' },
        },
      },
    },
    ttlSeconds: { type: 'integer', minimum: 1, maximum: 31536000, description: 'Time to live (default 3600)' },
    maxClients: { type: 'integer', minimum: 1, maximum: 1000000 },
    mode: { type: 'string', enum: TASK_MODES },
    name: { type: 'string', maxLength: 200 },
  },
} as const;

const CLIENT_SCHEMA = {
  type: 'object',
  required: ['identity', 'name', 'state', 'result'],
  properties: {
    identity: { type: 'string', description: 'Hex static public key (xxpsk3) or the client id (nnpsk0)' },
    name: { type: 'string' },
    remoteAddress: { type: 'string' },
    state: { type: 'string', enum: ['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted'], description: '`offered`: receiving the files; `interrupted`: its session ended before it reported a result' },
    firstSeenAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    result: {
      anyOf: [
        { type: 'null' },
        { type: 'object', required: ['exitCode', 'message'], properties: { exitCode: { anyOf: [{ type: 'integer' }, { type: 'null' }] }, message: { type: 'string' } } },
      ],
    },
  },
} as const;

export const TASK_SCHEMA = {
  type: 'object',
  required: ['id', 'state', 'expiresAt', 'clients'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    mode: { type: 'string', enum: TASK_MODES },
    state: { type: 'string', enum: ['active', 'expired', 'cancelled', 'completed'] },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    endedAt: { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] },
    maxClients: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
    digest: { type: 'string' },
    files: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, size: { type: 'integer' }, mode: { type: 'string' }, digest: { type: 'string' } } },
    },
    totalBytes: { type: 'integer' },
    counts: {
      type: 'object',
      properties: Object.fromEntries(['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted'].map((state) => [state, { type: 'integer' }])),
    },
    clients: { type: 'array', items: CLIENT_SCHEMA },
  },
} as const;

export const CREATED_TASK_SCHEMA = {
  type: 'object',
  required: ['id', 'token', 'expiresAt', 'task'],
  properties: {
    id: { type: 'string' },
    token: { type: 'string', description: 'The ncfg1 token; the only place the PSK appears' },
    expiresAt: { type: 'string', format: 'date-time' },
    task: TASK_SCHEMA,
  },
} as const;

export const TASK_TOKEN_SCHEMA = {
  type: 'object',
  required: ['id', 'token', 'expiresAt'],
  properties: {
    id: { type: 'string' },
    token: { type: 'string', description: 'The ncfg1 token of the task, derived again; the only place the PSK appears' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

export const TASK_ID_PARAMS = {
  type: 'object',
  required: ['id'],
  // No pattern: a string that is not a task id names no task, TASK_NOT_FOUND (404), as on the data directory.
  properties: { id: { type: 'string', minLength: 1, maxLength: 1024, description: 'Task id; one that is not a task id is TASK_NOT_FOUND (404)' } },
} as const;

export const REVOKE_PARAMS = {
  type: 'object',
  required: ['id', 'identity'],
  properties: {
    id: TASK_ID_PARAMS.properties.id,
    identity: { type: 'string', minLength: 1, maxLength: 128, description: 'The client: its identity, a unique prefix of it of at least 8 hex characters, or its name when unique' },
  },
} as const;

export const HEALTH_SCHEMA = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: ['ok'] }, version: { type: 'string' }, uptimeSeconds: { type: 'number' } },
} as const;

export const DELETE_TASK_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    purge: { type: 'string', enum: ['true', 'false'], description: '`true`: delete the task, its files, clients and events (cancelling it first if active), instead of only cancelling it' },
  },
} as const;

export const DELETED_TASKS_SCHEMA = {
  type: 'object',
  required: ['tasks', 'freedBytes', 'databaseBytes'],
  properties: {
    tasks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' }, name: { type: 'string' }, state: { type: 'string' },
          endedAt: { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] }, totalBytes: { type: 'integer' },
        },
      },
    },
    freedBytes: { type: 'integer', description: 'Content bytes of the deleted tasks' },
    databaseBytes: { type: 'object', properties: { before: { type: 'integer' }, after: { type: 'integer' } }, description: 'The database and its WAL on disk, before and after' },
  },
} as const;

export const PRUNE_TASKS_BODY = {
  type: 'object',
  required: ['endedBeforeMs'],
  additionalProperties: false,
  properties: {
    endedBeforeMs: { type: 'integer', minimum: 0, description: 'Delete the tasks that ended (cancelled, completed or expired) more than this many milliseconds ago' },
    dryRun: { type: 'boolean', description: 'Only list what would be deleted (default false)' },
  },
} as const;

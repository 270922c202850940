/**
 * JSON schemas of the REST API (SPEC.md §8): fastify validates requests with them and serializes responses with
 * them (every response schema is closed, so nothing leaves but the fields named here), and openapi.ts builds the
 * OpenAPI document from the same objects, so the three cannot drift apart.
 */
import { TASK_MODES } from '../task/index.js';

const CLIENT_STATES = ['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted'] as const;
const DATE_TIME = { type: 'string', format: 'date-time' } as const;
const NULLABLE_DATE_TIME = { anyOf: [DATE_TIME, { type: 'null' }] } as const;

/** A closed object schema: every property required unless listed in `optional`, and no other property. */
function closed<Properties extends Record<string, object>>(properties: Properties, optional: readonly (keyof Properties)[] = []) {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties).filter((name) => !optional.includes(name)),
    properties,
  } as const;
}

export const ERROR_SCHEMA = closed({
  error: closed({
    code: { type: 'string', description: 'A stable code: an error code of SPEC.md §6, or one of the API\'s own (UNAUTHORIZED, INVALID_REQUEST, BODY_TOO_LARGE, NOT_FOUND, INTERNAL)' },
    message: { type: 'string' },
    field: { type: 'string', description: 'For INVALID_REQUEST: the JSON path of the field at fault' },
  }, ['field']),
});

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

const CLIENT_SCHEMA = closed({
  identity: { type: 'string', description: 'Hex static public key (xxpsk3) or the client id (nnpsk0)' },
  name: { type: 'string' },
  remoteAddress: { type: 'string' },
  state: { type: 'string', enum: CLIENT_STATES, description: '`offered`: receiving the files; `interrupted`: its session ended before it reported a result' },
  firstSeenAt: DATE_TIME,
  updatedAt: DATE_TIME,
  result: { anyOf: [{ type: 'null' }, closed({ exitCode: { anyOf: [{ type: 'integer' }, { type: 'null' }] }, message: { type: 'string' } })] },
});

export const TASK_SCHEMA = closed({
  id: { type: 'string' },
  name: { type: 'string' },
  mode: { type: 'string', enum: TASK_MODES },
  state: { type: 'string', enum: ['active', 'expired', 'cancelled', 'completed'] },
  createdAt: DATE_TIME,
  expiresAt: DATE_TIME,
  endedAt: NULLABLE_DATE_TIME,
  maxClients: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
  digest: { type: 'string' },
  files: { type: 'array', items: closed({ path: { type: 'string' }, size: { type: 'integer' }, mode: { type: 'string', description: 'Octal, four digits (0644)' }, digest: { type: 'string' } }) },
  totalBytes: { type: 'integer' },
  counts: closed(Object.fromEntries(CLIENT_STATES.map((state) => [state, { type: 'integer' }])) as Record<(typeof CLIENT_STATES)[number], { type: 'integer' }>),
  clients: { type: 'array', items: CLIENT_SCHEMA },
});

export const CREATED_TASK_SCHEMA = closed({
  id: { type: 'string' },
  token: { type: 'string', description: 'The ncfg1 token; the only place the PSK appears' },
  expiresAt: DATE_TIME,
  task: TASK_SCHEMA,
});

export const TASK_TOKEN_SCHEMA = closed({
  id: { type: 'string' },
  token: { type: 'string', description: 'The ncfg1 token of the task, derived again; the only place the PSK appears' },
  expiresAt: DATE_TIME,
});

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

export const HEALTH_SCHEMA = closed({ status: { type: 'string', enum: ['ok'] }, version: { type: 'string' }, uptimeSeconds: { type: 'number' } });

export const DELETE_TASK_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    purge: { type: 'string', enum: ['true', 'false'], description: '`true`: delete the task, its files, clients and events (cancelling it first if active), instead of only cancelling it' },
  },
} as const;

export const DELETED_TASKS_SCHEMA = closed({
  tasks: {
    type: 'array',
    items: closed({ id: { type: 'string' }, name: { type: 'string' }, state: { type: 'string', enum: ['active', 'expired', 'cancelled', 'completed'] }, endedAt: NULLABLE_DATE_TIME, totalBytes: { type: 'integer' } }),
  },
  freedBytes: { type: 'integer', description: 'Content bytes of the deleted tasks' },
  databaseBytes: { ...closed({ before: { type: 'integer' }, after: { type: 'integer' } }), description: 'The database and its WAL on disk, before and after' },
});

export const PRUNE_TASKS_BODY = {
  type: 'object',
  required: ['endedBeforeMs'],
  additionalProperties: false,
  properties: {
    endedBeforeMs: { type: 'integer', minimum: 0, description: 'Delete the tasks that ended (cancelled, completed or expired) more than this many milliseconds ago' },
    dryRun: { type: 'boolean', description: 'Only list what would be deleted (default false)' },
  },
} as const;

/** The data of an event stream's `change` event: one state change. */
export const TASK_CHANGE_SCHEMA = closed({
  id: { type: 'integer' },
  taskId: { type: 'string' },
  identity: { anyOf: [{ type: 'string' }, { type: 'null' }], description: 'The client, or null for a change of the task itself' },
  name: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  state: { type: 'string' },
  at: DATE_TIME,
  detail: { anyOf: [{ type: 'string' }, { type: 'null' }] },
});

/** The data of an event stream's `progress` event: the bytes sent to each client receiving now. */
export const TASK_PROGRESS_SCHEMA = closed({
  taskId: { type: 'string' },
  totalBytes: { type: 'integer' },
  transfers: { type: 'array', items: closed({ identity: { type: 'string' }, name: { type: 'string' }, bytesSent: { type: 'integer' }, at: DATE_TIME }) },
});

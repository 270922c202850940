/**
 * A client of the REST API (SPEC.md §8): the Operator that `noise-cfg task … --api URL` and scripts use, giving
 * the same results and error codes as TaskAdmin on the data directory. Uses Node's fetch. API errors come back as
 * NoiseCfgError with the server's code, or for an API-only code the one it stands for (lib/errors.ts).
 */
import { API_ERROR_CODES, ERROR_CODES, NoiseCfgError, type ApiErrorCode, type ErrorCode } from '../errors.js';
import type {
  AdvertisedAddress, CreatedTask, CreateTaskOptions, DeletedTasks, Operator, PruneOptions, TaskProgress, TaskStreamEvent, TaskToken, TaskView, WatchOptions,
} from '../task/index.js';

type TaskChange = Extract<TaskStreamEvent, { type: 'change' }>['change'];

/** The API, remotely. */
export class ApiClient implements Operator {
  readonly #baseUrl: string;
  readonly #adminToken: string;

  /** `baseUrl` like `http://127.0.0.1:7448`. Throws INVALID_ARGUMENT for a URL that is not http(s). */
  constructor(baseUrl: string, adminToken: string) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new NoiseCfgError('INVALID_ARGUMENT', `--api must be a URL such as http://127.0.0.1:7448, got "${baseUrl}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new NoiseCfgError('INVALID_ARGUMENT', `--api must be an http or https URL, got "${baseUrl}"`);
    // serve prints the API as http://HOST:PORT/v1; the routes carry /v1 themselves.
    this.#baseUrl = url.origin + url.pathname.replace(/\/$/, '').replace(/\/v1$/, '');
    this.#adminToken = adminToken;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.#baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new NoiseCfgError('CONNECTION_FAILED', `cannot reach the API at ${this.#baseUrl}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`, { cause: error });
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      throw new NoiseCfgError('PROTOCOL_ERROR', `the API answered ${response.status} with a body that is not JSON`);
    }
    if (!response.ok) throw apiError(response.status, parsed);
    return parsed as T;
  }

  async createTask(options: CreateTaskOptions): Promise<CreatedTask> {
    refuseAdvertise(options.advertise);
    return this.#request('POST', '/v1/tasks', {
      files: options.files.map((file) => ({ path: file.path, content: Buffer.from(file.content).toString('base64'), ...(file.mode !== undefined ? { mode: file.mode } : {}) })),
      ...(options.ttlSeconds !== undefined ? { ttlSeconds: options.ttlSeconds } : {}),
      ...(options.maxClients !== undefined && options.maxClients !== null ? { maxClients: options.maxClients } : {}),
      ...(options.mode !== undefined ? { mode: options.mode } : {}),
      ...(options.name !== undefined ? { name: options.name } : {}),
    });
  }

  listTasks(): Promise<TaskView[]> {
    return this.#request('GET', '/v1/tasks');
  }

  showTask(id: string): Promise<TaskView> {
    return this.#request('GET', `/v1/tasks/${encodeURIComponent(id)}`);
  }

  /** The token of an active task, again. */
  async taskToken(id: string, advertise?: AdvertisedAddress): Promise<TaskToken> {
    refuseAdvertise(advertise);
    return this.#request('GET', `/v1/tasks/${encodeURIComponent(id)}/token`);
  }

  cancelTask(id: string): Promise<TaskView> {
    return this.#request('DELETE', `/v1/tasks/${encodeURIComponent(id)}`);
  }

  /** Deletes a task (cancelled first if active) with its files, clients and events. Throws TASK_NOT_FOUND. */
  deleteTask(id: string): Promise<DeletedTasks> {
    return this.#request('DELETE', `/v1/tasks/${encodeURIComponent(id)}?purge=true`);
  }

  revokeClient(id: string, identity: string): Promise<TaskView> {
    return this.#request('DELETE', `/v1/tasks/${encodeURIComponent(id)}/clients/${encodeURIComponent(identity)}`);
  }

  pruneTasks(options: PruneOptions): Promise<DeletedTasks> {
    return this.#request('POST', '/v1/tasks/prune', { endedBeforeMs: options.endedBeforeMs, ...(options.dryRun !== undefined ? { dryRun: options.dryRun } : {}) });
  }

  /** Nothing to release: each request is its own. */
  close(): void {}

  /** Follows a task's event stream until its `end` event (or until `signal` aborts); the server sets the pace. */
  async *watch(id: string, options: WatchOptions = {}): AsyncGenerator<TaskStreamEvent> {
    let response: Response;
    try {
      response = await fetch(`${this.#baseUrl}/v1/tasks/${encodeURIComponent(id)}/events`, {
        headers: {
          authorization: `Bearer ${this.#adminToken}`,
          accept: 'text/event-stream',
          ...(options.afterEventId !== undefined ? { 'last-event-id': String(options.afterEventId) } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      throw new NoiseCfgError('CONNECTION_FAILED', `cannot reach the API at ${this.#baseUrl}: ${(error as Error).message}`, { cause: error });
    }
    if (!response.ok || !response.body) {
      const text = await response.text();
      throw apiError(response.status, text ? JSON.parse(text) : null);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!event || data === undefined) continue;
        // The event's name says which shape its data has (the route's response schema, SPEC.md §8).
        const value: unknown = JSON.parse(data);
        if (event === 'task') yield { type: 'task', task: value as TaskView };
        else if (event === 'end') {
          yield { type: 'end', task: value as TaskView };
          return;
        } else if (event === 'error') {
          throw apiError(response.status, value);
        } else if (event === 'change') yield { type: 'change', change: value as TaskChange };
        else if (event === 'progress') yield { type: 'progress', progress: value as TaskProgress };
      }
    }
    throw new NoiseCfgError('CONNECTION_TRUNCATED', 'the event stream ended before the task did');
  }
}

// The data directory's answer to an address is its own; through the API the server's advertised one is used.
function refuseAdvertise(advertise: AdvertisedAddress | undefined): void {
  if (advertise !== undefined) throw new NoiseCfgError('INVALID_ARGUMENT', 'advertise goes with the data directory; through the API the server uses its own address');
}

function apiError(status: number, body: unknown): NoiseCfgError {
  const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
  const given = error?.code;
  const code: ErrorCode = given !== undefined && given in ERROR_CODES ? (given as ErrorCode)
    : given !== undefined && given in API_ERROR_CODES ? API_ERROR_CODES[given as ApiErrorCode].reportedAs
      : status === 401 ? 'AUTHENTICATION_FAILED' : 'INVALID_ARGUMENT';
  return new NoiseCfgError(code, `the API answered ${status}: ${error?.message ?? 'no message'}`);
}

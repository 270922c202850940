// Helpers shared by the REST API and operator CLI tests: a TaskServer with the API on 127.0.0.1 port 0, an
// incremental reader of server-sent events, and CLI child processes whose output can be awaited (no sleeps).
import { join } from 'node:path';
import { startApiServer, type ApiServerOptions } from '../../lib/api/server.js';
import { pull, type PullResult } from '../../lib/task/client.js';
import { TaskServer } from '../../lib/task/server.js';
import { CLI_BIN } from '../support/paths.js';
import { spawnWatched, type CliProcess } from '../support/watched-process.js';

/** The subset of a tap Test these helpers use. */
export interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

/** A TaskServer with its REST API, both on 127.0.0.1 port 0. */
export interface RunningApi {
  server: TaskServer;
  /** `http://127.0.0.1:PORT` */
  base: string;
  adminToken: string;
  /** Headers with the bearer token (and a JSON content type when `hasBody`). */
  headers: (hasBody?: boolean) => Record<string, string>;
}

/** Starts a TaskServer and its API in `dataDir`; both stop in teardown (the API first). */
export async function startApi(t: Teardowns, dataDir: string, options: Partial<ApiServerOptions> = {}): Promise<RunningApi> {
  const server = new TaskServer({ dataDir, listen: { host: '127.0.0.1', port: 0 } });
  await server.start();
  t.teardown(() => server.stop(0));
  const api = await startApiServer({ admin: server.admin(), adminToken: server.dataDir.adminToken, ...options }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => api.app.close());
  const adminToken = server.dataDir.adminToken;
  return {
    server,
    base: `http://127.0.0.1:${api.port}`,
    adminToken,
    headers: (hasBody = false) => ({ authorization: `Bearer ${adminToken}`, ...(hasBody ? { 'content-type': 'application/json' } : {}) }),
  };
}

/** A body for POST /v1/tasks with text files. */
export function taskBody(files: Record<string, string>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { files: Object.entries(files).map(([path, text]) => ({ path, content: Buffer.from(text).toString('base64') })), ...extra };
}

/** Pulls with the library into `root/out-NAME`, with this client's identity in `root/id-NAME`. */
export function pullAs(root: string, name: string, token: string): Promise<PullResult> {
  return pull({ token, outDir: join(root, `out-${name}`), identityDir: join(root, `id-${name}`), name });
}

/** One server-sent event. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Reads an event stream block by block as it arrives. */
export class SseReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = '';
  #isDone = false;

  constructor(response: Response) {
    if (!response.body) throw new Error('the response has no body');
    this.#reader = response.body.getReader();
  }

  /** The next event (comment blocks skipped), or null once the server closed the stream. */
  async next(): Promise<SseEvent | null> {
    for (;;) {
      const boundary = this.#buffer.indexOf('\n\n');
      if (boundary !== -1) {
        const block = this.#buffer.slice(0, boundary);
        this.#buffer = this.#buffer.slice(boundary + 2);
        const event: Partial<SseEvent> = {};
        for (const line of block.split('\n')) {
          const match = /^(event|data|id): ?(.*)$/.exec(line);
          if (match) event[match[1] as keyof SseEvent] = match[2]!;
        }
        if (event.event !== undefined && event.data !== undefined) return event as SseEvent;
        continue;
      }
      if (this.#isDone) {
        if (this.#buffer.trim() !== '') throw new Error(`the stream ended inside an event: ${JSON.stringify(this.#buffer)}`);
        return null;
      }
      const { value, done } = await this.#reader.read();
      if (done) this.#isDone = true;
      else this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Events up to and including the first `end` one. Throws if the stream closes before it. */
  async untilEnd(): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    for (;;) {
      const event = await this.next();
      if (event === null) throw new Error(`the stream closed before an end event; got ${events.map((e) => e.event).join(', ')}`);
      events.push(event);
      if (event.event === 'end') return events;
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel().catch(() => undefined);
  }
}

/** Opens GET /v1/tasks/{id}/events; the stream is cancelled in teardown. */
export async function openEvents(t: Teardowns, api: RunningApi, id: string, headers: Record<string, string> = {}): Promise<{ response: Response; reader: SseReader }> {
  const response = await fetch(`${api.base}/v1/tasks/${id}/events`, { headers: { ...api.headers(), accept: 'text/event-stream', ...headers } });
  if (response.status !== 200) throw new Error(`events answered ${response.status}: ${await response.text()}`);
  const reader = new SseReader(response);
  t.teardown(() => reader.cancel());
  return { response, reader };
}

export type { CliProcess } from '../support/watched-process.js';

/** This process's environment without tap's child-process tracking (it only slows the CLI down), plus `extra`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_OPTIONS'];
  for (const key of Object.keys(env)) if (key.startsWith('_TAPJS_')) delete env[key];
  return { ...env, ...extra };
}

/** Spawns `command args` (the built CLI unless `command` is given); SIGKILLs it in teardown if still running. */
export function spawnProcess(t: Teardowns, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  return spawnWatched(t, command, args, { env: childEnv(env) });
}

export function spawnCli(t: Teardowns, args: readonly string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  return spawnProcess(t, process.execPath, [CLI_BIN, ...args], env);
}

/** Runs the built CLI to completion. */
export async function runCli(t: Teardowns, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnCli(t, args, env);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

/**
 * The update server (SPEC.md §4): a SecureServer whose connections speak the update protocol. Task state is
 * read from the store at each connection, so a `task cancel` or `revoke` from another process holds for the next
 * client. Results are acknowledged only after they are durable (group commit). One log line per connection.
 */
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import type { ChannelLimits } from '../transport/limits.js';
import type { SecureConnection } from '../transport/secure-connection.js';
import { SecureServer, type ChannelEvent } from '../transport/secure-server.js';
import { TaskAdmin } from './admin.js';
import { deriveTaskPsk, openDataDir, type DataDir } from './data-dir.js';
import { encodeMessage, expectMessage, UPDATE_PROTOCOL_VERSION, type Hello, type RejectReason, type UpdateMessage } from './messages.js';
import { saveAdvertisedAddress, defaultAdvertiseHost, type AdvertisedAddress } from './operator.js';
import { TaskStore, type ClientRecord, type TaskRecord } from './store.js';
import { taskState } from './task.js';
import { encodeChunks, TaskContentCache, taskContents } from './task-content.js';

/** Where to listen and what to do. */
export interface TaskServerOptions {
  dataDir: string;
  listen: { host: string; port: number };
  /** The address put in tokens; default: the listen address, or this machine's first IPv4 address for 0.0.0.0. */
  advertise?: AdvertisedAddress;
  limits?: Partial<ChannelLimits>;
  /** Receives one record per connection outcome; never holds a secret. */
  log?: (record: LogRecord) => void;
  now?: () => number;
  /** The software string sent nowhere but logged. */
  software?: string;
  /** Bytes of encoded task content kept in memory (default 64 MiB); a bigger task is read from the store per pull, one slice at a time. */
  contentCacheBytes?: number;
}

/** One log line's fields. */
export interface LogRecord {
  time: string;
  event: 'listening' | 'pull' | 'handshake-failed' | 'refused' | 'stopping' | 'stopped';
  remote?: string;
  task?: string;
  client?: string;
  identity?: string;
  outcome?: string;
  code?: ErrorCode;
  bytes?: number;
  ms?: number;
  message?: string;
  address?: string;
}

/** How long a server waits for RESULT while a client applies and runs its command, in milliseconds. */
export const DEFAULT_APPLY_TIMEOUT_MS = 30 * 60 * 1000;

/** A running update server. */
export class TaskServer {
  readonly #options: TaskServerOptions;
  readonly #now: () => number;
  #dataDir: DataDir | null = null;
  #store: TaskStore | null = null;
  #server: SecureServer | null = null;
  #address: { host: string; port: number } | null = null;
  readonly #slotHolders = new Map<string, Set<string>>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #psks = new Map<string, Buffer>();
  readonly #appliedIdentities = new Map<string, Set<string>>();
  readonly #contents: TaskContentCache;

  constructor(options: TaskServerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#contents = new TaskContentCache(options.contentCacheBytes);
  }

  /** The bound address, once started. */
  get address(): { host: string; port: number } {
    if (!this.#address) throw new NoiseCfgError('INVALID_ARGUMENT', 'the server is not started');
    return this.#address;
  }

  /** The open data directory, once started. */
  get dataDir(): DataDir {
    if (!this.#dataDir) throw new NoiseCfgError('INVALID_ARGUMENT', 'the server is not started');
    return this.#dataDir;
  }

  /** Operator access sharing this server's store (for the REST API). */
  admin(): TaskAdmin {
    return TaskAdmin.attach(this.dataDir, this.store, this.#now);
  }

  /** The store, once started. */
  get store(): TaskStore {
    if (!this.#store) throw new NoiseCfgError('INVALID_ARGUMENT', 'the server is not started');
    return this.#store;
  }

  /**
   * Creates the data directory and its keys on first start, opens and checks the store, and listens. Throws
   * DATA_DIR_INSECURE, STORE_CORRUPT or CONNECTION_FAILED.
   */
  async start(): Promise<{ host: string; port: number }> {
    this.#dataDir = openDataDir(this.#options.dataDir, { create: true });
    this.#store = TaskStore.open(this.#dataDir.databasePath, { check: true });
    const dataDir = this.#dataDir;
    const store = this.#store;
    this.#server = new SecureServer({
      staticKeyPair: dataDir.serverKeyPair,
      // The task read here, at the connection, is the one the pull is served from: one read per connection.
      resolveTask: (taskId) => {
        const task = store.getTask(taskId);
        return task ? { psk: this.#psk(taskId), mode: task.mode, context: task } : null;
      },
      onConnection: (connection) => this.#track(this.#serve(connection)),
      onEvent: (event) => this.#logChannelEvent(event),
      limits: { idleTimeoutMs: DEFAULT_APPLY_TIMEOUT_MS, ...this.#options.limits },
      now: this.#now,
    });
    try {
      const bound = await this.#server.listen(this.#options.listen.port, this.#options.listen.host);
      this.#address = { host: bound.address, port: bound.port };
    } catch (error) {
      this.#store.close();
      throw error;
    }
    const listenHost = this.#options.listen.host;
    const advertise = this.#options.advertise ?? {
      host: listenHost === '0.0.0.0' || listenHost === '::' ? defaultAdvertiseHost() : listenHost,
      port: this.#address.port,
    };
    saveAdvertisedAddress(dataDir, advertise);
    this.#log({ event: 'listening', address: `${this.#address.host}:${this.#address.port}`, message: `advertised as ${advertise.host}:${advertise.port}` });
    return this.#address;
  }

  /** Stops accepting, lets pulls in flight finish for up to `graceMs`, cuts the rest, and flushes the store. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#log({ event: 'stopping' });
    const server = this.#server;
    this.#server = null;
    if (server) {
      await server.close(graceMs);
      await Promise.allSettled([...this.#inFlight]);
    }
    this.#store?.close();
    this.#store = null;
    this.#log({ event: 'stopped' });
  }

  // Derived once per task: an HKDF per connection is work a stranger could make us repeat.
  #psk(taskId: string): Buffer {
    let psk = this.#psks.get(taskId);
    if (!psk) {
      if (this.#psks.size >= 10_000) this.#psks.clear();
      psk = deriveTaskPsk(this.dataDir.masterKey, taskId);
      this.#psks.set(taskId, psk);
    }
    return psk;
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  #log(fields: Omit<LogRecord, 'time'>): void {
    this.#options.log?.({ time: new Date(this.#now()).toISOString(), ...fields });
  }

  #logChannelEvent(event: ChannelEvent): void {
    if (event.event === 'authenticated') return;
    this.#log({
      event: event.event === 'refused' ? 'refused' : 'handshake-failed',
      remote: event.remoteAddress,
      ...(event.code ? { code: event.code } : {}),
      ...(event.message ? { message: event.message } : {}),
    });
  }

  #slots(taskId: string): Set<string> {
    let holders = this.#slotHolders.get(taskId);
    if (!holders) {
      holders = new Set(this.store.listClients(taskId).filter((client) => client.hasSlot).map((client) => client.identity));
      this.#slotHolders.set(taskId, holders);
    }
    return holders;
  }

  async #serve(connection: SecureConnection): Promise<void> {
    const started = this.#now();
    const taskId = connection.taskId!;
    const record: Omit<LogRecord, 'time'> = { event: 'pull', remote: connection.remoteAddress, task: taskId };
    let bytes = 0;
    try {
      const hello = expectMessage(await connection.receive(), ['HELLO']).body;
      record.client = hello.name;
      const outcome = await this.#negotiate(connection, taskId, hello, (sent) => {
        bytes += sent;
      }, record);
      record.outcome = outcome;
      await connection.close();
    } catch (error) {
      record.outcome = 'error';
      record.code = isNoiseCfgError(error) ? error.code : 'PROTOCOL_ERROR';
      record.message = (error as Error).message;
      connection.destroy();
    } finally {
      this.#log({ ...record, bytes, ms: this.#now() - started });
    }
  }

  async #send(connection: SecureConnection, message: UpdateMessage): Promise<void> {
    await connection.send(encodeMessage(message));
  }

  async #reject(connection: SecureConnection, reason: RejectReason, message: string): Promise<string> {
    await this.#send(connection, { type: 'REJECT', body: { reason, message } });
    return `rejected:${reason}`;
  }

  async #negotiate(connection: SecureConnection, taskId: string, hello: Hello, countBytes: (sent: number) => void, record: Omit<LogRecord, 'time'>): Promise<string> {
    const store = this.store;
    if (hello.protocol !== UPDATE_PROTOCOL_VERSION) {
      return this.#reject(connection, 'unsupported-version', `this server speaks update protocol ${UPDATE_PROTOCOL_VERSION}, the client ${hello.protocol}`);
    }
    let identity: string;
    if (connection.mode === 'xxpsk3') {
      identity = connection.remoteStaticKey!.toString('hex');
    } else {
      if (hello.clientId === null) return this.#reject(connection, 'bad-request', 'nnpsk0 clients must send a clientId');
      identity = hello.clientId;
    }
    record.identity = identity.slice(0, 16);
    const task = connection.taskContext as TaskRecord;
    const now = this.#now();
    const state = taskState(task, now);
    if (state === 'expired') return this.#reject(connection, 'expired', `the task expired at ${new Date(task.expiresAt).toISOString()}`);
    if (state === 'cancelled') return this.#reject(connection, 'cancelled', 'the task was cancelled');
    const existing = store.getClient(taskId, identity);
    if (existing?.state === 'revoked') return this.#reject(connection, 'revoked', 'this client was revoked from the task');

    if (hello.intent === 'check') {
      await this.#send(connection, { type: 'CHECKED', body: { state: 'active', files: task.fileCount, totalBytes: task.totalBytes, expiresAt: new Date(task.expiresAt).toISOString() } });
      return 'checked';
    }
    const client: ClientRecord = existing ?? {
      taskId, identity, name: hello.name, remoteAddress: connection.remoteAddress, state: 'connected',
      firstSeenAt: now, updatedAt: now, exitCode: null, message: null, appliedDigest: null, hasSlot: false,
    };
    client.name = hello.name;
    client.remoteAddress = connection.remoteAddress;
    const hasApplied = (existing?.state === 'applied' && existing.appliedDigest === task.digest) || hello.have === task.digest;
    if (hasApplied) {
      // Durable before the answer: a client told it is up to date never reports again.
      if (existing?.state !== 'applied') {
        await this.#saveApplied(task, { ...client, state: 'applied', updatedAt: now, appliedDigest: task.digest, message: 'already held the files' }, null);
      }
      await this.#send(connection, { type: 'UP_TO_DATE', body: { digest: task.digest } });
      return 'up-to-date';
    }
    if (state === 'completed') return this.#reject(connection, 'completed', 'the task is complete: every expected client has applied it');
    const slots = this.#slots(taskId);
    if (task.maxClients !== null && !slots.has(identity) && slots.size >= task.maxClients) {
      return this.#reject(connection, 'full', `the task is full: ${task.maxClients} clients already took it`);
    }
    const content = this.#contents.get(task, store);
    if (hello.intent === 'dry-run') {
      await connection.send(content.dryRunOffer);
      return 'dry-run';
    }
    slots.add(identity);
    // Not awaited: the offer need not be durable before the files go out; a store failure is logged.
    store.saveClient({ ...client, state: 'offered', updatedAt: now, hasSlot: true }).catch((error: Error) => {
      this.#log({ event: 'pull', task: taskId, outcome: 'store-error', code: 'STORE_CORRUPT', message: error.message });
    });
    await connection.send(content.offer);
    // A task too big for the content cache is read from the store one slice at a time as its CHUNKs go out, so a
    // pull holds about one slice whatever the task's size.
    for (const chunk of content.chunks ?? encodeChunks(taskContents(task, content.files, store))) {
      await connection.send(chunk);
      countBytes(chunk.byteLength - 1);
    }

    const result = expectMessage(await connection.receive(), ['RESULT']).body;
    const at = this.#now();
    const isApplied = result.status === 'applied' && result.digest === task.digest;
    const outcome: ClientRecord = {
      ...client, state: isApplied ? 'applied' : 'failed', updatedAt: at, hasSlot: true,
      exitCode: result.exitCode, message: result.message, appliedDigest: isApplied ? task.digest : client.appliedDigest,
    };
    if (isApplied) await this.#saveApplied(task, outcome, result.message);
    else await store.saveClient(outcome, result.message);
    // The ACK goes out only now: the result above is committed and fsynced.
    await this.#send(connection, { type: 'ACK', body: { status: isApplied ? 'applied' : 'failed' } });
    return isApplied ? 'applied' : 'failed';
  }

  // Saves an applied client and, when it is the last one maxClients waits for, completes the task in the same
  // group commit, so both are durable before the client hears back. Who has applied is counted in memory (as
  // slots are), because writes of concurrent clients are still queued when the decision is made.
  async #saveApplied(task: TaskRecord, client: ClientRecord, detail: string | null): Promise<void> {
    const writes = [this.store.saveClient(client, detail)];
    if (task.maxClients !== null) {
      let applied = this.#appliedIdentities.get(task.id);
      if (!applied) {
        applied = new Set(this.store.listClients(task.id).filter((other) => other.state === 'applied' && other.appliedDigest === task.digest).map((other) => other.identity));
        this.#appliedIdentities.set(task.id, applied);
      }
      const wasCounted = applied.size >= task.maxClients;
      applied.add(client.identity);
      if (!wasCounted && applied.size >= task.maxClients) writes.push(this.store.completeTask(task.id, client.updatedAt));
    }
    await Promise.all(writes);
  }
}

/**
 * The update server (SPEC.md §4.6, §4.8): a SecureServer whose connections speak the update protocol, with its
 * data directory, lock, store, caches and retention sweep. Each connection is served by pull-session.ts; the task
 * and client state is read from the store at HELLO and again at RESULT, so a `task cancel` or `revoke` from
 * another process holds even for sessions already open. Results are acknowledged only after they are durable
 * (group commit). One log line per connection.
 */
import { isNoiseCfgError, NoiseCfgError } from '../errors.js';
import { SecureServer } from '../transport/index.js';
import { TaskAdmin } from './admin.js';
import { TaskCaches } from './caches.js';
import { dataDirFailure, deriveTaskPsk, openDataDir, prepareDataDir, type DataDir } from './data-dir.js';
import { DataDirLock } from './data-dir-lock.js';
import { MAX_CLIENT_MESSAGE_BYTES } from './messages.js';
import { saveAdvertisedAddress, defaultAdvertiseHost } from './operator.js';
import { serveSession } from './pull-session.js';
import { sweepEndedTasks } from './retention.js';
import { serverSettings, type ServerSettings, type TaskServerOptions } from './server-options.js';
import { ServerLog } from './server-log.js';
import type { SessionContext } from './session.js';
import { SessionCounter } from './session-limits.js';
import { openTaskStore } from './open-store.js';
import { hasProcessLiveness, type ProcessLiveness, type TaskStoreContract } from './store-contract.js';
import { NODE_ID_LENGTH, newServedBy, nodeId, restartScope } from './served-by.js';

export {
  DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_CLIENTS_PER_TASK, DEFAULT_MAX_SESSION_MS, DEFAULT_MAX_SESSIONS_PER_IDENTITY,
  DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_SESSIONS_PER_TASK, DEFAULT_RESULT_TIMEOUT_MS, DEFAULT_RETAIN_MS, DEFAULT_SILENT_PROCESS_MS, DEFAULT_SWEEP_INTERVAL_MS,
  TRANSFER_PROGRESS_INTERVAL_MS, type LogRecord, type TaskServerOptions,
} from './server-options.js';

/** The detail of the event that marks a client interrupted because the server it was receiving from ended. */
export const LOST_AT_RESTART = 'the server restarted while this client was receiving';
/** The detail of the event that marks a client interrupted because the process serving it went silent. */
export const LOST_SILENT_PROCESS = 'the server process serving this client stopped answering (no heartbeat)';

/** A running update server. */
export class TaskServer {
  readonly #options: TaskServerOptions;
  readonly #now: () => number;
  readonly #settings: ServerSettings;
  readonly #log: ServerLog;
  readonly #sessionsPerTask: SessionCounter;
  readonly #sessionsPerIdentity: SessionCounter;
  readonly #inFlight = new Set<Promise<void>>();
  #sweepTimer: NodeJS.Timeout | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #dataDir: DataDir | null = null;
  #lock: DataDirLock | null = null;
  #store: TaskStoreContract | null = null;
  #caches: TaskCaches | null = null;
  #server: SecureServer | null = null;
  #address: { host: string; port: number } | null = null;

  /** Throws INVALID_ARGUMENT naming an option that is not a whole number >= 1. */
  constructor(options: TaskServerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#settings = serverSettings(options);
    this.#log = new ServerLog(options.log, this.#now);
    this.#sessionsPerTask = new SessionCounter(this.#settings.maxSessionsPerTask);
    this.#sessionsPerIdentity = new SessionCounter(this.#settings.maxSessionsPerIdentity);
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
    return TaskAdmin.attach(this.dataDir, this.store, this.#now, (taskId) => this.#caches?.forgetTask(taskId));
  }

  /** The store, once started. */
  get store(): TaskStoreContract {
    if (!this.#store) throw new NoiseCfgError('INVALID_ARGUMENT', 'the server is not started');
    return this.#store;
  }

  /** Sessions of `taskId` open now: authenticated connections whose sockets have not closed yet. */
  openSessionsOf(taskId: string): number {
    return this.#sessionsPerTask.openOf(taskId);
  }

  /**
   * Creates the data directory on first start and locks it (a second server on it fails here, before it reads a
   * key, opens the database or writes server.json), then makes or reads its keys, opens and checks the store, and
   * listens. Throws DATA_DIR_LOCKED, DATA_DIR_INSECURE, DATA_DIR_UNAVAILABLE, STORE_CORRUPT, STORE_UNAVAILABLE or
   * CONNECTION_FAILED; on any of them the lock is released.
   */
  async start(): Promise<{ host: string; port: number }> {
    const worker = this.#options.worker;
    // A worker's primary holds the lock and made the directory; a worker opens what is there.
    let lock: DataDirLock | null = null;
    if (!worker) {
      prepareDataDir(this.#options.dataDir, { create: true });
      lock = DataDirLock.acquire(this.#options.dataDir, `${this.#options.listen.host}:${this.#options.listen.port}`);
      this.#lock = lock;
    }
    try {
      return await this.#startLocked(lock, worker?.servedBy ?? newServedBy(nodeId(this.#options.dataDir)));
    } catch (error) {
      await this.#store?.close();
      this.#store = null;
      lock?.release();
      this.#lock = null;
      throw error;
    }
  }

  // `lock`: null in a worker, whose primary holds it. `servedBy` names this process in the client records.
  async #startLocked(lock: DataDirLock | null, servedBy: string): Promise<{ host: string; port: number }> {
    const dataDir = openDataDir(this.#options.dataDir, { create: lock !== null });
    this.#dataDir = dataDir;
    // A worker's primary checked the store before it started any worker.
    const store = await openTaskStore(this.#options.store, dataDir, {
      check: lock !== null, servedBy, ...(this.#options.env ? { env: this.#options.env } : {}),
    });
    this.#store = store;
    const caches = new TaskCaches({
      source: store, derivePsk: (taskId) => deriveTaskPsk(dataDir.masterKey, taskId),
      ...(this.#options.contentCacheBytes === undefined ? {} : { bounds: { contentBytes: this.#options.contentCacheBytes } }),
    });
    this.#caches = caches;
    // The lock says no other server runs on this data directory: a client still receiving by the store's record
    // lost its session when the previous server ended. A worker's siblings are serving theirs.
    const lostSessions = lock ? await store.interruptLostSessions(this.#now(), LOST_AT_RESTART, restartScope(this.#options.store, servedBy.slice(0, NODE_ID_LENGTH))) : 0;
    const context: SessionContext = {
      store, caches, settings: this.#settings, log: this.#log, now: this.#now,
      sessionsPerTask: this.#sessionsPerTask, sessionsPerIdentity: this.#sessionsPerIdentity,
    };
    this.#server = new SecureServer({
      staticKeyPair: dataDir.serverKeyPair,
      // Only the mode and the PSK are needed here; the task's state is read again at HELLO.
      resolveTask: (taskId) => caches.keyFor(taskId),
      onConnection: (connection) => this.#track(serveSession(context, connection)),
      onEvent: (event) => this.#log.channelEvent(event),
      // The largest client message is a HELLO or a RESULT: a client that sends more is cut off as its fragments pass
      // that size, not after it made the server hold 64 MiB. Between the last CHUNK and RESULT the client is silent
      // for as long as it applies, so the idle limit is the RESULT deadline.
      limits: { idleTimeoutMs: this.#settings.resultTimeoutMs, maxReceiveMessageBytes: MAX_CLIENT_MESSAGE_BYTES, ...this.#options.limits },
      now: this.#now,
    });
    if (hasProcessLiveness(store)) {
      // Alive before it serves, so that no other process takes a session of its for one of a silent process.
      await store.markAlive();
      this.#heartbeatTimer = setInterval(() => void this.#heartbeat(store), this.#settings.heartbeatMs).unref();
    }
    const bound = await this.#server.listen(this.#options.listen.port, this.#options.listen.host);
    this.#address = { host: bound.address, port: bound.port };
    lock?.updateAddress(`${this.#address.host}:${this.#address.port}`);
    const advertise = await this.#advertise(dataDir);
    this.#logListening(advertise, lostSessions);
    if (this.#settings.retainMs !== null && (this.#options.worker?.sweeps ?? true)) {
      void this.sweep();
      // unref: the sweep alone never keeps a process alive.
      this.#sweepTimer = setInterval(() => void this.sweep(), this.#settings.sweepIntervalMs).unref();
    }
    return this.#address;
  }

  // Writes the address tokens carry to server.json; on failure the listener is closed again.
  async #advertise(dataDir: DataDir): Promise<{ host: string; port: number }> {
    const listenHost = this.#options.listen.host;
    const advertise = this.#options.advertise ?? {
      host: listenHost === '0.0.0.0' || listenHost === '::' ? defaultAdvertiseHost() : listenHost,
      port: this.address.port,
    };
    try {
      saveAdvertisedAddress(dataDir, advertise);
    } catch (error) {
      await this.#server?.close(0);
      this.#server = null;
      throw dataDirFailure(error, `${dataDir.path}/server.json`, 'write');
    }
    return advertise;
  }

  #logListening(advertise: { host: string; port: number }, lostSessions: number): void {
    const caps = this.#server!.connectionCaps;
    // Said once at start: an operator whose open-files limit shrank the caps learns it here, not from refusals.
    const lowered = caps.isLoweredForOpenFiles ? `, lowered to fit the open-files limit of ${caps.openFilesLimit} (raise it with ulimit -n or LimitNOFILE=)` : '';
    const lost = lostSessions > 0 ? `; ${lostSessions} session(s) a previous run left open are now interrupted` : '';
    this.#log.log({ event: 'listening', address: `${this.address.host}:${this.address.port}`, message: `advertised as ${advertise.host}:${advertise.port}; at most ${caps.maxUnauthenticatedConnections} connections in the handshake and ${caps.maxEstablishedConnections} established${lowered}${lost}` });
  }

  /**
   * The retention sweep: deletes every task that ended more than `retainMs` ago (records and content), gives the
   * space back, and logs one `retention` line when it removed any. Runs at start and every `sweepIntervalMs`;
   * a failure is logged, never thrown. Resolves to how many tasks it removed.
   */
  async sweep(): Promise<number> {
    if (this.#settings.retainMs === null || !this.#store || !this.#caches) return 0;
    return sweepEndedTasks(this.admin(), this.#settings.retainMs, this.#log);
  }

  // Says this process is alive, then marks the sessions of any process silent for too long interrupted (one that
  // died on a machine where nothing of noise-cfg is left to notice). A failure is logged; the next beat tries again.
  async #heartbeat(store: TaskStoreContract & ProcessLiveness): Promise<void> {
    try {
      await store.markAlive();
      const lost = await store.interruptSilentProcesses(this.#settings.silentProcessMs, this.#now(), LOST_SILENT_PROCESS);
      if (lost.processes > 0) {
        this.#log.log({ event: 'process-lost', count: lost.sessions, message: `${lost.processes} server process(es) silent for ${this.#settings.silentProcessMs / 1000} s are taken for dead; ${lost.sessions} of their session(s) are now interrupted` });
      }
    } catch (error) {
      this.#log.log({ event: 'process-lost', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: `the heartbeat failed: ${(error as Error).message}` });
    }
  }

  /** Stops accepting, lets pulls in flight finish for up to `graceMs`, cuts the rest, and flushes the store. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#log.log({ event: 'stopping' });
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
    const server = this.#server;
    this.#server = null;
    if (server) {
      await server.close(graceMs);
      await Promise.allSettled([...this.#inFlight]);
    }
    this.#log.flush();
    // A clean stop leaves no process for the others to take for dead.
    if (this.#store && hasProcessLiveness(this.#store)) await this.#store.forgetProcess().catch(() => undefined);
    await this.#store?.close();
    this.#store = null;
    this.#caches = null;
    // Last: until the store is closed, another server must not open it.
    this.#lock?.release();
    this.#lock = null;
    this.#log.log({ event: 'stopped' });
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }
}

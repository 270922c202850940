/**
 * The update server (SPEC.md §4.6, §4.8): a SecureServer whose connections speak the update protocol. Task and
 * client state is read from the store at HELLO and again at RESULT, so a `task cancel` or `revoke` from another
 * process holds even for sessions already open. Token holders are bounded: what a client may send, how long each
 * step may take, how many sessions a task and an identity may hold, and how many identities a task records.
 * Results are acknowledged only after they are durable (group commit). One log line per connection.
 */
import { NoiseCfgError, isNoiseCfgError, type ErrorCode } from '../errors.js';
import { RateLimitedLog, SecureServer, type ChannelEvent, type ChannelLimits, type SecureConnection } from '../transport/index.js';
import { TaskAdmin } from './admin.js';
import { dataDirFailure, deriveTaskPsk, openDataDir, prepareDataDir, type DataDir } from './data-dir.js';
import { DataDirLock } from './data-dir-lock.js';
import {
  encodeMessage, expectMessage, MAX_CLIENT_MESSAGE_BYTES, MAX_REJECT_MESSAGE_LENGTH, type Hello, type MessageType, type RejectReason,
  type UpdateMessage,
} from './messages.js';
import { saveAdvertisedAddress, defaultAdvertiseHost, type AdvertisedAddress } from './operator.js';
import { TaskStore, type ClientRecord, type TaskRecord } from './store.js';
import { identifyHello, negotiate } from './negotiate.js';
import { encodeChunks, TaskContentCache, taskContents } from './task-content.js';

/** Where to listen and what to do. */
export interface TaskServerOptions {
  dataDir: string;
  listen: { host: string; port: number };
  /** The address put in tokens; default: the listen address, or this machine's first IPv4 address for 0.0.0.0. */
  advertise?: AdvertisedAddress;
  /**
   * Channel limits. By default the server accepts client messages of at most MAX_CLIENT_MESSAGE_BYTES
   * (`maxReceiveMessageBytes`) and closes a connection idle for `resultTimeoutMs` (`idleTimeoutMs`).
   */
  limits?: Partial<ChannelLimits>;
  /** Receives one record per connection outcome; never holds a secret. */
  log?: (record: LogRecord) => void;
  now?: () => number;
  /** The software string sent nowhere but logged. */
  software?: string;
  /** Bytes of encoded task content kept in memory (default 64 MiB); a bigger task is read from the store per pull, one slice at a time. */
  contentCacheBytes?: number;
  /** HELLO must arrive within this many milliseconds of the session's start (READY), whatever else arrives (default 10 000). */
  helloTimeoutMs?: number;
  /** RESULT must arrive within this many milliseconds after the last CHUNK went out (default 600 000: the client applies and runs its command). */
  resultTimeoutMs?: number;
  /** A session ends this many milliseconds after it started, whatever happens (default 3 600 000). */
  maxSessionMs?: number;
  /** Sessions of one task open at once (default 1024); one more gets REJECT `busy`. */
  maxSessionsPerTask?: number;
  /** Sessions of one identity in one task open at once (default 4); one more gets REJECT `busy`. */
  maxSessionsPerIdentity?: number;
  /**
   * Identities a task without maxClients records, at most (default 10 000); a new one past it gets REJECT `full`.
   * A task with maxClients records at most that many.
   */
  maxClientsPerTask?: number;
  /**
   * How long a task is kept after it ended, in milliseconds (default 7 days, DEFAULT_RETAIN_MS); null keeps every
   * task forever. A sweep at start and every `sweepIntervalMs` deletes the tasks ended longer ago, records and
   * content, as `task prune` does.
   */
  retainMs?: number | null;
  /** How often the retention sweep runs, in milliseconds (default 1 hour). */
  sweepIntervalMs?: number;
}

/** One log line's fields. */
export interface LogRecord {
  time: string;
  event: 'listening' | 'pull' | 'handshake-failed' | 'refused' | 'retention' | 'stopping' | 'stopped';
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
  /** For a summary of refusals logged at a bounded rate: how many refusals this line stands for. */
  count?: number;
}

/** How long a server waits for HELLO after READY, in milliseconds. */
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/**
 * How often a transfer's progress is saved for `task watch`, in milliseconds: a transfer shorter than this writes
 * none, a long one one small row a second.
 */
export const TRANSFER_PROGRESS_INTERVAL_MS = 1000;

/** How long a server waits for RESULT after the last CHUNK while a client applies and runs its command, in milliseconds. */
export const DEFAULT_RESULT_TIMEOUT_MS = 10 * 60 * 1000;
/** The longest a session may last, in milliseconds. */
export const DEFAULT_MAX_SESSION_MS = 60 * 60 * 1000;
/** Sessions of one task open at once, by default. */
export const DEFAULT_MAX_SESSIONS_PER_TASK = 1024;
/** Sessions of one identity in one task open at once, by default. */
export const DEFAULT_MAX_SESSIONS_PER_IDENTITY = 4;
/** How long a server keeps a task after it ended, by default: 7 days, in milliseconds. */
export const DEFAULT_RETAIN_MS = 7 * 24 * 60 * 60 * 1000;
/** How often the retention sweep runs by default, in milliseconds. */
export const DEFAULT_SWEEP_INTERVAL_MS = 60 * 60 * 1000;
/** Identities recorded for a task without maxClients, by default. */
export const DEFAULT_MAX_CLIENTS_PER_TASK = 10_000;
/**
 * After the server's END, how long the peer has to close its side before the socket is destroyed, in
 * milliseconds: a peer that never answers must not keep a descriptor and a session count.
 */
const END_WAIT_MS = 10_000;

/** Outcomes that strangers with a token can cause at any rate: they are logged through a RateLimitedLog. */
const RATE_LIMITED_OUTCOMES = new Set(['rejected:busy', 'rejected:full']);

function checkPositive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new NoiseCfgError('INVALID_ARGUMENT', `${name} must be a whole number >= 1, got ${String(value)}`);
  return value;
}

/** The per-connection state of one update session. */
interface Session {
  connection: SecureConnection;
  taskId: string;
  /** The connection's log line so far. */
  record: Omit<LogRecord, 'time'>;
  identityKey: string | null;
  /** Set when a deadline ended the session: the code logged, whatever error the aborted step threw. */
  timeout: NoiseCfgError | null;
  lifetimeTimer: NodeJS.Timeout;
}

/** A running update server. */
export class TaskServer {
  readonly #options: TaskServerOptions;
  readonly #now: () => number;
  readonly #helloTimeoutMs: number;
  readonly #resultTimeoutMs: number;
  readonly #maxSessionMs: number;
  readonly #maxSessionsPerTask: number;
  readonly #maxSessionsPerIdentity: number;
  readonly #maxClientsPerTask: number;
  readonly #retainMs: number | null;
  readonly #sweepIntervalMs: number;
  #sweepTimer: NodeJS.Timeout | null = null;
  #dataDir: DataDir | null = null;
  #lock: DataDirLock | null = null;
  #store: TaskStore | null = null;
  #server: SecureServer | null = null;
  #address: { host: string; port: number } | null = null;
  readonly #slotHolders = new Map<string, Set<string>>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #psks = new Map<string, Buffer>();
  readonly #appliedIdentities = new Map<string, Set<string>>();
  readonly #contents: TaskContentCache;
  /** Open sessions by task id, and by task id + identity; a session counts until its socket has closed. */
  readonly #sessionsPerTask = new Map<string, number>();
  readonly #sessionsPerIdentity = new Map<string, number>();
  readonly #refusals: RateLimitedLog<LogRecord>;

  /** Throws INVALID_ARGUMENT naming an option that is not a whole number >= 1. */
  constructor(options: TaskServerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#contents = new TaskContentCache(options.contentCacheBytes);
    this.#helloTimeoutMs = checkPositive('helloTimeoutMs', options.helloTimeoutMs, DEFAULT_HELLO_TIMEOUT_MS);
    this.#resultTimeoutMs = checkPositive('resultTimeoutMs', options.resultTimeoutMs, DEFAULT_RESULT_TIMEOUT_MS);
    this.#maxSessionMs = checkPositive('maxSessionMs', options.maxSessionMs, DEFAULT_MAX_SESSION_MS);
    this.#maxSessionsPerTask = checkPositive('maxSessionsPerTask', options.maxSessionsPerTask, DEFAULT_MAX_SESSIONS_PER_TASK);
    this.#maxSessionsPerIdentity = checkPositive('maxSessionsPerIdentity', options.maxSessionsPerIdentity, DEFAULT_MAX_SESSIONS_PER_IDENTITY);
    this.#maxClientsPerTask = checkPositive('maxClientsPerTask', options.maxClientsPerTask, DEFAULT_MAX_CLIENTS_PER_TASK);
    if (options.retainMs !== undefined && options.retainMs !== null && (!Number.isSafeInteger(options.retainMs) || options.retainMs < 0)) {
      throw new NoiseCfgError('INVALID_ARGUMENT', `retainMs must be a whole number of milliseconds >= 0 or null, got ${String(options.retainMs)}`);
    }
    this.#retainMs = options.retainMs === undefined ? DEFAULT_RETAIN_MS : options.retainMs;
    this.#sweepIntervalMs = checkPositive('sweepIntervalMs', options.sweepIntervalMs, DEFAULT_SWEEP_INTERVAL_MS);
    this.#refusals = new RateLimitedLog<LogRecord>({
      emit: (record) => this.#options.log?.(record),
      summarize: (last, count) => ({
        ...last, time: new Date(this.#now()).toISOString(), count,
        message: `${count} more refusal(s) like this in the last second, the latest: ${last.message ?? ''}`,
      }),
    });
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

  /** Sessions of `taskId` open now: authenticated connections whose sockets have not closed yet. */
  openSessionsOf(taskId: string): number {
    return this.#sessionsPerTask.get(taskId) ?? 0;
  }

  /**
   * Creates the data directory on first start and locks it (a second server on it fails here, before it reads a
   * key, opens the database or writes server.json), then makes or reads its keys, opens and checks the store, and
   * listens. Throws DATA_DIR_LOCKED, DATA_DIR_INSECURE, DATA_DIR_UNAVAILABLE, STORE_CORRUPT, STORE_UNAVAILABLE or
   * CONNECTION_FAILED; on any of them the lock is released.
   */
  async start(): Promise<{ host: string; port: number }> {
    prepareDataDir(this.#options.dataDir, { create: true });
    const lock = DataDirLock.acquire(this.#options.dataDir, `${this.#options.listen.host}:${this.#options.listen.port}`);
    this.#lock = lock;
    try {
      return await this.#startLocked(lock);
    } catch (error) {
      this.#store?.close();
      this.#store = null;
      lock.release();
      this.#lock = null;
      throw error;
    }
  }

  async #startLocked(lock: DataDirLock): Promise<{ host: string; port: number }> {
    this.#dataDir = openDataDir(this.#options.dataDir, { create: true });
    this.#store = TaskStore.open(this.#dataDir.databasePath, { check: true });
    const dataDir = this.#dataDir;
    const store = this.#store;
    // The lock says no other server runs here: a client still receiving by the store's record lost its session
    // when the previous server ended.
    const lostSessions = store.interruptLostSessions(this.#now(), 'the server restarted while this client was receiving');
    this.#server = new SecureServer({
      staticKeyPair: dataDir.serverKeyPair,
      // Only the mode and the PSK are needed here; the task's state is read again at HELLO.
      resolveTask: (taskId) => {
        const task = store.getTask(taskId);
        return task ? { psk: this.#psk(taskId), mode: task.mode } : null;
      },
      onConnection: (connection) => this.#track(this.#serve(connection)),
      onEvent: (event) => this.#logChannelEvent(event),
      // The largest client message is a HELLO or a RESULT: a client that sends more is cut off as its fragments pass
      // that size, not after it made the server hold 64 MiB. Between the last CHUNK and RESULT the client is silent
      // for as long as it applies, so the idle limit is the RESULT deadline.
      limits: { idleTimeoutMs: this.#resultTimeoutMs, maxReceiveMessageBytes: MAX_CLIENT_MESSAGE_BYTES, ...this.#options.limits },
      now: this.#now,
    });
    const bound = await this.#server.listen(this.#options.listen.port, this.#options.listen.host);
    this.#address = { host: bound.address, port: bound.port };
    lock.updateAddress(`${this.#address.host}:${this.#address.port}`);
    const listenHost = this.#options.listen.host;
    const advertise = this.#options.advertise ?? {
      host: listenHost === '0.0.0.0' || listenHost === '::' ? defaultAdvertiseHost() : listenHost,
      port: this.#address.port,
    };
    try {
      saveAdvertisedAddress(dataDir, advertise);
    } catch (error) {
      await this.#server.close(0);
      this.#server = null;
      throw dataDirFailure(error, `${dataDir.path}/server.json`, 'write');
    }
    const caps = this.#server.connectionCaps;
    // Said once at start: an operator whose open-files limit shrank the caps learns it here, not from refusals.
    const lowered = caps.isLoweredForOpenFiles ? `, lowered to fit the open-files limit of ${caps.openFilesLimit} (raise it with ulimit -n or LimitNOFILE=)` : '';
    const lost = lostSessions > 0 ? `; ${lostSessions} session(s) a previous run left open are now interrupted` : '';
    this.#log({ event: 'listening', address: `${this.#address.host}:${this.#address.port}`, message: `advertised as ${advertise.host}:${advertise.port}; at most ${caps.maxUnauthenticatedConnections} connections in the handshake and ${caps.maxEstablishedConnections} established${lowered}${lost}` });
    if (this.#retainMs !== null) {
      this.sweep();
      // unref: the sweep alone never keeps a process alive.
      this.#sweepTimer = setInterval(() => this.sweep(), this.#sweepIntervalMs).unref();
    }
    return this.#address;
  }

  /**
   * The retention sweep: deletes every task that ended more than `retainMs` ago (records and content), gives the
   * space back, and logs one `retention` line when it removed any. Runs at start and every `sweepIntervalMs`;
   * a failure is logged, not thrown. Returns how many tasks it removed.
   */
  sweep(): number {
    if (this.#retainMs === null || !this.#store) return 0;
    try {
      const pruned = this.admin().pruneTasks({ endedBeforeMs: this.#retainMs });
      for (const task of pruned.tasks) {
        this.#slotHolders.delete(task.id);
        this.#appliedIdentities.delete(task.id);
        this.#psks.delete(task.id);
      }
      if (pruned.tasks.length > 0) {
        this.#log({ event: 'retention', bytes: pruned.freedBytes, count: pruned.tasks.length, message: `removed ${pruned.tasks.length} task(s) that ended more than ${Math.round(this.#retainMs / 1000)} s ago (${pruned.freedBytes} bytes of content); database ${pruned.databaseBytes.before} -> ${pruned.databaseBytes.after} bytes` });
      }
      return pruned.tasks.length;
    } catch (error) {
      this.#log({ event: 'retention', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: `the retention sweep failed: ${(error as Error).message}` });
      return 0;
    }
  }

  /** Stops accepting, lets pulls in flight finish for up to `graceMs`, cuts the rest, and flushes the store. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#log({ event: 'stopping' });
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    const server = this.#server;
    this.#server = null;
    if (server) {
      await server.close(graceMs);
      await Promise.allSettled([...this.#inFlight]);
    }
    this.#refusals.flush();
    this.#store?.close();
    this.#store = null;
    // Last: until the store is closed, another server must not open it.
    this.#lock?.release();
    this.#lock = null;
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
      ...(event.count !== undefined ? { count: event.count } : {}),
    });
  }

  #slots(taskId: string): Set<string> {
    let holders = this.#slotHolders.get(taskId);
    if (!holders) {
      holders = new Set(this.store.listClients(taskId).filter((client) => client.hasSlot || client.state === 'applied').map((client) => client.identity));
      this.#slotHolders.set(taskId, holders);
    }
    return holders;
  }

  // Counts a session in `counts` under `key` until its socket closes. Returns false, counting nothing, at `limit`.
  #countSession(counts: Map<string, number>, key: string, limit: number, connection: SecureConnection): boolean {
    const open = counts.get(key) ?? 0;
    if (open >= limit) return false;
    counts.set(key, open + 1);
    connection.onClose(() => {
      const left = (counts.get(key) ?? 1) - 1;
      if (left <= 0) counts.delete(key);
      else counts.set(key, left);
    });
    return true;
  }

  // Ends the session with SESSION_TIMEOUT: pending reads reject with it and pending sends fail.
  #timeOut(session: Session, message: string): void {
    if (session.timeout !== null) return;
    session.timeout = new NoiseCfgError('SESSION_TIMEOUT', message);
    session.connection.destroy(session.timeout);
  }

  // The next message, undecoded (null: the peer ended), which must arrive within `timeoutMs` of now whatever else
  // arrives (control records do not move this deadline).
  async #receiveWithin(session: Session, expected: MessageType, timeoutMs: number, what: string): Promise<Buffer | null> {
    const timer = setTimeout(() => this.#timeOut(session, `no ${expected} within ${timeoutMs} ms ${what}`), timeoutMs);
    try {
      return await session.connection.receive();
    } finally {
      clearTimeout(timer);
    }
  }

  async #serve(connection: SecureConnection): Promise<void> {
    const started = this.#now();
    const taskId = connection.taskId!;
    const session: Session = {
      connection, taskId, record: { event: 'pull', remote: connection.remoteAddress, task: taskId }, identityKey: null, timeout: null,
      lifetimeTimer: setTimeout(() => this.#timeOut(session, `the session reached its maximum lifetime of ${this.#maxSessionMs} ms`), this.#maxSessionMs),
    };
    connection.onClose(() => clearTimeout(session.lifetimeTimer));
    const record = session.record;
    let bytes = 0;
    try {
      record.outcome = await this.#negotiate(session, (sent) => {
        bytes += sent;
      });
      // A peer that neither reads our END nor closes its side must not keep the socket and its session counts.
      const endWait = setTimeout(() => connection.destroy(), END_WAIT_MS);
      connection.onClose(() => clearTimeout(endWait));
      await Promise.race([connection.close(), connection.waitClosed()]);
    } catch (error) {
      const failure = session.timeout ?? error;
      record.outcome = 'error';
      record.code = isNoiseCfgError(failure) ? failure.code : 'PROTOCOL_ERROR';
      record.message = (failure as Error).message;
      connection.destroy();
    } finally {
      const line: LogRecord = { time: new Date(this.#now()).toISOString(), ...record, bytes, ms: this.#now() - started };
      if (record.outcome !== undefined && RATE_LIMITED_OUTCOMES.has(record.outcome)) this.#refusals.report(record.outcome, line);
      else this.#options.log?.(line);
    }
  }

  async #send(connection: SecureConnection, message: UpdateMessage): Promise<void> {
    await connection.send(encodeMessage(message));
  }

  // The reason goes into the log line too; a busy refusal carries the code the client will report.
  async #reject(session: Session, reason: RejectReason, message: string): Promise<string> {
    if (reason === 'busy') session.record.code = 'TOO_MANY_CONNECTIONS';
    session.record.message = message;
    await this.#send(session.connection, { type: 'REJECT', body: { reason, message } });
    return `rejected:${reason}`;
  }

  #busyForIdentity(session: Session, identity: string): boolean {
    session.identityKey = `${session.taskId}\n${identity}`;
    return !this.#countSession(this.#sessionsPerIdentity, session.identityKey, this.#maxSessionsPerIdentity, session.connection);
  }

  async #negotiate(session: Session, countBytes: (sent: number) => void): Promise<string> {
    const { connection, taskId, record } = session;
    // The caps come before anything is read: a session over them costs one REJECT, sent at once (before HELLO).
    if (!this.#countSession(this.#sessionsPerTask, taskId, this.#maxSessionsPerTask, connection)) {
      return this.#reject(session, 'busy', `the server is busy: ${this.#maxSessionsPerTask} sessions of this task are open; retry later`);
    }
    if (connection.mode === 'xxpsk3') {
      const identity = connection.remoteStaticKey!.toString('hex');
      record.identity = identity.slice(0, 16);
      if (this.#busyForIdentity(session, identity)) {
        return this.#reject(session, 'busy', `the server is busy: this identity already has ${this.#maxSessionsPerIdentity} sessions of this task open; retry later`);
      }
    }
    const bytes = await this.#receiveWithin(session, 'HELLO', this.#helloTimeoutMs, 'of the session start');
    let hello: Hello;
    try {
      hello = expectMessage(bytes, ['HELLO']).body;
    } catch (error) {
      // A message arrived whole and authenticated, so the channel still works: the client is told what was wrong
      // with it. A peer that ended instead, or a broken channel, gets nothing more.
      if (bytes === null || !isNoiseCfgError(error, 'PROTOCOL_ERROR')) throw error;
      record.code = 'PROTOCOL_ERROR';
      return this.#reject(session, 'bad-request', `malformed HELLO: ${error.message}`.slice(0, MAX_REJECT_MESSAGE_LENGTH));
    }
    record.client = hello.name;
    return this.#answerHello(session, hello, countBytes);
  }

  async #answerHello(session: Session, hello: Hello, countBytes: (sent: number) => void): Promise<string> {
    const { connection, taskId, record } = session;
    const store = this.store;
    // The update server's channel speaks only the two Noise modes.
    const mode = connection.mode === 'xxpsk3' ? 'xxpsk3' : 'nnpsk0';
    const identified = identifyHello(mode, hello, connection.remoteStaticKey?.toString('hex') ?? null);
    if (identified.kind === 'reject') return this.#reject(session, identified.reason, identified.message);
    const identity = identified.identity;
    if (mode === 'nnpsk0') {
      record.identity = identity.slice(0, 16);
      if (this.#busyForIdentity(session, identity)) {
        return this.#reject(session, 'busy', `the server is busy: this identity already has ${this.#maxSessionsPerIdentity} sessions of this task open; retry later`);
      }
    }
    // Read now, not at the handshake: a cancel or a revoke made while this session was opening holds for it.
    const task = store.getTask(taskId);
    const slots = task ? this.#slots(taskId) : new Set<string>();
    const decision = negotiate({
      hello, identity, remoteAddress: connection.remoteAddress, task, client: task ? store.getClient(taskId, identity) : null,
      slotsTaken: slots.size, isSlotHolder: slots.has(identity), maxClientsPerTask: this.#maxClientsPerTask, now: this.#now(),
    });
    switch (decision.kind) {
      case 'reject':
        return this.#reject(session, decision.reason, decision.message);
      case 'checked':
        await this.#send(connection, { type: 'CHECKED', body: decision.checked });
        return 'checked';
      case 'up-to-date':
        await this.#send(connection, { type: 'UP_TO_DATE', body: { digest: decision.digest } });
        return 'up-to-date';
      case 'dry-run':
        await connection.send(this.#contents.get(task!, store).dryRunOffer);
        return 'dry-run';
      case 'offer':
        return this.#offer(session, task!, decision.client, countBytes);
    }
  }

  // Records the client `offered`, sends the OFFER and the content, and records the RESULT.
  async #offer(session: Session, task: TaskRecord, client: ClientRecord, countBytes: (sent: number) => void): Promise<string> {
    const { connection, taskId } = session;
    const { identity } = client;
    const store = this.store;
    const content = this.#contents.get(task, store);
    this.#slots(taskId).add(identity);
    // Not awaited: the offer need not be durable before the files go out; a store failure is logged.
    store.saveClient(client).catch((error: Error) => {
      this.#log({ event: 'pull', task: taskId, outcome: 'store-error', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: error.message });
    });
    let result: Extract<UpdateMessage, { type: 'RESULT' }>['body'];
    try {
      await connection.send(content.offer);
      // A task too big for the content cache is read from the store one slice at a time as its CHUNKs go out, so a
      // pull holds about one slice whatever the task's size.
      let bytesSent = 0;
      let progressDueAt = performance.now() + TRANSFER_PROGRESS_INTERVAL_MS;
      for (const chunk of content.chunks ?? encodeChunks(taskContents(task, content.files, store))) {
        await connection.send(chunk);
        countBytes(chunk.byteLength - 1);
        bytesSent += chunk.byteLength - 1;
        if (performance.now() >= progressDueAt) {
          progressDueAt = performance.now() + TRANSFER_PROGRESS_INTERVAL_MS;
          // Not awaited, like the offer: progress is for the operator's eyes, a lost one is replaced a second later.
          store.saveTransferProgress(taskId, identity, bytesSent, this.#now()).catch((error: Error) => {
            this.#log({ event: 'pull', task: taskId, outcome: 'store-error', code: isNoiseCfgError(error) ? error.code : 'STORE_UNAVAILABLE', message: error.message });
          });
        }
      }
      result = expectMessage(await this.#receiveWithin(session, 'RESULT', this.#resultTimeoutMs, 'after the last CHUNK'), ['RESULT']).body;
    } catch (error) {
      // Offered, but no RESULT will come: the client is `interrupted`, not receiving forever.
      const failure = session.timeout ?? error;
      const reason = isNoiseCfgError(failure) ? `${failure.code}: ${failure.message}` : 'the session ended before the result';
      store.markInterrupted(taskId, identity, this.#now(), reason).catch((storeError: Error) => {
        this.#log({ event: 'pull', task: taskId, outcome: 'store-error', code: isNoiseCfgError(storeError) ? storeError.code : 'STORE_UNAVAILABLE', message: storeError.message });
      });
      throw error;
    }
    // Read again: a cancel or revoke made while the client applied means its result counts for nothing.
    const taskNow = store.getTask(taskId);
    if (!taskNow || taskNow.state === 'cancelled') return this.#reject(session, 'cancelled', 'the task was cancelled while this client applied it; the result is not recorded');
    if (store.getClient(taskId, identity)?.state === 'revoked') {
      return this.#reject(session, 'revoked', 'this client was revoked while it applied the task; the result is not recorded');
    }
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

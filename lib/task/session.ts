/**
 * One update session on an authenticated connection (SPEC.md §4.6), as the server's modules share it: what the
 * session can reach (the server's store, caches, settings and log), its log line so far, and its deadlines.
 */
import { NoiseCfgError } from '../errors.js';
import type { SecureConnection } from '../transport/index.js';
import type { TaskCaches } from './caches.js';
import { encodeMessage, type MessageType, type RejectReason, type UpdateMessage } from './messages.js';
import type { LogRecord, ServerSettings } from './server-options.js';
import type { ServerLog } from './server-log.js';
import type { SessionCounter } from './session-limits.js';
import type { TaskStoreContract } from './store-contract.js';

/** What every session of one server reaches. */
export interface SessionContext {
  store: TaskStoreContract;
  caches: TaskCaches;
  settings: ServerSettings;
  log: ServerLog;
  now: () => number;
  /** Open sessions by task id. */
  sessionsPerTask: SessionCounter;
  /** Open sessions by task id and identity. */
  sessionsPerIdentity: SessionCounter;
}

/** The per-connection state of one update session. */
export class Session {
  readonly context: SessionContext;
  readonly connection: SecureConnection;
  readonly taskId: string;
  /** The connection's log line so far. */
  readonly record: Omit<LogRecord, 'time'>;
  /** Set when a deadline ended the session: the code logged, whatever error the aborted step threw. */
  timeout: NoiseCfgError | null = null;

  constructor(context: SessionContext, connection: SecureConnection) {
    this.context = context;
    this.connection = connection;
    this.taskId = connection.taskId!;
    this.record = { event: 'pull', remote: connection.remoteAddress, task: this.taskId };
    const { maxSessionMs } = context.settings;
    const lifetimeTimer = setTimeout(() => this.timeOut(`the session reached its maximum lifetime of ${maxSessionMs} ms`), maxSessionMs);
    connection.onClose(() => clearTimeout(lifetimeTimer));
  }

  /** Ends the session with SESSION_TIMEOUT: pending reads reject with it and pending sends fail. */
  timeOut(message: string): void {
    if (this.timeout !== null) return;
    this.timeout = new NoiseCfgError('SESSION_TIMEOUT', message);
    this.connection.destroy(this.timeout);
  }

  /**
   * The next message, undecoded (null: the peer ended), which must arrive within `timeoutMs` of now whatever else
   * arrives (control records do not move this deadline).
   */
  async receiveWithin(expected: MessageType, timeoutMs: number, what: string): Promise<Buffer | null> {
    const timer = setTimeout(() => this.timeOut(`no ${expected} within ${timeoutMs} ms ${what}`), timeoutMs);
    try {
      return await this.connection.receive();
    } finally {
      clearTimeout(timer);
    }
  }

  async send(message: UpdateMessage): Promise<void> {
    await this.connection.send(encodeMessage(message));
  }

  /** Sends REJECT and returns the outcome to log. The reason goes into the log line too; `busy` carries the code the client reports. */
  async reject(reason: RejectReason, message: string): Promise<string> {
    if (reason === 'busy') this.record.code = 'TOO_MANY_CONNECTIONS';
    this.record.message = message;
    await this.send({ type: 'REJECT', body: { reason, message } });
    return `rejected:${reason}`;
  }
}

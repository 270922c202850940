/**
 * The server side of one update session (SPEC.md §4.6): the session caps, HELLO within its deadline, then
 * negotiate()'s decision carried out (REJECT, CHECKED, UP_TO_DATE, a dry-run OFFER, or a transfer), END, and one
 * log line for the connection.
 */
import { isNoiseCfgError } from '../errors.js';
import type { SecureConnection } from '../transport/index.js';
import { expectMessage, MAX_REJECT_MESSAGE_LENGTH, type Hello } from './messages.js';
import { identifyHello, negotiate } from './negotiate.js';
import { END_WAIT_MS, type LogRecord } from './server-options.js';
import { Session, type SessionContext } from './session.js';
import { transfer } from './transfer.js';

/** Serves one authenticated connection to its end; never throws (a failure is the log line's outcome). */
export async function serveSession(context: SessionContext, connection: SecureConnection): Promise<void> {
  const started = context.now();
  const session = new Session(context, connection);
  const record = session.record;
  let bytes = 0;
  try {
    record.outcome = await openSession(session, (sent) => {
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
    const line: LogRecord = { time: context.log.time(), ...record, bytes, ms: context.now() - started };
    context.log.connection(line);
  }
}

// Counts the session under its identity; false (counting nothing) when the identity is at its cap.
function isBusyForIdentity(session: Session, identity: string): boolean {
  const { sessionsPerIdentity } = session.context;
  return !sessionsPerIdentity.admit(`${session.taskId}\n${identity}`, session.connection);
}

function rejectBusyIdentity(session: Session): Promise<string> {
  return session.reject('busy', `the server is busy: this identity already has ${session.context.sessionsPerIdentity.limit} sessions of this task open; retry later`);
}

async function openSession(session: Session, countBytes: (sent: number) => void): Promise<string> {
  const { connection, taskId, record, context } = session;
  // The caps come before anything is read: a session over them costs one REJECT, sent at once (before HELLO).
  if (!context.sessionsPerTask.admit(taskId, connection)) {
    return session.reject('busy', `the server is busy: ${context.sessionsPerTask.limit} sessions of this task are open; retry later`);
  }
  if (connection.mode === 'xxpsk3') {
    const identity = connection.remoteStaticKey!.toString('hex');
    record.identity = identity.slice(0, 16);
    if (isBusyForIdentity(session, identity)) return rejectBusyIdentity(session);
  }
  const bytes = await session.receiveWithin('HELLO', context.settings.helloTimeoutMs, 'of the session start');
  let hello: Hello;
  try {
    hello = expectMessage(bytes, ['HELLO']).body;
  } catch (error) {
    // A message arrived whole and authenticated, so the channel still works: the client is told what was wrong
    // with it. A peer that ended instead, or a broken channel, gets nothing more.
    if (bytes === null || !isNoiseCfgError(error, 'PROTOCOL_ERROR')) throw error;
    record.code = 'PROTOCOL_ERROR';
    return session.reject('bad-request', `malformed HELLO: ${error.message}`.slice(0, MAX_REJECT_MESSAGE_LENGTH));
  }
  record.client = hello.name;
  return answerHello(session, hello, countBytes);
}

// Reads the task, the client and the slot count, asks negotiate(), and carries its decision out.
async function answerHello(session: Session, hello: Hello, countBytes: (sent: number) => void): Promise<string> {
  const { connection, taskId, record, context } = session;
  const { store, caches } = context;
  // The update server's channel speaks only the two Noise modes.
  const mode = connection.mode === 'xxpsk3' ? 'xxpsk3' : 'nnpsk0';
  const identified = identifyHello(mode, hello, connection.remoteStaticKey?.toString('hex') ?? null);
  if (identified.kind === 'reject') return session.reject(identified.reason, identified.message);
  const identity = identified.identity;
  if (mode === 'nnpsk0') {
    record.identity = identity.slice(0, 16);
    if (isBusyForIdentity(session, identity)) return rejectBusyIdentity(session);
  }
  // Read now, not at the handshake: a cancel or a revoke made while this session was opening holds for it.
  const { task, client } = await store.getTaskAndClient(taskId, identity);
  const slots = task ? await caches.slotHolders(taskId) : new Set<string>();
  const decision = negotiate({
    hello, identity, remoteAddress: connection.remoteAddress, task, client,
    slotsTaken: slots.size, isSlotHolder: slots.has(identity), maxClientsPerTask: context.settings.maxClientsPerTask, now: context.now(),
  });
  switch (decision.kind) {
    case 'reject':
      return session.reject(decision.reason, decision.message);
    case 'checked':
      await session.send({ type: 'CHECKED', body: decision.checked });
      return 'checked';
    case 'up-to-date':
      await session.send({ type: 'UP_TO_DATE', body: { digest: decision.digest } });
      return 'up-to-date';
    case 'dry-run':
      await connection.send((await caches.content(task!)).dryRunOffer);
      return 'dry-run';
    case 'offer':
      return transfer(session, task!, decision.client, decision.holdsSlot, countBytes);
  }
}

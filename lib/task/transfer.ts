/**
 * A pull's transfer and its result (SPEC.md §4.6, §4.7): the client is recorded `offered`, the OFFER and the
 * CHUNKs go out (with progress saved for `task watch`), the RESULT is awaited, and the outcome is recorded and
 * acknowledged once durable. A session that ends before its RESULT leaves the client `interrupted`.
 */
import { isNoiseCfgError } from '../errors.js';
import { expectMessage, type UpdateMessage } from './messages.js';
import { TRANSFER_PROGRESS_INTERVAL_MS } from './server-options.js';
import { fullMessage } from './negotiate.js';
import type { Session } from './session.js';
import type { ClientRecord, TaskRecord } from './store.js';
import { encodeChunks, taskContents, type TaskContent } from './task-content.js';

type Result = Extract<UpdateMessage, { type: 'RESULT' }>['body'];

/**
 * Offers `task` to `client` (negotiate()'s record of it), taking a slot first unless it `holdsSlot`, sends the
 * content, and records the RESULT. Returns the outcome to log.
 */
export async function transfer(session: Session, task: TaskRecord, client: ClientRecord, holdsSlot: boolean, countBytes: (sent: number) => void): Promise<string> {
  const { store, caches, log, settings } = session.context;
  const content = await caches.content(task);
  if (holdsSlot) {
    // Not awaited: a slot once held is never given back, so this offer need not be durable before the files go
    // out; a store failure is logged.
    store.saveClient(client).catch((error: Error) => log.storeError(task.id, error));
  } else {
    // Awaited: the slot is taken in the database, where every process's offers are counted, and the OFFER goes
    // out only once it is. The wait is one group commit, paid once per identity and task.
    if (!await store.claimSlot(client, task.maxClients ?? settings.maxClientsPerTask)) return session.reject('full', fullMessage(task, settings.maxClientsPerTask));
    await caches.addSlotHolder(task.id, client.identity);
  }
  let result: Result;
  try {
    await sendContent(session, task, content, client.identity, countBytes);
    result = expectMessage(await session.receiveWithin('RESULT', session.context.settings.resultTimeoutMs, 'after the last CHUNK'), ['RESULT']).body;
  } catch (error) {
    // Offered, but no RESULT will come: the client is `interrupted`, not receiving forever.
    const failure = session.timeout ?? error;
    const reason = isNoiseCfgError(failure) ? `${failure.code}: ${failure.message}` : 'the session ended before the result';
    store.markInterrupted(task.id, client.identity, session.context.now(), reason).catch((storeError: Error) => log.storeError(task.id, storeError));
    throw error;
  }
  return recordResult(session, task, client, result);
}

// The OFFER, then the CHUNKs. A task too big for the content cache is read from the store one slice at a time as
// its CHUNKs go out, so a pull holds about one slice whatever the task's size.
async function sendContent(session: Session, task: TaskRecord, content: TaskContent, identity: string, countBytes: (sent: number) => void): Promise<void> {
  const { connection } = session;
  const { store, log, now } = session.context;
  await connection.send(content.offer);
  let bytesSent = 0;
  let progressDueAt = performance.now() + TRANSFER_PROGRESS_INTERVAL_MS;
  for await (const chunk of content.chunks ?? encodeChunks(taskContents(task, content.files, store))) {
    await connection.send(chunk);
    countBytes(chunk.byteLength - 1);
    bytesSent += chunk.byteLength - 1;
    if (performance.now() >= progressDueAt) {
      progressDueAt = performance.now() + TRANSFER_PROGRESS_INTERVAL_MS;
      // Not awaited, like the offer: progress is for the operator's eyes, a lost one is replaced a second later.
      store.saveTransferProgress(task.id, identity, bytesSent, now()).catch((error: Error) => log.storeError(task.id, error));
    }
  }
}

// Records the RESULT and sends the ACK once it is durable; a cancel or revoke made while the client applied means
// the result counts for nothing (checked by the store in the transaction that would record it, not trusted from
// HELLO).
async function recordResult(session: Session, task: TaskRecord, client: ClientRecord, result: Result): Promise<string> {
  const { store, now } = session.context;
  const at = now();
  const isApplied = result.status === 'applied' && result.digest === task.digest;
  const outcome: ClientRecord = {
    ...client, state: isApplied ? 'applied' : 'failed', updatedAt: at, hasSlot: true,
    exitCode: result.exitCode, message: result.message, appliedDigest: isApplied ? task.digest : client.appliedDigest,
  };
  // The last RESULT maxClients waits for completes the task in the same transaction, so both are durable before
  // the client hears back.
  const recorded = await store.saveResult(outcome, result.message);
  if (recorded.refused === 'cancelled') return session.reject('cancelled', 'the task was cancelled while this client applied it; the result is not recorded');
  if (recorded.refused === 'revoked') return session.reject('revoked', 'this client was revoked while it applied the task; the result is not recorded');
  // The ACK goes out only now: the result above is committed and fsynced.
  await session.send({ type: 'ACK', body: { status: isApplied ? 'applied' : 'failed' } });
  return isApplied ? 'applied' : 'failed';
}

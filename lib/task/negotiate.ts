/**
 * The update server's answer to a HELLO (SPEC.md §4.6), decided from values alone: the store's records, the
 * server's slot count and the clock are read by the caller and passed in, and the caller carries the decision out
 * (sends it, records it, streams the files). Pure.
 */
import { UPDATE_PROTOCOL_VERSION, type Checked, type Hello, type RejectReason } from './messages.js';
import type { ClientRecord, TaskRecord } from './store.js';
import { taskState } from './task.js';

/** A refusal: the REJECT to send. */
export interface Refusal {
  kind: 'reject';
  reason: RejectReason;
  /** For people: the REJECT's `message` and the log line's. */
  message: string;
}

/** Who a HELLO comes from, or why it is refused before anything is read from the store. */
export type HelloIdentity = Refusal | { kind: 'identified'; identity: string };

/** What the server answers a HELLO. */
export type PullDecision =
  | Refusal
  | { kind: 'checked'; checked: Checked }
  | { kind: 'up-to-date'; digest: string }
  /** An OFFER without content; nothing is recorded and no slot is taken. */
  | { kind: 'dry-run' }
  /**
   * An OFFER with content, `client` recorded as it stands here: the identity keeps the slot it `holdsSlot`, or
   * must take one first (the store's claim is the last word on whether one is free).
   */
  | { kind: 'offer'; client: ClientRecord; holdsSlot: boolean };

/** What negotiate() decides from. */
export interface PullRequest {
  hello: Hello;
  /** From identifyHello(). */
  identity: string;
  remoteAddress: string;
  /** The task as the store holds it now; null when it was deleted since the handshake. */
  task: TaskRecord | null;
  /** The identity's record in this task, if it has one. */
  client: ClientRecord | null;
  /**
   * Identities holding a slot in this task, as this server knows them: never more than hold one, so a task this
   * count finds full is full; one it finds not full may still be, which the store's claim of the slot finds out.
   */
  slotsTaken: number;
  /** Whether the server counts this identity among those slot holders. */
  isSlotHolder: boolean;
  /** The server's cap on identities for a task without maxClients. */
  maxClientsPerTask: number;
  /** The server's clock, in milliseconds since the epoch. */
  now: number;
}

/**
 * The identity a HELLO stands for: the handshake's static key (`remoteStaticKeyHex`) in xxpsk3, the HELLO's
 * `clientId` in nnpsk0. Refuses a protocol version other than ours (`unsupported-version`) and a `clientId` that
 * does not fit the mode (`bad-request`): missing in nnpsk0, present in xxpsk3.
 */
export function identifyHello(mode: TaskRecord['mode'], hello: Hello, remoteStaticKeyHex: string | null): HelloIdentity {
  if (hello.protocol !== UPDATE_PROTOCOL_VERSION) {
    return refuse('unsupported-version', `this server speaks update protocol ${UPDATE_PROTOCOL_VERSION}, the client ${hello.protocol}`);
  }
  if (mode === 'xxpsk3') {
    // The handshake proved the static key, which is the identity. A clientId beside it means a client that took
    // the mode for nnpsk0 and would believe the id it sent names it; it is told so rather than ignored.
    if (hello.clientId !== null) return refuse('bad-request', 'xxpsk3 clients must send a null clientId: the identity is the static key');
    return { kind: 'identified', identity: remoteStaticKeyHex! };
  }
  if (hello.clientId === null) return refuse('bad-request', 'nnpsk0 clients must send a clientId');
  return { kind: 'identified', identity: hello.clientId };
}

/** The answer to a HELLO from an identified client, in SPEC.md §4.6's order. */
export function negotiate(request: PullRequest): PullDecision {
  const { hello, identity, task, client, now } = request;
  if (!task) return refuse('cancelled', 'the task no longer exists');
  const state = taskState(task, now);
  if (state === 'expired') return refuse('expired', `the task expired at ${new Date(task.expiresAt).toISOString()}`);
  if (state === 'cancelled') return refuse('cancelled', 'the task was cancelled');
  if (client?.state === 'revoked') return refuse('revoked', 'this client was revoked from the task');
  // `have` is only a claim: it is honoured for an identity whose own record says it applied this digest. Anyone
  // else goes through the slot rules below, and only a RESULT records anyone as applied. An identity that applied
  // but has no `have` (its output is new or gone) gets the files again.
  const hasApplied = client?.state === 'applied' && client.appliedDigest === task.digest;
  // A slot once taken is kept: its holder may receive the files again even when the task is full or completed.
  const hasSlot = request.isSlotHolder || client?.hasSlot === true || hasApplied;
  if (!hasSlot) {
    if (state === 'completed') return refuse('completed', 'the task is complete: every expected client has applied it');
    if (request.slotsTaken >= (task.maxClients ?? request.maxClientsPerTask)) return refuse('full', fullMessage(task, request.maxClientsPerTask));
  }
  // A check is answered as a pull would be, CHECKED where the pull gets its files: it says whether a pull would be
  // served now, and takes no slot.
  if (hello.intent === 'check') {
    return { kind: 'checked', checked: { state: 'active', files: task.fileCount, totalBytes: task.totalBytes, expiresAt: new Date(task.expiresAt).toISOString() } };
  }
  if (hasApplied && hello.have === task.digest) return { kind: 'up-to-date', digest: task.digest };
  if (hello.intent === 'dry-run') return { kind: 'dry-run' };
  const base: ClientRecord = client ?? {
    taskId: task.id, identity, name: hello.name, remoteAddress: request.remoteAddress, state: 'connected',
    firstSeenAt: now, updatedAt: now, exitCode: null, message: null, appliedDigest: null, hasSlot: false,
  };
  return { kind: 'offer', holdsSlot: hasSlot, client: { ...base, name: hello.name, remoteAddress: request.remoteAddress, state: 'offered', updatedAt: now, hasSlot: true } };
}

/** The REJECT `full` message for a task whose slots are all taken. */
export function fullMessage(task: TaskRecord, maxClientsPerTask: number): string {
  return task.maxClients !== null
    ? `the task is full: ${task.maxClients} clients already took it`
    : `the task is full: it has reached the server's limit of ${maxClientsPerTask} clients for a task without --max-clients`;
}

function refuse(reason: RejectReason, message: string): Refusal {
  return { kind: 'reject', reason, message };
}

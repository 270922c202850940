// The server's answer to a HELLO (SPEC.md §4.6), decided by a pure function: every task state (expiry at the exact
// instant included), every client state, `have` matching, stale or null, each intent, a task full or not, and both
// modes. Hand-written rows first, then the whole product against the rule list of §4.6 read top to bottom.
import t from 'tap';
import { identifyHello, negotiate, type PullDecision, type PullRequest } from '../../lib/task/negotiate.js';
import type { Hello, PullIntent, RejectReason } from '../../lib/task/messages.js';
import type { ClientRecord, ClientState, TaskRecord } from '../../lib/task/store.js';

const DIGEST = 'a'.repeat(64);
const OLD_DIGEST = 'b'.repeat(64);
const EXPIRES_AT = 1_900_000_000_000;
const BEFORE_EXPIRY = EXPIRES_AT - 1;
const IDENTITY = 'c'.repeat(64);

function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id: 'kw3dg76w18whjmr0', name: 'web', mode: 'xxpsk3', createdAt: EXPIRES_AT - 3_600_000, expiresAt: EXPIRES_AT, maxClients: null,
    state: 'active', endedAt: null, digest: DIGEST, totalBytes: 12, fileCount: 2, ...overrides,
  };
}

function client(state: ClientState, overrides: Partial<ClientRecord> = {}): ClientRecord {
  return {
    taskId: 'kw3dg76w18whjmr0', identity: IDENTITY, name: 'old-name', remoteAddress: '10.0.0.9', state, firstSeenAt: 5, updatedAt: 6,
    exitCode: state === 'failed' ? 3 : state === 'applied' ? 0 : null, message: null,
    appliedDigest: state === 'applied' ? DIGEST : null, hasSlot: state !== 'connected', ...overrides,
  };
}

function hello(overrides: Partial<Hello> = {}): Hello {
  return { protocol: 1, software: 'test', name: 'web-1', clientId: null, have: null, intent: 'pull', ...overrides };
}

function request(overrides: Partial<PullRequest> = {}): PullRequest {
  return {
    hello: hello(), identity: IDENTITY, remoteAddress: '127.0.0.1', task: task(), client: null, slotsTaken: 0, isSlotHolder: false,
    maxClientsPerTask: 10_000, now: BEFORE_EXPIRY, ...overrides,
  };
}

/** The decision's kind, and the reason of a refusal: `reject:full`. */
function outcome(decision: PullDecision): string {
  return decision.kind === 'reject' ? `reject:${decision.reason}` : decision.kind;
}

t.test('hand-written cases', async (t) => {
  const rows: [string, Partial<PullRequest>, string][] = [
    ['a new client of an active task is offered the files', {}, 'offer'],
    ['the task was deleted since the handshake', { task: null }, 'reject:cancelled'],
    ['expired at exactly expiresAt', { now: EXPIRES_AT }, 'reject:expired'],
    ['one millisecond before expiresAt it is active', { now: EXPIRES_AT - 1 }, 'offer'],
    ['cancelled', { task: task({ state: 'cancelled', endedAt: 1 }) }, 'reject:cancelled'],
    ['cancelled and past its expiry: cancelled wins', { task: task({ state: 'cancelled', endedAt: 1 }), now: EXPIRES_AT + 1 }, 'reject:cancelled'],
    ['completed, a new client', { task: task({ state: 'completed', maxClients: 1 }), slotsTaken: 1 }, 'reject:completed'],
    ['completed, a slot holder gets the files again', { task: task({ state: 'completed', maxClients: 1 }), slotsTaken: 1, client: client('applied', { appliedDigest: OLD_DIGEST }) }, 'offer'],
    ['completed, the applied holder with `have` is up to date', { task: task({ state: 'completed', maxClients: 1 }), client: client('applied'), hello: hello({ have: DIGEST }) }, 'up-to-date'],
    ['revoked, even with `have`', { client: client('revoked', { appliedDigest: DIGEST }), hello: hello({ have: DIGEST }) }, 'reject:revoked'],
    ['revoked, check', { client: client('revoked'), hello: hello({ intent: 'check' }) }, 'reject:revoked'],
    ['expired comes before revoked', { client: client('revoked'), now: EXPIRES_AT }, 'reject:expired'],
    ['check on a full task: refused like a pull', { task: task({ maxClients: 1 }), slotsTaken: 1, hello: hello({ intent: 'check' }) }, 'reject:full'],
    ['check on a completed task: refused like a pull', { task: task({ state: 'completed', maxClients: 1 }), slotsTaken: 1, hello: hello({ intent: 'check' }) }, 'reject:completed'],
    ['check by a slot holder of a completed task: checked', { task: task({ state: 'completed', maxClients: 1 }), slotsTaken: 1, client: client('failed'), hello: hello({ intent: 'check' }) }, 'checked'],
    ['check with a matching `have`: checked, not up to date', { client: client('applied'), hello: hello({ intent: 'check', have: DIGEST }) }, 'checked'],
    ['have matches but the record never applied it: offered', { hello: hello({ have: DIGEST }) }, 'offer'],
    ['applied an older digest, `have` is that digest: offered', { client: client('applied', { appliedDigest: OLD_DIGEST }), hello: hello({ have: OLD_DIGEST }) }, 'offer'],
    ['applied, no `have` (output gone): offered again', { client: client('applied') }, 'offer'],
    ['interrupted with `have` is never up to date', { client: client('interrupted', { appliedDigest: DIGEST }), hello: hello({ have: DIGEST }) }, 'offer'],
    ['full by maxClients: a new client is refused', { task: task({ maxClients: 2 }), slotsTaken: 2 }, 'reject:full'],
    ['one slot left', { task: task({ maxClients: 2 }), slotsTaken: 1 }, 'offer'],
    ['full, a slot holder the server counts', { task: task({ maxClients: 2 }), slotsTaken: 2, isSlotHolder: true }, 'offer'],
    ['full, a slot holder by its record', { task: task({ maxClients: 2 }), slotsTaken: 2, client: client('failed') }, 'offer'],
    ['full, an applied holder with `have` is up to date', { task: task({ maxClients: 2 }), slotsTaken: 2, client: client('applied'), hello: hello({ have: DIGEST }) }, 'up-to-date'],
    ['no maxClients: the server cap', { slotsTaken: 3, maxClientsPerTask: 3 }, 'reject:full'],
    ['no maxClients: under the server cap', { slotsTaken: 2, maxClientsPerTask: 3 }, 'offer'],
    ['maxClients, not the server cap, bounds a task that has it', { task: task({ maxClients: 5 }), slotsTaken: 3, maxClientsPerTask: 3 }, 'offer'],
    ['dry run on a full task: refused like a pull', { task: task({ maxClients: 1 }), slotsTaken: 1, hello: hello({ intent: 'dry-run' }) }, 'reject:full'],
    ['dry run', { hello: hello({ intent: 'dry-run' }) }, 'dry-run'],
    ['check on an active task', { hello: hello({ intent: 'check' }) }, 'checked'],
  ];
  for (const [name, overrides, expected] of rows) t.equal(outcome(negotiate(request(overrides))), expected, name);
});

t.test('the messages carry what the client is told', async (t) => {
  t.same(negotiate(request({ hello: hello({ intent: 'check' }) })), {
    kind: 'checked', checked: { state: 'active', files: 2, totalBytes: 12, expiresAt: new Date(EXPIRES_AT).toISOString() },
  });
  t.same(negotiate(request({ client: client('applied'), hello: hello({ have: DIGEST }) })), { kind: 'up-to-date', digest: DIGEST });
  t.same(negotiate(request({ now: EXPIRES_AT })), { kind: 'reject', reason: 'expired', message: `the task expired at ${new Date(EXPIRES_AT).toISOString()}` });
  const full = negotiate(request({ task: task({ maxClients: 2 }), slotsTaken: 2 }));
  t.match(full, { kind: 'reject', reason: 'full', message: /2 clients already took it/ });
  t.match(negotiate(request({ slotsTaken: 7, maxClientsPerTask: 7 })), { reason: 'full', message: /server's limit of 7 clients/ });
});

t.test('an offer records the client offered with its slot, keeping what its record knew, and says whether the slot is held already', async (t) => {
  const fresh = negotiate(request({ now: 1000 }));
  t.same(fresh, { kind: 'offer', holdsSlot: false, client: {
    taskId: 'kw3dg76w18whjmr0', identity: IDENTITY, name: 'web-1', remoteAddress: '127.0.0.1', state: 'offered', firstSeenAt: 1000,
    updatedAt: 1000, exitCode: null, message: null, appliedDigest: null, hasSlot: true,
  } });
  const again = negotiate(request({ now: 1000, client: client('failed', { appliedDigest: OLD_DIGEST, message: 'boom' }), remoteAddress: '10.1.1.1' }));
  t.same(again, { kind: 'offer', holdsSlot: true, client: {
    taskId: 'kw3dg76w18whjmr0', identity: IDENTITY, name: 'web-1', remoteAddress: '10.1.1.1', state: 'offered', firstSeenAt: 5,
    updatedAt: 1000, exitCode: 3, message: 'boom', appliedDigest: OLD_DIGEST, hasSlot: true,
  } });
});

// The rules of SPEC.md §4.6 in their order; the first that applies decides.
function expectedBySpec(r: PullRequest): string {
  const state = r.task === null ? 'deleted' : r.task.state === 'active' && r.now >= r.task.expiresAt ? 'expired' : r.task.state;
  if (state === 'deleted') return 'reject:cancelled';
  if (state === 'expired') return 'reject:expired';
  if (state === 'cancelled') return 'reject:cancelled';
  if (r.client?.state === 'revoked') return 'reject:revoked';
  const hasApplied = r.client?.state === 'applied' && r.client.appliedDigest === r.task!.digest;
  const isHolder = r.isSlotHolder || r.client?.hasSlot === true || hasApplied;
  if (!isHolder && state === 'completed') return 'reject:completed';
  const limit = r.task!.maxClients ?? r.maxClientsPerTask;
  if (!isHolder && r.slotsTaken >= limit) return 'reject:full';
  if (r.hello.intent === 'check') return 'checked';
  if (hasApplied && r.hello.have === r.task!.digest) return 'up-to-date';
  return r.hello.intent === 'dry-run' ? 'dry-run' : 'offer';
}

t.test('every combination follows the rules of SPEC.md §4.6', async (t) => {
  const tasks: [string, TaskRecord | null, number][] = [
    ['active', task(), BEFORE_EXPIRY],
    ['expired at exactly expiresAt', task(), EXPIRES_AT],
    ['expired after expiresAt', task(), EXPIRES_AT + 60_000],
    ['cancelled', task({ state: 'cancelled', endedAt: 1 }), BEFORE_EXPIRY],
    ['completed', task({ state: 'completed', endedAt: 1 }), BEFORE_EXPIRY],
    ['completed, past expiresAt', task({ state: 'completed', endedAt: 1 }), EXPIRES_AT],
    ['deleted', null, BEFORE_EXPIRY],
  ];
  const clients: [string, ClientRecord | null][] = [
    ['no record', null],
    ...(['connected', 'offered', 'applied', 'failed', 'revoked', 'interrupted'] as const).map((state): [string, ClientRecord] => [state, client(state)]),
    ['applied an older digest', client('applied', { appliedDigest: OLD_DIGEST })],
    ['connected without a slot', client('connected', { hasSlot: false })],
  ];
  const haves: [string, string | null][] = [['have matches', DIGEST], ['have stale', OLD_DIGEST], ['have null', null]];
  const intents: PullIntent[] = ['pull', 'dry-run', 'check'];
  const capacities: [string, Partial<PullRequest>, number | null][] = [
    ['maxClients 2, room', { slotsTaken: 1 }, 2],
    ['maxClients 2, reached', { slotsTaken: 2 }, 2],
    ['server cap, room', { slotsTaken: 1, maxClientsPerTask: 2 }, null],
    ['server cap, reached', { slotsTaken: 2, maxClientsPerTask: 2 }, null],
  ];
  let cases = 0;
  const seen = new Set<string>();
  for (const [taskName, record, now] of tasks) {
    for (const [clientName, clientRecord] of clients) {
      for (const [haveName, have] of haves) {
        for (const intent of intents) {
          for (const [capacityName, capacity, maxClients] of capacities) {
            for (const isSlotHolder of [false, true]) {
              const r = request({
                task: record && { ...record, maxClients }, client: clientRecord, hello: hello({ have, intent }), now, isSlotHolder, ...capacity,
              });
              const actual = outcome(negotiate(r));
              seen.add(actual);
              const expected = expectedBySpec(r);
              if (actual !== expected) t.fail(`${taskName}, ${clientName}, ${haveName}, ${intent}, ${capacityName}, counted holder ${isSlotHolder}: ${actual}, expected ${expected}`);
              cases++;
            }
          }
        }
      }
    }
  }
  t.equal(cases, 7 * 9 * 3 * 3 * 4 * 2, 'every combination ran');
  const reasons: RejectReason[] = ['expired', 'cancelled', 'completed', 'full', 'revoked'];
  t.same([...seen].sort(), ['checked', 'dry-run', 'offer', ...reasons.map((reason) => `reject:${reason}`), 'up-to-date'].sort(), 'every outcome occurs');
});

t.test('identifyHello: the version, then the identity the mode calls for', async (t) => {
  const key = 'e'.repeat(64);
  const rows: [string, 'xxpsk3' | 'nnpsk0', Partial<Hello>, string][] = [
    ['xxpsk3: the static key', 'xxpsk3', {}, `identified:${key}`],
    ['nnpsk0: the clientId', 'nnpsk0', { clientId: 'host-1' }, 'identified:host-1'],
    ['nnpsk0 without a clientId', 'nnpsk0', {}, 'reject:bad-request'],
    ['xxpsk3 with a clientId', 'xxpsk3', { clientId: 'host-1' }, 'reject:bad-request'],
    ['protocol 2, xxpsk3', 'xxpsk3', { protocol: 2 }, 'reject:unsupported-version'],
    ['protocol 0, nnpsk0 without a clientId: the version first', 'nnpsk0', { protocol: 0 }, 'reject:unsupported-version'],
  ];
  for (const [name, mode, overrides, expected] of rows) {
    const identified = identifyHello(mode, hello(overrides), mode === 'xxpsk3' ? key : null);
    t.equal(identified.kind === 'reject' ? `reject:${identified.reason}` : `identified:${identified.identity}`, expected, name);
  }
  t.match(identifyHello('xxpsk3', hello({ protocol: 2 }), key), { message: 'this server speaks update protocol 1, the client 2' });
});

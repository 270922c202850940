// One Operator, two implementations (SPEC.md §8): TaskAdmin on the data directory and ApiClient through the REST
// API run the same cases against the same running server, and must give the same results and the same error codes,
// a task id that is not one (TASK_NOT_FOUND, exit 3) included.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { ApiClient } from '../../lib/api/client.js';
import { isNoiseCfgError } from '../../lib/errors.js';
import type { Operator } from '../../lib/task/operator.js';
import { decodeToken } from '../../lib/token/token.js';
import { pullAs, startApi } from './support.js';

const root = t.testdir();
const api = await startApi(t, join(root, 'data'));
const operators: Record<string, Operator> = {
  TaskAdmin: api.server.admin(),
  ApiClient: new ApiClient(api.base, api.adminToken),
};

const file = (text: string) => [{ path: 'app.conf', content: Buffer.from(text) }];

/** A result with what differs from run to run (ids, times, tokens, addresses) put in words. */
function normalized(value: unknown, ids: Map<string, string>): unknown {
  return JSON.parse(JSON.stringify(value, (key, item: unknown) => {
    if (typeof item !== 'string') return item;
    if (key === 'token') return 'TOKEN';
    if (/^\d{4}-\d\d-\d\dT/.test(item)) return 'TIME';
    if (key === 'remoteAddress') return 'ADDRESS';
    if (key === 'identity' || key === 'digest') return `${key.toUpperCase()}`;
    for (const [id, name] of ids) if (item === id) return name;
    return item;
  }));
}

/** The code an operation fails with, or 'ok'. */
async function outcome(run: () => unknown): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (error) {
    if (!isNoiseCfgError(error)) throw error;
    return error.code;
  }
}

async function runCases(t: Test, operator: Operator, label: string): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  const ids = new Map<string, string>();
  const created = await operator.createTask({ files: file('a = 1\n'), name: 'first', maxClients: 2 });
  ids.set(created.id, 'FIRST');
  t.equal(decodeToken(created.token).taskId, created.id, 'the token names the task');
  results['create'] = normalized(created, ids);
  results['show equals the created view'] = normalized(await operator.showTask(created.id), ids);
  t.same(results['show equals the created view'], normalized(created.task, ids), 'show gives what create returned');
  const token = await operator.taskToken(created.id);
  t.equal(token.token, created.token, 'the token again is the same token');
  results['list has it'] = (await operator.listTasks()).some((task) => task.id === created.id);

  // A client, to revoke.
  const pulled = await pullAs(root, `${label}-web`, created.token);
  t.equal(pulled.status, 'applied', 'a client pulled');
  const identity = (await operator.showTask(created.id)).clients[0]!.identity;
  results['revoke too short a prefix'] = await outcome(() => operator.revokeClient(created.id, identity.slice(0, 4)));
  results['revoke an unknown client'] = await outcome(() => operator.revokeClient(created.id, 'nobody-by-that-name'));
  const revoked = await operator.revokeClient(created.id, `${label}-web`);
  results['revoke by name'] = revoked.clients.map((client) => client.state);
  results['revoke again'] = await outcome(() => operator.revokeClient(created.id, `${label}-web`));

  const cancelled = await operator.cancelTask(created.id);
  results['cancel'] = cancelled.state;
  results['cancel again'] = await outcome(() => operator.cancelTask(created.id));
  results['token of an ended task'] = await outcome(() => operator.taskToken(created.id));
  results['revoke on an ended task'] = await outcome(() => operator.revokeClient(created.id, `${label}-web`));
  const events: string[] = [];
  for await (const event of operator.watch(created.id)) events.push(event.type);
  results['watch an ended task'] = events.filter((type) => type !== 'progress');

  const deleted = await operator.deleteTask(created.id);
  results['delete'] = normalized({ ...deleted.tasks, freedBytes: deleted.freedBytes }, ids);
  results['delete again'] = await outcome(() => operator.deleteTask(created.id));

  for (const [what, id] of [['an unknown id', '0123456789abcdef'], ['a malformed id', 'not-a-task'], ['a long id', 'x'.repeat(300)], ['an id with a slash', 'a/b']] as const) {
    results[`show ${what}`] = await outcome(() => operator.showTask(id));
    results[`token of ${what}`] = await outcome(() => operator.taskToken(id));
    results[`cancel ${what}`] = await outcome(() => operator.cancelTask(id));
    results[`revoke in ${what}`] = await outcome(() => operator.revokeClient(id, 'someone'));
    results[`delete ${what}`] = await outcome(() => operator.deleteTask(id));
    results[`watch ${what}`] = await outcome(async () => {
      for await (const event of operator.watch(id)) void event;
    });
  }

  results['create with ttl 0'] = await outcome(() => operator.createTask({ files: file('x'), ttlSeconds: 0 }));
  results['create with max clients 0'] = await outcome(() => operator.createTask({ files: file('x'), maxClients: 0 }));
  results['create with a long name'] = await outcome(() => operator.createTask({ files: file('x'), name: 'n'.repeat(201) }));
  results['create with an unsafe path'] = await outcome(() => operator.createTask({ files: [{ path: '../escape', content: Buffer.from('x') }] }));
  results['create with no files'] = await outcome(() => operator.createTask({ files: [] }));
  results['create in nnpsk0'] = await outcome(async () => {
    const task = await operator.createTask({ files: file('x'), mode: 'nnpsk0' });
    t.equal(decodeToken(task.token).mode, 'nnpsk0');
    await operator.deleteTask(task.id);
  });
  results['prune with a negative age'] = await outcome(() => operator.pruneTasks({ endedBeforeMs: -1 }));
  return results;
}

const recorded: Record<string, Record<string, unknown>> = {};
for (const [label, operator] of Object.entries(operators)) {
  t.test(`${label}: the cases`, async (t) => {
    recorded[label] = await runCases(t, operator, label);
    const results = recorded[label]!;
    t.equal(results['revoke too short a prefix'], 'INVALID_ARGUMENT');
    t.equal(results['revoke an unknown client'], 'CLIENT_NOT_FOUND');
    t.same(results['revoke by name'], ['revoked']);
    t.equal(results['revoke again'], 'CLIENT_ALREADY_REVOKED');
    t.equal(results['cancel'], 'cancelled');
    t.equal(results['cancel again'], 'TASK_ENDED');
    t.equal(results['token of an ended task'], 'TASK_ENDED');
    t.equal(results['revoke on an ended task'], 'TASK_ENDED');
    t.same(results['watch an ended task'], ['task', 'end']);
    t.equal(results['delete again'], 'TASK_NOT_FOUND');
    for (const what of ['an unknown id', 'a malformed id', 'a long id', 'an id with a slash']) {
      for (const operation of [`show ${what}`, `token of ${what}`, `cancel ${what}`, `revoke in ${what}`, `delete ${what}`, `watch ${what}`]) {
        t.equal(results[operation], 'TASK_NOT_FOUND', operation);
      }
    }
    for (const what of ['create with ttl 0', 'create with max clients 0', 'create with a long name', 'create with no files', 'prune with a negative age']) t.equal(results[what], 'INVALID_ARGUMENT', what);
    t.equal(results['create with an unsafe path'], 'PATH_UNSAFE');
    t.equal(results['create in nnpsk0'], 'ok');
  });
}

t.test('both give the same results and the same error codes', async (t) => {
  t.same(recorded['ApiClient'], recorded['TaskAdmin']);
});

t.test('prune gives the same answer through both', async (t) => {
  const admin = operators['TaskAdmin']!;
  const ended = await admin.createTask({ files: file('old\n'), name: 'to prune' });
  const endedAt = Date.parse((await admin.cancelTask(ended.id)).endedAt!);
  // Ended "more than 0 ms ago" needs the clock to have moved past the end: yield until it has (no fixed sleep).
  while (Date.now() <= endedAt) await new Promise((resolve) => setImmediate(resolve));
  const local = await admin.pruneTasks({ endedBeforeMs: 0, dryRun: true });
  const remote = await operators['ApiClient']!.pruneTasks({ endedBeforeMs: 0, dryRun: true });
  t.same(remote, local, 'the same dry run');
  t.ok(local.tasks.some((task) => task.id === ended.id), 'the cancelled task would go');
  const pruned = await operators['ApiClient']!.pruneTasks({ endedBeforeMs: 0 });
  t.ok(pruned.tasks.some((task) => task.id === ended.id), 'the API pruned it');
  t.equal(await outcome(() => admin.showTask(ended.id)), 'TASK_NOT_FOUND', 'and it is gone from the data directory');
});

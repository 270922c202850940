// What following a task costs (SPEC.md §8, issue 11): an event stream, and TaskAdmin.watch behind `task watch
// --data`, read the whole task only at the start and at the end; each poll in between reads the task row and the
// events after the last one sent. So the store reads per poll are the same with 10 clients and with 5,000, and
// the client list is never read while the stream is open. CPU per poll is printed, not asserted.
import t from 'tap';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import type { ClientRecord, TaskStore } from '../../lib/task/store.js';
import { openEvents, startApi, taskBody } from './support.js';

const root = t.testdir();
const api = await startApi(t, join(root, 'data'), { eventPollMs: 2 });
const store = api.server.store;

const SPIED = ['getTask', 'listEvents', 'lastEventId', 'listClients', 'getFiles', 'getClient', 'listTasks'] as const;
type Spied = typeof SPIED[number];
const calls = new Map<Spied, number>();
let onGetTask: (() => void) | null = null;
for (const name of SPIED) {
  const original = (store[name] as (...args: unknown[]) => unknown).bind(store);
  (store as unknown as Record<string, unknown>)[name] = (...args: unknown[]): unknown => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    if (name === 'getTask') onGetTask?.();
    return original(...args);
  };
}

/** Resolves once the store's getTask has been called `count` more times (each poll reads the task row once). */
function pollsDone(count: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    onGetTask = () => {
      if (++seen >= count) {
        onGetTask = null;
        resolve();
      }
    };
  });
}

async function createTaskWithClients(clients: number): Promise<string> {
  const response = await fetch(`${api.base}/v1/tasks`, { method: 'POST', headers: api.headers(true), body: JSON.stringify(taskBody({ 'app.conf': 'x = 1\n' })) });
  const { id } = await response.json() as { id: string };
  const now = Date.now();
  // Written the way the server writes them: group-committed client records, each with its event.
  await Promise.all(Array.from({ length: clients }, (_, index): Promise<void> => store.saveClient({
    taskId: id, identity: `client-${index}`, name: `host-${index}`, remoteAddress: '127.0.0.1:1', state: 'applied', firstSeenAt: now,
    updatedAt: now, exitCode: 0, message: 'applied', appliedDigest: null, hasSlot: true,
  } satisfies ClientRecord)));
  return id;
}

const POLLS = 40;

/** Store reads per poll (by method) and CPU microseconds per poll while `follow` is between its first and last event. */
async function measure(follow: () => Promise<{ afterFirst: () => Promise<void>; finish: () => Promise<string> }>): Promise<{ reads: Record<string, number>; cpuMicrosPerPoll: number; end: string }> {
  const following = await follow();
  await following.afterFirst();
  calls.clear();
  const cpu = process.cpuUsage();
  await pollsDone(POLLS);
  const used = process.cpuUsage(cpu);
  const reads = Object.fromEntries(SPIED.map((name) => [name, (calls.get(name) ?? 0) / POLLS]));
  const end = await following.finish();
  return { reads, cpuMicrosPerPoll: (used.user + used.system) / POLLS, end };
}

function viaEventStream(id: string): () => Promise<{ afterFirst: () => Promise<void>; finish: () => Promise<string> }> {
  return async () => {
    const { reader } = await openEvents(t, api, id);
    return {
      afterFirst: async () => {
        const first = await reader.next();
        if (first?.event !== 'task') throw new Error(`expected the task event, got ${first?.event}`);
      },
      finish: async () => {
        await fetch(`${api.base}/v1/tasks/${id}`, { method: 'DELETE', headers: api.headers() });
        const events = await reader.untilEnd();
        return (JSON.parse(events.at(-1)!.data) as { state: string }).state;
      },
    };
  };
}

function viaWatch(id: string, admin: TaskAdmin): () => Promise<{ afterFirst: () => Promise<void>; finish: () => Promise<string> }> {
  return async () => {
    const watch = admin.watch(id, { pollMs: 2 });
    let rest: Promise<string> | null = null;
    return {
      afterFirst: async () => {
        const first = await watch.next();
        if (first.value?.type !== 'task') throw new Error('expected the task first');
        // A generator polls only while someone asks for its next event, as task watch does.
        rest = (async () => {
          let last;
          for await (const event of watch) last = event;
          return last?.type === 'end' ? last.task.state : 'no end';
        })();
      },
      finish: async () => {
        await admin.cancelTask(id);
        return rest!;
      },
    };
  };
}

t.test('an event stream reads the same per poll with 10 and with 5,000 clients, and never the client list', async (t) => {
  const results = new Map<number, Awaited<ReturnType<typeof measure>>>();
  for (const clients of [10, 5000]) {
    const id = await createTaskWithClients(clients);
    const result = await measure(viaEventStream(id));
    results.set(clients, result);
    t.comment(`event stream, ${clients} clients: store reads per poll ${JSON.stringify(result.reads)}; CPU ${Math.round(result.cpuMicrosPerPoll)} µs per poll`);
    t.equal(result.reads.listClients, 0, `${clients} clients: the client list is not read while streaming`);
    t.equal(result.reads.getFiles, 0, `${clients} clients: nor the file list`);
    t.equal(result.end, 'cancelled', `${clients} clients: the stream ends with the task as it ended`);
  }
  t.same(results.get(5000)!.reads, results.get(10)!.reads, 'the reads per poll do not depend on the number of clients');
});

t.test('TaskAdmin.watch (task watch --data) reads the same per poll with 10 and with 5,000 clients, and never the client list', async (t) => {
  const admin = TaskAdmin.attach(api.server.dataDir, store as TaskStore);
  const results = new Map<number, Awaited<ReturnType<typeof measure>>>();
  for (const clients of [10, 5000]) {
    const id = await createTaskWithClients(clients);
    const result = await measure(viaWatch(id, admin));
    results.set(clients, result);
    t.comment(`watch, ${clients} clients: store reads per poll ${JSON.stringify(result.reads)}; CPU ${Math.round(result.cpuMicrosPerPoll)} µs per poll`);
    t.equal(result.reads.listClients, 0, `${clients} clients: the client list is not read while following`);
    t.equal(result.end, 'cancelled');
  }
  t.same(results.get(5000)!.reads, results.get(10)!.reads, 'the reads per poll do not depend on the number of clients');
});

t.test('a watch resumes after afterEventId and stops as soon as its signal aborts, in the middle of a wait', async (t) => {
  const admin = TaskAdmin.attach(api.server.dataDir, store as TaskStore);
  const id = await createTaskWithClients(3);
  const stored = await admin.events(id);
  t.same(stored.map((event) => event.state), ['created', 'applied', 'applied', 'applied']);
  const stop = new AbortController();
  // A long poll: only the abort can end the wait below.
  const watch = admin.watch(id, { afterEventId: stored[1]!.id, pollMs: 600_000, signal: stop.signal });
  const seen = [];
  for (let step = await watch.next(); !step.done; step = await watch.next()) {
    seen.push(step.value.type === 'change' ? step.value.change.id : step.value.type);
    if (seen.length === 3) stop.abort();
  }
  t.same(seen, ['task', stored[2]!.id, stored[3]!.id], 'the task, then only the events after the given one; then the abort ends it');
});

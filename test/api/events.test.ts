// GET /v1/tasks/{id}/events (SPEC.md §8): the server-sent events of a task, read as they arrive during real pulls.
import t from 'tap';
import { join } from 'node:path';
import { TaskAdmin } from '../../lib/task/admin.js';
import type { TaskStreamEvent, TaskView } from '../../lib/task/task.js';
import { openEvents, pullAs, startApi, taskBody, type RunningApi, type SseEvent } from './support.js';

interface Change {
  id: number;
  taskId: string;
  identity: string | null;
  name: string | null;
  state: string;
  at: string;
  detail: string | null;
}

const root = t.testdir();
// A short poll keeps the test quick; the stream logic is the same at any interval.
const api = await startApi(t, join(root, 'data'), { eventPollMs: 20 });

async function createTask(api: RunningApi, extra: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
  const response = await fetch(`${api.base}/v1/tasks`, { method: 'POST', headers: api.headers(true), body: JSON.stringify(taskBody({ 'app.conf': 'x = 1\n' }, extra)) });
  if (response.status !== 201) throw new Error(`POST /v1/tasks answered ${response.status}: ${await response.text()}`);
  return response.json() as Promise<{ id: string; token: string }>;
}

function changesOf(events: SseEvent[]): Change[] {
  return events.filter((event) => event.event === 'change').map((event) => JSON.parse(event.data) as Change);
}

t.test('during two real pulls: task, then offered and applied per client with rising ids, then end completed, then the stream closes', { timeout: 30_000 }, async (t) => {
  const task = await createTask(api, { maxClients: 2, name: 'two clients' });
  const { response, reader } = await openEvents(t, api, task.id);
  t.match(response.headers.get('content-type'), /^text\/event-stream/);
  t.equal(response.headers.get('cache-control'), 'no-cache');

  const first = await reader.next();
  t.equal(first?.event, 'task', 'the first event is the task');
  t.equal(first?.id, undefined, 'the task event carries no id');
  t.match(JSON.parse(first!.data) as TaskView, { id: task.id, state: 'active', maxClients: 2, clients: [] });

  const [a, b] = await Promise.all([pullAs(root, 'alpha', task.token), pullAs(root, 'beta', task.token)]);
  t.equal(a.status, 'applied');
  t.equal(b.status, 'applied');

  const events = await reader.untilEnd();
  t.equal(await reader.next(), null, 'the server closes the stream after end');
  t.same(events.map((event) => event.event).filter((name) => name !== 'change'), ['end'], 'only change events come before end');

  const changes = changesOf(events);
  const changeEvents = events.filter((event) => event.event === 'change');
  t.same(changeEvents.map((event) => Number(event.id)), changes.map((change) => change.id), 'the id: line is the change id');
  for (let index = 1; index < changes.length; index++) {
    t.ok(changes[index]!.id > changes[index - 1]!.id, `id ${changes[index]!.id} follows ${changes[index - 1]!.id}`);
  }
  for (const change of changes) {
    t.equal(change.taskId, task.id);
    t.match(change.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }

  const end = JSON.parse(events.at(-1)!.data) as TaskView;
  t.equal(end.state, 'completed');
  t.equal(end.counts.applied, 2);
  const identities = end.clients.map((client) => client.identity).sort();
  t.equal(identities.length, 2);
  t.same([...new Set(changes.filter((change) => change.identity !== null).map((change) => change.identity))].sort(), identities, 'changes for both clients');
  for (const client of end.clients) {
    const own = changes.filter((change) => change.identity === client.identity);
    t.same(own.map((change) => change.state), ['offered', 'applied'], `${client.name}: offered then applied`);
    t.same(own.map((change) => change.name), [client.name, client.name]);
  }
  t.same(changes.filter((change) => change.identity === null).map((change) => change.state), ['completed'], 'the task-level change is its completion');
});

t.test('a cancel while the stream is open ends it with state cancelled', { timeout: 30_000 }, async (t) => {
  const task = await createTask(api);
  const { reader } = await openEvents(t, api, task.id);
  const first = await reader.next();
  t.equal(first?.event, 'task');
  const cancel = await fetch(`${api.base}/v1/tasks/${task.id}`, { method: 'DELETE', headers: api.headers() });
  t.equal(cancel.status, 200);
  const events = await reader.untilEnd();
  t.equal(await reader.next(), null, 'the stream closes');
  const end = JSON.parse(events.at(-1)!.data) as TaskView;
  t.equal(end.id, task.id);
  t.equal(end.state, 'cancelled');
  t.same(changesOf(events).map((change) => [change.identity, change.state]), [[null, 'cancelled']]);
});

t.test('Last-Event-ID resumes after that event', { timeout: 30_000 }, async (t) => {
  const task = await createTask(api, { maxClients: 1 });
  t.equal((await pullAs(root, 'gamma', task.token)).status, 'applied');
  // From the start: every stored event of the task (the stream ends once the completion is stored).
  const all = await (await openEvents(t, api, task.id, { 'last-event-id': '0' })).reader.untilEnd();
  t.equal(all[0]!.event, 'task');
  t.equal(JSON.parse(all.at(-1)!.data).state, 'completed');
  const stored = await api.server.admin().events(task.id);
  t.same(stored.map((event) => event.state), ['created', 'offered', 'applied', 'completed']);
  t.same(changesOf(all).map((change) => [change.id, change.state]), stored.map((event) => [event.id, event.state]));

  // After the offer: only what came later.
  const offered = stored[1]!.id;
  const resumed = await (await openEvents(t, api, task.id, { 'last-event-id': String(offered) })).reader.untilEnd();
  t.same(changesOf(resumed).map((change) => [change.id, change.state]), stored.slice(2).map((event) => [event.id, event.state]));

  // Without the header a stream starts now: an ended task gives its state and its end, nothing replayed.
  const fresh = await (await openEvents(t, api, task.id)).reader.untilEnd();
  t.same(fresh.map((event) => event.event), ['task', 'end']);
});

t.test('events of an unknown task, or of a malformed id, are a 404 JSON error; no token 401', async (t) => {
  const unknown = await fetch(`${api.base}/v1/tasks/0123456789abcdef/events`, { headers: { ...api.headers(), accept: 'text/event-stream' } });
  t.equal(unknown.status, 404);
  t.match(unknown.headers.get('content-type'), /^application\/json/);
  t.match(await unknown.json(), { error: { code: 'TASK_NOT_FOUND', message: String } });
  const malformed = await fetch(`${api.base}/v1/tasks/nope/events`, { headers: api.headers() });
  t.equal(malformed.status, 404);
  t.match(await malformed.json(), { error: { code: 'TASK_NOT_FOUND' } });
  const task = await createTask(api);
  const anonymous = await fetch(`${api.base}/v1/tasks/${task.id}/events`);
  t.equal(anonymous.status, 401);
  t.match(await anonymous.json(), { error: { code: 'UNAUTHORIZED' } });
});

// `task watch --data` follows the store from another process (TaskAdmin.watch). Changes committed while it is
// handing out a batch of earlier ones (between its read of the events and its read of the task state) must not
// be lost when the task ends in that window. The window is held open here by not asking for the next event.
t.test('the store follower of task watch --data loses no change committed just before the task ended', { timeout: 30_000 }, async (t) => {
  const task = await createTask(api, { maxClients: 2 });
  const follower = await TaskAdmin.open(join(root, 'data'));
  t.teardown(() => follower.close());
  const watch = follower.watch(task.id, { pollMs: 10 });
  t.equal((await watch.next()).value?.type, 'task');
  t.equal((await pullAs(root, 'first', task.token)).status, 'applied');
  const paused = await watch.next();
  t.match(paused.value, { type: 'change', change: { name: 'first', state: 'offered' } });

  // Meanwhile the second client pulls and the task completes (the API's stream says when that is stored).
  const { reader } = await openEvents(t, api, task.id);
  t.equal((await pullAs(root, 'second', task.token)).status, 'applied');
  const streamed = await reader.untilEnd();
  t.equal(JSON.parse(streamed.at(-1)!.data).state, 'completed');

  const rest: TaskStreamEvent[] = [];
  for await (const event of watch) rest.push(event);
  t.match(rest.at(-1), { type: 'end', task: { state: 'completed' } });
  const states = rest.flatMap((event) => (event.type === 'change' ? [`${event.change.name ?? 'task'} ${event.change.state}`] : []));
  t.same(states, ['first applied', 'second offered', 'second applied', 'task completed'], 'every change up to the end');
});

// The group-commit queue (lib/task/group-commit.ts): a batch is taken at most once per GROUP_COMMIT_WINDOW_MS, a lone
// write after a quiet window is not held back for one, and the writes of one turn always share a batch. Timers are
// compared by their order (Node runs expired timers in the order they expire), not by how long anything took.
import t from 'tap';
import { commitDelayMs, GroupCommitQueue, GROUP_COMMIT_WINDOW_MS } from '../../lib/task/group-commit.js';

t.test('commitDelayMs: nothing after a quiet window, the rest of the window after a recent batch', async (t) => {
  t.equal(commitDelayMs(Number.NEGATIVE_INFINITY, 5), 0, 'no batch yet');
  t.equal(commitDelayMs(100, 100 + GROUP_COMMIT_WINDOW_MS), 0, 'a whole window ago');
  t.equal(commitDelayMs(100, 100 + GROUP_COMMIT_WINDOW_MS + 50), 0, 'long ago');
  t.equal(commitDelayMs(100, 103), GROUP_COMMIT_WINDOW_MS - 3, 'three milliseconds ago');
  t.equal(commitDelayMs(100, 100), GROUP_COMMIT_WINDOW_MS, 'just now');
});

function recordingQueue(): { queue: GroupCommitQueue; batches: number[][] } {
  const batches: number[][] = [];
  let current: number[] = [];
  const queue = new GroupCommitQueue((applyAll) => {
    current = [];
    applyAll();
    batches.push(current);
  }, (error) => error as Error);
  const enqueue = queue.enqueue.bind(queue);
  // Each write records its number in the batch that applies it.
  queue.enqueue = <T>(apply: () => T) => enqueue(() => {
    const value = apply();
    current.push(value as number);
    return value;
  });
  return { queue, batches };
}

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a lone write on a quiet queue commits without waiting a window; the writes of its turn join it', async (t) => {
  const { queue, batches } = recordingQueue();
  const writes = [queue.enqueue(() => 1), queue.enqueue(() => 2)];
  t.same(batches, [], 'nothing commits in the turn that queued it');
  // Queued after the flush timer and with the shortest delay there is, so it runs after the flush unless the flush
  // waited for a window.
  await tick(0);
  t.same(batches, [[1, 2]], 'committed before a window passed, both writes in one batch');
  t.same(await Promise.all(writes), [1, 2], 'each write resolves with what it returned');
});

t.test('a write soon after a batch waits for the rest of the window, with whatever else comes meanwhile', async (t) => {
  const { queue, batches } = recordingQueue();
  await queue.enqueue(() => 1);
  const second = queue.enqueue(() => 2);
  await tick(0);
  t.same(batches, [[1]], 'not yet: the last batch was less than a window ago');
  const third = queue.enqueue(() => 3);
  t.same(await Promise.all([second, third]), [2, 3]);
  t.same(batches, [[1], [2, 3]], 'the second and third share the next batch');
});

t.test('a failed batch rejects every write in it, and the next batch is not held back by it', async (t) => {
  let fail = true;
  const queue = new GroupCommitQueue((applyAll) => {
    applyAll();
    if (fail) throw new Error('disk full');
  }, (error) => new Error(`store: ${(error as Error).message}`));
  const results = await Promise.allSettled([queue.enqueue(() => 1), queue.enqueue(() => 2)]);
  t.same(results.map((result) => result.status === 'rejected' && result.reason.message), ['store: disk full', 'store: disk full']);
  fail = false;
  t.equal(await queue.enqueue(() => 3), 3);
});

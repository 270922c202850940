// The group-commit queue (lib/task/group-commit.ts): the writes queued within a window share one batch, nothing is
// committed before the window ends, and a failed batch rejects every write in it without holding the next back.
// Timers are compared by their order (Node runs expired timers in the order they expire), not by durations.
import t from 'tap';
import { GroupCommitQueue } from '../../lib/task/group-commit.js';

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('writes queued within the window share one batch, committed when it ends', async (t) => {
  const batches: number[][] = [];
  let current: number[] = [];
  const queue = new GroupCommitQueue((applyAll) => {
    current = [];
    applyAll();
    batches.push(current);
  }, (error) => error as Error);
  const write = (value: number): Promise<number> => queue.enqueue(() => {
    current.push(value);
    return value;
  });
  const first = [write(1), write(2)];
  await tick(0);
  t.same(batches, [], 'nothing is committed a turn later: the window is still open');
  const third = write(3);
  t.same(await Promise.all([...first, third]), [1, 2, 3], 'each write resolves with what it returned');
  t.same(batches, [[1, 2, 3]], 'all three in one batch');
  t.same(await write(4), 4);
  t.same(batches, [[1, 2, 3], [4]], 'a write after the batch starts the next');
});

t.test('a failed batch rejects every write in it, and the next batch is not held back by it', async (t) => {
  let fail = true;
  const queue = new GroupCommitQueue((applyAll) => {
    applyAll();
    if (fail) throw new Error('disk full');
  }, (error) => new Error(`store: ${(error as Error).message}`));
  const results = await Promise.allSettled([queue.enqueue(() => 1), queue.enqueue(() => 2)]);
  t.same(results.map((result) => result.status === 'rejected' && (result.reason as Error).message), ['store: disk full', 'store: disk full']);
  fail = false;
  t.equal(await queue.enqueue(() => 3), 3);
});

// RateLimitedLog (SPEC.md §2.6): a flood of events of one kind costs a bounded number of lines per interval.
import t from 'tap';
import { RateLimitedLog } from '../../lib/transport/rate-limited-log.js';

interface Line { kind: string; n: number; count?: number }

t.test('a flood of 10 000 events of one kind is 3 lines and one summary with the count of the rest', async (t) => {
  const lines: Line[] = [];
  const log = new RateLimitedLog<Line>({ emit: (line) => lines.push(line), summarize: (last, count) => ({ ...last, count }), eventsPerInterval: 3, intervalMs: 60_000 });
  for (let n = 0; n < 10_000; n++) log.report('timeout', { kind: 'timeout', n });
  log.report('auth', { kind: 'auth', n: -1 });
  t.same(lines.map((line) => line.n), [0, 1, 2, -1], 'three of the flood pass one by one; another kind is not held back by it');
  log.flush();
  t.same(lines.at(-1), { kind: 'timeout', n: 9_999, count: 9_997 }, 'the summary counts the held events and shows the latest');
  t.equal(lines.length, 5);
  log.report('timeout', { kind: 'timeout', n: 10_000 });
  t.equal(lines.at(-1)?.n, 10_000, 'a new interval passes events again');
  log.flush();
  t.equal(lines.length, 6, 'nothing held, no summary');
});

t.test('the interval ends by itself', async (t) => {
  const lines: Line[] = [];
  const log = new RateLimitedLog<Line>({ emit: (line) => lines.push(line), summarize: (last, count) => ({ ...last, count }), eventsPerInterval: 1, intervalMs: 20 });
  log.report('x', { kind: 'x', n: 1 });
  log.report('x', { kind: 'x', n: 2 });
  log.report('x', { kind: 'x', n: 3 });
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.same(lines, [{ kind: 'x', n: 1 }, { kind: 'x', n: 3, count: 2 }]);
});

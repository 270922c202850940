// Issue 12 item 8 (SPEC.md §4.7 "Progress"): the pull progress bar as a pure renderer, a bar object on a
// fake clock (delay, at most 10 redraws a second, cleared at the end), when it is wanted, and one CLI pull with
// --progress into a pipe.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { formatBytes, formatSeconds, isProgressWanted, ProgressBar, renderProgress } from '../../cli/progress.js';
import { clientSetup } from '../task/client-support.js';
import { runCli } from '../task/support.js';

t.test('renderProgress shows the bar, percent, bytes, average rate and ETA', async (t) => {
  t.equal(renderProgress({ receivedBytes: 2 * 1024 * 1024, totalBytes: 8 * 1024 * 1024, elapsedMs: 2000 }),
    '[######..................]  25%  2.0 MiB / 8.0 MiB  1.0 MiB/s  ETA 6s');
  t.equal(renderProgress({ receivedBytes: 0, totalBytes: 1000, elapsedMs: 0 }),
    '[........................]   0%  0 B / 1000 B  --/s  ETA --', 'no rate or ETA before a byte arrived');
  t.equal(renderProgress({ receivedBytes: 1000, totalBytes: 1000, elapsedMs: 500 }),
    '[########################] 100%  1000 B / 1000 B  2.0 KiB/s  ETA 0s');
  t.equal(renderProgress({ receivedBytes: 0, totalBytes: 0, elapsedMs: 10 }).slice(0, 31), '[########################] 100%', 'an empty task is complete');
});

t.test('formatBytes and formatSeconds', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  t.equal(formatSeconds(7.2), '7s');
  t.equal(formatSeconds(0.01), '0s', 'a sliver left is 0s, not 1s');
  t.equal(formatSeconds(125), '2m05s');
  t.equal(formatSeconds(3720), '1h02m');
});

/** A bar on a clock the test moves, with everything it wrote. */
function fakeBar(isForced: boolean): { bar: ProgressBar; writes: string[]; tick: (ms: number) => void } {
  let now = 0;
  const writes: string[] = [];
  const bar = new ProgressBar({ write: (text) => writes.push(text), now: () => now, isForced });
  return { bar, writes, tick: (ms) => { now += ms; } };
}

t.test('the bar appears only once a transfer lasted a second, redraws at most 10 times a second in place, and is cleared at the end', async (t) => {
  const { bar, writes, tick } = fakeBar(false);
  const total = 3000;
  // 3 s of updates every 10 ms, one byte per ms.
  for (let elapsed = 0; elapsed < total; elapsed += 10) {
    bar.update(elapsed, total);
    if (elapsed < 1000) t.equal(writes.length, 0, 'nothing during the first second');
    tick(10);
  }
  const draws = writes.length;
  t.ok(draws >= 15 && draws <= 21, `about 10 draws a second for the last 2 s (${draws})`);
  t.ok(writes.every((text) => text.startsWith('\r') && !text.includes('\n')), 'each redraw returns to the line start, no newline');
  bar.update(total, total);
  const end = writes.slice(draws);
  t.match(end[0], /^\r\[#{24}\] 100%/, 'the last state is drawn');
  t.match(end[1], /^\r +\r$/, 'then the line is wiped');
  t.equal(end.length, 2);
});

t.test('a transfer shorter than a second draws nothing unless forced; a forced bar draws at once', async (t) => {
  const quiet = fakeBar(false);
  quiet.bar.update(0, 100);
  quiet.tick(300);
  quiet.bar.update(100, 100);
  t.same(quiet.writes, [], 'a short pull shows no bar');
  const forced = fakeBar(true);
  forced.bar.update(0, 100);
  t.match(forced.writes[0], /^\r\[\.{24}\]   0%/, 'forced: drawn on the first update');
  forced.tick(5);
  forced.bar.update(100, 100);
  t.match(forced.writes.at(-1), /^\r +\r$/, 'and cleared at the end');
});

t.test('clear() before a status line wipes the bar; the next update draws it again', async (t) => {
  const { bar, writes, tick } = fakeBar(true);
  bar.update(10, 100);
  bar.clear();
  t.match(writes.at(-1), /^\r +\r$/);
  bar.clear();
  t.equal(writes.length, 2, 'a second clear writes nothing');
  tick(1);
  bar.update(20, 100);
  t.match(writes.at(-1), /^\r\[/, 'redrawn right after a clear');
});

t.test('a bar is wanted on a terminal without --json; --progress forces it, --no-progress stops it', async (t) => {
  t.equal(isProgressWanted(undefined, false, true), true, 'terminal');
  t.equal(isProgressWanted(undefined, false, false), false, 'not a terminal');
  t.equal(isProgressWanted(undefined, true, true), false, '--json');
  t.equal(isProgressWanted(true, false, false), true, '--progress into a pipe');
  t.equal(isProgressWanted(false, false, true), false, '--no-progress on a terminal');
});

t.test('pull --progress into a pipe shows the bar on stderr; without it, a pipe gets no bar', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create([{ path: 'big.bin', content: randomBytes(4 * 1024 * 1024) }]);
  const withBar = await runCli(t, ['pull', '--out', s.outDir, '--identity-dir', s.identityDir, '--progress', '--json'], { env: { NOISE_CFG_TOKEN: token } });
  t.equal(withBar.code, 0, withBar.stderr);
  t.match(withBar.stderr, /\r\[\.{24}\]   0%  0 B \/ 4\.0 MiB  --\/s  ETA --/, 'the bar at the start');
  t.match(withBar.stderr, /\r\[#{24}\] 100%  4\.0 MiB \/ 4\.0 MiB  [\d.]+ [KMG]iB\/s  ETA 0s/, 'and at the end, with a rate');
  t.match(withBar.stderr, /\r +\r/, 'then wiped');
  t.equal((JSON.parse(withBar.stdout) as { status: string }).status, 'applied', 'stdout is still one JSON object');
  const other = `${s.outDir}-2`;
  const withoutBar = await runCli(t, ['pull', '--out', other, '--identity-dir', s.identityDir], { env: { NOISE_CFG_TOKEN: token } });
  t.equal(withoutBar.code, 0, withoutBar.stderr);
  t.notMatch(withoutBar.stderr, /\r|\[#/, 'no bar when stderr is not a terminal');
});

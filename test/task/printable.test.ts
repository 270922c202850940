// Peer text on an operator's terminal (SPEC.md §9): unprintable characters are detected and escaped.
import t from 'tap';
import { escapeUnprintable, hasUnprintableCharacters, toTerminalSafeJson } from '../../lib/task/printable.js';

const HOSTILE = ['\u001b[2J', 'a\rb', 'x\ny', '\u007f', '\u0085', '\u009b31m', 'evil\u202egnp.exe', '\u2066iso\u2069', 'zero\u200bwidth', '\ufeffbom', 'soft\u00adhyphen', 'line\u2028sep', 'tag\u{e0041}'];

t.test('names with control, escape, bidi-override or invisible characters are unprintable', async (t) => {
  for (const text of HOSTILE) t.ok(hasUnprintableCharacters(text), escapeUnprintable(text));
  for (const text of ['web-01', 'Zürich büro', '東京', 'emoji 🚀', 'a b\tc'.replace('\t', ' ')]) t.notOk(hasUnprintableCharacters(text), text);
});

t.test('escapeUnprintable leaves nothing a terminal acts on', async (t) => {
  for (const text of HOSTILE) {
    const escaped = escapeUnprintable(text);
    t.notOk(hasUnprintableCharacters(escaped), escaped);
  }
  t.equal(escapeUnprintable('\u001b[2J'), '\\u{1b}[2J');
  t.equal(escapeUnprintable('plain 東京'), 'plain 東京');
});

t.test('toTerminalSafeJson parses back to the same value and prints nothing active', async (t) => {
  const value = { names: HOSTILE, n: 1 };
  const text = toTerminalSafeJson(value);
  t.notOk(hasUnprintableCharacters(text), text);
  t.same(JSON.parse(text), value);
});

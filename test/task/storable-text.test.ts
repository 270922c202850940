// Peer text as the stores keep it (lib/task/storable-text.ts, SPEC.md §4.9): NUL and lone surrogates become
// U+FFFD, everything else (pairs, astral characters, other controls) is kept as it is.
import t from 'tap';
import { storableNullableText, storableText } from '../../lib/task/storable-text.js';

t.test('NUL and each lone surrogate become U+FFFD; a surrogate pair, an astral character and other controls stay', async (t) => {
  t.equal(storableText('\u0000'), '\ufffd');
  t.equal(storableText('a\ud800'), 'a\ufffd', 'a high surrogate at the end');
  t.equal(storableText('\udc00a'), '\ufffda', 'a low surrogate at the start');
  t.equal(storableText('\udc00\ud800'), '\ufffd\ufffd', 'low then high is two lone surrogates, not a pair');
  t.equal(storableText('\ud83d\ude00'), '\u{1F600}', 'a pair is one character, kept');
  t.equal(storableText('\u0001\u001b[2J\u007f\u2028'), '\u0001\u001b[2J\u007f\u2028', 'other controls are kept: the outputs escape them (printable.ts)');
  t.equal(storableText('x\u0000y\u0000'), 'x\ufffdy\ufffd', 'every one, not the first only');
});

t.test('text with nothing to replace is the same string; null stays null', async (t) => {
  const plain = 'applied: 3 files, ünïcödé, \u{1F600}';
  t.equal(storableText(plain), plain);
  t.equal(storableNullableText(null), null);
  t.equal(storableNullableText('a\u0000'), 'a\ufffd');
});

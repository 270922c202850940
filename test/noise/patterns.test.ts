/**
 * The pattern table and the pskN modifier (Noise rev. 34 §7.4–§7.6, §9.4, §18.1) against the spec text itself,
 * read from the copy in test/reference, and the validity rules of §7.3 and §9.3.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { REFERENCE_DIR } from '../support/paths.js';
import { BASE_PATTERN_NAMES, parsePattern, patternFromName, validatePattern, type HandshakePattern, type MessageToken } from '../../lib/noise/patterns.js';

const SPEC_PATH = join(REFERENCE_DIR, 'noise-rev34.md');

interface SpecPattern {
  name: string;
  lines: string[];
}

/**
 * Every boxed pattern of the spec: the tables are `+---+` rows of `|`-separated columns, and in each column a
 * `NAME:` cell starts a pattern whose lines follow in the same column.
 */
function readSpecPatterns(text: string): SpecPattern[] {
  const found: SpecPattern[] = [];
  let current: (SpecPattern | null)[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) {
      current = [];
      continue;
    }
    const cells = line.split('|').slice(1, -1);
    cells.forEach((cell, column) => {
      const text = cell.trim();
      const heading = /^([A-Za-z0-9+]+):$/.exec(text);
      if (heading) {
        const pattern = { name: heading[1]!, lines: [] };
        found.push(pattern);
        current[column] = pattern;
      } else if (text !== '') {
        current[column]?.lines.push(text);
      }
    });
  }
  return found;
}

/** The spec's notation turned into the shape of HandshakePattern, without the code under test. */
function expectedFromSpec(lines: readonly string[]): Pick<HandshakePattern, 'initiatorPreMessage' | 'responderPreMessage' | 'messages'> {
  const separator = lines.indexOf('...');
  const split = (line: string): { fromInitiator: boolean; tokens: string[] } => ({
    fromInitiator: line.startsWith('->'),
    tokens: line.slice(2).split(',').map((token) => token.trim()).filter((token) => token !== ''),
  });
  const pre = separator === -1 ? [] : lines.slice(0, separator).map(split);
  return {
    initiatorPreMessage: pre.filter((line) => line.fromInitiator).flatMap((line) => line.tokens) as ('e' | 's')[],
    responderPreMessage: pre.filter((line) => !line.fromInitiator).flatMap((line) => line.tokens) as ('e' | 's')[],
    messages: lines.slice(separator + 1).map(split) as { fromInitiator: boolean; tokens: MessageToken[] }[],
  };
}

const shapeOf = (pattern: HandshakePattern): Pick<HandshakePattern, 'initiatorPreMessage' | 'responderPreMessage' | 'messages'> => ({
  initiatorPreMessage: [...pattern.initiatorPreMessage],
  responderPreMessage: [...pattern.responderPreMessage],
  messages: pattern.messages.map((message) => ({ fromInitiator: message.fromInitiator, tokens: [...message.tokens] })),
});

const ONE_WAY = ['N', 'K', 'X'];
const FUNDAMENTAL = ['NN', 'NK', 'NX', 'KN', 'KK', 'KX', 'XN', 'XK', 'XX', 'IN', 'IK', 'IX'];
const DEFERRED = [
  'NK1', 'NX1', 'X1N', 'X1K', 'XK1', 'X1K1', 'X1X', 'XX1', 'X1X1', 'K1N', 'K1K', 'KK1', 'K1K1', 'K1X', 'KX1', 'K1X1',
  'I1N', 'I1K', 'IK1', 'I1K1', 'I1X', 'IX1', 'I1X1',
];

t.test('the table has the 3 one-way, 12 fundamental and 23 deferred patterns of the spec', async (t) => {
  t.same([...BASE_PATTERN_NAMES].sort(), [...ONE_WAY, ...FUNDAMENTAL, ...DEFERRED].sort());
  for (let i = 1; i < BASE_PATTERN_NAMES.length; i++) {
    t.ok(BASE_PATTERN_NAMES[i - 1]!.length >= BASE_PATTERN_NAMES[i]!.length, `${BASE_PATTERN_NAMES[i - 1]} is tried before ${BASE_PATTERN_NAMES[i]}`);
  }
});

t.test('every pattern boxed in the spec text matches patternFromName', async (t) => {
  const specPatterns = readSpecPatterns(readFileSync(SPEC_PATH, 'utf8'));
  const names = new Set(specPatterns.map((pattern) => pattern.name));
  for (const name of [...BASE_PATTERN_NAMES, 'Npsk0', 'Kpsk0', 'Xpsk1', 'NNpsk0', 'NNpsk2', 'XXpsk3', 'IXpsk2']) {
    t.ok(names.has(name), `the spec text has ${name}`);
  }
  let compared = 0;
  for (const specPattern of specPatterns) {
    const pattern = patternFromName(specPattern.name);
    t.same(shapeOf(pattern), expectedFromSpec(specPattern.lines), `${specPattern.name}: ${specPattern.lines.join(' | ')}`);
    t.equal(pattern.name, specPattern.name, `${specPattern.name}: name`);
    t.equal(pattern.isPskHandshake, specPattern.name.includes('psk'), `${specPattern.name}: isPskHandshake`);
    compared += 1;
  }
  // 3 + 12 one-way and fundamental, 4 deferred in §7.6, 18 + 23 in §18.1, 3 + 18 psk patterns in §9.4 (with bases).
  t.ok(compared >= 3 + 12 + 23 + 21, `compared ${compared} boxed patterns`);
});

t.test('every base pattern: messages alternate, the first from the initiator, no psk', async (t) => {
  for (const name of BASE_PATTERN_NAMES) {
    const pattern = patternFromName(name);
    t.ok(pattern.messages.length >= 1, `${name}: has messages`);
    t.equal(pattern.messages[0]!.fromInitiator, true, `${name}: the initiator sends first`);
    pattern.messages.forEach((message, index) => {
      t.equal(message.fromInitiator, index % 2 === 0, `${name}: message ${index + 1} direction`);
    });
    t.equal(pattern.isPskHandshake, false, `${name}: isPskHandshake`);
    t.equal(pattern.isOneWay, ONE_WAY.includes(name), `${name}: isOneWay`);
    t.notOk(pattern.messages.some((message) => message.tokens.includes('psk')), `${name}: no psk token`);
  }
});

t.test('pskN on every base pattern: psk0 first in message 1, pskN last in message N', async (t) => {
  for (const name of BASE_PATTERN_NAMES) {
    const base = patternFromName(name);
    for (let position = 0; position <= base.messages.length; position++) {
      const modified = patternFromName(`${name}psk${position}`);
      const target = Math.max(position, 1) - 1;
      const expected = base.messages.map((message, index) => ({
        fromInitiator: message.fromInitiator,
        tokens: index !== target ? [...message.tokens] : position === 0 ? ['psk', ...message.tokens] : [...message.tokens, 'psk'],
      }));
      t.same(shapeOf(modified).messages, expected, `${name}psk${position}`);
      t.same(shapeOf(modified).initiatorPreMessage, [...base.initiatorPreMessage], `${name}psk${position}: pre-messages unchanged`);
      t.same(shapeOf(modified).responderPreMessage, [...base.responderPreMessage], `${name}psk${position}: pre-messages unchanged`);
      t.equal(modified.isPskHandshake, true, `${name}psk${position}: isPskHandshake`);
      t.equal(modified.isOneWay, base.isOneWay, `${name}psk${position}: isOneWay`);
    }
    t.throws(() => patternFromName(`${name}psk${base.messages.length + 1}`), { code: 'INVALID_PATTERN' }, `${name}psk${base.messages.length + 1}: no such message`);
  }
});

t.test('the product patterns and a chain of modifiers', async (t) => {
  t.same(shapeOf(patternFromName('XXpsk3')).messages, [
    { fromInitiator: true, tokens: ['e'] },
    { fromInitiator: false, tokens: ['e', 'ee', 's', 'es'] },
    { fromInitiator: true, tokens: ['s', 'se', 'psk'] },
  ]);
  t.same(shapeOf(patternFromName('NNpsk0')).messages, [
    { fromInitiator: true, tokens: ['psk', 'e'] },
    { fromInitiator: false, tokens: ['e', 'ee'] },
  ]);
  t.same(shapeOf(patternFromName('NNpsk2')).messages, [
    { fromInitiator: true, tokens: ['e'] },
    { fromInitiator: false, tokens: ['e', 'ee', 'psk'] },
  ]);
  const chained = patternFromName('XXpsk0+psk1+psk2+psk3');
  t.same(shapeOf(chained).messages, [
    { fromInitiator: true, tokens: ['psk', 'e', 'psk'] },
    { fromInitiator: false, tokens: ['e', 'ee', 's', 'es', 'psk'] },
    { fromInitiator: true, tokens: ['s', 'se', 'psk'] },
  ]);
  t.equal(chained.isPskHandshake, true);
  t.equal(chained.name, 'XXpsk0+psk1+psk2+psk3');
  t.same(shapeOf(patternFromName('XXpsk3+psk0')).messages, shapeOf(patternFromName('XXpsk0+psk3')).messages, 'modifier order does not matter');
});

t.test('names patternFromName refuses', async (t) => {
  const cases: [string, string][] = [
    ['NNpsk3', 'INVALID_PATTERN'],
    ['Npsk2', 'INVALID_PATTERN'],
    ['XXpsk4', 'INVALID_PATTERN'],
    ['NNpsk0+psk0', 'INVALID_PATTERN'],
    ['XXfallback', 'UNSUPPORTED_PROTOCOL'],
    ['XXhfs', 'UNSUPPORTED_PROTOCOL'],
    ['XXpsk0+hfs', 'UNSUPPORTED_PROTOCOL'],
    ['XXpsk', 'UNSUPPORTED_PROTOCOL'],
    ['XXpsk01', 'UNSUPPORTED_PROTOCOL'],
    ['XXpsk0+', 'UNSUPPORTED_PROTOCOL'],
    ['xx', 'UNSUPPORTED_PROTOCOL'],
    ['ZZ', 'UNSUPPORTED_PROTOCOL'],
    ['', 'UNSUPPORTED_PROTOCOL'],
  ];
  for (const [name, code] of cases) t.throws(() => patternFromName(name), { code }, JSON.stringify(name));
});

t.test('§9.3: no encrypted data after a psk before the party has sent e', async (t) => {
  const invalid: [string, string[]][] = [
    ['static key after psk, before e', ['-> psk, s', '<- e, ee']],
    ['payload after psk, before e', ['-> psk', '<- e']],
    ['the responder too: its s after a psk it processed', ['-> e, psk', '<- s, e, ee']],
    ['the responder\'s payload after a psk, before its e', ['-> e, psk', '<-']],
  ];
  for (const [why, lines] of invalid) t.throws(() => parsePattern('bad', lines), { code: 'INVALID_PATTERN' }, why);
  t.doesNotThrow(() => parsePattern('good', ['-> psk, e', '<- e, ee']), 'e after psk in the same message is fine');
  t.doesNotThrow(() => parsePattern('good', ['-> e', '<- e, ee, psk']), 'psk after both e is fine');
});

t.test('§7.3: shape rules that parsePattern and validatePattern enforce', async (t) => {
  const invalid: [string, string[], boolean?][] = [
    ['no messages', []],
    ['the first message from the responder', ['<- e']],
    ['messages not alternating', ['-> e', '-> s']],
    ['a party sends e twice', ['-> e', '<- e, ee', '-> e']],
    ['e twice in one message', ['-> e, e']],
    ['a party sends s twice', ['-> s', '...', '-> e, s']],
    ['a DH before any key is known', ['-> ee']],
    ['es before the responder has s', ['-> e, es']],
    ['se before the initiator has s', ['-> e', '<- e, ee, se']],
    ['a one-way pattern with two messages', ['-> e', '<- e, ee'], true],
    ['an unknown token', ['-> e, xx']],
    ['a malformed line', ['=> e']],
    ['psk in a pre-message', ['-> psk', '...', '-> e']],
  ];
  for (const [why, lines, isOneWay] of invalid) t.throws(() => parsePattern('bad', lines, isOneWay), { code: 'INVALID_PATTERN' }, why);

  const valid = patternFromName('XX');
  t.doesNotThrow(() => validatePattern(valid), 'a table pattern passes');
  const handBuilt = (messages: HandshakePattern['messages'], extra: Partial<HandshakePattern> = {}): HandshakePattern => ({
    ...valid,
    name: 'hand-built',
    messages,
    isPskHandshake: messages.some((message) => message.tokens.includes('psk')),
    ...extra,
  });
  t.throws(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['psk', 's'] }, { fromInitiator: false, tokens: ['e', 'ee'] }])), { code: 'INVALID_PATTERN' }, 'validatePattern: §9.3');
  t.throws(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['e'] }, { fromInitiator: false, tokens: ['e', 'ee'] }, { fromInitiator: true, tokens: ['e'] }])), { code: 'INVALID_PATTERN' }, 'validatePattern: e twice');
  t.throws(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['ee'] }])), { code: 'INVALID_PATTERN' }, 'validatePattern: DH before keys known');
  t.throws(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['e'] }], { initiatorPreMessage: ['e'] })), { code: 'INVALID_PATTERN' }, 'validatePattern: e in the pre-message and again');
  t.doesNotThrow(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['e', 'es'] }], { responderPreMessage: ['s'], isOneWay: true })), 'validatePattern: one-way es with a pre-shared responder s');
  // Interactive, the responder would send transport payloads after es (its static) without ee: rule 4.
  t.throws(() => validatePattern(handBuilt([{ fromInitiator: true, tokens: ['e', 'es'] }], { responderPreMessage: ['s'], isOneWay: false })), { code: 'INVALID_PATTERN' }, 'validatePattern: interactive es without ee');
});

// Rules 3 and 4 of §7.3 are shape rules too, but validatePattern does not check them yet. The table patterns and
// pskN modifiers cannot break them, so only hand-built patterns reach this gap.
t.test('§7.3 rule 3: a DH at most once per handshake', async (t) => {
  t.throws(() => parsePattern('bad', ['-> e', '<- e, ee, ee']), { code: 'INVALID_PATTERN' }, 'ee twice');
  t.throws(() => parsePattern('bad', ['-> e', '<- e, ee, s, es', '-> s, se, se']), { code: 'INVALID_PATTERN' }, 'se twice');
});

t.test('§7.3 rule 4: no payload after a DH with the local static key until the matching ephemeral DH', async (t) => {
  t.throws(() => parsePattern('bad', ['-> e', '<- s, es']), { code: 'INVALID_PATTERN' }, 'responder sends after es without ee');
  t.throws(() => parsePattern('bad', ['-> s', '<- s', '...', '-> e, ss']), { code: 'INVALID_PATTERN' }, 'initiator sends after ss without es');
});

/**
 * Handshake patterns as data (Noise rev. 34 §7.4–§7.6, §18.1) and the pskN modifier (§9.4), with the validity
 * checks of §7.3 and the PSK validity rule of §9.3. noise-handshake keeps its own table private and lacks psk3
 * and the one-way and deferred patterns, so the table lives here.
 */
import { NoiseCfgError } from '../errors.js';

/** A token of a message pattern. */
export type MessageToken = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';
/** A token of a pre-message pattern. */
export type PreMessageToken = 'e' | 's';

/** One message of a handshake pattern. */
export interface MessagePattern {
  /** True for `->` (initiator to responder). */
  fromInitiator: boolean;
  tokens: readonly MessageToken[];
}

/** A complete handshake pattern, possibly with psk modifiers applied. */
export interface HandshakePattern {
  /** The pattern name as in a protocol name, e.g. `XXpsk3`. */
  name: string;
  /** Keys the initiator's peer knows beforehand (`-> …` before `...`). */
  initiatorPreMessage: readonly PreMessageToken[];
  /** Keys the responder's peer knows beforehand (`<- …` before `...`). */
  responderPreMessage: readonly PreMessageToken[];
  messages: readonly MessagePattern[];
  /** True when the pattern has a psk token, which makes `e` also call MixKey (§9.2). */
  isPskHandshake: boolean;
  /** How many psk tokens the messages hold: the number of PSKs a handshake needs. */
  pskCount: number;
  /** True when a message from the initiator carries its static key. */
  initiatorSendsStatic: boolean;
  /** True when a message from the responder carries its static key. */
  responderSendsStatic: boolean;
  /** True for one-way patterns (N, K, X): only the initiator sends transport messages (§7.4). */
  isOneWay: boolean;
}

// The spec's own notation, one string per line; `...` ends the pre-messages.
const BASE_PATTERNS: Readonly<Record<string, readonly string[]>> = {
  N: ['<- s', '...', '-> e, es'],
  K: ['-> s', '<- s', '...', '-> e, es, ss'],
  X: ['<- s', '...', '-> e, es, s, ss'],
  NN: ['-> e', '<- e, ee'],
  NK: ['<- s', '...', '-> e, es', '<- e, ee'],
  NX: ['-> e', '<- e, ee, s, es'],
  KN: ['-> s', '...', '-> e', '<- e, ee, se'],
  KK: ['-> s', '<- s', '...', '-> e, es, ss', '<- e, ee, se'],
  KX: ['-> s', '...', '-> e', '<- e, ee, se, s, es'],
  XN: ['-> e', '<- e, ee', '-> s, se'],
  XK: ['<- s', '...', '-> e, es', '<- e, ee', '-> s, se'],
  XX: ['-> e', '<- e, ee, s, es', '-> s, se'],
  IN: ['-> e, s', '<- e, ee, se'],
  IK: ['<- s', '...', '-> e, es, s, ss', '<- e, ee, se'],
  IX: ['-> e, s', '<- e, ee, se, s, es'],
  NK1: ['<- s', '...', '-> e', '<- e, ee, es'],
  NX1: ['-> e', '<- e, ee, s', '-> es'],
  X1N: ['-> e', '<- e, ee', '-> s', '<- se'],
  X1K: ['<- s', '...', '-> e, es', '<- e, ee', '-> s', '<- se'],
  XK1: ['<- s', '...', '-> e', '<- e, ee, es', '-> s, se'],
  X1K1: ['<- s', '...', '-> e', '<- e, ee, es', '-> s', '<- se'],
  X1X: ['-> e', '<- e, ee, s, es', '-> s', '<- se'],
  XX1: ['-> e', '<- e, ee, s', '-> es, s, se'],
  X1X1: ['-> e', '<- e, ee, s', '-> es, s', '<- se'],
  K1N: ['-> s', '...', '-> e', '<- e, ee', '-> se'],
  K1K: ['-> s', '<- s', '...', '-> e, es', '<- e, ee', '-> se'],
  KK1: ['-> s', '<- s', '...', '-> e', '<- e, ee, se, es'],
  K1K1: ['-> s', '<- s', '...', '-> e', '<- e, ee, es', '-> se'],
  K1X: ['-> s', '...', '-> e', '<- e, ee, s, es', '-> se'],
  KX1: ['-> s', '...', '-> e', '<- e, ee, se, s', '-> es'],
  K1X1: ['-> s', '...', '-> e', '<- e, ee, s', '-> se, es'],
  I1N: ['-> e, s', '<- e, ee', '-> se'],
  I1K: ['<- s', '...', '-> e, es, s', '<- e, ee', '-> se'],
  IK1: ['<- s', '...', '-> e, s', '<- e, ee, se, es'],
  I1K1: ['<- s', '...', '-> e, s', '<- e, ee, es', '-> se'],
  I1X: ['-> e, s', '<- e, ee, s, es', '-> se'],
  IX1: ['-> e, s', '<- e, ee, se, s', '-> es'],
  I1X1: ['-> e, s', '<- e, ee, s', '-> se, es'],
};

const ONE_WAY_PATTERNS = new Set(['N', 'K', 'X']);
const MESSAGE_TOKENS = new Set<string>(['e', 's', 'ee', 'es', 'se', 'ss', 'psk']);

/** Names of every base pattern in the table, longest first (so `XX1` is tried before `XX`). */
export const BASE_PATTERN_NAMES: readonly string[] = Object.keys(BASE_PATTERNS).sort((a, b) => b.length - a.length);

function parseLine(line: string): { fromInitiator: boolean; tokens: string[] } {
  const match = /^(->|<-)\s*(.*)$/.exec(line);
  if (!match) throw new NoiseCfgError('INVALID_PATTERN', `malformed pattern line "${line}"`);
  const tokens = match[2]!.split(',').map((token) => token.trim()).filter((token) => token !== '');
  return { fromInitiator: match[1] === '->', tokens };
}

/** Parses pattern lines in the spec's notation into a HandshakePattern and checks it (§7.3, §9.3). */
export function parsePattern(name: string, lines: readonly string[], isOneWay = false): HandshakePattern {
  const separator = lines.indexOf('...');
  const preLines = separator === -1 ? [] : lines.slice(0, separator);
  const messageLines = separator === -1 ? lines : lines.slice(separator + 1);
  const initiatorPreMessage: PreMessageToken[] = [];
  const responderPreMessage: PreMessageToken[] = [];
  for (const line of preLines) {
    const { fromInitiator, tokens } = parseLine(line);
    for (const token of tokens) {
      if (token !== 'e' && token !== 's') throw new NoiseCfgError('INVALID_PATTERN', `pre-message token "${token}" in ${name}: only e and s may be pre-shared`);
      (fromInitiator ? initiatorPreMessage : responderPreMessage).push(token);
    }
  }
  const messages: MessagePattern[] = messageLines.map((line) => {
    const { fromInitiator, tokens } = parseLine(line);
    for (const token of tokens) {
      if (!MESSAGE_TOKENS.has(token)) throw new NoiseCfgError('INVALID_PATTERN', `unknown token "${token}" in ${name}`);
    }
    return { fromInitiator, tokens: tokens as MessageToken[] };
  });
  const isPskHandshake = messages.some((message) => message.tokens.includes('psk'));
  const pattern: HandshakePattern = {
    name,
    initiatorPreMessage,
    responderPreMessage,
    messages,
    isPskHandshake,
    pskCount: messages.reduce((count, message) => count + message.tokens.filter((token) => token === 'psk').length, 0),
    initiatorSendsStatic: messages.some((message) => message.fromInitiator && message.tokens.includes('s')),
    responderSendsStatic: messages.some((message) => !message.fromInitiator && message.tokens.includes('s')),
    isOneWay,
  };
  validatePattern(pattern);
  return pattern;
}

/**
 * Checks the four rules of §7.3 and the PSK rule of §9.3.
 * Throws INVALID_PATTERN naming the rule.
 */
export function validatePattern(pattern: HandshakePattern): void {
  const fail = (rule: string): never => {
    throw new NoiseCfgError('INVALID_PATTERN', `${pattern.name}: ${rule}`);
  };
  if (pattern.messages.length === 0) fail('a pattern needs at least one message');
  if (!pattern.messages[0]!.fromInitiator) fail('the first message must go from the initiator');
  pattern.messages.forEach((message, index) => {
    if (index > 0 && message.fromInitiator === pattern.messages[index - 1]!.fromInitiator) fail('messages must alternate direction');
  });
  if (pattern.isOneWay && pattern.messages.length !== 1) fail('a one-way pattern has exactly one message');

  // Indexed by side: 0 = initiator, 1 = responder.
  const hasE = [pattern.initiatorPreMessage.includes('e'), pattern.responderPreMessage.includes('e')];
  const hasS = [pattern.initiatorPreMessage.includes('s'), pattern.responderPreMessage.includes('s')];
  let hasProcessedPsk = false;
  const performed = new Set<MessageToken>();
  // Rule 4: after a DH with its own static key, a party sends no payload until it has done the matching DH with
  // its ephemeral key (initiator: se needs ee, ss needs es; responder: es needs ee, ss needs se).
  const checkRule4 = (sender: number): void => {
    const [staticDh, ephemeralDh] = sender === 0 ? [['se', 'ee'], ['ss', 'es']] : [['es', 'ee'], ['ss', 'se']];
    for (const [afterStatic, needed] of [staticDh, ephemeralDh] as [MessageToken, MessageToken][]) {
      if (performed.has(afterStatic) && !performed.has(needed)) fail(`payload after "${afterStatic}" without "${needed}" (§7.3 rule 4)`);
    }
  };
  for (const message of pattern.messages) {
    const sender = message.fromInitiator ? 0 : 1;
    for (const token of message.tokens) {
      switch (token) {
        case 'e':
          if (hasE[sender]) fail('a party may send its ephemeral key only once');
          hasE[sender] = true;
          break;
        case 's':
          if (hasS[sender]) fail('a party may send its static key only once');
          if (hasProcessedPsk && !hasE[sender]) fail('encrypted data after psk before sending e (§9.3)');
          hasS[sender] = true;
          break;
        case 'psk':
          hasProcessedPsk = true;
          break;
        default: {
          const [initiatorKey, responderKey] = [token[0] === 'e' ? hasE[0] : hasS[0], token[1] === 'e' ? hasE[1] : hasS[1]];
          if (!initiatorKey || !responderKey) fail(`"${token}" before both keys are known`);
          if (performed.has(token)) fail(`"${token}" appears twice (§7.3 rule 3)`);
          performed.add(token);
        }
      }
    }
    if (hasProcessedPsk && !hasE[sender]) fail('encrypted payload after psk before sending e (§9.3)');
    checkRule4(sender);
  }
  // Transport payloads follow the handshake: from the initiator only in one-way patterns, else from both.
  checkRule4(0);
  if (!pattern.isOneWay) checkRule4(1);
}

/**
 * The pattern for a name such as `XX`, `NNpsk0` or `XXpsk0+psk1+psk2+psk3`. Throws UNSUPPORTED_PROTOCOL for an
 * unknown base or a modifier other than pskN, and INVALID_PATTERN when a pskN names a message the pattern lacks.
 */
export function patternFromName(fullName: string): HandshakePattern {
  const baseName = BASE_PATTERN_NAMES.find((candidate) => fullName.startsWith(candidate));
  if (baseName === undefined) throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `unknown handshake pattern "${fullName}"`);
  const modifierText = fullName.slice(baseName.length);
  const modifiers = modifierText === '' ? [] : modifierText.split('+');
  const lines = [...BASE_PATTERNS[baseName]!];
  const separator = lines.indexOf('...');
  const firstMessageLine = separator + 1;
  const messageCount = lines.length - firstMessageLine;
  const seen = new Set<string>();
  for (const modifier of modifiers) {
    const match = /^psk(0|[1-9][0-9]*)$/.exec(modifier);
    if (!match) throw new NoiseCfgError('UNSUPPORTED_PROTOCOL', `pattern modifier "${modifier}" is not supported (only pskN)`);
    if (seen.has(modifier)) throw new NoiseCfgError('INVALID_PATTERN', `modifier "${modifier}" appears twice in "${fullName}"`);
    seen.add(modifier);
    const position = Number(match[1]);
    if (position > messageCount) {
      throw new NoiseCfgError('INVALID_PATTERN', `"${modifier}" names message ${position} but ${baseName} has ${messageCount}`);
    }
    // psk0 goes first in message 1; pskN goes last in message N (§9.4).
    const lineIndex = firstMessageLine + Math.max(position, 1) - 1;
    const { fromInitiator, tokens } = parseLine(lines[lineIndex]!);
    const withPsk = position === 0 ? ['psk', ...tokens] : [...tokens, 'psk'];
    lines[lineIndex] = `${fromInitiator ? '->' : '<-'} ${withPsk.join(', ')}`;
  }
  return parsePattern(fullName, lines, ONE_WAY_PATTERNS.has(baseName));
}

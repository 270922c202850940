/**
 * Text from a peer as the task database keeps it (SPEC.md §4.5 RESULT, §4.9). PostgreSQL's text and jsonb cannot hold
 * U+0000 nor a lone UTF-16 surrogate (a JSON message may spell either as `\u0000` or `\ud800`), and one such
 * character in a group-commit batch used to fail every other client's write of that batch. Both stores keep
 * U+FFFD in its place, so a client reads back the same text from either. Pure.
 */

// With the u flag a lone surrogate is a code point of its own (category Cs); a well-formed pair is one astral one.
const UNSTORABLE = /[\0\p{Cs}]/u;
const UNSTORABLE_GLOBAL = /[\0\p{Cs}]/gu;

/** `text`, itself when it holds neither NUL nor a lone surrogate, else with U+FFFD in place of each. */
export function storableText(text: string): string {
  return UNSTORABLE.test(text) ? text.replace(UNSTORABLE_GLOBAL, '\ufffd') : text;
}

/** storableText of `text`, with null kept. */
export function storableNullableText(text: string | null): string | null {
  return text === null ? null : storableText(text);
}

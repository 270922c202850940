/**
 * Text that came from a peer and reaches an operator's terminal (SPEC.md §4.5, §9): names are refused when they
 * hold characters that are not printable, and every text output escapes them, so a client can neither move the
 * cursor, recolour the screen, reorder a line (bidi overrides) nor fake a line of its own. Pure.
 */

/**
 * Control characters (C0, DEL, C1, so ESC too), format characters (bidi embeddings, overrides and isolates,
 * zero-width characters, the byte-order mark, soft hyphen) and the line and paragraph separators.
 */
const UNSAFE_CHARACTERS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const UNSAFE_CHARACTERS_GLOBAL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** True when `text` holds a character a terminal would not simply print. */
export function hasUnprintableCharacters(text: string): boolean {
  return UNSAFE_CHARACTERS.test(text);
}

/** `text` with every unprintable character written as `\u{hex}`. */
export function escapeUnprintable(text: string): string {
  return text.replace(UNSAFE_CHARACTERS_GLOBAL, (character) => `\\u{${character.codePointAt(0)!.toString(16)}}`);
}

/**
 * JSON text of `value` whose strings escape the unprintable characters JSON.stringify leaves raw (DEL, C1, format
 * characters, U+2028/U+2029) as `\uXXXX`: the same value to a parser, nothing active on a terminal.
 */
export function toTerminalSafeJson(value: unknown): string {
  // split('') cuts by UTF-16 code unit, so an astral character (a tag, U+E0001) becomes its surrogate pair.
  return JSON.stringify(value).replace(UNSAFE_CHARACTERS_GLOBAL, (character) => character.split('').map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''));
}

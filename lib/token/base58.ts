/**
 * Base58 with the Bitcoin alphabet (SPEC.md §3.2): alphanumeric, so a token is one word to a double click and in
 * a URL, and without the look-alikes 0, O, I and l. Pure.
 */

/** The 58 symbols, in value order. */
export const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const VALUE_BY_SYMBOL = new Map([...BASE58_ALPHABET].map((symbol, value) => [symbol, value]));

/** Encodes bytes; each leading zero byte becomes a leading "1". */
export function encodeBase58(bytes: Uint8Array): string {
  let leadingZeros = 0;
  while (leadingZeros < bytes.byteLength && bytes[leadingZeros] === 0) leadingZeros++;
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  let text = '';
  while (value > 0n) {
    text = BASE58_ALPHABET[Number(value % 58n)]! + text;
    value /= 58n;
  }
  return '1'.repeat(leadingZeros) + text;
}

/** Decodes base58 text, or returns null when a character is outside the alphabet. */
export function decodeBase58(text: string): Buffer | null {
  let leadingZeros = 0;
  while (leadingZeros < text.length && text[leadingZeros] === '1') leadingZeros++;
  let value = 0n;
  for (const symbol of text) {
    const digit = VALUE_BY_SYMBOL.get(symbol);
    if (digit === undefined) return null;
    value = value * 58n + BigInt(digit);
  }
  const bytes: number[] = [];
  while (value > 0n) {
    bytes.unshift(Number(value & 0xffn));
    value >>= 8n;
  }
  return Buffer.from([...new Array<number>(leadingZeros).fill(0), ...bytes]);
}

/**
 * "Did you mean --dry-run?" for a misspelt option. yargs suggests near commands (recommendCommands) but not
 * options; this does the same for the options of the command being parsed.
 */

/** Levenshtein distance between two short strings (option names: tens of characters at most). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The known option closest to `unknown` (no dashes), if it is close enough to be a typo of it; else null. */
export function closestOption(unknown: string, known: readonly string[]): string | null {
  const limit = Math.max(1, Math.min(3, Math.floor(unknown.length / 3)));
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = candidate.startsWith(unknown) && unknown.length >= 3 ? 0.5 : editDistance(unknown, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : null;
}

/**
 * Rewrites yargs' "Unknown argument(s): a, b" message: each misspelt option once (yargs also lists its camelCase
 * twin, `maxClient` beside `max-client`), and a suggestion for each name close to a known option. Other messages
 * are returned as they are.
 */
export function withOptionSuggestions(message: string, known: readonly string[]): string {
  const match = /^Unknown arguments?: (.+)$/.exec(message);
  if (!match) return message;
  const kebab = (name: string): string => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  const names = [...new Set(match[1]!.split(', ').map(kebab))];
  const suggestions = [...new Set(names.flatMap((name) => {
    const option = closestOption(name, known);
    return option === null ? [] : [`--${option}`];
  }))];
  const listed = `Unknown argument${names.length === 1 ? '' : 's'}: ${names.join(', ')}`;
  return suggestions.length === 0 ? listed : `${listed} (did you mean ${suggestions.join(', ')}?)`;
}

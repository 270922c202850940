/** Medians with their spread, and interleaved measurement of several contenders (A B A B …). */

/** A figure as reported: the median of the runs with the smallest and largest run. */
export interface Figure {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** The figure of a list of run results. */
export function figure(values: readonly number[]): Figure {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length };
}

/** Runs every contender once per round, in turn, for `rounds` rounds; returns each contender's figure. */
export async function interleave<K extends string>(rounds: number, contenders: Record<K, () => Promise<number> | number>): Promise<Record<K, Figure>> {
  const results = Object.fromEntries(Object.keys(contenders).map((key) => [key, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (const key of Object.keys(contenders) as K[]) results[key].push(await contenders[key]());
  }
  return Object.fromEntries(Object.entries(results).map(([key, values]) => [key, figure(values as number[])])) as Record<K, Figure>;
}

/** Ratios of paired runs (A_i / B_i), so that drift of the machine cancels; returns their figure. */
export async function pairedRatio(rounds: number, a: () => Promise<number> | number, b: () => Promise<number> | number): Promise<{ a: Figure; b: Figure; ratio: Figure }> {
  const aValues: number[] = [];
  const bValues: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const aValue = await a();
    const bValue = await b();
    aValues.push(aValue);
    bValues.push(bValue);
    ratios.push(aValue / bValue);
  }
  return { a: figure(aValues), b: figure(bValues), ratio: figure(ratios) };
}

/** "12.3k (11.9k–12.8k)" style text. */
export function formatFigure(value: Figure, unit = '', digits = 1): string {
  const format = (number: number): string => {
    if (Math.abs(number) >= 1e6) return `${(number / 1e6).toFixed(digits)}M`;
    if (Math.abs(number) >= 1e4) return `${(number / 1e3).toFixed(digits)}k`;
    return number.toFixed(Math.abs(number) < 10 ? 2 : digits);
  };
  return `${format(value.median)}${unit} (${format(value.min)}–${format(value.max)})`;
}

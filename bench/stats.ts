/** Medians with their spread, and how they are printed. */

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

/** "12.3k (11.9k–12.8k)" style text. */
export function formatFigure(value: Figure, unit = '', digits = 1): string {
  const format = (number: number): string => {
    if (Math.abs(number) >= 1e6) return `${(number / 1e6).toFixed(digits)}M`;
    if (Math.abs(number) >= 1e4) return `${(number / 1e3).toFixed(digits)}k`;
    return number.toFixed(Math.abs(number) < 10 ? 2 : digits);
  };
  return `${format(value.median)}${unit} (${format(value.min)}–${format(value.max)})`;
}

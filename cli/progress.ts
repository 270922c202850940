/**
 * The progress bar of `pull` on stderr (SPEC.md §4.7 "Progress"): bytes, rate and ETA, redrawn in place with \r at
 * most 10 times a second, shown once a transfer has lasted a second (at once when forced), cleared at the end.
 * renderProgress is pure; ProgressBar takes its clock and its writer, so both are tested without a terminal.
 */

/** One moment of a transfer. */
export interface ProgressSnapshot {
  receivedBytes: number;
  totalBytes: number;
  /** Since the transfer started, in milliseconds. */
  elapsedMs: number;
}

const BAR_CELLS = 24;
/** A bar is drawn only for transfers that last at least this long, unless forced. */
export const PROGRESS_DELAY_MS = 1000;
/** The bar is redrawn at most this often. */
export const PROGRESS_INTERVAL_MS = 100;

/** `bytes` for people: 512 B, 1.5 KiB, 12.3 MiB, 1.0 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A duration rounded to whole seconds for people: 7s, 2m05s, 1h02m. */
export function formatSeconds(totalSeconds: number): string {
  const seconds = Math.max(0, Math.round(totalSeconds));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * The progress line: `[#######.................]  31%  2.5 MiB / 8.0 MiB  1.2 MiB/s  ETA 5s`. The rate is the
 * average since the start; rate and ETA show `--` until a byte and some time have passed.
 */
export function renderProgress(snapshot: ProgressSnapshot): string {
  const { receivedBytes, totalBytes, elapsedMs } = snapshot;
  const fraction = totalBytes === 0 ? 1 : Math.min(1, receivedBytes / totalBytes);
  const filled = Math.floor(fraction * BAR_CELLS);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_CELLS - filled)}]`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const ratePerSecond = elapsedMs > 0 ? (receivedBytes * 1000) / elapsedMs : 0;
  const rate = ratePerSecond > 0 ? `${formatBytes(Math.round(ratePerSecond))}/s` : '--/s';
  const eta = ratePerSecond > 0 ? formatSeconds((totalBytes - receivedBytes) / ratePerSecond) : '--';
  return `${bar} ${percent}  ${formatBytes(receivedBytes)} / ${formatBytes(totalBytes)}  ${rate}  ETA ${eta}`;
}

/** Options of a ProgressBar. */
export interface ProgressBarOptions {
  /** Writes to the terminal (stderr), without a newline. */
  write: (text: string) => void;
  /** The clock, in milliseconds. */
  now: () => number;
  /** Draw from the first update, not only after PROGRESS_DELAY_MS (`--progress`). */
  isForced: boolean;
}

/** Draws transfer progress on one line, redrawn in place; status lines go through clear() first. */
export class ProgressBar {
  readonly #options: ProgressBarOptions;
  #startMs: number | null = null;
  #lastDrawMs = -Infinity;
  /** Length of the line on screen now (0: nothing drawn). */
  #shownLength = 0;

  constructor(options: ProgressBarOptions) {
    this.#options = options;
  }

  /** Takes the transfer's progress; draws when it is time to. */
  update(receivedBytes: number, totalBytes: number): void {
    const now = this.#options.now();
    this.#startMs ??= now;
    const elapsedMs = now - this.#startMs;
    const isDone = receivedBytes >= totalBytes;
    if (!this.#options.isForced && elapsedMs < PROGRESS_DELAY_MS) return;
    if (isDone) {
      // The last state is drawn only over a bar already shown, then the line is left clean for what follows.
      if (this.#shownLength > 0) this.#draw(renderProgress({ receivedBytes, totalBytes, elapsedMs }));
      this.clear();
      this.#startMs = null;
      return;
    }
    if (now - this.#lastDrawMs < PROGRESS_INTERVAL_MS) return;
    this.#lastDrawMs = now;
    this.#draw(renderProgress({ receivedBytes, totalBytes, elapsedMs }));
  }

  /** Wipes the bar from its line (before a status line, and at the end); the next update draws it again. */
  clear(): void {
    if (this.#shownLength === 0) return;
    this.#options.write(`\r${' '.repeat(this.#shownLength)}\r`);
    this.#shownLength = 0;
    this.#lastDrawMs = -Infinity;
  }

  #draw(line: string): void {
    // Padded over a longer previous line, so no tail of it stays visible.
    this.#options.write(`\r${line.padEnd(this.#shownLength)}`);
    this.#shownLength = line.length;
  }
}

/**
 * Whether `pull` draws a bar: `--progress` / `--no-progress` decide when given; otherwise only when stderr is a
 * terminal and the output is not --json.
 */
export function isProgressWanted(flag: boolean | undefined, isJson: boolean, isStderrTerminal: boolean): boolean {
  return flag ?? (!isJson && isStderrTerminal);
}

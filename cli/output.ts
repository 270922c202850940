/**
 * Output helpers: results to stdout (text or --json), progress and errors to stderr, one line each. Text a peer
 * chose (client names, results, server messages) may sit in any of them, so nothing reaches the terminal with a
 * control, escape or bidi character in it: JSON escapes them, status and error lines are escaped whole, and the
 * builders of multi-line results escape each field (`escapeUnprintable`).
 */
import { escapeUnprintable, isNoiseCfgError, toTerminalSafeJson } from '../lib/index.js';
import { EXIT, EXIT_CODE_BY_ERROR } from './exit-codes.js';

/** Writes one result line, or one JSON document when `asJson`. */
export function printResult(value: unknown, asJson: boolean, text: string): void {
  process.stdout.write(asJson ? `${toTerminalSafeJson(value)}\n` : `${text}\n`);
}

/** Writes one line of progress to stderr. */
export function printStatus(line: string): void {
  process.stderr.write(`${escapeUnprintable(line)}\n`);
}

/** Reports an error as one line on stderr and sets the exit code; never prints a stack for a known error. */
export function reportError(error: unknown): void {
  if (error instanceof UsageError) {
    process.stderr.write(`noise-cfg: ${escapeUnprintable(error.message)}\nRun 'noise-cfg --help' for usage.\n`);
    process.exitCode = EXIT.USAGE;
    return;
  }
  if (isNoiseCfgError(error)) {
    process.stderr.write(`noise-cfg: error: ${escapeUnprintable(error.message)} (${error.code})\n`);
    process.exitCode = EXIT_CODE_BY_ERROR[error.code];
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`noise-cfg: unexpected error: ${escapeUnprintable(message)}\n`);
  process.exitCode = EXIT.FAILURE;
}

/** A command line that does not parse (unknown or missing option, bad value): reported before any command runs. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

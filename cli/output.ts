/**
 * Output helpers: results to stdout (text or --json), progress and errors to stderr, one line each. Text a peer
 * chose (client names, results, server messages) may sit in any of them, so nothing reaches the terminal with a
 * control, escape or bidi character in it: JSON escapes them, status and error lines are escaped whole, and the
 * builders of multi-line results escape each field (`escapeUnprintable`).
 *
 * There is one error path (SPEC.md §6): handlers throw, `bin.ts` calls `reportError` once.
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

/** A command line that does not parse (unknown or missing option, bad value): reported before any command runs. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The fields a command's JSON failure object carries besides `error` (pull keeps its result's shape). */
type JsonFailureFields = (error: { code: string; message: string }) => Record<string, unknown>;

let jsonFailureFields: JsonFailureFields = () => ({});

/** Lets the running command give its `--json` failure object the shape of its result (e.g. pull's `status`). */
export function setJsonFailureFields(fields: JsonFailureFields): void {
  jsonFailureFields = fields;
}

/** The error code and message shown for `error`: its own for known errors, never a stack. */
function describeError(error: unknown): { code: string; message: string; exitCode: number } {
  if (error instanceof UsageError) return { code: 'INVALID_ARGUMENT', message: error.message, exitCode: EXIT.USAGE };
  if (isNoiseCfgError(error)) return { code: error.code, message: error.message, exitCode: EXIT_CODE_BY_ERROR[error.code] };
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error), exitCode: EXIT.FAILURE };
}

/**
 * Reports a failed command: one line on stderr, the exit code of its error code (SPEC.md §6), and with `asJson`
 * one JSON object `{"error": {"code", "message"}}` on stdout as well, so a script reading stdout always gets JSON.
 */
export function reportError(error: unknown, asJson = false): void {
  const { code, message, exitCode } = describeError(error);
  if (asJson) process.stdout.write(`${toTerminalSafeJson({ ...jsonFailureFields({ code, message }), error: { code, message } })}\n`);
  if (error instanceof UsageError) {
    process.stderr.write(`noise-cfg: ${escapeUnprintable(message)}\nRun 'noise-cfg --help' for usage.\n`);
  } else if (code === 'UNEXPECTED') {
    process.stderr.write(`noise-cfg: unexpected error: ${escapeUnprintable(message)}\n`);
  } else {
    process.stderr.write(`noise-cfg: error: ${escapeUnprintable(message)} (${code})\n`);
  }
  process.exitCode = exitCode;
}

/** True when the command line asks for JSON output (`--json`, before any `--`). */
export function wantsJson(argv: readonly string[]): boolean {
  for (const argument of argv) {
    if (argument === '--') return false;
    if (argument === '--json' || argument === '--json=true') return true;
  }
  return false;
}

/**
 * `noise-cfg pull [TOKEN] --out DIR`: fetch a task's files, apply them atomically, run --exec, report the outcome
 * (CONTRACT.md, SPEC.md §4). Exit codes distinguish every failure (SPEC.md §6).
 */
import type { Argv } from 'yargs';
import { decodeToken, NoiseCfgError, parseDurationSeconds, pull, type PullOptions, type PullResult } from '../../lib/index.js';
import { exitCodesHelp } from '../exit-codes.js';
import { printResult, printStatus, setJsonFailureFields, UsageError } from '../output.js';
import { isProgressWanted, ProgressBar } from '../progress.js';
import { readTokenText } from '../token-input.js';
import type { ArgumentsOf } from '../arguments-of.js';

/** Parses `--retry DURATION` (30s, 2m, or 0 for a single attempt) into milliseconds. Throws INVALID_ARGUMENT. */
function parseRetry(text: string): number {
  if (text.trim() === '0') return 0;
  const seconds = parseDurationSeconds(text);
  if (seconds === null) throw new NoiseCfgError('INVALID_ARGUMENT', `--retry must look like 30s, 5m or 1h, or be 0 for a single attempt, got ${JSON.stringify(text)}`);
  return seconds * 1000;
}

/** Parses `--max-file-mode OCTAL` (755, 0775, 0o775): permission bits, at most 777. Throws INVALID_ARGUMENT. */
function parseFileMode(text: string): number {
  const match = /^(?:0o|0)?([0-7]{1,4})$/.exec(text);
  const mode = match ? parseInt(match[1]!, 8) : NaN;
  if (!(mode >= 0 && mode <= 0o777)) {
    throw new NoiseCfgError('INVALID_ARGUMENT', `--max-file-mode must be octal permission bits from 0 to 777 (e.g. 775), got ${JSON.stringify(text)}`);
  }
  return mode;
}

/** What the options declare, as yargs hands them to .check() (option names as written, not camel-cased). */
type ParsedOptions = ReturnType<typeof pullOptions> extends Argv<infer Parsed> ? Parsed : never;

/** The flag combinations and values yargs cannot check itself; run by .check(), before the handler. */
function checkArguments(argv: ParsedOptions): true {
  const dryRun = argv['dry-run'];
  const keepOnFailure = argv['keep-on-failure'];
  if (dryRun && argv.check) throw new UsageError('--dry-run and --check do not go together');
  if (!argv.check && argv.out === undefined) throw new UsageError('--out DIR is required (or use --check)');
  const pullOnly = [argv.verify !== undefined ? '--verify' : null, argv.exec !== undefined ? '--exec' : null, keepOnFailure ? '--keep-on-failure' : null].filter((name) => name !== null);
  const other = dryRun ? '--dry-run' : argv.check ? '--check' : null;
  if (pullOnly.length > 0 && other !== null) throw new UsageError(`${pullOnly.join(' and ')} ${pullOnly.length > 1 ? 'apply' : 'applies'} only to a pull that writes files; ${other} writes nothing, so leave ${pullOnly.length > 1 ? 'them' : 'it'} out`);
  if (keepOnFailure && argv.exec === undefined) throw new UsageError('--keep-on-failure goes with --exec: it says what to do when that command fails');
  if (argv['max-file-mode'] !== undefined) parseFileMode(argv['max-file-mode']);
  parseRetry(argv.retry);
  return true;
}

export const command = 'pull [token]';
export const describe = 'Pull a task\'s files with a token and apply them atomically';

function pullOptions(yargs: Argv) {
  return yargs
    .positional('token', { type: 'string', describe: 'The task token (prefer --token-file or NOISE_CFG_TOKEN: argv is visible in process lists)' })
    .option('token-file', { type: 'string', requiresArg: true, describe: 'Read the token from FILE (- for stdin)' })
    .option('out', { type: 'string', requiresArg: true, describe: 'Output directory, owned by noise-cfg (a link to the current version)' })
    .option('verify', { type: 'string', requiresArg: true, describe: 'Shell command to check the staged files before they become current (they are in $NOISE_CFG_STAGED_DIR); non-zero: nothing changes, exit 17' })
    .option('exec', { type: 'string', requiresArg: true, describe: 'Shell command to run after applying; its exit code decides applied or failed; on failure the previous version comes back' })
    .option('keep-on-failure', { type: 'boolean', default: false, describe: 'When --exec fails, keep the new files current instead of rolling back' })
    .option('name', { type: 'string', requiresArg: true, describe: 'How this client appears to the operator (default: host name)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'Show what would change; write and report nothing' })
    .option('check', { type: 'boolean', default: false, describe: 'Check the token, the server and its pin; take no client slot' })
    .option('identity-dir', { type: 'string', requiresArg: true, describe: 'Where this client\'s identity key lives (default $XDG_CONFIG_HOME/noise-cfg)' })
    .option('max-file-mode', { type: 'string', requiresArg: true, describe: 'Widest permission bits a file gets, in octal (default 755: no group or others write); the umask applies too' })
    .option('retry', { type: 'string', default: '30s', requiresArg: true, describe: 'While the server is busy or cannot be reached, keep trying with backoff for this long (0: one attempt)' })
    .option('progress', { type: 'boolean', describe: 'Show a progress bar on stderr (default: when stderr is a terminal and not --json); --no-progress: never' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' });
}

export function builder(yargs: Argv) {
  return pullOptions(yargs)
    .check((argv) => checkArguments(argv))
    .epilogue([
      'Commands: --verify and --exec run with /bin/sh -c in the current directory, with the environment of pull minus NOISE_CFG_TOKEN and NOISE_CFG_ADMIN_TOKEN, plus NOISE_CFG_TASK_ID, NOISE_CFG_DIGEST and NOISE_CFG_OUT_DIR (and NOISE_CFG_STAGED_DIR for --verify); their output goes to stderr. noise-cfg keeps the previous version until the next successful apply: `noise-cfg rollback --out DIR` goes back to it.',
      '',
      exitCodesHelp({
        OK: 'applied or up to date',
        BAD_TOKEN: 'bad or expired token (checked before connecting)',
        UNREACHABLE: 'cannot reach the server or it is busy (after --retry), or it closed the connection mid-transfer (retry)',
        AUTHENTICATION_FAILED: null,
        REJECTED: 'rejected by the server (expired by its clock, cancelled, full, revoked)',
        DIGEST_MISMATCH: null,
        APPLY_FAILED: null,
        COMMAND_FAILED: null,
        VERIFY_FAILED: '--verify failed (nothing changed)',
      }),
    ].join('\n'));
}

type PullArguments = ArgumentsOf<typeof builder>;

function describeResult(result: PullResult, outDir: string | undefined): string {
  switch (result.status) {
    case 'applied':
      return `applied ${result.files.length} file(s) to ${outDir}${result.exitCode !== undefined ? `; command exited ${result.exitCode}` : ''}`;
    case 'up-to-date':
      return `up to date: ${outDir} already holds task ${result.taskId}`;
    case 'checked':
      return `ok: the token is valid, the server is reachable and its key matches the pin`;
    case 'dry-run': {
      const changes = result.changes!;
      return [
        `dry run for ${outDir}: ${changes.added.length} added, ${changes.changed.length} changed, ${changes.removed.length} removed, ${changes.unchanged.length} unchanged`,
        ...changes.added.map((path) => `  + ${path}`),
        ...changes.changed.map((path) => `  ~ ${path}`),
        ...changes.removed.map((path) => `  - ${path}`),
      ].join('\n');
    }
    case 'failed':
      return `failed: ${result.failure?.message ?? 'unknown'}`;
  }
}

/** Runs pull() with the progress bar, when wanted, drawn from its transfer callback and cleared at the end. */
async function pullWithProgress(argv: PullArguments, options: PullOptions): Promise<PullResult> {
  const bar = isProgressWanted(argv.progress, argv.json, process.stderr.isTTY === true)
    ? new ProgressBar({ write: (text) => process.stderr.write(text), now: () => performance.now(), isForced: argv.progress === true })
    : null;
  try {
    return await pull({
      ...options,
      onProgress: (line) => {
        bar?.clear();
        options.onProgress?.(line);
      },
      ...(bar ? { onTransferProgress: (receivedBytes: number, totalBytes: number) => bar.update(receivedBytes, totalBytes) } : {}),
    });
  } finally {
    bar?.clear();
  }
}

export async function handler(argv: PullArguments): Promise<void> {
  let taskId: string | null = null;
  // A script reading --json always gets pull's result shape, also when the pull never started.
  setJsonFailureFields((failure) => ({ status: 'failed', taskId, files: [], failure }));
  const maxFileMode = argv.maxFileMode === undefined ? undefined : parseFileMode(argv.maxFileMode);
  const retryForMs = parseRetry(argv.retry);
  const token = readTokenText(argv, { warnOnArgv: true });
  try {
    taskId = decodeToken(token).taskId;
  } catch {
    // pull() reports the token's fault itself.
  }
  const result = await pullWithProgress(argv, {
    token,
    intent: argv.check ? 'check' : argv.dryRun ? 'dry-run' : 'pull',
    ...(argv.out !== undefined ? { outDir: argv.out } : {}),
    ...(argv.exec !== undefined ? { exec: argv.exec } : {}),
    ...(argv.verify !== undefined ? { verify: argv.verify } : {}),
    ...(argv.keepOnFailure ? { keepOnFailure: true } : {}),
    ...(argv.name !== undefined ? { name: argv.name } : {}),
    ...(argv.identityDir !== undefined ? { identityDir: argv.identityDir } : {}),
    ...(maxFileMode !== undefined ? { maxFileMode } : {}),
    retryForMs,
    onProgress: (line) => printStatus(line),
  });
  if (result.status === 'failed' && result.failure) {
    // The failure is reported once, by bin.ts; with --json its object is this result plus `error`.
    setJsonFailureFields(() => ({ ...result }));
    throw new NoiseCfgError(result.failure.code, result.failure.message);
  }
  printResult(result, argv.json, describeResult(result, argv.out));
}

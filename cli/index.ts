/** The noise-cfg command line: buildCli(argv) returns the yargs instance, so tests can parse in-process. */
import yargs, { type Argv } from 'yargs';
import * as channel from './commands/channel.js';
import * as completion from './commands/completion.js';
import * as demo from './commands/demo.js';
import * as pull from './commands/pull.js';
import * as rollback from './commands/rollback.js';
import * as serve from './commands/serve.js';
import * as task from './commands/task/index.js';
import * as token from './commands/token.js';
import { VERSION } from '../lib/index.js';
import { withOptionSuggestions } from './did-you-mean.js';
import { exitCodesHelp } from './exit-codes.js';
import { UsageError } from './output.js';

/** Options that are lists by design (`--file a --file b`); any other option given twice is a usage error. */
const LIST_OPTIONS = new Set(['_', 'file']);

// yargs turns a repeated option into an array, which a handler expecting one string would then misuse.
function refuseRepeatedOptions(argv: Record<string, unknown>): true {
  for (const [key, value] of Object.entries(argv)) {
    if (Array.isArray(value) && !LIST_OPTIONS.has(key)) {
      const option = key.length === 1 ? `-${key}` : `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
      throw new UsageError(`${option} was given ${value.length} times; give it once`);
    }
  }
  return true;
}

/** What yargs really hands a fail handler as its third argument: its usage object (@types/yargs says Argv). */
interface YargsUsage {
  getDescriptions(): Record<string, unknown>;
}

function hasDescriptions(value: unknown): value is YargsUsage {
  return typeof (value as Partial<YargsUsage> | null)?.getDescriptions === 'function';
}

/** The CLI for an argument array (without `node` and the script path). */
export function buildCli(argv: readonly string[]): Argv {
  return yargs([...argv])
    .scriptName('noise-cfg')
    .usage('$0 <command> [options]\n\nDeliver configuration updates over Noise (XXpsk3 / NNpsk0) secure channels.')
    .command(serve)
    .command(task)
    .command(pull)
    .command(rollback)
    .command(token)
    .command(channel)
    .command(demo)
    .command(completion)
    // Enables --get-yargs-completions, which our scripts call; yargs' own script command is hidden under a name
    // nobody types, since it would take over `completion` (and `completion --help`) before any handler.
    .completion('__yargs-completion-script', false)
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .check(refuseRepeatedOptions)
    .recommendCommands()
    .epilogue(`${exitCodesHelp()} See SPEC.md §6.`)
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    // Throwing, not reporting and returning: yargs goes on to run the command's handler after a fail handler that
    // returns, so a misspelt option (`pull --dryrun`) used to run the pull anyway.
    // Handler errors pass through here too and are rethrown as they are; yargs' own parse errors (YError, e.g. an
    // option without its value) are usage errors like a failed message.
    .fail((message, error, usage) => {
      if (error && error.name !== 'YError') throw error;
      if (error) throw new UsageError(error.message.replace(/^Not enough arguments following: (\S+)$/, '--$1 needs a value'));
      const known = hasDescriptions(usage) ? Object.keys(usage.getDescriptions()) : [];
      // yargs writes some messages on two lines ("Invalid values:\n  Argument: …"); the report is one line.
      throw new UsageError(withOptionSuggestions(message.replace(/:?\s*\n\s*/g, ': '), known));
    });
}

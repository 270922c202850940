/** The noise-cfg command line: buildCli(argv) returns the yargs instance, so tests can parse in-process. */
import yargs, { type Argv } from 'yargs';
import * as channel from './commands/channel.js';
import * as demo from './commands/demo.js';
import * as pull from './commands/pull.js';
import * as rollback from './commands/rollback.js';
import * as serve from './commands/serve.js';
import * as task from './commands/task.js';
import * as token from './commands/token.js';
import { UsageError } from './output.js';

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
    .completion('completion', 'Print a shell completion script (bash or zsh): noise-cfg completion >> ~/.bashrc')
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .recommendCommands()
    .epilogue('Exit codes: 0 success, 1 failure, 2 usage or bad input, 3 no such task or client, 4 task already ended, 5 data directory or database problem, 6 task ended incomplete (task watch), 10 bad token, 11 cannot reach the peer, 12 authentication failed, 13 rejected, 14 digest mismatch, 15 apply failed, 16 command failed, 17 verify command failed (nothing changed). See SPEC.md §6.')
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    // Throwing, not reporting and returning: yargs goes on to run the command's handler after a fail handler that
    // returns, so a misspelt option (`pull --dryrun`) used to run the pull anyway.
    .fail((message, error) => {
      if (error) throw error;
      throw new UsageError(message);
    });
}

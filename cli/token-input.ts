/**
 * Where a command gets its token: the argument, `--token-file FILE` (`-` = stdin) or NOISE_CFG_TOKEN. A token
 * given on the command line is visible in process lists, so the CLI warns about it on stderr.
 */
import { readFileSync } from 'node:fs';
import { NoiseCfgError } from '../lib/index.js';
import { printStatus } from './output.js';

/** Token sources as parsed by yargs. */
export interface TokenSources {
  token?: string;
  tokenFile?: string;
}

/** The token text from the first source given. Throws INVALID_ARGUMENT when none or more than one is given. */
export function readTokenText(sources: TokenSources, options: { warnOnArgv: boolean }): string {
  const fromEnvironment = process.env['NOISE_CFG_TOKEN'];
  const given = [sources.token !== undefined, sources.tokenFile !== undefined].filter(Boolean).length;
  if (given > 1) throw new NoiseCfgError('INVALID_ARGUMENT', 'give the token either as an argument or with --token-file, not both');
  if (sources.token !== undefined) {
    if (options.warnOnArgv) printStatus('warning: a token on the command line is visible to other users in the process list; prefer --token-file or NOISE_CFG_TOKEN');
    return sources.token;
  }
  if (sources.tokenFile !== undefined) {
    try {
      return readFileSync(sources.tokenFile === '-' ? 0 : sources.tokenFile, 'utf8').trim();
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new NoiseCfgError('INVALID_ARGUMENT', `cannot read the token file ${sources.tokenFile}: ${reason}`);
    }
  }
  if (fromEnvironment !== undefined && fromEnvironment.trim() !== '') return fromEnvironment.trim();
  throw new NoiseCfgError('INVALID_ARGUMENT', 'no token: give it as an argument, with --token-file FILE (- for stdin), or in NOISE_CFG_TOKEN');
}

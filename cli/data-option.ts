/**
 * The --data option of `serve` and `task` (SPEC.md §4.1): --data wins over NOISE_CFG_DATA, which wins over the
 * built-in ./noise-cfg-data. Read when the CLI is built, so each run sees its own environment.
 */
/** The built-in data directory, relative to the working directory. */
export const DEFAULT_DATA_DIR = './noise-cfg-data';

/** The data directory when --data is not given: NOISE_CFG_DATA when set and not empty, else ./noise-cfg-data. */
export function defaultDataDir(): string {
  const fromEnvironment = process.env['NOISE_CFG_DATA'];
  return fromEnvironment !== undefined && fromEnvironment.trim() !== '' ? fromEnvironment : DEFAULT_DATA_DIR;
}

/** The yargs definition of --data, with `describe` saying what the directory is for this command. */
export function dataOption(describe: string) {
  return {
    type: 'string' as const,
    requiresArg: true,
    default: defaultDataDir(),
    defaultDescription: `$NOISE_CFG_DATA, else ${DEFAULT_DATA_DIR}`,
    describe,
  };
}

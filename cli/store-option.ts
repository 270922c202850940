/**
 * The --store option of `serve` and `task` (SPEC.md §4.9): --store wins over NOISE_CFG_STORE, which wins over the
 * data directory's SQLite file. A PostgreSQL password is best not in the URL (other users can read argv): it comes
 * from NOISE_CFG_STORE_PASSWORD or the file NOISE_CFG_STORE_PASSWORD_FILE names.
 */
import { parseStoreLocation, type StoreLocation } from '../lib/index.js';

/** The yargs definition of --store. */
export function storeOption() {
  return {
    type: 'string' as const,
    requiresArg: true,
    defaultDescription: '$NOISE_CFG_STORE, else sqlite',
    describe: 'Where the tasks are: sqlite (in the data directory) or postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers; password from NOISE_CFG_STORE_PASSWORD(_FILE)',
  };
}

/** The location --store or NOISE_CFG_STORE names. Throws INVALID_ARGUMENT for a malformed one. */
export function storeLocation(argv: { store?: string | undefined }): StoreLocation {
  const fromEnvironment = process.env['NOISE_CFG_STORE'];
  return parseStoreLocation(argv.store ?? (fromEnvironment !== undefined && fromEnvironment.trim() !== '' ? fromEnvironment : 'sqlite'));
}

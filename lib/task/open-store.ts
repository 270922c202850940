/**
 * Opens the task store a data directory's server or operator uses (SPEC.md §4.9): the embedded SQLite file in the
 * data directory, or the PostgreSQL database that several servers share. The rest of the task layer sees only
 * TaskStoreContract.
 */
import type { DataDir } from './data-dir.js';
import { PostgresTaskStore } from './postgres-store.js';
import { TaskStore } from './store.js';
import type { TaskStoreContract } from './store-contract.js';
import type { StoreLocation } from './store-location.js';

/** How a store is opened. */
export interface OpenStoreOptions {
  /** SQLite: run quick_check first (a server does at start). PostgreSQL checks its own pages. */
  check?: boolean;
  /** The server process the handle belongs to: its client records carry it (TaskStore.open). */
  servedBy?: string;
  /** Where a PostgreSQL password may come from (NOISE_CFG_STORE_PASSWORD, _FILE); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The store at `location` (default: SQLite) for `dataDir`. Rejects with STORE_CORRUPT or STORE_UNAVAILABLE. */
export async function openTaskStore(location: StoreLocation | undefined, dataDir: DataDir, options: OpenStoreOptions = {}): Promise<TaskStoreContract> {
  if (location?.kind === 'postgres') {
    return PostgresTaskStore.open(location, { ...(options.servedBy ? { servedBy: options.servedBy } : {}), ...(options.env ? { env: options.env } : {}) });
  }
  return TaskStore.open(dataDir.databasePath, { ...(options.check ? { check: true } : {}), ...(options.servedBy ? { servedBy: options.servedBy } : {}) });
}

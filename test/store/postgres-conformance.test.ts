// The PostgreSQL store (lib/task/postgres-store.ts) against the shared store conformance suite
// (store-conformance.ts), on one throwaway cluster: each case gets a database of its own, and each handle is one
// PostgresTaskStore with its own pool and group commit, as each node opens its own.
import t from 'tap';
import { PostgresTaskStore } from '../../lib/task/postgres-store.js';
import { parseStoreLocation, type PostgresLocation } from '../../lib/task/store-location.js';
import { postgresSkipReason, startPostgres } from '../support/postgres.js';
import { storeConformance } from './store-conformance.js';

const skip = postgresSkipReason() ?? false;

t.test('the PostgreSQL store keeps the store contract', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  const overSocket = parseStoreLocation(cluster.socketUrl) as PostgresLocation;
  let databases = 0;
  storeConformance(t, async (t) => {
    const database = `conformance_${++databases}`;
    cluster.psql(`CREATE DATABASE ${database}`);
    return async (options = {}) => {
      const store = await PostgresTaskStore.open({ ...overSocket, database }, { ...options, env: {}, poolSize: 4 });
      t.teardown(() => store.close());
      return store;
    };
  });
});

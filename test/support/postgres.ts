/**
 * The tests' throwaway PostgreSQL cluster (issue 14): tools/postgres-cluster.ts, removed in the test's teardown.
 * Without the binaries a test skips with the reason, except under CI (`CI` set), where `.ci/run` has installed
 * them and a missing server is a failure: CI must never count a PostgreSQL test as passed without running it.
 */
import { postgresUnavailableReason, startPostgresCluster, type PostgresCluster } from '../../tools/postgres-cluster.js';

export { postgresBinDir, type PostgresCluster } from '../../tools/postgres-cluster.js';

/** Why no cluster can be started here, or null when one can. Under CI this is never a reason to skip. */
export function postgresSkipReason(): string | null {
  const reason = postgresUnavailableReason();
  if (reason !== null && process.env['CI']) throw new Error(`PostgreSQL is required under CI: ${reason}`);
  return reason;
}

interface Teardowns {
  teardown: (fn: () => void | Promise<void>) => void;
}

/** Starts a fresh cluster; stopped and deleted in `t`'s teardown. Call only when postgresSkipReason() is null. */
export async function startPostgres(t: Teardowns): Promise<PostgresCluster> {
  const cluster = await startPostgresCluster();
  t.teardown(() => cluster.remove());
  return cluster;
}

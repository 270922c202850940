// The PostgreSQL store's schema (SPEC.md §4.9, lib/task/postgres-schema.ts) on a real throwaway cluster: a new
// database is migrated to the current version, again is a no-op, nodes that start together migrate once, a newer
// database is refused, and the constraints hold; connecting fails with the store's codes and no password.
import t from 'tap';
import { openPostgresStore, postgresFailure } from '../../lib/task/postgres-pool.js';
import { POSTGRES_SCHEMA_VERSION } from '../../lib/task/postgres-schema.js';
import { parseStoreLocation, type PostgresLocation } from '../../lib/task/store-location.js';
import { postgresSkipReason, startPostgres } from '../support/postgres.js';

const skip = postgresSkipReason() ?? false;

t.test('migrations on a real PostgreSQL', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  const overTcp = parseStoreLocation(cluster.tcpUrl) as PostgresLocation;
  const overSocket = parseStoreLocation(cluster.socketUrl) as PostgresLocation;

  await t.test('a new database gets every table at the current version, over TCP with the password', async (t) => {
    const { pool, migration } = await openPostgresStore(overTcp);
    t.teardown(() => pool.end());
    t.same(migration, { from: 0, to: POSTGRES_SCHEMA_VERSION });
    const tables = (await pool.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows.map((row) => row.name);
    t.same(tables, ['clients', 'events', 'file_slices', 'noise_cfg_schema', 'server_processes', 'task_files', 'tasks', 'transfers']);
    t.equal(cluster.psql('SELECT version FROM noise_cfg_schema'), String(POSTGRES_SCHEMA_VERSION));
  });

  await t.test('opening again migrates nothing, over the socket directory without a password', async (t) => {
    const { pool, migration } = await openPostgresStore(overSocket, { env: {} });
    t.teardown(() => pool.end());
    t.same(migration, { from: POSTGRES_SCHEMA_VERSION, to: POSTGRES_SCHEMA_VERSION });
    t.equal(cluster.psql('SELECT count(*) FROM noise_cfg_schema'), '1', 'still one version row');
  });

  await t.test('six nodes opening a new database at once: one migrates, the others find it done', async (t) => {
    cluster.psql('CREATE DATABASE together');
    const location = { ...overSocket, database: 'together' };
    const opened = await Promise.all(Array.from({ length: 6 }, () => openPostgresStore(location, { env: {} })));
    t.teardown(() => Promise.all(opened.map(({ pool }) => pool.end())));
    const froms = opened.map(({ migration }) => migration.from).sort();
    t.same(froms, [0, POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION], 'exactly one saw version 0');
    t.equal((await opened[0]!.pool.query('SELECT count(*)::int AS n FROM noise_cfg_schema')).rows[0].n, 1, 'one version row in the new database');
  });

  await t.test('the constraints of the schema hold', async (t) => {
    const { pool } = await openPostgresStore(overSocket, { env: {} });
    t.teardown(() => pool.end());
    const insertTask = (id: string, mode: string, maxClients: number | null) => pool.query(
      "INSERT INTO tasks (id, name, mode, created_at, expires_at, max_clients, state, digest, total_bytes, file_count) VALUES ($1, 'n', $2, 1, 2, $3, 'active', 'd', 0, 0)",
      [id, mode, maxClients],
    );
    await insertTask('task-a', 'xxpsk3', null);
    await t.rejects(insertTask('task-b', 'xx', null), { code: '23514' }, 'an unknown mode is refused');
    await t.rejects(insertTask('task-c', 'nnpsk0', 0), { code: '23514' }, 'max_clients 0 is refused');
    await t.rejects(insertTask('task-a', 'nnpsk0', null), { code: '23505' }, 'a task id is unique');
    await pool.query("INSERT INTO task_files (task_id, position, path, mode, size, digest) VALUES ('task-a', 0, 'a.conf', 420, 3, 'x')");
    await pool.query("INSERT INTO file_slices (task_id, position, slice, content) VALUES ('task-a', 0, 0, $1)", [Buffer.from([0, 1, 255])]);
    const slice = (await pool.query<{ content: Buffer }>("SELECT content FROM file_slices WHERE task_id = 'task-a'")).rows[0]!.content;
    t.same(slice, Buffer.from([0, 1, 255]), 'content is bytea, byte for byte');
    await pool.query("INSERT INTO clients (task_id, identity, name, remote_address, state, first_seen_at, updated_at) VALUES ('task-a', 'id1', 'web1', '10.0.0.1', 'interrupted', 1, 1)");
    await pool.query("DELETE FROM tasks WHERE id = 'task-a'");
    t.equal(cluster.psql("SELECT (SELECT count(*) FROM task_files) + (SELECT count(*) FROM file_slices) + (SELECT count(*) FROM clients)"), '0', 'deleting a task deletes its files, slices and clients');
  });

  await t.test('a version 3 database gets the write functions of version 4, and the batch function refuses a write it does not know', async (t) => {
    cluster.psql('CREATE DATABASE older');
    const location = { ...overSocket, database: 'older' };
    const functions = "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE proname LIKE 'noise_cfg_%'";
    const first = await openPostgresStore(location, { env: {} });
    for (const name of ['noise_cfg_write_batch', 'noise_cfg_upsert_client', 'noise_cfg_claim_slot', 'noise_cfg_save_result', 'noise_cfg_mark_interrupted']) {
      await first.pool.query(`DROP FUNCTION ${name}`);
    }
    await first.pool.query('UPDATE noise_cfg_schema SET version = 3');
    await first.pool.end();
    t.equal(cluster.psql(functions, 'older'), '', 'the database is as version 3 left it');
    const { pool, migration } = await openPostgresStore(location, { env: {} });
    t.teardown(() => pool.end());
    t.same(migration, { from: 3, to: POSTGRES_SCHEMA_VERSION });
    t.equal(cluster.psql(functions, 'older'), 'noise_cfg_claim_slot,noise_cfg_mark_interrupted,noise_cfg_save_result,noise_cfg_upsert_client,noise_cfg_write_batch');
    await t.rejects(pool.query(`SELECT noise_cfg_write_batch('[{"write":"bogus"}]')`), { message: /bogus/ }, 'an unknown write fails its batch');
    t.same((await pool.query(`SELECT noise_cfg_write_batch('[]') AS results`)).rows[0].results, [], 'an empty batch writes nothing');
  });

  await t.test('a database of a newer version is refused, never downgraded', async (t) => {
    cluster.psql('CREATE DATABASE newer');
    const location = { ...overSocket, database: 'newer' };
    const first = await openPostgresStore(location, { env: {} });
    await first.pool.query('UPDATE noise_cfg_schema SET version = $1', [POSTGRES_SCHEMA_VERSION + 1]);
    await first.pool.end();
    await t.rejects(openPostgresStore(location, { env: {} }), { code: 'STORE_CORRUPT', message: /schema version \d+, newer than this build's \d+; upgrade noise-cfg/ });
  });

  await t.test('a wrong password or database, or nothing listening, is STORE_UNAVAILABLE without the password', async (t) => {
    const wrongPassword = { ...overTcp, password: 'not-the-password' };
    const error = await openPostgresStore(wrongPassword).then(() => null, (caught: Error) => caught);
    t.match(error, { code: 'STORE_UNAVAILABLE', message: /postgres .*@127\.0\.0\.1:\d+\/.*: password authentication failed \(SQLSTATE 28P01\)/ });
    t.notMatch(error!.message, /not-the-password/, 'the password is not in the message');
    t.notMatch(error!.message, new RegExp(cluster.password), 'nor the real one');
    await t.rejects(openPostgresStore({ ...overSocket, database: 'absent' }, { env: {} }), { code: 'STORE_UNAVAILABLE', message: /the database does not exist \(SQLSTATE 3D000\)/ });
    t.match(postgresFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), { ...overTcp, port: 1 }), {
      code: 'STORE_UNAVAILABLE',
      message: /cannot be reached \(ECONNREFUSED\); is PostgreSQL running there/,
    });
  });
});

// The throwaway PostgreSQL cluster the store tests run against (issue 14, test/support/postgres.ts): a real server
// from Debian's packages, reachable over its own socket directory without a password and over TCP only with one,
// and gone when the test ends.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { postgresBinDir, postgresSkipReason, startPostgres } from '../support/postgres.js';

const skip = postgresSkipReason() ?? false;

t.test('a cluster starts, answers over its socket and over TCP with the password, and stops', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  t.equal(cluster.psql('select 6 * 7'), '42', 'a query over the socket');
  t.match(cluster.psql('show server_version'), /^\d+\.\d+/, 'a real server');
  t.equal(cluster.psql('show fsync'), 'on', 'durable, as production would be');
  t.equal(readFileSync(cluster.passwordFile, 'utf8'), cluster.password);
  t.equal(statSync(cluster.passwordFile).mode & 0o777, 0o600, 'the password file is 0600');

  const psql = join(postgresBinDir()!, 'psql');
  const overTcp = (password: string) => spawnSync(psql, ['-X', '-A', '-t', '-w', '-c', 'select current_user', cluster.tcpUrl.replace(encodeURIComponent(cluster.password), encodeURIComponent(password))], { encoding: 'utf8', env: { PATH: process.env['PATH'] } });
  const good = overTcp(cluster.password);
  t.equal(good.status, 0, `TCP with the password (${good.stderr.trim()})`);
  t.equal(good.stdout.trim(), cluster.user);
  const bad = overTcp('wrong');
  t.not(bad.status, 0, 'TCP with a wrong password is refused');
  t.match(bad.stderr, /password authentication failed/);

  const socket = join(cluster.socketDir, `.s.PGSQL.${cluster.port}`);
  t.ok(existsSync(socket), 'the socket is in its own directory');
  cluster.stop();
  t.notOk(existsSync(socket), 'stopped: the socket is gone');
  t.throws(() => cluster.psql('select 1'), /psql failed/, 'and nothing answers');
});

// --store and its password (SPEC.md §4.9): what parses, what is refused with which message, and that no password
// ever reaches a description or an error.
import t from 'tap';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeStoreLocation, parseStoreLocation, readStorePassword, type PostgresLocation } from '../../lib/task/store-location.js';
import { runCli } from './support.js';

t.test('sqlite, the default, and PostgreSQL URLs over TCP and over a socket directory', async (t) => {
  t.same(parseStoreLocation('sqlite'), { kind: 'sqlite' });
  t.same(parseStoreLocation('  '), { kind: 'sqlite' }, 'empty is the default');
  t.same(parseStoreLocation('postgres://cfg@db.example.net/noise'), { kind: 'postgres', user: 'cfg', password: null, host: 'db.example.net', port: 5432, database: 'noise' });
  t.same(parseStoreLocation('postgresql://cfg:s%40cret@10.0.0.5:6543/noise'), { kind: 'postgres', user: 'cfg', password: 's@cret', host: '10.0.0.5', port: 6543, database: 'noise' }, 'percent-encoded password, other port');
  t.same(parseStoreLocation('postgres://cfg@[fd00::5]:5433/noise'), { kind: 'postgres', user: 'cfg', password: null, host: 'fd00::5', port: 5433, database: 'noise' }, 'an IPv6 literal');
  t.same(parseStoreLocation('postgres://cfg@localhost/noise?host=/run/postgresql'), { kind: 'postgres', user: 'cfg', password: null, host: '/run/postgresql', port: 5432, database: 'noise' }, 'a socket directory');
  t.same(parseStoreLocation('postgres://cfg@/noise?host=/run/postgresql&port=5433'), { kind: 'postgres', user: 'cfg', password: null, host: '/run/postgresql', port: 5433, database: 'noise' }, 'libpq\'s form: no host, the socket directory and port as parameters');
});

t.test('a bad --store is INVALID_ARGUMENT naming what is wrong, and never echoes the password', async (t) => {
  const cases: [string, RegExp][] = [
    ['mysql://cfg@db/noise', /the scheme mysql: is not supported/],
    ['postgres://db.example.net/noise', /names no user/],
    ['postgres://cfg:hunter2@db.example.net/', /names no database/],
    ['postgres://cfg:hunter2@db.example.net/a/b', /names no database/],
    ['postgres://cfg:hunter2@db/noise?sslmode=disable', /parameter "sslmode" is not understood/],
    ['postgres://cfg@db/noise?host=relative/dir', /host= must be an absolute socket directory/],
    ['/var/lib/noise-cfg/tasks.db', /expected "sqlite" or a URL/],
    ['postgres://cfg:hunter2@/noise', /names no host/],
    ['postgres://cfg@db/noise?port=0', /port must be 1 to 65535, got "0"/],
    ['postgres://cfg@db/noise?port=http', /port must be 1 to 65535/],
  ];
  for (const [text, message] of cases) {
    const error = t.throws(() => parseStoreLocation(text), { code: 'INVALID_ARGUMENT', message }, text) as Error;
    t.notMatch(error.message, /hunter2/, `${text}: the password is not in the message`);
  }
});

t.test('a description names user, host, port and database, never the password', async (t) => {
  t.equal(describeStoreLocation(parseStoreLocation('postgres://cfg:hunter2@db.example.net:6543/noise')), 'postgres cfg@db.example.net:6543/noise');
  t.equal(describeStoreLocation(parseStoreLocation('postgres://cfg@x/noise?host=/run/pg')), 'postgres cfg@socket /run/pg, port 5432/noise');
  t.equal(describeStoreLocation(parseStoreLocation('postgres://cfg@[fd00::5]/noise')), 'postgres cfg@[fd00::5]:5432/noise');
  t.equal(describeStoreLocation({ kind: 'sqlite' }), 'sqlite (in the data directory)');
});

t.test('the password: the URL\'s, else NOISE_CFG_STORE_PASSWORD, else the first line of NOISE_CFG_STORE_PASSWORD_FILE', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'password');
  writeFileSync(file, 'from-file\nsecond line\n', { mode: 0o600 });
  const bare = parseStoreLocation('postgres://cfg@db/noise') as PostgresLocation;
  const withPassword = parseStoreLocation('postgres://cfg:from-url@db/noise') as PostgresLocation;
  t.equal(readStorePassword(withPassword, { NOISE_CFG_STORE_PASSWORD: 'from-env' }), 'from-url');
  t.equal(readStorePassword(bare, { NOISE_CFG_STORE_PASSWORD: 'from-env', NOISE_CFG_STORE_PASSWORD_FILE: file }), 'from-env');
  t.equal(readStorePassword(bare, { NOISE_CFG_STORE_PASSWORD_FILE: file }), 'from-file');
  t.equal(readStorePassword(bare, {}), null, 'none: peer or trust authentication');
  t.throws(() => readStorePassword(bare, { NOISE_CFG_STORE_PASSWORD_FILE: join(dir, 'missing') }), { code: 'INVALID_ARGUMENT', message: /cannot read .*missing \(ENOENT\)/ });
  writeFileSync(join(dir, 'empty'), '\n');
  t.throws(() => readStorePassword(bare, { NOISE_CFG_STORE_PASSWORD_FILE: join(dir, 'empty') }), { code: 'INVALID_ARGUMENT', message: /is empty/ });
  chmodSync(file, 0o600);
});

t.test('the CLI: a bad --store or NOISE_CFG_STORE is a usage error, exit 2, before any data directory is made; no password is echoed', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const serve = await runCli(t, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--api', 'off', '--store', 'mysql://cfg:hunter2@db/noise']);
  t.equal(serve.code, 2, serve.stderr);
  t.match(serve.stderr, /--store: the scheme mysql: is not supported/);
  t.notMatch(serve.stderr, /hunter2|at .*\.js:\d+/, 'neither the password nor a stack trace');
  t.notOk(existsSync(data), 'serve made no data directory');
  const list = await runCli(t, ['task', 'list', '--data', data], { env: { NOISE_CFG_STORE: 'postgres://cfg:hunter2@db/noise?sslmode=require' } });
  t.equal(list.code, 2, list.stderr);
  t.match(list.stderr, /--store: the URL parameter "sslmode" is not understood/);
  t.notMatch(list.stderr, /hunter2/);
  const flagWins = await runCli(t, ['task', 'list', '--data', data, '--store', 'sqlite'], { env: { NOISE_CFG_STORE: 'mysql://x@y/z' } });
  t.match(flagWins.stderr, /DATA_DIR_MISSING|no data directory/, '--store wins over NOISE_CFG_STORE: the error is about the data directory, not the store');
});

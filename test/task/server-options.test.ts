// The TaskServer's bounds on token holders (SPEC.md §4.8) are checked when it is made: a value that is not a
// whole number >= 1 is INVALID_ARGUMENT naming the option, before anything listens.
import t from 'tap';
import { TaskServer, type TaskServerOptions } from '../../lib/task/server.js';

const OPTIONS = ['helloTimeoutMs', 'resultTimeoutMs', 'maxSessionMs', 'maxSessionsPerTask', 'maxSessionsPerIdentity', 'maxClientsPerTask', 'heartbeatMs'] as const;

t.test('a bound that is not a whole number >= 1 is INVALID_ARGUMENT naming the option', async (t) => {
  for (const name of OPTIONS) {
    for (const value of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const options = { dataDir: t.testdir(), listen: { host: '127.0.0.1', port: 0 }, [name]: value } as TaskServerOptions;
      t.throws(() => new TaskServer(options), { code: 'INVALID_ARGUMENT', message: new RegExp(`^${name} must be a whole number >= 1, got`) }, `${name} = ${value}`);
    }
    t.doesNotThrow(() => new TaskServer({ dataDir: t.testdir(), listen: { host: '127.0.0.1', port: 0 }, [name]: 1 } as TaskServerOptions), `${name} = 1 is accepted`);
  }
});

t.test('contentCacheBytes is a whole number of bytes >= 0: 0 keeps nothing, anything else is INVALID_ARGUMENT', async (t) => {
  for (const value of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    const options: TaskServerOptions = { dataDir: t.testdir(), listen: { host: '127.0.0.1', port: 0 }, contentCacheBytes: value };
    t.throws(() => new TaskServer(options), { code: 'INVALID_ARGUMENT', message: /^contentCacheBytes must be a whole number of bytes >= 0, got/ }, `contentCacheBytes = ${value}`);
  }
  for (const value of [0, 1, 64 * 1024 * 1024]) {
    t.doesNotThrow(() => new TaskServer({ dataDir: t.testdir(), listen: { host: '127.0.0.1', port: 0 }, contentCacheBytes: value }), `contentCacheBytes = ${value} is accepted`);
  }
});

t.test('silentProcessMs must be more than heartbeatMs: a process is taken for dead only after missing beats', async (t) => {
  const base = { dataDir: t.testdir(), listen: { host: '127.0.0.1', port: 0 } };
  t.throws(() => new TaskServer({ ...base, silentProcessMs: 0 }), { code: 'INVALID_ARGUMENT', message: /^silentProcessMs must be a whole number >= 1/ });
  t.throws(() => new TaskServer({ ...base, heartbeatMs: 500, silentProcessMs: 500 }), { code: 'INVALID_ARGUMENT', message: 'silentProcessMs (500) must be more than heartbeatMs (500)' });
  t.throws(() => new TaskServer({ ...base, silentProcessMs: 1000 }), { code: 'INVALID_ARGUMENT', message: /silentProcessMs \(1000\) must be more than heartbeatMs \(2000\)/ }, 'against the default heartbeat');
  t.doesNotThrow(() => new TaskServer({ ...base, heartbeatMs: 500, silentProcessMs: 501 }));
});

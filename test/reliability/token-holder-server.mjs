// A TaskServer in its own process for test/reliability/token-holders.test.ts, so that the memory figures are the
// server's alone. Plain JavaScript on the built dist/ (as the CLI tests use dist/cli/bin.js): a TypeScript loader
// would add its own hundreds of MiB to the figures. argv[2] is a JSON object: `dataDir` and TaskServerOptions fields. Over IPC it sends `{ port }`
// once listening and `{ log }` for every log record; it answers `stats` with `{ stats: { rssBytes, peakRssBytes } }`
// (VmRSS and VmHWM of /proc/self/status), `reset-peak` by resetting VmHWM, and stops on `stop`.
import { readFileSync, writeFileSync } from 'node:fs';
import { TaskServer } from '../../dist/lib/task/server.js';

const options = JSON.parse(process.argv[2]);

function statusBytes(field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

const server = new TaskServer({
  listen: { host: '127.0.0.1', port: 0 },
  ...options,
  log: (record) => process.send({ log: record }),
});

process.on('message', (message) => {
  if (message === 'stats') {
    process.send({ stats: { rssBytes: statusBytes('VmRSS'), peakRssBytes: statusBytes('VmHWM') } });
  } else if (message === 'reset-peak') {
    // Writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current one (Linux).
    writeFileSync('/proc/self/clear_refs', '5');
    process.send({ reset: true });
  } else if (message === 'stop') {
    void server.stop(0).finally(() => process.exit(0));
  }
});

const { port } = await server.start();
process.send({ port });

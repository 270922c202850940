/**
 * A bare handshake server (server-process.ts's `handshake` behaviour: noise-cfg's channel or Node's TLS-PSK) run by
 * `workers` node:cluster workers on one port, scheduled as `serve --workers` schedules them (SCHED_NONE), for
 * section 6's peer of the pool comparison (cluster-tax.ts). Forked by the bench with IPC, this process is the
 * primary: it reports `{ port }`, answers `stats` with ServerStats summed over itself and every worker, and stops
 * on `stop`.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { ServerKind, ServerStats } from './fixtures.js';

const SERVER_SCRIPT = fileURLToPath(new URL('./server-process.js', import.meta.url));

function nextMessage<T>(worker: Worker, accept: (message: unknown) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (!accept(message)) return;
      worker.off('message', onMessage);
      resolve(message as T);
    };
    worker.on('message', onMessage);
  });
}

async function main(workers: number, kind: ServerKind): Promise<void> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: SERVER_SCRIPT, args: [kind, 'handshake', '0', '0'] });
  const forked = Array.from({ length: workers }, () => cluster.fork());
  // listen(0) in a cluster worker binds the primary's one shared handle: every worker reports the same port.
  const ports = await Promise.all(forked.map((worker) => nextMessage<{ port: number }>(worker, (message) => typeof (message as { port?: unknown })?.port === 'number')));
  process.on('message', (message: unknown) => {
    if (message === 'stats') {
      void Promise.all(forked.map((worker) => {
        const answer = nextMessage<ServerStats>(worker, (each) => typeof (each as { cpuMicros?: unknown })?.cpuMicros === 'number');
        worker.send('stats');
        return answer;
      })).then((each) => {
        const own = process.cpuUsage();
        const stats: ServerStats = {
          cpuMicros: own.user + own.system + each.reduce((sum, worker) => sum + worker.cpuMicros, 0),
          connections: each.reduce((sum, worker) => sum + worker.connections, 0),
          rss: 0, open: 0, commits: 0,
        };
        process.send!(stats);
      });
    } else if (message === 'stop') {
      void Promise.all(forked.map((worker) => new Promise((resolve) => {
        worker.once('exit', resolve);
        worker.send('stop');
      }))).finally(() => process.exit(0));
    }
  });
  process.send!({ port: ports[0]!.port });
}

const [workersText, kind] = process.argv.slice(2) as [string, ServerKind];
void main(Number(workersText), kind).catch((error: Error) => {
  process.stderr.write(`bench cluster failed: ${error.message}\n`);
  process.exit(1);
});

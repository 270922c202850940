/**
 * The task server as `serve --workers N` runs it, for section 6's pulls. Forked by the bench with IPC, this process
 * is the WorkerPool's primary; node:cluster runs this file again for each worker. The primary reports
 * `{ port, token }`, answers `stats` with ServerStats summed over itself and every worker (CPU and commits: what
 * the whole server costs), and stops on `stop`.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportWorkerReady, TaskAdmin, TaskServer, WorkerPool, workerRole } from '../lib/index.js';
import { BENCH_TASK_SERVER_LIMITS, type ServerStats } from './fixtures.js';

/** The data directory, for the workers: they inherit the primary's environment. */
const DATA_DIR_ENV = 'NOISE_CFG_BENCH_POOL_DATA_DIR';

interface WorkerStats {
  type: 'bench-stats';
  cpuMicros: number;
  commits: number;
}

function cpuMicros(): number {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
}

async function runWorker(): Promise<void> {
  const role = workerRole();
  if (!role) throw new Error('not a worker of a pool');
  const server = new TaskServer({ dataDir: process.env[DATA_DIR_ENV]!, listen: { host: '127.0.0.1', port: 0 }, limits: BENCH_TASK_SERVER_LIMITS, worker: role });
  const address = await server.start();
  process.on('message', (message: unknown) => {
    if (message !== 'stats') return;
    const stats: WorkerStats = { type: 'bench-stats', cpuMicros: cpuMicros(), commits: server.store.commitCount };
    process.send!(stats);
  });
  process.once('SIGTERM', () => {
    void server.stop(0).then(() => process.disconnect());
  });
  reportWorkerReady({ address, api: null });
}

function askWorker(worker: Worker): Promise<WorkerStats> {
  return new Promise((resolve) => {
    const onMessage = (message: WorkerStats): void => {
      if (message?.type !== 'bench-stats') return;
      worker.off('message', onMessage);
      resolve(message);
    };
    worker.on('message', onMessage);
    worker.send('stats');
  });
}

async function runPrimary(workers: number, taskBytes: number): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'noise-cfg-bench-pool-'));
  process.env[DATA_DIR_ENV] = dataDir;
  const pool = new WorkerPool({ dataDir, workers, listen: '127.0.0.1:0', log: () => undefined });
  const { address } = await pool.start();
  const admin = await TaskAdmin.open(dataDir);
  const { token } = await admin.createTask({ files: [{ path: 'bench/payload.bin', content: Buffer.alloc(taskBytes, 0x42) }], ttlSeconds: 3600, advertise: address });
  await admin.close();
  process.on('message', (message: unknown) => {
    if (message === 'stats') {
      void Promise.all(Object.values(cluster.workers ?? {}).map((worker) => askWorker(worker!))).then((each) => {
        const stats: ServerStats = {
          cpuMicros: cpuMicros() + each.reduce((sum, worker) => sum + worker.cpuMicros, 0),
          commits: each.reduce((sum, worker) => sum + worker.commits, 0),
          rss: 0, connections: 0, open: 0,
        };
        process.send!(stats);
      });
    } else if (message === 'stop') {
      void pool.stop(0).finally(() => {
        rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  process.send!({ port: address.port, token });
}

const [workersText, taskBytesText] = process.argv.slice(2);
void (cluster.isPrimary ? runPrimary(Number(workersText), Number(taskBytesText)) : runWorker()).catch((error: Error) => {
  process.stderr.write(`bench pool failed: ${error.message}\n`);
  process.exit(1);
});

// Helpers for the client-side tests of issue 12 (on-disk `have`, --verify, rollback, permissions, progress): one
// TaskServer on 127.0.0.1 port 0 with its admin, tasks made on it, and pulls with their own identity directories.
import { join } from 'node:path';
import type { Test } from 'tap';
import { pull, type PullOptions, type PullResult } from '../../lib/task/client.js';
import type { TaskAdmin } from '../../lib/task/admin.js';
import type { TaskFileInput } from '../../lib/task/file-set.js';
import { openAdmin, startServer, type RunningServer } from './support.js';

/** A server, its admin and helpers to make tasks and pull them. */
export interface ClientSetup {
  dir: string;
  dataDir: string;
  running: RunningServer;
  admin: TaskAdmin;
  /** Makes a task of `files` on the server; returns its id and token. */
  create: (files: readonly TaskFileInput[], options?: { maxClients?: number; mode?: 'xxpsk3' | 'nnpsk0' }) => Promise<{ id: string; token: string }>;
  /** Pulls `token` into `outDir` (default: `<dir>/out`) with the identity directory `<dir>/identity`. */
  pullInto: (token: string, options?: Partial<PullOptions>) => Promise<PullResult>;
  outDir: string;
  identityDir: string;
}

/** Starts a server in a fresh test directory. */
export async function clientSetup(t: Test): Promise<ClientSetup> {
  const dir = t.testdir();
  const dataDir = join(dir, 'data');
  const running = await startServer(t, dataDir);
  const admin = await openAdmin(t, dataDir);
  const outDir = join(dir, 'out');
  const identityDir = join(dir, 'identity');
  return {
    dir, dataDir, running, admin, outDir, identityDir,
    create: async (files, options = {}) => {
      const created = await admin.createTask({ files, mode: options.mode ?? 'xxpsk3', advertise: { host: '127.0.0.1', port: running.port }, ...(options.maxClients ? { maxClients: options.maxClients } : {}) });
      return { id: created.id, token: created.token };
    },
    pullInto: (token, options = {}) => pull({ token, outDir, identityDir, name: 'client', retryForMs: 0, ...options }),
  };
}

/** Text files for a task, from a path → content map. */
export function textFiles(files: Record<string, string>): TaskFileInput[] {
  return Object.entries(files).map(([path, content]) => ({ path, content: Buffer.from(content) }));
}

/**
 * Where clients connect (SPEC.md §4.1): the HOST:PORT written into tokens. A running server records the address it
 * advertises in DATA_DIR/server.json, so that `task create --data` (another process) mints the same tokens.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { DataDir } from './data-dir.js';

/** The default port of the Noise listener. */
export const DEFAULT_PORT = 7447;
const SERVER_INFO_FILE = 'server.json';

/** A HOST:PORT the clients can reach. */
export interface AdvertisedAddress {
  host: string;
  port: number;
}

/** Records the address a running server advertises, for `task create --data` (written atomically). */
export function saveAdvertisedAddress(dataDir: DataDir, address: AdvertisedAddress): void {
  const path = join(dataDir.path, SERVER_INFO_FILE);
  // The pid in the temporary name: the workers of `serve --workers` each write it, at the same time.
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ advertise: address })}\n`, { mode: 0o644 });
  renameSync(temporary, path);
}

/** The first non-internal IPv4 address of this machine, else 127.0.0.1. */
export function defaultAdvertiseHost(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}

/** `given`, else what the server last advertised (server.json), else this machine's address and DEFAULT_PORT. */
export function advertisedAddress(dataDir: DataDir, given?: AdvertisedAddress): AdvertisedAddress {
  if (given) return given;
  const path = join(dataDir.path, SERVER_INFO_FILE);
  if (existsSync(path)) {
    try {
      const saved = (JSON.parse(readFileSync(path, 'utf8')) as { advertise?: AdvertisedAddress }).advertise;
      if (saved && typeof saved.host === 'string' && Number.isInteger(saved.port)) return saved;
    } catch {
      // A damaged server.json only loses the remembered address; the default below still works.
    }
  }
  return { host: defaultAdvertiseHost(), port: DEFAULT_PORT };
}

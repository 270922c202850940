/** Keys and names both bench processes derive the same way, so the client can pin the server. */
import sodium from 'sodium-native';
import { keyPairFromSecretKey, type KeyPair } from '../lib/index.js';

function labelled(label: string): Buffer {
  const output = Buffer.alloc(32);
  sodium.crypto_generichash(output, Buffer.from(`noise-cfg bench/${label}`));
  return output;
}

export const BENCH_PSK = labelled('psk');
export const BENCH_TASK_ID = 'benchtask0000000';
/** The channel limits of the bench's task servers, one process or a pool: every connection comes from 127.0.0.1. */
export const BENCH_TASK_SERVER_LIMITS = { maxUnauthenticatedPerSource: 100_000 } as const;
export const SERVER_KEYS: KeyPair = keyPairFromSecretKey(labelled('server'));
export const CLIENT_KEYS: KeyPair = keyPairFromSecretKey(labelled('client'));
export const TLS_IDENTITY = 'bench';

/** What a bench server process is asked to be. */
/** `pull-node`: one node of a fleet on PostgreSQL, its data directory and store given by the parent (BenchServer.startNode). */
export type ServerKind = 'noise-xxpsk3' | 'noise-nnpsk0' | 'tls13' | 'tls12' | 'raw' | 'pull' | 'pull-node';
/** What it does with each connection. */
export type ServerBehaviour = 'handshake' | 'bulk' | 'idle';

export const TLS_OPTIONS = {
  tls13: { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphersuites: 'TLS_CHACHA20_POLY1305_SHA256' },
  tls12: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-PSK-CHACHA20-POLY1305' },
} as const;

/** The stats a server process reports. */
export interface ServerStats {
  cpuMicros: number;
  rss: number;
  connections: number;
  /** Idle connections open now. */
  open: number;
  commits: number;
}

/** Where a `pull-node` bench server finds its data directory and its store (environment of the forked process). */
export const NODE_DATA_DIR_ENV = 'NOISE_CFG_BENCH_NODE_DATA_DIR';
export const NODE_STORE_ENV = 'NOISE_CFG_BENCH_NODE_STORE';

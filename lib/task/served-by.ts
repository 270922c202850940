/**
 * Names for the processes that write client records (SPEC.md §4.9, §4.10): `served_by` is a node's id followed by
 * the process's own random part. The node id is fixed for a data directory on a host, so that a server starting on
 * a database that other nodes share can find the sessions its own earlier runs left (and leave theirs alone).
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { StoreLocation } from './store-location.js';

/** Hex characters of the node part, and of the whole name. */
export const NODE_ID_LENGTH = 16;
export const SERVED_BY_LENGTH = 32;

/**
 * The id of the node that serves `dataDirPath` on this host: a hash of the host name and the directory's absolute
 * path. Nodes of one fleet differ in at least one of the two (each has its own data directory with the same keys).
 */
export function nodeId(dataDirPath: string): string {
  return createHash('sha256').update(`${hostname()}\0${resolve(dataDirPath)}`).digest('hex').slice(0, NODE_ID_LENGTH);
}

/** A new process name of the node `node`. */
export function newServedBy(node: string): string {
  return `${node}${randomBytes((SERVED_BY_LENGTH - NODE_ID_LENGTH) / 2).toString('hex')}`;
}

/** Whose sessions interruptLostSessions marks: one process's, one node's (all its processes, past and present), or every one. */
export type LostSessionScope = { servedBy: string } | { node: string } | 'all';

/**
 * Whose sessions a server starting with the data directory's lock finds lost: on SQLite every one (the lock makes
 * it the only server of the database); on PostgreSQL those of this node's (`node`) earlier runs, since other
 * nodes serve theirs.
 */
export function restartScope(store: StoreLocation | undefined, node: string): LostSessionScope {
  return store?.kind === 'postgres' ? { node } : 'all';
}

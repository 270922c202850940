/** Paths the tests share: the repo root, the shared material beside the checkout, the built CLI. */
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** ../shared/vectors: the public vectors, read in place. */
export const SHARED_VECTORS_DIR = resolve(REPO_ROOT, '..', 'shared', 'vectors');
/** The compiled CLI entry point (built by `npm test` before tap runs). */
export const CLI_BIN = join(REPO_ROOT, 'dist', 'cli', 'bin.js');
/** The compiled vector runner. */
export const VECTOR_RUNNER = join(REPO_ROOT, 'dist', 'tools', 'vectors', 'run-vectors.js');

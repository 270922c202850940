/** Paths the tests share: the repo root, the public vectors the repository carries, the built CLI. */
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** test/vectors/public: unmodified copies of the public vector files, with their sources and licenses. */
export const PUBLIC_VECTORS_DIR = join(REPO_ROOT, 'test', 'vectors', 'public');
/** test/reference: the Noise specification, revision 34 (public domain). */
export const REFERENCE_DIR = join(REPO_ROOT, 'test', 'reference');
/** The compiled CLI entry point (built by `npm test` before tap runs). */
export const CLI_BIN = join(REPO_ROOT, 'dist', 'cli', 'bin.js');
/** The compiled vector runner. */
export const VECTOR_RUNNER = join(REPO_ROOT, 'dist', 'tools', 'vectors', 'run-vectors.js');

/**
 * The software version, read once from package.json: what `--version`, the REST API (/v1/health, the OpenAPI
 * document) and every other place that prints a version show. A leaf: it imports nothing of noise-cfg, so the
 * CLI can answer `--version` without loading the library.
 */
import { readFileSync } from 'node:fs';

// lib/version.ts runs from the checkout (tests) and from dist/lib/version.js (the package): package.json is one
// or two directories up, and is ours when it names noise-cfg.
function readVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const packageJson = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (packageJson.name === 'noise-cfg' && typeof packageJson.version === 'string') return packageJson.version;
    } catch {
      // Not here (or not readable): the next candidate up.
    }
  }
  throw new Error('noise-cfg cannot find its package.json to read its version');
}

/** The version of this noise-cfg, e.g. `0.1.0` (package.json `version`). */
export const VERSION: string = readVersion();

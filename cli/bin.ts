#!/usr/bin/env node
/** The noise-cfg executable: builds and runs the CLI, and is the one place a failure becomes an exit code. */
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  // Answered before yargs and the library load (most of the start-up time), for scripts that probe the version.
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  process.stdout.write(`${packageJson.version}\n`);
} else {
  const { buildCli } = await import('./index.js');
  const { reportError, wantsJson } = await import('./output.js');
  try {
    await buildCli(argv).parseAsync();
  } catch (error) {
    reportError(error, wantsJson(argv));
  }
}

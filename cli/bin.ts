#!/usr/bin/env node
/** The noise-cfg executable: builds and runs the CLI, and is the one place a failure becomes an exit code. */
const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  // Answered before yargs and the library load (most of the start-up time), for scripts that probe the version:
  // lib/version.js is a leaf that imports nothing of the library.
  const { VERSION } = await import('../lib/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  const { buildCli } = await import('./index.js');
  const { reportError, wantsJson } = await import('./output.js');
  try {
    await buildCli(argv).parseAsync();
  } catch (error) {
    reportError(error, wantsJson(argv));
  }
}

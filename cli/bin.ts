#!/usr/bin/env node
/** The noise-cfg executable: builds and runs the CLI, and is the one place a failure becomes an exit code. */
import { buildCli } from './index.js';
import { reportError, wantsJson } from './output.js';

const argv = process.argv.slice(2);
try {
  await buildCli(argv).parseAsync();
} catch (error) {
  reportError(error, wantsJson(argv));
}

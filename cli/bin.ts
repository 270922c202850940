#!/usr/bin/env node
/** The noise-cfg executable: only builds and runs the CLI. */
import { buildCli } from './index.js';
import { reportError } from './output.js';

try {
  await buildCli(process.argv.slice(2)).parseAsync();
} catch (error) {
  reportError(error);
}

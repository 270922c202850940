/**
 * `noise-cfg task create|list|show|token|watch|cancel|revoke|delete|prune` (CONTRACT.md): one module per
 * subcommand, each acting through the data directory (--data) or the REST API (--api); see common.ts.
 */
import type { Argv } from 'yargs';
import * as cancel from './cancel.js';
import * as create from './create.js';
import * as deleteTask from './delete.js';
import * as list from './list.js';
import * as prune from './prune.js';
import * as revoke from './revoke.js';
import * as show from './show.js';
import * as token from './token.js';
import * as watch from './watch.js';

export const command = 'task';
export const describe = 'Create, follow and manage update tasks';

export function builder(yargs: Argv) {
  return yargs
    .command(create)
    .command(list)
    .command(show)
    .command(watch)
    .command(token)
    .command(cancel)
    .command(revoke)
    .command(deleteTask)
    .command(prune)
    .demandCommand(1, 'name an action: create, list, show, token, watch, cancel, revoke, delete or prune');
}

/** The subcommands do the work. */
export function handler(): void {}

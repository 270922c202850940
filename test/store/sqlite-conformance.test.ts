// The SQLite store (lib/task/store.ts) against the shared store conformance suite (store-conformance.ts): each
// handle is one TaskStore on the same file, as each server process or task command opens its own.
import t from 'tap';
import { join } from 'node:path';
import { TaskStore } from '../../lib/task/store.js';
import { storeConformance } from './store-conformance.js';

storeConformance(t, async (t) => {
  const path = join(t.testdir(), 'noise-cfg.db');
  return async (options = {}) => {
    const store = TaskStore.open(path, options);
    t.teardown(() => store.close());
    return store;
  };
});

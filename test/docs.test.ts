// The maps of the repository cannot drift from it: ARCHITECTURE.md names every source file (and no file that is
// gone), test/README.md every test file, and test/vectors/public/README.md every public vector file.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './support/paths.js';

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(join(REPO_ROOT, dir)).flatMap((name) => {
    const path = join(REPO_ROOT, dir, name);
    if (statSync(path).isDirectory()) return filesUnder(relative(REPO_ROOT, path), keep);
    return keep(name) ? [relative(REPO_ROOT, path)] : [];
  });
}

/** Every `path` written in backquotes in a Markdown file, relative to `base`. */
function namedPaths(markdownFile: string, base: string): Set<string> {
  const text = readFileSync(join(REPO_ROOT, markdownFile), 'utf8');
  return new Set([...text.matchAll(/`([\w./-]+\.(?:ts|mjs|py|txt|json|md))`/g)].map((match) => join(base, match[1]!)));
}

const isSource = (name: string): boolean => name.endsWith('.ts') && !name.endsWith('.d.ts');

t.test('ARCHITECTURE.md has a line for every source file of lib, cli, tools and bench, and names none that is gone', async (t) => {
  const sources = ['lib', 'cli', 'tools', 'bench'].flatMap((dir) => filesUnder(dir, isSource));
  const named = namedPaths('ARCHITECTURE.md', '');
  t.ok(sources.length > 100, `found the sources (${sources.length})`);
  t.same(sources.filter((file) => !named.has(file)), [], 'every source file is in ARCHITECTURE.md');
  const gone = [...named].filter((file) => /^(lib|cli|tools|bench)\//.test(file) && !sources.includes(file));
  t.same(gone, [], 'ARCHITECTURE.md names no file that does not exist');
});

t.test('test/README.md has a line for every test file and helper, and names none that is gone', async (t) => {
  const tests = filesUnder('test', (name) => /\.(ts|mjs|py)$/.test(name)).map((file) => relative('test', file));
  const named = new Set([...namedPaths('test/README.md', '')]);
  t.ok(tests.length > 60, `found the tests (${tests.length})`);
  t.same(tests.filter((file) => !named.has(file)), [], 'every test file is in test/README.md');
  const gone = [...named].filter((file) => /\.(ts|mjs|py)$/.test(file) && !tests.includes(file));
  t.same(gone, [], 'test/README.md names no file that does not exist');
});

t.test('test/vectors/public/README.md describes every public vector file', async (t) => {
  const files = readdirSync(join(REPO_ROOT, 'test', 'vectors', 'public')).filter((name) => name !== 'README.md');
  const named = namedPaths('test/vectors/public/README.md', '');
  t.same(files.filter((file) => !named.has(file)), [], 'every vector file has its source and license there');
});

// The dependency direction of STYLE.md: cli imports only lib/index; lib/noise imports only errors and is pure;
// a layer reaches another only through its face (index.ts) or, to wire a test hook, its testing.ts.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './support/paths.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((match) => match[1]!);
}

t.test('cli imports nothing of lib but lib/index', async (t) => {
  for (const file of sourceFiles(join(REPO_ROOT, 'cli'))) {
    for (const specifier of importsOf(file)) {
      if (specifier.includes('/lib/')) t.match(specifier, /\/lib\/index\.js$/, `${relative(REPO_ROOT, file)} imports ${specifier}`);
    }
  }
});

t.test('lib/noise imports only itself, errors, libsodium, node:crypto (OpenSSL) and noise-handshake', async (t) => {
  const files = sourceFiles(join(REPO_ROOT, 'lib', 'noise'));
  t.ok(files.length >= 8, 'found the core files');
  for (const file of files) {
    for (const specifier of importsOf(file)) {
      const isAllowed = specifier.startsWith('./') || specifier === '../errors.js' || specifier === 'sodium-native' || specifier === 'node:crypto' || specifier.startsWith('noise-handshake');
      t.ok(isAllowed, `${relative(REPO_ROOT, file)} may import ${specifier}`);
    }
  }
});

t.test('lib never imports cli, and lower layers never import higher ones', async (t) => {
  const order = ['noise', 'transport', 'task', 'api'];
  for (const file of sourceFiles(join(REPO_ROOT, 'lib'))) {
    const layer = relative(join(REPO_ROOT, 'lib'), file).split('/')[0]!;
    for (const specifier of importsOf(file)) {
      t.notMatch(specifier, /\/cli\//, `${relative(REPO_ROOT, file)} does not import cli`);
      const target = /\.\.\/(noise|transport|task|api)\//.exec(specifier)?.[1];
      if (target && order.includes(layer)) {
        t.ok(order.indexOf(target) <= order.indexOf(layer), `${relative(REPO_ROOT, file)} (${layer}) may import ${target}`);
      }
    }
  }
});

t.test('a layer imports another layer only through its face (index.ts) or its test doors (testing.ts)', async (t) => {
  const layers = ['noise', 'token', 'transport', 'task', 'api'];
  let crossings = 0;
  for (const file of sourceFiles(join(REPO_ROOT, 'lib'))) {
    const layer = relative(join(REPO_ROOT, 'lib'), file).split('/')[0]!;
    if (!layers.includes(layer)) continue;
    for (const specifier of importsOf(file)) {
      const match = /^\.\.\/(noise|token|transport|task|api)\/([^/]+)\.js$/.exec(specifier);
      if (!match || match[1] === layer) continue;
      crossings++;
      t.ok(match[2] === 'index' || match[2] === 'testing', `${relative(REPO_ROOT, file)} imports ${specifier}`);
    }
  }
  t.ok(crossings >= 10, `the scan finds the crossings (${crossings})`);
});

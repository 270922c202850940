// lib/noise/index.ts is the Noise layer's face: the layers above import lib/noise through it alone (test doors
// aside; test/layers.test.ts forbids the private files), and every name they import is really exported there.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as face from '../../lib/noise/index.js';
import { REPO_ROOT } from '../support/paths.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

interface NoiseImport {
  file: string;
  name: string;
  isType: boolean;
}

function faceImportsOf(file: string): NoiseImport[] {
  const text = readFileSync(file, 'utf8');
  const imports: NoiseImport[] = [];
  for (const match of text.matchAll(/^import\s+(type\s+)?\{([^}]*)\}\s+from\s+'\.\.\/noise\/index\.js'/gm)) {
    const [, wholeType, names] = match as unknown as [string, string | undefined, string];
    for (const entry of names.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
      const isType = wholeType !== undefined || entry.startsWith('type ');
      const name = entry.replace(/^type\s+/, '').split(/\s+as\s+/)[0]!;
      imports.push({ file: relative(REPO_ROOT, file), name, isType });
    }
  }
  return imports;
}

const imports = ['transport', 'task', 'api'].flatMap((layer) => sourceFiles(join(REPO_ROOT, 'lib', layer))).flatMap(faceImportsOf);
const faceText = readFileSync(join(REPO_ROOT, 'lib', 'noise', 'index.ts'), 'utf8');

t.test('every value the layers above import from the face is defined there', async (t) => {
  const values = imports.filter((entry) => !entry.isType);
  t.ok(values.some((entry) => entry.name === 'HandshakeState'), 'the scan finds the imports (HandshakeState among them)');
  t.ok(values.some((entry) => entry.name === 'DH_BYTES'), 'and DH_BYTES, which lib/transport/limits.ts derives its sizes from');
  for (const entry of values) {
    t.not((face as Record<string, unknown>)[entry.name], undefined, `${entry.file}: ${entry.name} is a value of lib/noise/index.ts`);
  }
});

t.test('every type the layers above import from the face is exported there', async (t) => {
  const types = imports.filter((entry) => entry.isType);
  t.ok(types.some((entry) => entry.name === 'KeyPair'), 'the scan finds the type imports (KeyPair among them)');
  for (const entry of types) {
    // A class is a type too: `TransportState` counts as well as `type KeyPair`.
    t.match(faceText, new RegExp(`^export \\{[^}]*\\b${entry.name}\\b`, 'm'), `${entry.file}: type ${entry.name} is exported by lib/noise/index.ts`);
  }
});

t.test('the face does not carry the test doors', async (t) => {
  t.notMatch(faceText, /from '\.\/testing\.js'/, 'nothing re-exported from testing.ts');
  for (const name of Object.keys(face)) t.notMatch(name, /testing/i, `${name} is not a test door`);
});

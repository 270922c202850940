// README's library examples compile against the public surface (lib/index.ts, the package's "." export): a name
// trimmed from it, or renamed, fails here rather than in a reader's editor.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../support/paths.js';

// What the snippets take as given, as their comments say: the PSK shared out of band and the server's pinned key.
const GIVEN = 'declare const psk: Buffer;\ndeclare const serverPublicKey: Buffer;\n';

t.test('every TypeScript example of README\'s library section typechecks against lib/index.ts', async (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The library'), readme.indexOf('\n## ', readme.indexOf('## The library') + 1));
  const examples = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
  t.ok(examples.length >= 3, `the section has its examples (${examples.length})`);
  const dir = mkdtempSync(join(tmpdir(), 'noise-cfg-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const index = join(REPO_ROOT, 'lib', 'index.js');
  const files = examples.map((example, number) => {
    const path = join(dir, `example-${number + 1}.mts`);
    const usesGiven = /\bpsk\b|\bserverPublicKey\b/.test(example) && !/const psk\b/.test(example);
    writeFileSync(path, `${usesGiven ? GIVEN : ''}${example.replaceAll("from 'noise-cfg'", `from ${JSON.stringify(index)}`)}\nexport {};\n`);
    return path;
  });
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules', '@types')],
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((diagnostic) => diagnostic.file && files.includes(diagnostic.file.fileName));
  t.same(diagnostics.map((diagnostic) => `${diagnostic.file!.fileName.slice(dir.length + 1)}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`), [], 'no type errors');
});

// LentBytes (lib/transport/lent-bytes.ts) turns "valid only during the call" into a type: the checker refuses to
// keep a lent chunk as a Buffer, and accepts the two ways out, a view for the call or a copy.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { copyLent, lend, viewLent } from '../../lib/transport/lent-bytes.js';
import { REPO_ROOT } from '../support/paths.js';

/** The type errors of `source`, compiled beside lent-bytes.ts with the project's strictness. */
function typeErrors(source: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'lent-bytes-'));
  try {
    const file = join(dir, 'snippet.ts');
    writeFileSync(file, `import { copyLent, lend, viewLent, type LentBytes } from '${join(REPO_ROOT, 'lib/transport/lent-bytes.js')}';\n${source}\n`);
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules/@types')], skipLibCheck: true,
    });
    return ts.getPreEmitDiagnostics(program).filter((diagnostic) => diagnostic.file?.fileName === file)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('a lent chunk cannot be kept or used as a Buffer by mistake', async (t) => {
  const preamble = 'const kept: Buffer[] = [];\nconst lent: LentBytes = lend(Buffer.alloc(4));\n';
  t.match(typeErrors(`${preamble}kept.push(lent);`), [/'LentBytes' is not assignable to parameter of type 'Buffer/], 'storing it');
  t.match(typeErrors(`${preamble}const first: number | undefined = lent[0];`), [/./], 'indexing it');
  t.match(typeErrors(`${preamble}Buffer.from(lent);`), [/./], 'copying it the ordinary way');
  t.same(typeErrors(`${preamble}kept.push(copyLent(lent));\nconst first: number | undefined = viewLent(lent)[0];\nvoid first;`), [], 'copyLent and viewLent are the ways out');
});

t.test('at run time a LentBytes is the Buffer itself, and copyLent copies', async (t) => {
  const bytes = Buffer.from([1, 2, 3]);
  const lent = lend(bytes);
  t.equal(viewLent(lent), bytes, 'viewLent is the same object');
  const copy = copyLent(lent);
  bytes[0] = 9;
  t.same([...copy], [1, 2, 3], 'the copy does not change with the lent bytes');
});

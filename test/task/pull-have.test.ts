// Issue 12 item 2, client half (SPEC.md §4.7 "What `have` claims"): HELLO carries `have` only when --out really
// holds that digest, so a new, emptied or edited --out gets the files again instead of "up to date".
import t from 'tap';
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientSetup, textFiles } from './client-support.js';

const FILES = textFiles({ 'app.conf': 'listen = 8080\n', 'conf.d/extra.conf': 'workers = 4\n' });

t.test('an intact --out is up to date; after its link was deleted the pull writes the files again, status applied', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  t.equal((await s.pullInto(token)).status, 'applied');
  t.equal((await s.pullInto(token)).status, 'up-to-date', 'nothing changed: up to date');
  rmSync(s.outDir, { recursive: true, force: true });
  const again = await s.pullInto(token);
  t.equal(again.status, 'applied', 'the deleted --out gets the files');
  t.equal(readFileSync(join(s.outDir, 'app.conf'), 'utf8'), 'listen = 8080\n');
});

t.test('after the files under --out were deleted (rm -rf out/*), a pull writes them again, status applied', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  t.equal((await s.pullInto(token)).status, 'applied');
  rmSync(join(s.outDir, 'app.conf'));
  rmSync(join(s.outDir, 'conf.d'), { recursive: true });
  const lines: string[] = [];
  const again = await s.pullInto(token, { onProgress: (line) => lines.push(line) });
  t.equal(again.status, 'applied', 'the emptied --out gets the files');
  t.equal(readFileSync(join(s.outDir, 'conf.d/extra.conf'), 'utf8'), 'workers = 4\n');
  t.ok(lines.some((line) => /no longer holds what was applied \(.*is missing\)/.test(line)), `says why it pulls again (${lines.join(' | ')})`);
});

t.test('after one file under --out was deleted, a pull rewrites it, status applied', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  t.equal((await s.pullInto(token)).status, 'applied');
  unlinkSync(join(s.outDir, 'conf.d/extra.conf'));
  t.equal((await s.pullInto(token)).status, 'applied', 'a missing file: applied again');
  t.ok(existsSync(join(s.outDir, 'conf.d/extra.conf')), 'the file is back');
  t.equal((await s.pullInto(token)).status, 'up-to-date', 'then up to date again');
});

t.test('a file edited in place under --out (same size) is found by its digest and rewritten; an added file too', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  t.equal((await s.pullInto(token)).status, 'applied');
  writeFileSync(join(s.outDir, 'app.conf'), 'listen = 9090\n');
  t.equal((await s.pullInto(token)).status, 'applied', 'edited content: applied again');
  t.equal(readFileSync(join(s.outDir, 'app.conf'), 'utf8'), 'listen = 8080\n', 'the task\'s content is back');
  writeFileSync(join(s.outDir, 'stray.txt'), 'x');
  t.equal((await s.pullInto(token)).status, 'applied', 'an extra file: applied again');
  t.notOk(existsSync(join(s.outDir, 'stray.txt')), 'the new version has only the task\'s files');
});

t.test('a pull into a new --out for a task this identity applied elsewhere gets the files', async (t) => {
  const s = await clientSetup(t);
  const { token } = await s.create(FILES);
  t.equal((await s.pullInto(token)).status, 'applied');
  const other = join(s.dir, 'other-out');
  const result = await s.pullInto(token, { outDir: other });
  t.equal(result.status, 'applied', 'a new directory is never up to date');
  t.equal(readFileSync(join(other, 'app.conf'), 'utf8'), 'listen = 8080\n');
});

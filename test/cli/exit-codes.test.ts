// The exit-code table of cli/exit-codes.ts is the one definition (SPEC.md §6): `--help` is generated from it, and
// README's list and SPEC.md's table must give every code, no other, with the table's meaning and error codes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, EXIT_CODE_BY_ERROR, EXIT_CODE_TABLE, exitCodesHelp, type ExitName } from '../../cli/exit-codes.js';
import { REPO_ROOT } from '../support/paths.js';

const names = Object.keys(EXIT_CODE_TABLE) as ExitName[];
const codes = names.map((name) => EXIT_CODE_TABLE[name].code);

t.test('the table lists each code once, in order, and EXIT is its codes', async (t) => {
  t.same([...codes].sort((a, b) => a - b), codes, 'in the order of the codes');
  t.equal(new Set(codes).size, codes.length, 'no code twice');
  for (const name of names) t.equal(EXIT[name], EXIT_CODE_TABLE[name].code, name);
  for (const exitCode of Object.values(EXIT_CODE_BY_ERROR)) t.ok((codes as readonly number[]).includes(exitCode), `error exit ${exitCode} is in the table`);
});

t.test('the help line is generated from the table', async (t) => {
  for (const name of names) t.ok(exitCodesHelp().includes(` ${EXIT_CODE_TABLE[name].code} ${EXIT_CODE_TABLE[name].meaning}`), `lists ${name}`);
  t.match(exitCodesHelp(), /^Exit codes: 0 success, 1 failure, 2 usage or bad input, 3 no such task or client, .* 17 verify command failed \(nothing changed\)\.$/);
  t.equal(exitCodesHelp({ OK: 'deleted', NOT_FOUND: null }), 'Exit codes: 0 deleted, 3 no such task or client.', 'a command\'s own words, else the table\'s');
  t.equal(exitCodesHelp({ TASK_INCOMPLETE: 'ended', OK: null }), 'Exit codes: 6 ended, 0 success.', 'in the order given');
});

t.test('SPEC.md §6 has a row per exit code with its meaning and exactly its error codes', async (t) => {
  const spec = readFileSync(join(REPO_ROOT, 'SPEC.md'), 'utf8');
  const section = spec.slice(spec.indexOf('**Exit codes.**'), spec.indexOf('| code | meaning |'));
  const rows = [...section.matchAll(/^\| (\d+) \| ([^|]*?) \|\s*([^|]*?)\s*\|$/gm)];
  t.same(rows.map((row) => Number(row[1])), codes, 'the exit codes of the table, in order');
  for (const [, code, meaning, errorCell] of rows) {
    const name = names.find((candidate) => EXIT_CODE_TABLE[candidate].code === Number(code))!;
    t.ok(meaning!.startsWith(EXIT_CODE_TABLE[name].meaning), `${code}: "${meaning}" starts with "${EXIT_CODE_TABLE[name].meaning}"`);
    const listed = [...errorCell!.matchAll(/`([A-Z_]+)`/g)].map((match) => match[1]!).sort();
    const mapped = Object.entries(EXIT_CODE_BY_ERROR).filter(([, exitCode]) => exitCode === Number(code)).map(([errorCode]) => errorCode).sort();
    t.same(listed, mapped, `${code}: the error codes that exit with it`);
  }
});

t.test('README lists every exit code with the table\'s meaning', async (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('Exit codes (`--help` lists them too');
  t.ok(start >= 0, 'README has the list');
  const paragraph = readme.slice(start, readme.indexOf('\n\n', start)).replace(/\s+/g, ' ');
  const entries = paragraph.slice(paragraph.indexOf('): ') + 3).split('; ').map((entry) => /^(\d+) (.*)$/.exec(entry));
  t.ok(entries.every((entry) => entry !== null), 'each entry is a code and its meaning');
  t.same(entries.map((entry) => Number(entry![1])), codes, 'the exit codes of the table, in order');
  for (const entry of entries) {
    const name = names.find((candidate) => EXIT_CODE_TABLE[candidate].code === Number(entry![1]))!;
    t.ok(entry![2]!.startsWith(EXIT_CODE_TABLE[name].meaning), `${entry![1]}: "${entry![2]}" starts with "${EXIT_CODE_TABLE[name].meaning}"`);
  }
});

// `--help` of every command, from the built CLI, as snapshots: a change to options or wording shows up in review.
// Regenerate on purpose with: TAP_SNAPSHOT=1 npx tap test/api/help.test.ts
import t from 'tap';
import { spawn } from 'node:child_process';
import { EXIT } from '../../cli/exit-codes.js';
import { CLI_BIN } from '../support/paths.js';
import { childEnv } from './support.js';

const COMMANDS: readonly string[][] = [
  [],
  ['serve'],
  ['task'],
  ['task', 'create'],
  ['task', 'list'],
  ['task', 'show'],
  ['task', 'watch'],
  ['task', 'cancel'],
  ['task', 'revoke'],
  ['pull'],
  ['token', 'inspect'],
  ['channel'],
  ['channel', 'listen'],
  ['channel', 'connect'],
  ['demo'],
];

function help(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args, '--help'], { env: childEnv({ COLUMNS: '100' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// Two at a time (one per core of a small machine); the snapshots are compared in a fixed order below.
const outputs = new Map<string, Awaited<ReturnType<typeof help>>>();
const queue = [...COMMANDS];
await Promise.all([0, 1].map(async () => {
  for (let args = queue.shift(); args !== undefined; args = queue.shift()) outputs.set(args.join(' '), await help(args));
}));

for (const args of COMMANDS) {
  const name = `noise-cfg ${[...args, '--help'].join(' ')}`;
  t.test(name, async (t) => {
    const result = outputs.get(args.join(' '))!;
    t.equal(result.code, 0, 'exits 0');
    t.equal(result.stderr, '', 'nothing on stderr');
    t.match(result.stdout, new RegExp(`^noise-cfg${args.map((word) => ` ${word}`).join('')}`), 'usage first');
    t.ok(result.stdout.split('\n').every((line) => line.length <= 100), 'wrapped at 100 columns');
    t.matchSnapshot(result.stdout, name);
  });
}

t.test('the top-level help lists the exit codes', async (t) => {
  const top = outputs.get('')!.stdout;
  t.match(top, /^Exit codes: 0 success, 1 failure, 2 usage or bad input,/m, 'an exit codes line');
  const flat = top.replace(/\s+/g, ' ');
  const epilogue = flat.slice(flat.indexOf('Exit codes:'));
  // Every exit code the CLI can end with (cli/exit-codes.ts, SPEC.md §6) is explained there.
  for (const [meaning, code] of Object.entries(EXIT)) {
    t.match(epilogue, new RegExp(`[:,] ${code} [a-z]`), `exit code ${code} (${meaning})`);
  }
  for (const command of ['serve', 'task', 'pull', 'token', 'channel', 'demo', 'completion']) t.match(top, new RegExp(`^  noise-cfg ${command}\\b`, 'm'), `lists ${command}`);
});

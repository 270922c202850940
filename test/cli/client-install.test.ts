// A client machine installs noise-cfg without the server's packages (issue 12 item 15): better-sqlite3 (native,
// built with a compiler) and fastify are optional dependencies, loaded only by the commands that serve. Here an
// install tree without them pulls, inspects tokens and prints its version; serve there fails with the fix.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';
import { openAdmin, startServer } from '../task/support.js';

const SERVER_ONLY_PACKAGES = new Set(['better-sqlite3', 'fastify', 'pg']);

function run(bin: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A command that hangs fails its assertion instead of the whole file's timeout.
    const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
  });
}

// The built package as npm would lay it out on a client where the optional packages did not install: its own
// dist and package.json, and node_modules with every package but the server-only ones.
function clientInstall(root: string): string {
  const packageRoot = join(root, 'noise-cfg');
  mkdirSync(join(packageRoot, 'node_modules'), { recursive: true });
  cpSync(join(REPO_ROOT, 'dist'), join(packageRoot, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'package.json'), join(packageRoot, 'package.json'));
  for (const name of readdirSync(join(REPO_ROOT, 'node_modules'))) {
    if (SERVER_ONLY_PACKAGES.has(name) || name.startsWith('.')) continue;
    symlinkSync(join(REPO_ROOT, 'node_modules', name), join(packageRoot, 'node_modules', name));
  }
  return join(packageRoot, 'dist', 'cli', 'bin.js');
}

t.test('without better-sqlite3 and fastify a client pulls, and serve says what is missing', async (t) => {
  // Outside the checkout: under it, Node's module lookup would climb to the repository's own node_modules and find
  // the very packages this install lacks.
  const root = mkdtempSync(join(tmpdir(), 'noise-cfg-client-install-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const bin = clientInstall(root);
  for (const name of SERVER_ONLY_PACKAGES) t.throws(() => createRequire(bin).resolve(name), `${name} is not reachable from the client install`);
  const packageJson = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; optionalDependencies: Record<string, string> };
  t.same(Object.keys(packageJson.optionalDependencies).sort(), [...SERVER_ONLY_PACKAGES].sort(), 'the server-only packages are optional');
  t.notOk(Object.keys(packageJson.dependencies).some((name) => SERVER_ONLY_PACKAGES.has(name)), 'and not required');

  const data = join(root, 'data');
  const running = await startServer(t, data);
  const admin = await openAdmin(t, data);
  const created = await admin.createTask({ files: [{ path: 'app.conf', content: Buffer.from('port = 1\n') }], advertise: { host: '127.0.0.1', port: running.port } });
  const env = { NOISE_CFG_TOKEN: created.token, XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root };

  const version = await run(bin, ['--version'], env, root);
  t.equal(version.code, 0, '--version');
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const inspected = await run(bin, ['token', 'inspect', '--json'], env, root);
  t.equal(inspected.code, 0, 'token inspect');
  const pulled = await run(bin, ['pull', '--out', join(root, 'out'), '--json'], env, root);
  t.equal(pulled.code, 0, `pull: ${pulled.stderr}`);
  t.equal((JSON.parse(pulled.stdout) as { status: string }).status, 'applied');
  t.equal(readFileSync(join(root, 'out', 'app.conf'), 'utf8'), 'port = 1\n', 'the files are applied');

  const served = await run(bin, ['serve', '--data', join(root, 'client-data'), '--listen', '127.0.0.1:0', '--api', 'off'], env, root);
  t.equal(served.code, 5, 'serve: exit 5');
  t.match(served.stderr, /needs the optional package better-sqlite3.*\(STORE_UNAVAILABLE\)/, 'names the missing package and the fix');
  t.notMatch(served.stderr, /\n\s+at /, 'no stack');
  const listed = await run(bin, ['task', 'list', '--data', data], env, root);
  t.equal(listed.code, 5, 'task list on a server data directory from the client install: exit 5, not a crash');
});

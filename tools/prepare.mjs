// npm's `prepare`: compiles the TypeScript into dist/. Plain JavaScript, because it must run before anything is
// compiled or installed: `npm install -g .` in a fresh clone runs `prepare` in the clone without installing the
// clone's own dependencies first (neither as a link nor with --install-links), so the compiler is not there yet.
// In that one case this installs the clone's dependencies (which runs `prepare` again, now with the compiler) and
// stops; otherwise it just runs tsc.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const packageRoot = new URL('..', import.meta.url);

function run(command, args, env = process.env) {
  const outcome = spawnSync(command, args, { cwd: packageRoot, stdio: 'inherit', env });
  if (outcome.error) {
    process.stderr.write(`noise-cfg prepare: cannot run ${command}: ${outcome.error.message}\n`);
    process.exit(1);
  }
  if (outcome.status !== 0) process.exit(outcome.status ?? 1);
}

function compilerPath() {
  try {
    return require.resolve('typescript/bin/tsc');
  } catch {
    return null;
  }
}

const tsc = compilerPath();
if (tsc !== null) {
  run(process.execPath, [tsc, '-p', '.']);
} else if (process.env.NOISE_CFG_PREPARE_INSTALLING === '1') {
  process.stderr.write('noise-cfg prepare: the TypeScript compiler is still missing after installing the dependencies\n');
  process.exit(1);
} else {
  process.stderr.write('noise-cfg prepare: installing this checkout\'s dependencies to build it\n');
  // The outer `npm install -g` passes its settings down as npm_config_*; the ones that say where and what to install
  // would make this a second global install.
  const env = { ...process.env, NOISE_CFG_PREPARE_INSTALLING: '1' };
  for (const name of Object.keys(env)) {
    if (/^npm_config_(global|location|prefix|install_links|omit|include|production|only)$/i.test(name)) delete env[name];
  }
  // npm_execpath is the npm that runs this script; `npm ci` keeps the lock file's versions.
  const npm = process.env.npm_execpath;
  const args = ['ci', '--include=dev', '--no-audit', '--no-fund'];
  if (npm) run(process.execPath, [npm, ...args], env);
  else run('npm', args, env);
}

// `noise-cfg completion [bash|zsh]` (issue 12 item 16): the shell is an argument, --help is help, and the bash script
// really completes, run in a real bash against the built CLI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';
import { runCli } from '../task/support.js';

t.test('completion zsh is the zsh script; the default follows $SHELL; --help is help; an unknown shell is exit 2', async (t) => {
  const zsh = await runCli(t, ['completion', 'zsh']);
  t.equal(zsh.code, 0);
  t.match(zsh.stdout, /^#compdef noise-cfg\n/, 'a zsh completion function');
  t.match(zsh.stdout, /compdef _noise_cfg_complete noise-cfg\n$/);
  t.equal(zsh.stderr, '', 'no "Did you mean" after it');
  const byShell = await runCli(t, ['completion'], { env: { SHELL: '/usr/bin/zsh' } });
  t.equal(byShell.stdout, zsh.stdout, 'SHELL=zsh picks zsh');
  const bash = await runCli(t, ['completion'], { env: { SHELL: '/bin/bash' } });
  t.match(bash.stdout, /complete -o bashdefault -o default -F _noise_cfg_complete noise-cfg\n$/, 'otherwise bash');

  const help = await runCli(t, ['completion', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^noise-cfg completion \[shell\]/, 'help, not a script');
  t.notMatch(help.stdout, /_noise_cfg_complete/);

  const fish = await runCli(t, ['completion', 'fish']);
  t.equal(fish.code, 2, 'exit 2');
  t.match(fish.stderr, /^noise-cfg: Invalid values: Argument: shell, Given: "fish", Choices: "bash", "zsh"\n/, 'one line naming the choices');
});

t.test('the bash script completes commands and options through the CLI, also for a zsh user', async (t) => {
  const root = t.testdir();
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'noise-cfg'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'dist', 'cli', 'bin.js')}" "$@"\n`);
  chmodSync(join(bin, 'noise-cfg'), 0o755);
  const script = (await runCli(t, ['completion', 'bash'])).stdout;
  writeFileSync(join(root, 'completion.bash'), script);

  const complete = (words: string[], env: NodeJS.ProcessEnv = {}): string[] => {
    const line = `source ${JSON.stringify(join(root, 'completion.bash'))}; COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _noise_cfg_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const outcome = spawnSync('bash', ['-c', line], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env }, encoding: 'utf8' });
    t.equal(outcome.status, 0, outcome.stderr);
    return outcome.stdout.split('\n').filter((word) => word !== '');
  };
  t.same(complete(['noise-cfg', 'ta']), ['task'], 'a command');
  t.same(complete(['noise-cfg', 'task', 'c']).sort(), ['cancel', 'create'], 'a subcommand');
  t.ok(complete(['noise-cfg', 'pull', '--ou']).includes('--out'), 'an option');
  t.same(complete(['noise-cfg', 'ta'], { SHELL: '/usr/bin/zsh', ZSH_NAME: 'zsh' }), ['task'], 'a zsh environment does not change the bash answer');
});

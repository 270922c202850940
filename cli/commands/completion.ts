/**
 * `noise-cfg completion [bash|zsh]`: prints a shell completion script. The scripts are ours, so that the shell is an
 * argument (yargs' own `completion` command takes none and guesses from $SHELL) and `--help` is help; the words
 * themselves still come from yargs, through the `--get-yargs-completions` flag that `.completion()` enables.
 */
import { basename } from 'node:path';
import type { Argv } from 'yargs';
import type { ArgumentsOf } from '../arguments-of.js';

/** The shells a script can be printed for. */
export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
type CompletionShell = (typeof COMPLETION_SHELLS)[number];

// yargs answers in its zsh format ("word:description") when SHELL or ZSH_NAME mentions zsh; the bash script sets both
// so that a zsh user's environment cannot change the answer under bash.
const BASH_SCRIPT = `# noise-cfg completion for bash. Install: noise-cfg completion bash >> ~/.bashrc
_noise_cfg_complete() {
  local IFS=$'\\n'
  local words
  words=$(SHELL=bash ZSH_NAME= noise-cfg --get-yargs-completions "\${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)
  COMPREPLY=( $(compgen -W "$words" -- "\${COMP_WORDS[COMP_CWORD]}") )
}
complete -o bashdefault -o default -F _noise_cfg_complete noise-cfg
`;

const ZSH_SCRIPT = `#compdef noise-cfg
# noise-cfg completion for zsh. Install: noise-cfg completion zsh >> ~/.zshrc (after compinit)
_noise_cfg_complete() {
  local -a described
  described=("\${(@f)$(SHELL=zsh noise-cfg --get-yargs-completions "\${(@)words[1,CURRENT]}" 2>/dev/null)}")
  if [[ -n "\${described[1]}" ]]; then _describe 'noise-cfg' described; else _files; fi
}
compdef _noise_cfg_complete noise-cfg
`;

/** The completion script for a shell. */
export function completionScript(shell: CompletionShell): string {
  return shell === 'zsh' ? ZSH_SCRIPT : BASH_SCRIPT;
}

export const command = 'completion [shell]';
export const describe = 'Print a shell completion script (bash or zsh)';

export function builder(yargs: Argv) {
  return yargs
    .positional('shell', { type: 'string', choices: COMPLETION_SHELLS, describe: 'The shell (default: zsh when $SHELL is zsh, else bash)' })
    .epilogue('Examples: noise-cfg completion bash >> ~/.bashrc; noise-cfg completion zsh >> ~/.zshrc');
}

export function handler(argv: ArgumentsOf<typeof builder>): void {
  const shell = argv.shell ?? (basename(process.env.SHELL ?? '') === 'zsh' ? 'zsh' : 'bash');
  process.stdout.write(completionScript(shell));
}

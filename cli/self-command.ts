/** How this CLI was started, so printed commands work as pasted: `noise-cfg` when installed, else node and the path. */
import { basename } from 'node:path';

export function selfCommand(): string {
  const script = process.argv[1] ?? 'noise-cfg';
  return basename(script) === 'noise-cfg' ? 'noise-cfg' : `node ${script}`;
}

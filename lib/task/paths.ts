/**
 * Task file paths (SPEC.md §4.2): relative, `/`-separated, no `.` or `..` segments, no empty segments, no
 * backslash, NUL or control characters, at most 1024 bytes. Checked when a task is created and again before
 * a client writes anything. Pure.
 */
import { NoiseCfgError } from '../errors.js';

/** The longest task file path, in bytes. */
export const MAX_PATH_BYTES = 1024;

/** Returns `path` if it is a safe relative task path; throws PATH_UNSAFE saying why. */
export function checkTaskPath(path: string): string {
  const fail = (why: string): never => {
    throw new NoiseCfgError('PATH_UNSAFE', `file path ${JSON.stringify(path)} ${why}`);
  };
  if (typeof path !== 'string' || path === '') fail('is empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) fail(`is longer than ${MAX_PATH_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\\]/.test(path)) fail('has a backslash or control character');
  if (path.startsWith('/')) fail('is absolute');
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '') fail('has an empty segment');
    if (segment === '..') fail('climbs out of the output directory with ..');
    if (segment === '.') fail('has a "." segment');
  }
  // Names we use beside the output directory's versions.
  if (segments[0]!.startsWith('.noise-cfg')) fail('uses a name reserved for noise-cfg');
  return path;
}

/** Throws PATH_UNSAFE when one path is also a directory of another (`a` and `a/b`), or a path repeats. */
export function checkPathSet(paths: readonly string[]): void {
  const files = new Set<string>();
  for (const path of paths) {
    checkTaskPath(path);
    if (files.has(path)) throw new NoiseCfgError('PATH_UNSAFE', `file path ${JSON.stringify(path)} appears twice`);
    files.add(path);
  }
  for (const path of paths) {
    const segments = path.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const directory = segments.slice(0, depth).join('/');
      if (files.has(directory)) throw new NoiseCfgError('PATH_UNSAFE', `${JSON.stringify(directory)} is both a file and a directory`);
    }
  }
}

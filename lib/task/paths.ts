/**
 * Task file paths (SPEC.md §4.2): relative, `/`-separated, no `.` or `..` segments, no empty segments, no
 * backslash, no control, format (bidi override, zero-width) or separator character, at most 1024 bytes.
 * Checked when a task is created and again before a client writes anything. Pure.
 */
import { NoiseCfgError } from '../errors.js';
import { escapeUnprintable, hasUnprintableCharacters } from './printable.js';

/** The longest task file path, in bytes. */
export const MAX_PATH_BYTES = 1024;

/** A path quoted for a message: JSON escapes, and every character a terminal would act on written as `\u{hex}`. */
function quote(path: string): string {
  return escapeUnprintable(JSON.stringify(path));
}

/** Returns `path` if it is a safe relative task path; throws PATH_UNSAFE saying why. */
export function checkTaskPath(path: string): string {
  const fail = (why: string): never => {
    throw new NoiseCfgError('PATH_UNSAFE', `file path ${quote(path)} ${why}`);
  };
  if (typeof path !== 'string' || path === '') fail('is empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) fail(`is longer than ${MAX_PATH_BYTES} bytes`);
  if (hasUnprintableCharacters(path)) {
    // Controls, bidi overrides, zero-width characters: a name that reads differently from what it is.
    const character = [...path].find((candidate) => hasUnprintableCharacters(candidate))!;
    fail(`has the control or invisible character ${escapeUnprintable(character)}; rename the file`);
  }
  if (path.includes('\\')) fail('has a backslash');
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
    if (files.has(path)) throw new NoiseCfgError('PATH_UNSAFE', `file path ${quote(path)} appears twice`);
    files.add(path);
  }
  for (const path of paths) {
    const segments = path.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const directory = segments.slice(0, depth).join('/');
      if (files.has(directory)) throw new NoiseCfgError('PATH_UNSAFE', `${quote(directory)} is both a file and a directory`);
    }
  }
}

/**
 * Reads the files of a new task from disk (CONTRACT.md `task create --file`): a plain file lands under its base
 * name, a directory contributes its regular files with their relative paths. Symlinks are not followed. Paths are
 * checked with paths.ts; limits keep one task within what a client is willing to take.
 */
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { NoiseCfgError } from '../errors.js';
import { fileDigest, type FileEntry } from './digests.js';
import { checkPathSet, checkTaskPath } from './paths.js';
import type { NewTaskFile } from './store.js';

/** Files per task, at most. */
export const MAX_TASK_FILES = 10_000;
/** Bytes per task, at most (all files together). */
export const MAX_TASK_BYTES = 256 * 1024 * 1024;

/** A file given by path and content (the REST API and the library use this form). */
export interface TaskFileInput {
  path: string;
  content: Uint8Array;
  /** Permission bits; default 0o644. */
  mode?: number;
}

/** Checks and digests files given by content. Throws INVALID_ARGUMENT (no file), PATH_UNSAFE or FILE_UNREADABLE (limits). */
export function prepareTaskFiles(inputs: readonly TaskFileInput[]): NewTaskFile[] {
  // No file at all is a wrong call, not a file that cannot be read: INVALID_ARGUMENT, as the REST API's schema says.
  if (!Array.isArray(inputs) || inputs.length === 0) throw new NoiseCfgError('INVALID_ARGUMENT', 'a task needs at least one file');
  if (inputs.length > MAX_TASK_FILES) throw new NoiseCfgError('FILE_UNREADABLE', `a task holds at most ${MAX_TASK_FILES} files, got ${inputs.length}`);
  checkPathSet(inputs.map((input) => input.path));
  let total = 0;
  const files = inputs.map((input): NewTaskFile => {
    const content = Buffer.from(input.content);
    total += content.byteLength;
    const mode = input.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new NoiseCfgError('INVALID_ARGUMENT', `mode of ${input.path} must be permission bits 0 to 0777`);
    const entry: FileEntry = { path: input.path, mode, size: content.byteLength, digest: fileDigest(content) };
    return { ...entry, content };
  });
  if (total > MAX_TASK_BYTES) throw new NoiseCfgError('FILE_UNREADABLE', `a task holds at most ${MAX_TASK_BYTES} bytes, got ${total}`);
  return files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

function walk(root: string, directory: string, found: TaskFileInput[]): void {
  for (const name of readdirSync(directory).sort()) {
    const full = join(directory, name);
    const stats = lstatSync(full);
    if (stats.isSymbolicLink()) throw new NoiseCfgError('PATH_UNSAFE', `${full} is a symbolic link; task files must be regular files`);
    if (stats.isDirectory()) walk(root, full, found);
    else if (stats.isFile()) found.push({ path: checkTaskPath(relative(root, full).split(sep).join('/')), content: readFileSync(full), mode: stats.mode & 0o777 });
    else throw new NoiseCfgError('FILE_UNREADABLE', `${full} is not a regular file`);
  }
}

/** Reads `--file` arguments from disk. Throws FILE_UNREADABLE naming the path, or PATH_UNSAFE. */
export function readTaskFiles(paths: readonly string[]): TaskFileInput[] {
  const found: TaskFileInput[] = [];
  for (const path of paths) {
    let stats;
    try {
      stats = statSync(path);
    } catch (error) {
      throw new NoiseCfgError('FILE_UNREADABLE', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    try {
      if (stats.isDirectory()) walk(path, path, found);
      else if (stats.isFile()) found.push({ path: checkTaskPath(basename(path)), content: readFileSync(path), mode: stats.mode & 0o777 });
      else throw new NoiseCfgError('FILE_UNREADABLE', `${path} is neither a file nor a directory`);
    } catch (error) {
      if (error instanceof NoiseCfgError) throw error;
      throw new NoiseCfgError('FILE_UNREADABLE', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  return found;
}

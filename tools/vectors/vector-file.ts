/** Reads a vector file and checks every vector in it with check-vector.ts. */
import { readFileSync } from 'node:fs';
import { checkVector, type Vector, type VectorOutcome } from './check-vector.js';

/** Counts for one file, with the failures in full and the skip reasons tallied. */
export interface FileReport {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  failures: VectorOutcome[];
  skipReasons: Map<string, number>;
}

/** Raised for a file that is not a vector file (not JSON, or no `vectors` array). */
export class NotAVectorFileError extends Error {}

/** Reads a vector file and checks every vector in it. Throws NotAVectorFileError, or the read error. */
export function runVectorFile(file: string): FileReport {
  const text = readFileSync(file, 'utf8');
  let parsed: { vectors?: unknown };
  try {
    parsed = JSON.parse(text) as { vectors?: unknown };
  } catch {
    throw new NotAVectorFileError('not JSON');
  }
  if (!parsed || !Array.isArray(parsed.vectors)) throw new NotAVectorFileError('no "vectors" array');
  const report: FileReport = { file, passed: 0, failed: 0, skipped: 0, failures: [], skipReasons: new Map() };
  for (const vector of parsed.vectors as Vector[]) {
    const outcome = checkVector(vector);
    report[outcome.status] += 1;
    if (outcome.status === 'failed') report.failures.push(outcome);
    if (outcome.status === 'skipped') report.skipReasons.set(outcome.reason, (report.skipReasons.get(outcome.reason) ?? 0) + 1);
  }
  return report;
}

/**
 * `npm run vectors -- FILE...`: runs every vector of the given files that the core supports, prints one line per
 * file and ends with `N passed, M failed, K skipped (count reason; …, the most skipped first)`. Files that are not vector files (a README beside them) are
 * named on stderr and passed over. Exits 1 on any failed vector, 2 on a file that cannot be read.
 */
import { basename } from 'node:path';
import { NotAVectorFileError, runVectorFile, type FileReport } from './vector-file.js';

function main(files: string[]): number {
  const args = files.filter((file) => file !== '--verbose');
  const isVerbose = args.length !== files.length;
  if (args.length === 0) {
    process.stderr.write('usage: npm run vectors -- [--verbose] FILE...\n');
    return 2;
  }
  let totals = { passed: 0, failed: 0, skipped: 0 };
  const skipReasons = new Map<string, number>();
  for (const file of args) {
    let report: FileReport;
    try {
      report = runVectorFile(file);
    } catch (error) {
      if (error instanceof NotAVectorFileError) {
        process.stderr.write(`${basename(file)}: not a vector file (${error.message}), passed over\n`);
        continue;
      }
      process.stderr.write(`error: ${file}: ${(error as Error).message}\n`);
      return 2;
    }
    totals = { passed: totals.passed + report.passed, failed: totals.failed + report.failed, skipped: totals.skipped + report.skipped };
    process.stdout.write(`${basename(file)}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`);
    for (const failure of report.failures) {
      process.stdout.write(`  FAIL ${failure.protocolName}: ${failure.status === 'failed' ? failure.reason : ''}\n`);
    }
    for (const [reason, count] of report.skipReasons) {
      skipReasons.set(reason, (skipReasons.get(reason) ?? 0) + count);
      if (isVerbose) process.stdout.write(`  skip ${count}× ${reason}\n`);
    }
  }
  const reasons = [...skipReasons].sort(([reasonA, countA], [reasonB, countB]) => countB - countA || reasonA.localeCompare(reasonB)).map(([reason, count]) => `${count} ${reason}`).join('; ');
  process.stdout.write(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped${reasons === '' ? '' : ` (${reasons})`}\n`);
  return totals.failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));

/**
 * `npm run profile -- pull|xxpsk3|nnpsk0 [SECONDS]`: runs the bench's server in its own process under the V8 CPU
 * profiler (`--cpu-prof`) while the bench's clients load it (64 KiB XXpsk3 pulls at c=100, or handshakes at c=50),
 * then prints where the server's busy time went, by category (tools/profile/breakdown.ts), as a Markdown table.
 * The profile stays in the printed directory for Chrome DevTools or `--cpu-prof`-aware viewers.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pullRun } from '../../bench/pulls.js';
import { BenchServer, handshakeRun } from '../../bench/tcp.js';
import { breakdownOf, formatBreakdown, readProfiles } from './breakdown.js';

const WORKLOADS = ['pull', 'xxpsk3', 'nnpsk0'] as const;
type Workload = (typeof WORKLOADS)[number];

async function main(argv: string[]): Promise<number> {
  const workload = argv[0] as Workload;
  const seconds = Number(argv[1] ?? 10);
  if (!WORKLOADS.includes(workload) || !Number.isFinite(seconds) || seconds <= 0) {
    process.stderr.write(`usage: npm run profile -- ${WORKLOADS.join('|')} [SECONDS]\n`);
    return 2;
  }
  const profileDir = mkdtempSync(join(tmpdir(), 'noise-cfg-profile-'));
  process.env['NOISE_CFG_BENCH_CPU_PROF_DIR'] = profileDir;
  let summary: string;
  if (workload === 'pull') {
    // About 300 pulls a second here: the count is sized to the asked duration.
    const pulls = Math.max(100, Math.round(seconds * 300));
    const figures = await pullRun(pulls, 100, 64 * 1024);
    summary = `${pulls} pulls of 64 KiB at c=100: ${figures.pullsPerSecond.toFixed(1)}/s, server ${figures.serverMicrosPerPull.toFixed(1)} µs of CPU per pull`;
  } else {
    const kind = workload === 'xxpsk3' ? 'noise-xxpsk3' : 'noise-nnpsk0';
    const server = await BenchServer.start(kind, 'handshake');
    const result = await handshakeRun(server, kind, 50, seconds * 1000);
    await server.stop();
    summary = `${workload} handshakes at c=50 for ${seconds} s: ${result.perSecond.toFixed(0)}/s, server ${result.serverMicrosPerHandshake.toFixed(1)} µs per handshake`;
  }
  const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile')).map((name) => join(profileDir, name));
  if (files.length === 0) {
    process.stderr.write(`no profile was written to ${profileDir}\n`);
    return 1;
  }
  const breakdown = breakdownOf(readProfiles(files));
  process.stdout.write(`${summary}\nserver busy ${breakdown.busyMs.toFixed(0)} ms; profile in ${profileDir}\n\n${formatBreakdown(breakdown)}\n\n`);
  process.stdout.write(`largest uncategorised frames:\n${breakdown.topOther.map(({ frame, ms }) => `  ${ms.toFixed(1)} ms  ${frame}`).join('\n')}\n`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));

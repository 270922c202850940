/**
 * `npm run bench [-- --quick]`: the benchmark suite of issue 6. Every figure is the median of at least 5 runs with
 * its min–max; every comparison is a ratio of paired runs measured in the same run, interleaved. Prints a table
 * and writes bench/results.json.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { measurePrimitives, measureCipherCrossover, ceilingNow } from './primitives.js';
import { ceilingShareAtFloor, floorSeconds, PRODUCT_RESPONDER_OPERATIONS, timeOperations } from './floors.js';
import { handshakeRates, pairedHandshakeRates } from './handshakes.js';
import { clusterComparison, measureWakeCost } from './cluster-tax.js';
import { clientWorkRoot, pullFigures, pullPoolComparison, pullPostgresComparison } from './pulls.js';
import { postgresUnavailableReason, startPostgresCluster } from '../tools/postgres-cluster.js';
import { figure, formatFigure } from './stats.js';
import { BenchServer, bulkRun, handshakeRun, idleMemoryRun } from './tcp.js';
import type { ServerKind } from './fixtures.js';

const isQuick = process.argv.includes('--quick');
const RUNS = 5;
const settings = isQuick
  ? { primitiveMs: 60, handshakes: 300, ceilingMs: 40, tcpMs: 300, bulkBytes: 16 * 1024 * 1024, idleConnections: 300, pulls: 200, pullConcurrency: 50, bigPulls: 20, pullRuns: 1, wakeMs: 100 }
  : { primitiveMs: 300, handshakes: 2000, ceilingMs: 200, tcpMs: 2000, bulkBytes: 256 * 1024 * 1024, idleConnections: 2000, pulls: 5000, pullConcurrency: 100, bigPulls: 200, pullRuns: RUNS, wakeMs: 500 };

const rows: [string, string, string][] = [];
const results: Record<string, unknown> = { date: new Date().toISOString(), quick: isQuick, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version };

function row(measure: string, value: string, note = ''): void {
  rows.push([measure, value, note]);
  process.stderr.write(`  ${measure}: ${value}${note ? `  ${note}` : ''}\n`);
}

async function main(): Promise<void> {
  process.stderr.write(`noise-cfg bench${isQuick ? ' --quick' : ''}: ${results['cpu']} × ${results['cores']}, node ${process.version}\n`);

  // 1. The limit.
  const primitives = measurePrimitives(RUNS, settings.primitiveMs);
  results['primitives'] = primitives;
  row('X25519 DH/s', formatFigure(primitives.dhPerSecond));
  row('X25519 keypairs/s', formatFigure(primitives.keypairPerSecond));
  row('ChaCha20-Poly1305 MB/s, 65518 B (a full record)', formatFigure(primitives.chachaMBps64k));
  row('ChaCha20-Poly1305 MB/s, 1 KiB', formatFigure(primitives.chachaMBps1k));
  const crossover = measureCipherCrossover(RUNS, Math.max(20, settings.primitiveMs / 3));
  results['cipherCrossover'] = crossover;
  row('ChaCha20-Poly1305 seal MB/s, libsodium / OpenSSL', crossover.bySize.map(({ bytes, libsodiumMBps, opensslMBps }) => `${bytes} B ${libsodiumMBps.toFixed(0)}/${opensslMBps.toFixed(0)}`).join(', '));
  row('ChaCha20-Poly1305 crossover (OpenSSL faster from)', `${crossover.measuredCrossoverBytes === null ? 'never' : `${crossover.measuredCrossoverBytes} B`} in isolation; the core uses libsodium at every size (SPEC §1.3: in the server OpenSSL cost more per pull)`);
  row('BLAKE2b MB/s, 64 KiB', formatFigure(primitives.blake2bMBps));
  row('ceiling per side, XXpsk3 (keypair + 3 DH)/s', formatFigure(primitives.xxpsk3CeilingPerSecond));
  row('ceiling per side, NNpsk0 (keypair + 1 DH)/s', formatFigure(primitives.nnpsk0CeilingPerSecond));
  // The floor: the ceiling plus the HKDFs, MixHashes and AEAD calls the spec asks of a side (bench/floors.ts).
  const floorShares = { xxpsk3: [] as number[], nnpsk0: [] as number[] };
  const floorMicros = { xxpsk3: [] as number[], nnpsk0: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    const seconds = timeOperations(settings.primitiveMs / 3);
    for (const protocol of ['xxpsk3', 'nnpsk0'] as const) {
      const operations = PRODUCT_RESPONDER_OPERATIONS[protocol];
      floorMicros[protocol].push(floorSeconds(operations, seconds) * 1e6);
      floorShares[protocol].push(ceilingShareAtFloor(operations, seconds));
    }
  }
  results['floors'] = { xxpsk3: { micros: figure(floorMicros.xxpsk3), shareOfCeiling: figure(floorShares.xxpsk3) }, nnpsk0: { micros: figure(floorMicros.nnpsk0), shareOfCeiling: figure(floorShares.nnpsk0) } };
  for (const protocol of ['xxpsk3', 'nnpsk0'] as const) {
    const { hkdf2, hkdf3, mixHash, aead } = PRODUCT_RESPONDER_OPERATIONS[protocol];
    row(`floor per side, ${protocol === 'xxpsk3' ? 'XXpsk3' : 'NNpsk0'} (ceiling + ${hkdf2 + hkdf3} HKDF, ${mixHash} MixHash, ${aead} AEAD)`, formatFigure(figure(floorMicros[protocol]), ' µs'), `share of ceiling at the floor ${formatFigure(figure(floorShares[protocol]))}: no handshake code reaches more with these primitive calls`);
  }

  // 2. In-process handshakes, each paired with a fresh ceiling measurement.
  for (const protocol of ['xxpsk3', 'nnpsk0'] as const) {
    const responder: number[] = [];
    const initiator: number[] = [];
    const responderShare: number[] = [];
    const initiatorShare: number[] = [];
    // One untimed run first: the figures are of compiled code, not of the JIT's first minutes.
    handshakeRates(protocol, settings.handshakes);
    for (let run = 0; run < RUNS; run++) {
      const { ceiling, ...rates } = pairedHandshakeRates(protocol, settings.handshakes, settings.ceilingMs);
      responder.push(rates.responder);
      initiator.push(rates.initiator);
      responderShare.push(rates.responder / ceiling);
      initiatorShare.push(rates.initiator / ceiling);
    }
    results[`inProcess_${protocol}`] = { responder: figure(responder), initiator: figure(initiator), responderShare: figure(responderShare), initiatorShare: figure(initiatorShare) };
    row(`${protocol} in-process responder handshakes/s`, formatFigure(figure(responder)), `share of ceiling ${formatFigure(figure(responderShare))} (goal ≥ ${protocol === 'xxpsk3' ? '0.80' : '0.70'}; the floor's ${figure(floorShares[protocol]).median.toFixed(2)})`);
    row(`${protocol} in-process initiator handshakes/s`, formatFigure(figure(initiator)), `share of ceiling ${formatFigure(figure(initiatorShare))}`);
  }

  // 3. Over 127.0.0.1, against TLS-PSK and the raw TCP floor (accept, end, close), interleaved.
  const tcpKinds: ServerKind[] = ['noise-xxpsk3', 'noise-nnpsk0', 'tls13', 'tls12', 'raw'];
  const servers = new Map<ServerKind, BenchServer>();
  for (const kind of tcpKinds) servers.set(kind, await BenchServer.start(kind, 'handshake'));
  try {
    for (const concurrency of [1, 50]) {
      const perCore = new Map<ServerKind, number[]>(tcpKinds.map((kind) => [kind, []]));
      const perSecond = new Map<ServerKind, number[]>(tcpKinds.map((kind) => [kind, []]));
      const micros = new Map<ServerKind, number[]>(tcpKinds.map((kind) => [kind, []]));
      const ratios: Record<'xx' | 'nn' | 'tls12', number[]> = { xx: [], nn: [], tls12: [] };
      const ceilingShares: Record<'xx' | 'nn', number[]> = { xx: [], nn: [] };
      // The ratio against TLS a server would reach at the floor: its side's floor plus the raw accept, this round.
      const floorRatios: Record<'xx' | 'nn', number[]> = { xx: [], nn: [] };
      // One untimed round first (servers and client warm up), then RUNS rounds, each kind in turn.
      for (let run = -1; run < RUNS; run++) {
        const round = new Map<ServerKind, { perServerCoreSecond: number; serverMicrosPerHandshake: number }>();
        for (const kind of tcpKinds) {
          const result = await handshakeRun(servers.get(kind)!, kind, concurrency, settings.tcpMs);
          if (run < 0) continue;
          perCore.get(kind)!.push(result.perServerCoreSecond);
          perSecond.get(kind)!.push(result.perSecond);
          micros.get(kind)!.push(result.serverMicrosPerHandshake);
          round.set(kind, result);
        }
        if (run < 0) continue;
        const tls13 = round.get('tls13')!.perServerCoreSecond;
        ratios.xx.push(round.get('noise-xxpsk3')!.perServerCoreSecond / tls13);
        ratios.nn.push(round.get('noise-nnpsk0')!.perServerCoreSecond / tls13);
        ratios.tls12.push(round.get('tls12')!.perServerCoreSecond / tls13);
        // The over-TCP ceiling: one side's key exchange plus the raw accept, both measured in this round.
        const acceptSeconds = round.get('raw')!.serverMicrosPerHandshake / 1e6;
        for (const [key, protocol, kind] of [['xx', 'xxpsk3', 'noise-xxpsk3'], ['nn', 'nnpsk0', 'noise-nnpsk0']] as const) {
          const ceilingPerCoreSecond = 1 / (1 / ceilingNow(protocol, settings.ceilingMs) + acceptSeconds);
          ceilingShares[key].push(round.get(kind)!.perServerCoreSecond / ceilingPerCoreSecond);
        }
        const operationSeconds = timeOperations(settings.ceilingMs / 3);
        for (const [key, protocol] of [['xx', 'xxpsk3'], ['nn', 'nnpsk0']] as const) {
          floorRatios[key].push(1 / (floorSeconds(PRODUCT_RESPONDER_OPERATIONS[protocol], operationSeconds) + acceptSeconds) / tls13);
        }
      }
      const summary = Object.fromEntries(tcpKinds.map((kind) => [kind, { perSecond: figure(perSecond.get(kind)!), perServerCoreSecond: figure(perCore.get(kind)!), serverMicrosPerHandshake: figure(micros.get(kind)!) }]));
      results[`tcpHandshakes_c${concurrency}`] = {
        ...summary,
        ratioXxVsTls13: figure(ratios.xx), ratioNnVsTls13: figure(ratios.nn), ratioTls12VsTls13: figure(ratios.tls12),
        xxShareOfTcpCeiling: figure(ceilingShares.xx), nnShareOfTcpCeiling: figure(ceilingShares.nn),
        xxRatioAtFloor: figure(floorRatios.xx), nnRatioAtFloor: figure(floorRatios.nn),
      };
      for (const kind of tcpKinds) {
        const name = kind === 'raw' ? 'raw TCP (accept floor)' : kind;
        row(`TCP c=${concurrency} ${name} handshakes/s`, formatFigure(figure(perSecond.get(kind)!)), `server ${formatFigure(figure(micros.get(kind)!), ' µs')}/handshake, ${formatFigure(figure(perCore.get(kind)!))} per core-second`);
      }
      row(`TCP c=${concurrency} XXpsk3 vs TLS 1.3-PSK (per server core-second)`, formatFigure(figure(ratios.xx), '×'), `goal ≥ ${concurrency === 1 ? '1.2' : '1.5'}×, at the floor + accept ${formatFigure(figure(floorRatios.xx), '×')}; share of over-TCP ceiling ${formatFigure(figure(ceilingShares.xx))} (goal ≥ 0.8)`);
      row(`TCP c=${concurrency} NNpsk0 vs TLS 1.3-PSK (per server core-second)`, formatFigure(figure(ratios.nn), '×'), `${concurrency === 1 ? '' : 'goal ≥ 2.5×, '}at the floor + accept ${formatFigure(figure(floorRatios.nn), '×')}; share of over-TCP ceiling ${formatFigure(figure(ceilingShares.nn))}`);
      row(`TCP c=${concurrency} TLS 1.2 ECDHE-PSK vs TLS 1.3-PSK`, formatFigure(figure(ratios.tls12), '×'));
    }
  } finally {
    for (const server of servers.values()) await server.stop();
  }

  // 4. Bulk, server to client, one connection.
  const bulkServers = new Map<ServerKind, BenchServer>();
  for (const kind of ['noise-xxpsk3', 'tls13', 'raw'] as ServerKind[]) bulkServers.set(kind, await BenchServer.start(kind, 'bulk', settings.bulkBytes));
  try {
    const noise: number[] = [];
    const tlsValues: number[] = [];
    const raw: number[] = [];
    const ratio: number[] = [];
    const cpuPerByte = { noiseReceiver: [] as number[], noiseSender: [] as number[], tlsReceiver: [] as number[], tlsSender: [] as number[] };
    // One untimed transfer of each first: compiled code, and allocators grown to their working size.
    for (const kind of bulkServers.keys()) await bulkRun(bulkServers.get(kind)!, kind, settings.bulkBytes);
    for (let run = 0; run < RUNS; run++) {
      const noiseRun = await bulkRun(bulkServers.get('noise-xxpsk3')!, 'noise-xxpsk3', settings.bulkBytes);
      const tlsRun = await bulkRun(bulkServers.get('tls13')!, 'tls13', settings.bulkBytes);
      raw.push((await bulkRun(bulkServers.get('raw')!, 'raw', settings.bulkBytes)).mbps);
      noise.push(noiseRun.mbps);
      tlsValues.push(tlsRun.mbps);
      ratio.push(noiseRun.mbps / tlsRun.mbps);
      cpuPerByte.noiseReceiver.push(noiseRun.receiverNsPerByte);
      cpuPerByte.noiseSender.push(noiseRun.senderNsPerByte);
      cpuPerByte.tlsReceiver.push(tlsRun.receiverNsPerByte);
      cpuPerByte.tlsSender.push(tlsRun.senderNsPerByte);
    }
    const cpu = Object.fromEntries(Object.entries(cpuPerByte).map(([name, values]) => [name, figure(values)])) as Record<keyof typeof cpuPerByte, ReturnType<typeof figure>>;
    results['bulk'] = { bytes: settings.bulkBytes, noiseMBps: figure(noise), tls13MBps: figure(tlsValues), rawMBps: figure(raw), ratioVsTls13: figure(ratio), shareOfAead: figure(noise.map((value) => value / primitives.chachaMBps64k.median)), cpuNsPerByte: cpu };
    row(`bulk ${settings.bulkBytes / 1048576} MiB noise-cfg MB/s`, formatFigure(figure(noise)), `vs TLS 1.3-PSK ${formatFigure(figure(ratio), '×')} (goal ≥ 1.2×), ${(figure(noise).median / primitives.chachaMBps64k.median).toFixed(2)} of the AEAD (goal ≥ 0.75)`);
    row(`bulk TLS 1.3-PSK (ChaCha20) MB/s`, formatFigure(figure(tlsValues)));
    row(`bulk raw TCP MB/s`, formatFigure(figure(raw)));
    // Each end runs on its own core, so the busier one bounds the rate (1000 / ns per byte = MB/s).
    row(`bulk CPU per byte, receiver / sender: noise-cfg`, `${formatFigure(cpu.noiseReceiver, ' ns', 2)} / ${formatFigure(cpu.noiseSender, ' ns', 2)}`, `the AEAD alone ${(1000 / primitives.chachaMBps64k.median).toFixed(2)} ns per byte and end`);
    row(`bulk CPU per byte, receiver / sender: TLS 1.3-PSK`, `${formatFigure(cpu.tlsReceiver, ' ns', 2)} / ${formatFigure(cpu.tlsSender, ' ns', 2)}`);
  } finally {
    for (const server of bulkServers.values()) await server.stop();
  }

  // 5. Memory per idle authenticated connection: from a fresh server (heap growth included), and marginal.
  const memoryRuns = isQuick ? 1 : RUNS;
  const memoryKinds: ServerKind[] = ['noise-xxpsk3', 'tls13', 'raw'];
  const memory = { fresh: new Map<ServerKind, number[]>(memoryKinds.map((kind) => [kind, []])), marginal: new Map<ServerKind, number[]>(memoryKinds.map((kind) => [kind, []])) };
  for (let run = 0; run < memoryRuns; run++) {
    for (const kind of memoryKinds) {
      const measured = await idleMemoryRun(kind, settings.idleConnections);
      memory.fresh.get(kind)!.push(measured.fresh);
      memory.marginal.get(kind)!.push(measured.marginal);
    }
  }
  const memoryResults: Record<string, unknown> = { connections: settings.idleConnections, runs: memoryRuns };
  for (const way of ['fresh', 'marginal'] as const) {
    const values = memory[way];
    const ratio = values.get('noise-xxpsk3')!.map((value, index) => value / values.get('tls13')![index]!);
    memoryResults[way] = { bytesPerConnection: Object.fromEntries(memoryKinds.map((kind) => [kind, figure(values.get(kind)!)])), ratioVsTls13: figure(ratio) };
    const kib = (kind: ServerKind): string => formatFigure(figure(values.get(kind)!.map((value) => value / 1024)), ' KiB');
    const label = way === 'fresh' ? 'from a fresh server' : 'marginal, after a warm-up';
    row(`server RSS per idle connection (${settings.idleConnections}), ${label}: noise-cfg`, kib('noise-xxpsk3'), `vs TLS-PSK ${formatFigure(figure(ratio), '×')}${way === 'fresh' ? ' (goal ≤ 0.5×)' : ''}; ${memoryRuns} run(s)`);
    row(`  TLS 1.3-PSK`, kib('tls13'));
    row(`  raw TCP`, kib('raw'));
  }
  results['memory'] = memoryResults;

  // 6. Whole pulls: 64 KiB from one process and from `serve --workers 2`, then from one and two nodes on PostgreSQL,
  // each in alternating runs with one process; then 4 MiB.
  // `isSeveralProcesses`: a pool or PostgreSQL nodes, whose CPU is summed over their processes and has no goal of its own.
  const pullRows = (label: string, count: number, bytes: number, concurrency: number, pulls: Awaited<ReturnType<typeof pullFigures>>, isSeveralProcesses = false): void => {
    row(`${count} pulls of ${bytes / 1024} KiB, c=${concurrency}${label}: pulls/s`, formatFigure(pulls.pullsPerSecond), `p50 ${pulls.p50Ms.median.toFixed(1)} ms, p99 ${pulls.p99Ms.median.toFixed(1)} ms`);
    row(`  server CPU per pull${isSeveralProcesses ? ', all processes' : ''}`, formatFigure(pulls.serverMicrosPerPull, ' µs'), bytes === 64 * 1024 && !isSeveralProcesses ? 'goal ≤ 500 µs (XXpsk3)' : '');
    row(`  store commits (fsyncs) per pull`, formatFigure(pulls.fsyncsPerPull, '', 2), 'goal: well under 1');
    const clientsBound = pulls.clientMicrosPerPull.median > pulls.serverMicrosPerPull.median;
    row(`  load generator CPU per pull`, formatFigure(pulls.clientMicrosPerPull, ' µs'), `the clients, on the same cores: ${clientsBound ? 'above the server\'s, they bound pulls/s' : 'below the server\'s'}`);
  };
  {
    const [count, bytes] = [settings.pulls, 64 * 1024];
    const concurrency = Math.min(settings.pullConcurrency, count);
    const clientsIn = clientWorkRoot(count, bytes);
    row('pull clients (the load generator) write in', clientsIn, clientsIn === '/dev/shm' ? 'memory: their fsyncs on disk, not the server, bounded pulls/s' : 'the temporary directory: their fsyncs may bound pulls/s');
    const compared = await pullPoolComparison(settings.pullRuns, count, concurrency, bytes, 2);
    results[`pulls_${bytes}`] = { count, concurrency, ...compared.single };
    results[`pulls_${bytes}_workers_2`] = { count, concurrency, ...compared.pool, cpuRatio: compared.cpuRatio, throughputRatio: compared.throughputRatio };
    pullRows('', count, bytes, concurrency, compared.single);
    pullRows(', --workers 2', count, bytes, concurrency, compared.pool, true);
    row(`  --workers 2 vs one process: server CPU per pull`, formatFigure(compared.cpuRatio, '×'), 'goal ≤ 1.15× (no coordination tax)');
    row(`  --workers 2 vs one process: pulls/s`, formatFigure(compared.throughputRatio, '×'), 'goal > 1× (the load generator shares the 2 cores)');
    // The same comparison with a load generator that writes nothing (protocol-client.ts): the cores go to the server.
    const lean = await pullPoolComparison(settings.pullRuns, count, concurrency, bytes, 2, 'protocol');
    results[`pulls_${bytes}_protocol_client`] = { count, concurrency, single: lean.single, pool: lean.pool, cpuRatio: lean.cpuRatio, throughputRatio: lean.throughputRatio };
    pullRows(', protocol-level clients', count, bytes, concurrency, lean.single);
    pullRows(', protocol-level clients, --workers 2', count, bytes, concurrency, lean.pool, true);
    row(`  --workers 2 vs one process, protocol-level clients: server CPU per pull`, formatFigure(lean.cpuRatio, '×'), 'goal ≤ 1.15×');
    row(`  --workers 2 vs one process, protocol-level clients: pulls/s`, formatFigure(lean.throughputRatio, '×'), 'goal > 1×');
    // The peer of those ratios (cluster-tax.ts): what a second process costs on these cores whatever it serves.
    const wake = await measureWakeCost(RUNS, settings.wakeMs);
    const clusterTax: Record<string, unknown> = { wake };
    row('  CPU per X25519, back to back / each right after a 1 ms sleep', `${formatFigure(wake.backToBackMicros, ' µs')} / ${formatFigure(wake.afterSleepMicros, ' µs')}`, 'the difference is what one wake of an idle process costs on this machine');
    for (const [kind, label] of [['tls13', 'Node\'s TLS 1.3-PSK'], ['noise-xxpsk3', 'noise-cfg XXpsk3 channel (no task layer, no store)']] as const) {
      const peer = await clusterComparison(kind, settings.pullRuns, 50, settings.tcpMs);
      clusterTax[kind] = peer;
      row(`  bare ${label} handshake server, 2 cluster workers vs 1: server CPU per handshake`, formatFigure(peer.cpuRatio, '×'),
        `1 worker ${formatFigure(peer.singleMicros, ' µs')}, 2 workers ${formatFigure(peer.poolMicros, ' µs')}; handshakes/s ${formatFigure(peer.throughputRatio, '×')}`);
    }
    results['clusterTax'] = clusterTax;
  }
  {
    // The same 64 KiB pulls from one and two nodes sharing one PostgreSQL database (a throwaway cluster).
    const [count, bytes] = [settings.pulls, 64 * 1024];
    const concurrency = Math.min(settings.pullConcurrency, count);
    const unavailable = postgresUnavailableReason();
    if (unavailable !== null) {
      row(`${count} pulls of ${bytes / 1024} KiB on PostgreSQL`, 'not run', unavailable);
    } else {
      const cluster = await startPostgresCluster();
      try {
        const compared = await pullPostgresComparison(settings.pullRuns, count, concurrency, bytes, cluster);
        for (const fleet of compared.fleets) {
          const label = `, ${fleet.nodes} PostgreSQL node${fleet.nodes > 1 ? 's' : ''}`;
          results[`pulls_${bytes}_postgres_${fleet.nodes}`] = { count, concurrency, ...fleet.pulls, cpuRatio: fleet.cpuRatio, cpuWithStoreRatio: fleet.cpuWithStoreRatio, throughputRatio: fleet.throughputRatio };
          pullRows(label, count, bytes, concurrency, fleet.pulls, true);
          row(`  PostgreSQL server CPU per pull`, formatFigure(fleet.pulls.storeMicrosPerPull, ' µs'), 'the database\'s own processes, same machine');
          row(`  vs one process on SQLite: server CPU per pull, noise-cfg processes`, formatFigure(fleet.cpuRatio, '×'), 'goal ≤ 1.15×');
          row(`  vs one process on SQLite: server CPU per pull, with PostgreSQL's`, formatFigure(fleet.cpuWithStoreRatio, '×'));
          row(`  vs one process on SQLite: pulls/s`, formatFigure(fleet.throughputRatio, '×'));
        }
      } finally {
        cluster.remove();
      }
    }
  }
  {
    const [count, bytes] = [settings.bigPulls, 4 * 1024 * 1024];
    const concurrency = Math.min(settings.pullConcurrency, count);
    const pulls = await pullFigures(settings.pullRuns, count, concurrency, bytes);
    results[`pulls_${bytes}`] = { count, concurrency, ...pulls };
    pullRows('', count, bytes, concurrency, pulls);
  }

  const width = Math.max(...rows.map(([measure]) => measure.length));
  process.stdout.write(`\nnoise-cfg bench${isQuick ? ' --quick' : ''}, ${results['date']}, ${results['cpu']} × ${results['cores']} cores, node ${process.version}\n`);
  process.stdout.write(`figures: median (min–max) of ${RUNS} runs unless noted, after one untimed warm-up run; ratios are of paired runs\n\n`);
  for (const [measure, value, note] of rows) process.stdout.write(`${measure.padEnd(width)}  ${value}${note ? `   ${note}` : ''}\n`);
  writeFileSync(new URL('../../bench/results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
}

void main().catch((error: Error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});

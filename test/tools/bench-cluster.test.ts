// bench/cluster-process.ts runs a bare handshake server in several node:cluster workers on one port, and the
// bench reads its server CPU per handshake from the stats it sums over them (cluster-tax.ts). The sums must count
// every worker: a worker left out would make two workers look cheaper than one.
import t from 'tap';
// From dist: the bench forks its compiled server scripts, which sit beside the compiled tcp.js.
import { BenchServer, handshakeOnce } from '../../dist/bench/tcp.js';

for (const kind of ['noise-xxpsk3', 'tls13'] as const) {
  t.test(`${kind}: two cluster workers serve one port, and the stats count every worker's connections`, async (t) => {
    const server = await BenchServer.startCluster(2, kind);
    t.teardown(() => server.stop());
    const before = await server.stats();
    t.equal(before.connections, 0, 'nothing served yet');
    // 8 at a time, so that both workers are woken: each waits in accept on the one listening socket.
    for (let round = 0; round < 25; round++) await Promise.all(Array.from({ length: 8 }, () => handshakeOnce(kind, server.port)));
    const after = await server.stats();
    t.equal(after.connections, 200, "the workers' connections add up to the 200 handshakes made");
    t.ok(after.cpuMicros > before.cpuMicros, 'and their CPU time is counted');
  });
}

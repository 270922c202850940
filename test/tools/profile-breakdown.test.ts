// tools/profile/breakdown.ts charges each sample to the innermost frame with a category, leaves idle out, and
// reports the uncategorised frames by name.
import t from 'tap';
import { breakdownOf, formatBreakdown } from '../../tools/profile/breakdown.js';

const frame = (functionName: string, url = '') => ({ functionName, url });
// root → (idle); root → onRead (node:net) → decode (lib/transport) → parse (JSON); root → writeMessage (lib/noise) →
// crypto_scalarmult; root → mystery.
const profile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 6, 8] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('onStreamRead', 'node:internal/stream_base_commons'), children: [4] },
    { id: 4, callFrame: frame('decode', 'file:///x/dist/lib/transport/records.js'), children: [5] },
    { id: 5, callFrame: frame('parse') },
    { id: 6, callFrame: frame('writeMessage', 'file:///x/dist/lib/noise/handshake-state.js'), children: [7] },
    { id: 7, callFrame: frame('crypto_scalarmult') },
    { id: 8, callFrame: frame('mystery', 'file:///x/node_modules/thing/index.js') },
  ],
  samples: [2, 2, 3, 4, 5, 6, 7, 7, 8],
  timeDeltas: [1000, 1000, 100, 200, 300, 400, 500, 500, 1000],
};

t.test('each sample goes to the innermost frame that has a category, idle is not busy time', async (t) => {
  const breakdown = breakdownOf([profile]);
  t.equal(breakdown.busyMs, 3, 'idle left out: 0.1 + 0.2 + 0.3 + 0.4 + 1.0 + 1.0 ms');
  const ms = Object.fromEntries(breakdown.categories.map(({ category, ms }) => [category, ms]));
  t.equal(ms['JSON'], 0.3, 'JSON.parse under the channel is JSON');
  t.equal(ms['channel (records, framing, handshake drivers)'], 0.2);
  t.equal(ms['socket and stream machinery (Node)'], 0.1);
  t.equal(ms['key exchange (X25519, keypairs)'], 1, 'the DH under the state machine is key exchange');
  t.equal(ms['Noise state machine'], 0.4);
  t.equal(ms['other'], 1);
  t.same(breakdown.topOther, [{ frame: 'mystery thing/index.js', ms: 1 }], 'uncategorised frames by name');
  t.equal(breakdown.categories[0]!.share + breakdown.categories.slice(1).reduce((sum, entry) => sum + entry.share, 0), 1, 'the shares add up to all busy time');
  t.match(formatBreakdown(breakdown), /^\| key exchange \(X25519, keypairs\) \| 33\.3 % \|$/m);
});

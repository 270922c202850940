// vectors/noise-cfg-channel.json: what the real drivers put on the wire, and what SPEC.md §2 says they must.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { channelTranscriptsText, checkChannelTranscript, recordedChannelTranscriptsText, type ChannelTranscript } from '../../tools/vectors/channel-transcripts.js';
import { REPO_ROOT } from '../support/paths.js';

const FILE = join(REPO_ROOT, 'vectors', 'noise-cfg-channel.json');
const published = JSON.parse(readFileSync(FILE, 'utf8')) as { transcripts: ChannelTranscript[] };

t.test('the handshake state machines produce the published transcripts byte for byte', async (t) => {
  t.equal(channelTranscriptsText(), readFileSync(FILE, 'utf8'), 'regenerate with npm run vectors:generate');
});

t.test('the real client and server, over TCP, put the same bytes on the wire', async (t) => {
  t.equal(await recordedChannelTranscriptsText(), readFileSync(FILE, 'utf8'));
});

t.test('every published frame is what SPEC.md §2 prescribes', async (t) => {
  t.same(published.transcripts.map((transcript) => transcript.mode), ['xxpsk3', 'nnpsk0']);
  for (const transcript of published.transcripts) t.equal(checkChannelTranscript(transcript), null, `${transcript.mode} matches the spec`);
});

t.test('the checker notices a changed byte anywhere', async (t) => {
  const transcript = published.transcripts[0]!;
  for (const [direction, index] of [['client_to_server', 0], ['client_to_server', 2], ['server_to_client', 1]] as const) {
    const copy = JSON.parse(JSON.stringify(transcript)) as ChannelTranscript;
    const frame = copy[direction][index]!.frame;
    copy[direction][index]!.frame = frame.slice(0, -2) + (frame.endsWith('00') ? '01' : '00');
    t.match(checkChannelTranscript(copy), new RegExp(`${direction} frame ${index} differs`));
  }
});

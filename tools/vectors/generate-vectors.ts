/** `npm run vectors:generate`: writes the project's published vectors into vectors/. */
import { writeFileSync } from 'node:fs';
import { channelTranscriptsText } from './channel-transcripts.js';
import { coreVectorsText } from './core-vectors.js';
import { tokenVectorsText } from './token-vectors.js';

const core = new URL('../../../vectors/noise-cfg-core.json', import.meta.url);
writeFileSync(core, coreVectorsText());
process.stdout.write(`wrote ${core.pathname}\n`);
const channel = new URL('../../../vectors/noise-cfg-channel.json', import.meta.url);
writeFileSync(channel, channelTranscriptsText());
process.stdout.write(`wrote ${channel.pathname}\n`);
const token = new URL('../../../vectors/noise-cfg-token.json', import.meta.url);
writeFileSync(token, tokenVectorsText());
process.stdout.write(`wrote ${token.pathname}\n`);

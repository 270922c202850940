/** `npm run vectors:generate`: writes the project's published vectors into vectors/. */
import { writeFileSync } from 'node:fs';
import { coreVectorsText } from './core-vectors.js';

const target = new URL('../../../vectors/noise-cfg-core.json', import.meta.url);
writeFileSync(target, coreVectorsText());
process.stdout.write(`wrote ${target.pathname}\n`);

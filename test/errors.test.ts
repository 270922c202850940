// Every error code has an exit code and a line in SPEC.md's error table (STYLE.md "Errors").
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_ERROR_CODES, ERROR_CODES, NoiseCfgError, isNoiseCfgError, type ApiErrorCode, type ErrorCode } from '../lib/errors.js';
import { EXIT_CODE_BY_ERROR } from '../cli/exit-codes.js';
import { HTTP_STATUS_BY_API_ERROR, HTTP_STATUS_BY_ERROR } from '../lib/api/http-status.js';
import { REPO_ROOT } from './support/paths.js';

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

t.test('every code maps to a non-zero exit code', async (t) => {
  t.same(Object.keys(EXIT_CODE_BY_ERROR).sort(), [...codes].sort(), 'the exit table covers exactly the codes');
  for (const code of codes) t.ok(EXIT_CODE_BY_ERROR[code] > 0, `${code} exits non-zero`);
});

t.test('every code maps to an HTTP error status', async (t) => {
  t.same(Object.keys(HTTP_STATUS_BY_ERROR).sort(), [...codes].sort(), 'the HTTP table covers exactly the codes');
  for (const code of codes) t.ok(HTTP_STATUS_BY_ERROR[code] >= 400 && HTTP_STATUS_BY_ERROR[code] < 600, `${code} is a 4xx or 5xx`);
});

t.test('every code has a row in SPEC.md', async (t) => {
  const spec = readFileSync(join(REPO_ROOT, 'SPEC.md'), 'utf8');
  for (const code of codes) t.match(spec, new RegExp(`^\\| \`${code}\` \\|`, 'm'), `${code} is documented`);
});

t.test('the REST API\'s own codes: one registry, an HTTP status and a SPEC.md row each, none shadowing a code', async (t) => {
  const apiCodes = Object.keys(API_ERROR_CODES) as ApiErrorCode[];
  t.same(Object.keys(HTTP_STATUS_BY_API_ERROR).sort(), [...apiCodes].sort(), 'the HTTP table covers exactly the API codes');
  const spec = readFileSync(join(REPO_ROOT, 'SPEC.md'), 'utf8');
  for (const code of apiCodes) {
    t.notOk(code in ERROR_CODES, `${code} is not also an error code`);
    t.ok(API_ERROR_CODES[code].reportedAs in ERROR_CODES, `${code} is reported as an error code`);
    t.match(spec, new RegExp(`^\\| \`${code}\` \\| ${HTTP_STATUS_BY_API_ERROR[code]}\\b[^|]*\\|[^|]+\\| \`${API_ERROR_CODES[code].reportedAs}\` \\|$`, 'm'), `${code} has its SPEC.md row`);
  }
  // Every code lib/api answers with is one of the two registries: the API's sources name no other.
  const sources = ['server.ts', 'routes.ts', 'schemas.ts'].map((name) => readFileSync(join(REPO_ROOT, 'lib', 'api', name), 'utf8')).join('\n');
  for (const [, code] of sources.matchAll(/['`]([A-Z][A-Z_]{3,})['`]/g)) {
    if (['GET', 'POST', 'DELETE'].includes(code!)) continue;
    t.ok(code! in ERROR_CODES || code! in API_ERROR_CODES, `${code} used in lib/api is registered`);
  }
});

t.test('NoiseCfgError carries its code and cause', async (t) => {
  const cause = new Error('inner');
  const error = new NoiseCfgError('DECRYPT_FAILED', 'tag did not verify', { cause });
  t.equal(error.code, 'DECRYPT_FAILED');
  t.equal(error.cause, cause);
  t.ok(isNoiseCfgError(error, 'DECRYPT_FAILED'));
  t.notOk(isNoiseCfgError(error, 'INVALID_KEY'));
  t.notOk(isNoiseCfgError(new Error('plain')));
});

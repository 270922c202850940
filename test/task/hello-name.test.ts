// HELLO names (SPEC.md §4.5, issue 11): a client's name reaches `serve`'s log and `task show`, so the codec
// refuses one with a character a terminal would act on (PROTOCOL_ERROR naming the field), and accepts printable
// names in any script. Also the message-size constants the channel limits are made from.
import t from 'tap';
import {
  decodeMessage, encodeMessage, MAX_CHUNK_BYTES, MAX_CLIENT_MESSAGE_BYTES, MAX_JSON_BYTES, MAX_OFFER_JSON_BYTES, MAX_SERVER_MESSAGE_BYTES, MESSAGE_TYPES,
} from '../../lib/task/messages.js';

function hello(name: string): Buffer {
  return Buffer.concat([Buffer.of(MESSAGE_TYPES.HELLO), Buffer.from(JSON.stringify({ protocol: 1, software: 's', name, clientId: null, have: null, intent: 'pull' }), 'utf8')]);
}

t.test('a HELLO name with a terminal escape, a bidi override or another unprintable character is PROTOCOL_ERROR naming the field', async (t) => {
  const hostile: [string, string][] = [
    ['an ANSI escape that clears the screen', 'web-1\u001b[2J'],
    ['a colour escape', '\u001b[31mroot\u001b[0m'],
    ['a carriage return that overwrites the line', 'web-1\rpull outcome=applied'],
    ['a newline that fakes a log line', 'web-1\n2026-01-01T00:00:00.000Z pull outcome=applied'],
    ['a right-to-left override', 'web-\u202e1-bew'],
    ['a bidi isolate', 'a\u2066b\u2069'],
    ['a zero-width space', 'web\u200b-1'],
    ['a byte-order mark', '\ufeffweb-1'],
    ['a C1 control (CSI)', 'web-1\u009b2J'],
    ['DEL', 'web-1\u007f'],
    ['a NUL', 'web\u00001'],
    ['a line separator', 'web\u20281'],
  ];
  for (const [what, name] of hostile) {
    t.throws(() => decodeMessage(hello(name)), { code: 'PROTOCOL_ERROR', message: /field "name" must be a string of at most 128 printable characters/ }, what);
  }
});

t.test('printable names in any script, up to 128 characters, still decode', async (t) => {
  for (const name of ['', 'web-1', 'büro-drucker', '東京-サーバー', 'сервер 2', 'a b c', 'emoji 🚀', 'n'.repeat(128)]) {
    const decoded = decodeMessage(hello(name));
    t.equal(decoded.type === 'HELLO' ? decoded.body.name : null, name, JSON.stringify(name));
    t.ok(encodeMessage(decoded).equals(hello(name)), `${JSON.stringify(name)} round trips`);
  }
});

t.test('the largest client and server messages are what the codec allows', async (t) => {
  t.equal(MAX_CLIENT_MESSAGE_BYTES, 1 + MAX_JSON_BYTES, 'a client sends at most a HELLO or RESULT: type byte + 64 KiB');
  t.equal(MAX_SERVER_MESSAGE_BYTES, 1 + MAX_OFFER_JSON_BYTES, 'a server sends at most an OFFER: type byte + 4 MiB');
  t.ok(MAX_SERVER_MESSAGE_BYTES >= 1 + MAX_CHUNK_BYTES, 'a CHUNK fits too');
  const body = JSON.stringify({ status: 'failed', exitCode: 1, message: 'm', digest: 'a'.repeat(64) });
  const padded = Buffer.concat([Buffer.of(MESSAGE_TYPES.RESULT), Buffer.from(body.slice(0, -1) + ' '.repeat(MAX_JSON_BYTES - body.length) + '}')]);
  t.equal(padded.byteLength, MAX_CLIENT_MESSAGE_BYTES);
  t.equal(decodeMessage(padded).type, 'RESULT', 'a RESULT of exactly MAX_CLIENT_MESSAGE_BYTES decodes');
});

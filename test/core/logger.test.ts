import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, scrubSecrets } from '../../src/core/logger.js';

function capture(): { stream: Writable; text(): string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  return { stream, text: () => out };
}

test('secret values are scrubbed from every log line, wherever they appear', () => {
  const secret = 's3cr3t-pa$$word"with-quote';
  const c = capture();
  const log = createLogger({ pretty: false, destination: c.stream, secrets: () => [secret] }).child({ sink: 'emon' });
  log.warn({ url: `http://user:${secret}@emoncms.lan/` }, `request failed: 401 for key ${secret}`);
  log.error({ err: new Error(`auth ${secret} refused`) }, 'sink failed');
  const out = c.text();
  assert.ok(out.length > 0);
  assert.ok(!out.includes(secret), out);
  assert.ok(!out.includes(JSON.stringify(secret).slice(1, -1)), out); // nor its JSON-escaped form
  assert.equal(out.split('[secret]').length - 1, 4); // url, msg, err.message, err.stack
  assert.match(out, /"sink":"emon"/);
});

test('scrubSecrets leaves lines without secrets alone', () => {
  assert.equal(scrubSecrets('{"msg":"hello"}', ['abcd1234']), '{"msg":"hello"}');
});

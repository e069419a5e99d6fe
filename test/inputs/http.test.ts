import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpInput } from '../../src/inputs/http/index.js';
import { BackhaulError } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext } from '../helpers/context.js';

const OPTS = { host: '127.0.0.1', port: 0, path: '/ingest', bodyLimit: 1024, acceptTimeoutMs: 300 };

interface ErrorReply {
  error: { code: string; message: string; path?: string };
}

test('http: a JSON POST is answered 202 with the readings count; the frame carries the raw text', async (t) => {
  const base = inputContext({ id: 'web' });
  const ctx = { ...base, emitStrict: (f: Frame) => base.emitStrict(f).then(() => 3) };
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/ingest$/);

  const body = '[{"bn":"urn:dev:ow:10e2073a01080063","n":"temperature","u":"Cel","v":23.1}]';
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/senml+json; charset=utf-8' }, body });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { accepted: 3 });
  const f = base.frames[0];
  assert.equal(f?.input, 'web');
  assert.equal(f?.payload, body);
  assert.equal(f?.topic, '/ingest');
  assert.equal(f?.contentType, 'application/senml+json');
  assert.match(f?.identity?.remoteAddress ?? '', /127\.0\.0\.1/);

  const plain = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  assert.equal(plain.status, 202);
  assert.equal(base.frames[1]?.payload, '{"a":1}');
});

test('http: CBOR bodies reach the decoder as untouched bytes', async (t) => {
  const ctx = inputContext({ id: 'web' });
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => input.stop());
  const bytes = new Uint8Array([0x81, 0xa2, 0x00, 0x61, 0x74, 0x02, 0x18, 0x17, 0xff, 0x00]);
  const res = await fetch(String(input.info?.().url), { method: 'POST', headers: { 'content-type': 'application/senml+cbor' }, body: bytes });
  assert.equal(res.status, 202);
  const p = ctx.frames[0]?.payload;
  assert.ok(p instanceof Uint8Array);
  assert.deepEqual([...p], [...bytes]);
  assert.equal(ctx.frames[0]?.contentType, 'application/senml+cbor');
});

test('http: other content types get 415 BH_HTTP_MEDIA_TYPE; too large gets 413; wrong path 404', async (t) => {
  const ctx = inputContext({ id: 'web' });
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);

  const txt = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
  assert.equal(txt.status, 415);
  assert.equal(((await txt.json()) as ErrorReply).error.code, 'BH_HTTP_MEDIA_TYPE');

  const none = await fetch(url, { method: 'POST', body: new Uint8Array([1, 2]) });
  assert.equal(none.status, 415);
  assert.equal(((await none.json()) as ErrorReply).error.code, 'BH_HTTP_MEDIA_TYPE');

  const big = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ x: 'y'.repeat(2000) }) });
  assert.equal(big.status, 413);
  const bigBody = (await big.json()) as ErrorReply;
  assert.equal(bigBody.error.code, 'BH_HTTP_BODY');
  assert.match(bigBody.error.message, /1024/);

  const elsewhere = await fetch(url.replace('/ingest', '/other'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(elsewhere.status, 404);
  await elsewhere.body?.cancel();

  assert.equal(ctx.frames.length, 0);
});

test('http: a decode error thrown by emitStrict is answered 400 with its code and path', async (t) => {
  const base = inputContext({ id: 'web' });
  const ctx = {
    ...base,
    emitStrict: () => Promise.reject(new BackhaulError('BH_SENML_VALUE', 'record has no value', { path: '[2].v' })),
  };
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => input.stop());
  const res = await fetch(String(input.info?.().url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{}]' });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: { code: 'BH_SENML_VALUE', message: 'record has no value', path: '[2].v' } });
});

test('http: a failure of the data path is answered 503 and counted', async (t) => {
  const base = inputContext({ id: 'web' });
  const ctx = { ...base, emitStrict: () => Promise.reject(new Error('disk full')) };
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => input.stop());
  const res = await fetch(String(input.info?.().url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(res.status, 503);
  assert.equal(((await res.json()) as ErrorReply).error.code, 'BH_INPUT_FAILED');
  assert.equal(await base.metrics.value('backhaul_input_errors_total', { input: 'web' }), 1);
});

test('http: a port in use fails with BH_PORT_IN_USE and the path; stop frees the port', async () => {
  const first = httpInput.create(OPTS, inputContext({ id: 'a' }));
  await first.start();
  const port = Number(new URL(String(first.info?.().url)).port);
  const second = httpInput.create({ ...OPTS, port }, inputContext({ id: 'b' }));
  await assert.rejects(second.start(), (err: unknown) => {
    assert.ok(err instanceof BackhaulError);
    assert.equal(err.code, 'BH_PORT_IN_USE');
    assert.equal(err.path, 'inputs.b.port');
    return true;
  });
  await second.stop();
  await first.stop();
  const third = httpInput.create({ ...OPTS, port }, inputContext({ id: 'c' }));
  await third.start();
  await third.stop();
});

test('http: readings that cannot be queued in acceptTimeoutMs (a blocked outbox) get 503 with Retry-After', async (t) => {
  const base = inputContext({ id: 'web' });
  const held: Array<() => void> = [];
  // A data path that does not take the readings until the test ends.
  const ctx = { ...base, emitStrict: () => new Promise<number>((resolve) => held.push(() => resolve(0))) };
  const input = httpInput.create(OPTS, ctx);
  await input.start();
  t.after(() => {
    held.forEach((release) => release());
    return input.stop();
  });
  const res = await fetch(String(input.info?.().url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '5');
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'BH_INPUT_FAILED');
});

import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { SinkError } from '../../src/core/driver.js';
import { messageToJson } from '../../src/sinks/format.js';
import { httpSink } from '../../src/sinks/http/index.js';
import { freePort, httpRecorder } from '../helpers/servers.js';
import { offline, valve, sinkContext } from './messages.js';

const TOKEN = 'Bearer s3cr3t-t0ken-value';

function isSinkError(retryable: boolean, text?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof SinkError, `expected a SinkError, got ${String(e)}`);
    assert.equal(e.retryable, retryable, e.message);
    if (text) assert.match(e.message, text);
    assert.ok(!e.message.includes('s3cr3t'), 'a secret leaked into an error message');
    return true;
  };
}

test('http sink: a 2xx answer accepts the batch; body is a JSON array of messages, headers sent', async () => {
  const srv = await httpRecorder((_r, res) => {
    res.statusCode = 204;
    res.end();
  });
  try {
    const sink = createWithDefaults(httpSink, { url: `${srv.url}/hook?x=1`, headers: { Authorization: TOKEN, 'X-Site': 'home' } }, sinkContext());
    await sink.open();
    assert.equal(await sink.write([valve, offline]), undefined);
    const put = createWithDefaults(httpSink, { url: `${srv.url}/put`, method: 'PUT' }, sinkContext());
    await put.open();
    await put.write([valve]);
    await sink.close();
    await put.close();
    assert.equal(srv.requests.length, 2);
    const [first, second] = srv.requests;
    assert.equal(first?.method, 'POST');
    assert.equal(first?.url, '/hook?x=1');
    assert.equal(first?.headers['authorization'], TOKEN);
    assert.equal(first?.headers['x-site'], 'home');
    assert.match(first?.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(first?.body ?? ''), [messageToJson(valve), messageToJson(offline)]);
    assert.equal(second?.method, 'PUT');
    assert.deepEqual(JSON.parse(second?.body ?? ''), [messageToJson(valve)]);
  } finally {
    await srv.close();
  }
});

test('http sink: 503 and 429 are retryable, 400 rejects every item, 401/404 stop the sink', async () => {
  let status = 503;
  const srv = await httpRecorder((_r, res) => {
    res.statusCode = status;
    res.end(status === 400 ? '{"error":"bad field values.temperature"}' : 'nope');
  });
  try {
    const sink = createWithDefaults(httpSink, { url: srv.url, headers: { Authorization: TOKEN } }, sinkContext());
    await sink.open();
    await assert.rejects(sink.write([valve]), isSinkError(true, /503/));
    status = 429;
    await assert.rejects(sink.write([valve]), isSinkError(true, /429/));
    status = 400;
    const res = await sink.write([valve, offline]);
    assert.ok(res);
    assert.deepEqual(
      res.rejected?.map((r) => [r.index, r.error.code]),
      [
        [0, 'BH_SINK_REJECTED'],
        [1, 'BH_SINK_REJECTED'],
      ],
    );
    assert.match(res.rejected?.[0]?.error.message ?? '', /HTTP 400.*bad field values\.temperature/);
    status = 401;
    await assert.rejects(sink.write([valve]), isSinkError(false, /401/));
    status = 404;
    await assert.rejects(sink.write([valve]), isSinkError(false, /404/));
    status = 302;
    await assert.rejects(sink.write([valve]), isSinkError(false, /redirect/));
    await sink.close();
    assert.equal(srv.requests.length, 6);
  } finally {
    await srv.close();
  }
});

test('http sink: a server that does not answer in timeoutMs, or is not there, is retryable', async () => {
  const srv = await httpRecorder(() => {
    /* never answer */
  });
  try {
    const sink = createWithDefaults(httpSink, { url: srv.url, timeoutMs: 300 }, sinkContext());
    await sink.open();
    const t = Date.now();
    await assert.rejects(sink.write([valve]), isSinkError(true, /within 300 ms/));
    assert.ok(Date.now() - t < 3000);
    await sink.close();
    assert.equal(srv.requests.length, 1);
  } finally {
    await srv.close();
  }
  const port = await freePort();
  const gone = createWithDefaults(httpSink, { url: `http://127.0.0.1:${port}/x` }, sinkContext());
  await gone.open();
  await assert.rejects(gone.write([valve]), isSinkError(true, /cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/));
  await gone.close();
});

test('http sink: user:password in the url becomes Basic auth and never appears in errors', async () => {
  const srv = await httpRecorder((_r, res) => {
    res.statusCode = 403;
    res.end();
  });
  try {
    const url = srv.url.replace('http://', 'http://hub:s3cr3t-pass@');
    const sink = createWithDefaults(httpSink, { url }, sinkContext());
    await sink.open();
    await assert.rejects(sink.write([valve]), isSinkError(false, /403/));
    await sink.close();
    assert.equal(srv.requests[0]?.headers['authorization'], `Basic ${Buffer.from('hub:s3cr3t-pass').toString('base64')}`);
  } finally {
    await srv.close();
  }
});

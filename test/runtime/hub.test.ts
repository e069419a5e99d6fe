// The hub with a real HTTP input: malformed frames are counted by input and code, logged once a minute per code,
// and never stop the input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { buildConfig } from '../../src/runtime/config.js';
import { ManualClock } from '../../src/core/clock.js';
import { createLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

test('bad frames are counted per input and code, logged once per code per minute, and the input keeps working', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  let logged = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      logged += chunk.toString('utf8');
      cb();
    },
  });
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const config = buildConfig(
    {
      data: d.path,
      inputs: { ingest: { type: 'http', host: '127.0.0.1', port: 0, decoder: 'json' } },
      sinks: { jsonl: { type: 'file' } },
      routes: [{ to: ['jsonl'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: createLogger({ pretty: false, destination: stream }), clock });
  await hub.start();
  t.after(() => hub.stop());
  const url = String(hub.inputStatus()[0]!.info['url']);
  const post = (body: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  for (let i = 0; i < 5; i++) {
    const r = await post('{"device": "a", "temperature": ');
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'BH_DECODE_SYNTAX');
  }
  const noDevice = await post('{"temperature": 20}');
  assert.equal(noDevice.status, 400);
  assert.deepEqual(((await noDevice.json()) as { error: { code: string; path: string } }).error.code, 'BH_DECODE_NO_DEVICE');
  const ok = await post('{"device": "a", "temperature": 20}');
  assert.equal(ok.status, 202);

  const m = hub.metrics;
  assert.equal(await m.value('backhaul_decode_errors_total', { input: 'ingest', reason: 'BH_DECODE_SYNTAX' }), 5);
  assert.equal(await m.value('backhaul_decode_errors_total', { input: 'ingest', reason: 'BH_DECODE_NO_DEVICE' }), 1);
  assert.equal(await m.value('backhaul_readings_total', { input: 'ingest' }), 1);
  const dropped = () => logged.split('\n').filter((l) => l.includes('"frame dropped'));
  assert.equal(dropped().filter((l) => l.includes('BH_DECODE_SYNTAX')).length, 1, 'logged once for five');
  assert.equal(dropped().filter((l) => l.includes('BH_DECODE_NO_DEVICE')).length, 1);

  // The sampled sink gauges read the sinks at scrape time. The accepted reading was delivered, so the sink is up.
  await until(async () => (await m.value('backhaul_sink_delivered_total', { sink: 'jsonl' })) === 1, { what: 'the reading delivered to the file' });
  const text = await m.registry.metrics();
  assert.match(text, /^backhaul_sink_up\{sink="jsonl"\} 1$/m);
  assert.match(text, /backhaul_sink_backlog_bytes\{sink="jsonl"\} \d+/);
  assert.match(text, /backhaul_sink_oldest_age_seconds\{sink="jsonl"\} [\d.]+/);

  // A minute later the next one is logged again, with the count of those held back.
  clock.advance(61_000);
  assert.equal((await post('{')).status, 400);
  const again = dropped().filter((l) => l.includes('BH_DECODE_SYNTAX'));
  assert.equal(again.length, 2);
  assert.match(again[1]!, /"earlierSuppressed":4/);
});

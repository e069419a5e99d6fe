// The real composition root (Hub) fed by the `lines` input from a FIFO and from a file, with the real OpenTRV
// decoder and SQLite historian; assertions on the historian's contents and the hub's counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { buildConfig } from '../../src/core/config/load.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { Historian } from '../../src/sinks/sqlite/historian.js';
import { tempDir } from '../helpers/context.js';
import { until } from '../helpers/servers.js';

const fixture = (p: string) => new URL(`../../../test/fixtures/${p}`, import.meta.url);

function hubFor(dir: string, input: Record<string, unknown>): Hub {
  const config = buildConfig(
    {
      data: dir,
      inputs: { radio: input },
      sinks: { history: { type: 'sqlite', path: join(dir, 'history.sqlite') } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir },
    { registry: builtinRegistry() },
  );
  return new Hub({ config, logger: silentLogger() });
}

test('an OpenTRV hub capture fed through a FIFO: every stats line becomes readings, the rest are counted as skipped', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const fifo = join(d.path, 'radio.fifo');
  execFileSync('mkfifo', [fifo]);
  const text = readFileSync(fixture('opentrv/hub-output-20150412.txt'), 'utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const kinds = (c: string) => lines.filter((l) => l.startsWith(c)).length;
  const hub = hubFor(d.path, { type: 'lines', path: fifo, decoder: 'opentrv' });
  await hub.start();
  t.after(() => hub.stop());
  // A writer process feeds the FIFO the way a radio receiver would, line by line.
  const w = createWriteStream(fifo);
  for (const l of lines) w.write(`${l}\r\n`);
  await new Promise<void>((r) => w.end(r));

  const m = hub.metrics;
  // The lines input skips empty lines; every other line is a frame.
  const nonEmpty = lines.filter((l) => l.trim() !== '');
  await until(async () => (await m.value('backhaul_frames_total', { input: 'radio' })) === nonEmpty.length, 'all lines read');
  await until(async () => (await m.value('backhaul_sink_backlog_items', { sink: 'history' })) === 0 && (await m.value('backhaul_sink_delivered_total')) > 0, 'history written');
  const statsLines = kinds('{') + kinds('@');
  assert.equal(await m.value('backhaul_readings_total', { input: 'radio' }), statsLines);
  assert.equal(await m.value('backhaul_frames_skipped_total', { input: 'radio', reason: 'error_line' }), kinds('!'));
  assert.equal(await m.value('backhaul_frames_skipped_total', { input: 'radio', reason: 'status_line' }), kinds('='));
  assert.equal(await m.value('backhaul_frames_skipped_total', { input: 'radio', reason: 'prompt' }), kinds('>'));
  assert.equal(
    await m.value('backhaul_frames_skipped_total', { input: 'radio' }),
    kinds('!') + kinds('=') + kinds('>') + kinds('?') + kinds('+'),
  );
  assert.equal(await m.value('backhaul_decode_errors_total'), 0);
  await hub.stop();

  const h = Historian.open(join(d.path, 'history.sqlite'));
  t.after(() => h.close());
  const t819c = h.queryReadings({ device: '819c', measurement: 'temperature' }).map((r) => r.value);
  // {"@":"819c","T|C16":266,...} → 16.625 °C; @819C;T16CA → 16 + 10/16 = 16.625 °C (three binary lines)
  assert.deepEqual(t819c.sort(), [16.625, 16.625, 16.625, 16.625]);
  assert.deepEqual(h.queryReadings({ device: '819c', measurement: 'battery' }).map((r) => [r.value, r.unit]), [[2.55, 'V']]);
  // @D49;T17C6 twice and @D49;T17C7 once: 17 + 6/16, 17 + 7/16
  assert.deepEqual(h.queryReadings({ device: '0d49', measurement: 'temperature' }).map((r) => r.value), [17.375, 17.375, 17.4375]);
  // {"@":"b39a","B|mV":3230,...} and {"@":"b39a",...,"B|mV":3247}: older units report millivolts
  assert.deepEqual(h.queryReadings({ device: 'b39a', measurement: 'battery' }).map((r) => [r.value, r.unit]), [[3.23, 'V'], [3.247, 'V']]);
});

test('half a year of one valve\'s log replayed through a file input lands in the historian in full', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const text = gunzipSync(readFileSync(fixture('opentrv/valve-2d1a-2016H1.json.gz'))).toString('utf8');
  const file = join(d.path, '2d1a.json');
  writeFileSync(file, text);
  const records = text.split('\n').filter((l) => l.trim() !== '');
  // What the historian should hold, computed independently of the decoder: one row per stats key except @ and +,
  // per (time, key). The historian is idempotent on (device, measurement, time): the log's exact duplicate records
  // (radio double transmissions, 59 of them) are delivered but stored once.
  const rowKeys = new Set<string>();
  for (const l of records) {
    const [time, , stats] = JSON.parse(l) as [string, string, Record<string, unknown>];
    for (const k of Object.keys(stats)) if (k !== '@' && k !== '+') rowKeys.add(`${time} ${k}`);
  }
  const expectedRows = rowKeys.size;

  const hub = hubFor(d.path, { type: 'lines', path: file, decoder: 'opentrv' });
  await hub.start();
  t.after(() => hub.stop());
  const m = hub.metrics;
  await until(async () => (await m.value('backhaul_frames_total', { input: 'radio' })) === records.length, 'whole file read', 120_000);
  await until(async () => (await m.value('backhaul_sink_delivered_total', { sink: 'history' })) === records.length, 'whole file stored', 120_000);
  assert.equal(await m.value('backhaul_readings_total', { input: 'radio' }), records.length);
  assert.equal(await m.value('backhaul_decode_errors_total'), 0);
  await hub.stop();

  const h = Historian.open(join(d.path, 'history.sqlite'));
  t.after(() => h.close());
  assert.equal(h.countReadings({}), expectedRows);
  assert.equal(h.countReadings({ device: '2d1a', measurement: 'temperature' }), [...rowKeys].filter((k) => k.endsWith(' T|C16')).length);
  // Spot checks, by hand from the first lines of the file:
  // [ "2016-01-01T00:00:09Z", "", {"@":"2d1a","+":6,"T|C16":332,"O":1,"vac|h":1,"b":0} ]
  const t0 = Date.parse('2016-01-01T00:00:09Z');
  const first = h.queryReadings({ device: '2d1a', from: t0, to: t0 + 1 });
  assert.deepEqual(
    Object.fromEntries(first.map((r) => [r.measurement, r.value])),
    { temperature: 20.75, occupancy: 1, vacancy: 1, boiler: 0 },
  );
  assert.equal(first[0]!.seq, 6);
  // [ "2016-01-01T00:02:09Z", "", {"@":"2d1a","+":7,"L":85,"v|%":0,"tT|C":14,"vC|%":0} ]
  const second = h.queryReadings({ device: '2d1a', from: t0 + 120_000, to: t0 + 120_001 });
  assert.deepEqual(Object.fromEntries(second.map((r) => [r.measurement, r.value])), { light: 85, valve: 0, target: 14, valve_travel: 0 });
});

// The real composition root (Hub) fed by the `lines` input from a FIFO and from a file, with the real OpenTRV
// decoder and SQLite historian; assertions on the historian's contents and the hub's counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { Historian } from '../../src/sinks/sqlite/historian.js';
import { tempDir } from '../helpers/context.js';
import { fixture, valveLog } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';


function hubFor(dir: string, input: Record<string, unknown>): Hub {
  const config = buildConfig(
    {
      data: dir,
      inputs: { radio: input },
      sinks: { history: { type: 'sqlite', path: join(dir, 'history.sqlite') }, jsonl: { type: 'file', path: join(dir, 'readings.jsonl') } },
      routes: [{ to: ['history', 'jsonl'] }],
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
  await until(async () => (await m.value('backhaul_frames_total', { input: 'radio' })) === nonEmpty.length, { what: 'all lines read' });
  await until(async () => (await m.value('backhaul_sink_backlog_items', { sink: 'history' })) === 0 && (await m.value('backhaul_sink_delivered_total')) > 0, { what: 'history written' });
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

  // Every reading, as the file sink wrote it (the historian would fold identical readings of one millisecond).
  const readings = readFileSync(join(d.path, 'readings.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { device: string; values: Record<string, number>; units?: Record<string, string> });
  assert.equal(readings.length, statsLines);
  const of = (device: string, name: string) => readings.filter((r) => r.device === device && name in r.values).map((r) => [r.values[name], r.units?.[name]]);
  // {"@":"819c","T|C16":266,...} → 16.625 °C; three binary lines @819C;T16CA → 16 + 10/16 = 16.625 °C
  assert.deepEqual(of('819c', 'temperature'), [[16.625, 'Cel'], [16.625, 'Cel'], [16.625, 'Cel'], [16.625, 'Cel']]);
  assert.deepEqual(of('819c', 'battery'), [[2.55, 'V']]);
  // @D49;T17C6 twice, then @D49;T17C7: 17 + 6/16, 17 + 7/16; the JSON line's id "0d49" is the same device
  assert.deepEqual(of('0d49', 'temperature'), [[17.375, 'Cel'], [17.375, 'Cel'], [17.4375, 'Cel']]);
  assert.deepEqual(of('0d49', 'valve_travel'), [[862, '%']]);
  // {"@":"b39a","B|mV":3230,...} and {"@":"b39a",...,"B|mV":3247}: older units report millivolts
  assert.deepEqual(of('b39a', 'battery'), [[3.23, 'V'], [3.247, 'V']]);
  const h = Historian.open(join(d.path, 'history.sqlite'));
  t.after(() => h.close());
  assert.deepEqual(h.queryReadings({ device: 'b39a', measurement: 'battery' }).map((r) => r.value), [3.23, 3.247]);
});

test('half a year of one valve\'s log replayed through a file input lands in the historian in full', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const { file, records } = valveLog(d.path);
  // What the historian should hold, computed independently of the decoder: one row per stats key except @ and +.
  // The historian stores identical values once (same device, measurement, time, seq and value): the log's exact
  // duplicate records (radio double transmissions, 59 lines) are delivered but stored once.
  const rowKeys = new Set<string>();
  for (const l of records) {
    const [time, , stats] = JSON.parse(l) as [string, string, Record<string, unknown>];
    for (const [k, v] of Object.entries(stats)) if (k !== '@' && k !== '+') rowKeys.add(`${time} ${String(stats['+'])} ${k}=${String(v)}`);
  }
  const expectedRows = rowKeys.size;

  const hub = hubFor(d.path, { type: 'lines', path: file, decoder: 'opentrv' });
  await hub.start();
  t.after(() => hub.stop());
  const m = hub.metrics;
  await until(async () => (await m.value('backhaul_frames_total', { input: 'radio' })) === records.length, { what: 'whole file read', timeoutMs: 120_000 });
  await until(async () => (await m.value('backhaul_sink_delivered_total', { sink: 'history' })) === records.length, { what: 'whole file stored', timeoutMs: 120_000 });
  assert.equal(await m.value('backhaul_readings_total', { input: 'radio' }), records.length);
  assert.equal(await m.value('backhaul_decode_errors_total'), 0);
  await hub.stop();

  const h = Historian.open(join(d.path, 'history.sqlite'));
  t.after(() => h.close());
  assert.equal(h.countReadings({}), expectedRows);
  assert.equal(h.countReadings({ device: '2d1a', measurement: 'temperature' }), [...rowKeys].filter((k) => k.includes(' T|C16=')).length);
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

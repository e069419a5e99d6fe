// Half a year of a real radiator valve's log replayed through the real hub: `lines` input → opentrv decoder → a
// route taking temperatures through `dedupe` → `window` (15-minute median) → the SQLite historian. Windows follow the
// readings' own timestamps, so the replay (seconds of wall time) gives the same windows as the live half year did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { Historian } from '../../src/sinks/sqlite/historian.js';
import { tempDir } from '../helpers/context.js';
import { valveLog } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';

const WINDOW = 15 * 60_000;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The historian's rows after the replay, and the windows expected, for the second test. */
let replayed: { rows: Array<{ ts: number; value: unknown }>; expected: Map<number, number> } | undefined;

test('a valve log replayed through dedupe → 15-minute median window lands in the historian, window by window', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const { file, records } = valveLog(d.path);

  // What the route should produce, computed from the raw records without the decoder or the stages: temperature
  // records (T|C16, 1/16 °C); a repeat of a sequence number within 60 s of the one kept is a duplicate; windows are
  // 15-minute buckets of the rest, each giving its median.
  const temps = records
    .map((l) => JSON.parse(l) as [string, string, Record<string, number>])
    .filter(([, , s]) => 'T|C16' in s)
    .map(([time, , s]) => ({ ts: Date.parse(time), seq: s['+']!, t: s['T|C16']! / 16 }));
  const kept = new Map<number, number>();
  const buckets = new Map<number, number[]>();
  let duplicates = 0;
  for (const r of temps) {
    const prev = kept.get(r.seq);
    if (prev !== undefined && Math.abs(r.ts - prev) <= 60_000) {
      duplicates++;
      continue;
    }
    kept.set(r.seq, r.ts);
    const b = r.ts - (r.ts % WINDOW);
    buckets.set(b, [...(buckets.get(b) ?? []), r.t]);
  }
  const expected = new Map([...buckets].map(([b, xs]) => [b, median(xs)]));

  const config = buildConfig(
    {
      data: d.path,
      inputs: { radio: { type: 'lines', path: file, decoder: 'opentrv' } },
      sinks: { history: { type: 'sqlite', path: join(d.path, 'history.sqlite') } },
      routes: [
        {
          name: 'temperature-15m',
          match: { measurements: ['temperature'] },
          stages: [
            { type: 'dedupe', window: '1m' },
            { type: 'window', every: '15m', op: 'median' },
          ],
          to: ['history'],
        },
      ],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const m = hub.metrics;
  await until(async () => (await m.value('backhaul_frames_total', { input: 'radio' })) === records.length, { what: 'whole file read', timeoutMs: 120_000 });
  // Every window but the last is closed by the first reading after it; the last is still open.
  await until(async () => (await m.value('backhaul_sink_delivered_total', { sink: 'history' })) === expected.size - 1, { what: 'closed windows stored', timeoutMs: 120_000 });
  assert.equal(await m.value('backhaul_route_messages_total', { route: 'temperature-15m' }), temps.length);
  assert.equal(await m.value('backhaul_stage_dropped_total', { route: 'temperature-15m', stage: 'dedupe', reason: 'duplicate' }), duplicates);
  assert.equal(await m.value('backhaul_stage_dropped_total', { stage: 'window' }), 0);
  // Stopping flushes the open window (flushOnStop); whether the hub still delivers it is the second test.
  await hub.stop();

  const h = Historian.open(join(d.path, 'history.sqlite'));
  t.after(() => h.close());
  const rows = h.queryReadings({ device: '2d1a', measurement: 'temperature' });
  replayed = { rows, expected };
  assert.ok(rows.length >= expected.size - 1);
  assert.equal(h.countReadings({}), rows.length);
  for (const r of rows) assert.equal(r.value, expected.get(r.ts), new Date(r.ts).toISOString());
  assert.equal(rows[0]?.unit, 'Cel');

  // By hand, from the log:
  const at = (iso: string) => rows.find((r) => r.ts === Date.parse(iso))?.value;
  // 00:00:09 332, 00:04:09 331, 00:08:09 331, 00:12:09 330 (1/16 °C) → median of four = (331 + 331) / 2 / 16
  assert.equal(at('2016-01-01T00:00:00Z'), 20.6875);
  // 00:16:09 329, 00:20:09 329, 00:26:09 327 → 329 / 16
  assert.equal(at('2016-01-01T00:15:00Z'), 20.5625);
  // 15:32:11 332, 15:36:11 331 heard twice, 15:39:15 329, 15:44:15 329: without its duplicate the median is
  // (331 + 329) / 2 / 16 = 20.625, not 331 / 16
  assert.equal(at('2016-01-19T15:30:00Z'), 20.625);
  // 08:34:39 345, 08:40:08 343 heard twice → (345 + 343) / 2 / 16
  assert.equal(at('2016-02-04T08:30:00Z'), 21.5);
});

// The window open at shutdown is emitted by the stage's stop() through ctx.emit; the hub waits for it to reach the
// outboxes before it drains the sinks.
test('the window open at shutdown reaches the historian', () => {
  assert.ok(replayed, 'the replay test ran');
  const { rows, expected } = replayed;
  assert.equal(rows.length, expected.size);
  // The last window, 23:46:39 374 and 23:54:43 374 (1/16 °C)
  assert.equal(rows.find((r) => r.ts === Date.parse('2016-06-30T23:45:00Z'))?.value, 23.375);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { livemapStage } from '../../src/pipeline/stages/livemap/index.js';
import { severityStage } from '../../src/pipeline/stages/severity/index.js';
import { MIN, T0, event, events, make, problems, reading, readings } from './harness.js';

// ---------------------------------------------------------------- severity

test('severity: an event only when the level changes, with hysteresis at each edge', () => {
  const { stage } = make(severityStage, { measurement: 'temperature', warning: { above: 30 }, danger: { above: 35 }, hysteresis: 1 });
  const levels: string[] = [];
  const feed = (v: number) => {
    for (const e of events(stage.process(reading('a', T0, { temperature: v }, { units: { temperature: 'Cel' } })))) levels.push(`${v}:${String(e.data?.['level'])}`);
  };
  // Up: at the threshold exactly. Down: only once more than the hysteresis below it.
  for (const v of [29.9, 30, 31, 29.5, 29, 28.9, 30, 35, 34, 33.9, 35, 20]) feed(v);
  assert.deepEqual(levels, ['30:WARNING', '28.9:NORMAL', '30:WARNING', '35:DANGER', '33.9:WARNING', '35:DANGER', '20:NORMAL']);
});

test('severity: the event\'s shape; readings pass only with passReadings; other devices are separate', () => {
  const { stage } = make(severityStage, { measurement: 't', danger: { below: 5 }, warning: { below: 10 } });
  assert.deepEqual(stage.process(reading('a', T0, { t: 12 })), []);
  const out = stage.process(reading('a', T0 + MIN, { t: 4.5 }, { units: { t: 'Cel' } }));
  assert.deepEqual(out, [
    {
      kind: 'event',
      type: 'severity.changed',
      ts: T0 + MIN,
      severity: 'critical',
      device: 'a',
      message: 'a t 4.5 Cel: DANGER (was NORMAL)',
      data: { measurement: 't', value: 4.5, level: 'DANGER', previous: 'NORMAL', unit: 'Cel' },
    },
  ]);
  assert.equal(events(stage.process(reading('b', T0, { t: 8 })))[0]?.severity, 'warning');
  assert.deepEqual(stage.process(reading('a', T0, { h: 8 })), []); // no such value: no change

  const p = make(severityStage, { measurement: 't', warning: { above: 1 }, passReadings: true });
  const both = p.stage.process(reading('a', T0, { t: 2 }));
  assert.deepEqual(both.map((m) => m.kind), ['reading', 'event']);
  const e = event();
  assert.deepEqual(p.stage.process(e), [e]);
});

test('severity: config problems', () => {
  assert.deepEqual(problems(severityStage, { measurement: 't' }), [': give warning thresholds, danger thresholds or both']);
  assert.deepEqual(problems(severityStage, { measurement: 't', warning: { above: 30 }, danger: { above: 25 } }), [
    'danger.above: danger.above (25) must not be below warning.above (30)',
  ]);
});

test('severity: past maxKeys the least recently seen device is forgotten (counted) and starts from NORMAL again', () => {
  const { stage, ctx } = make(severityStage, { measurement: 't', warning: { above: 1 } });
  for (let i = 0; i < 100_000; i++) stage.process(reading(`d${i}`, T0, { t: 2 }));
  assert.equal(ctx.drops.get('key_evicted'), undefined);
  assert.deepEqual(stage.process(reading('d0', T0, { t: 2 })), []); // still WARNING: no event
  stage.process(reading('new', T0, { t: 2 })); // d1 is forgotten
  assert.equal(ctx.drops.get('key_evicted'), 1);
  assert.equal(events(stage.process(reading('d1', T0, { t: 2 }))).length, 1); // raised again
});

// ---------------------------------------------------------------- livemap

test('livemap: periodic snapshots of the latest value per device and measurement, with ages; old values leave', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(livemapStage, { every: '1m', maxAge: '5m', units: true }, clock);
  assert.deepEqual(stage.process(reading('a', T0, { t: 20, h: 50 }, { units: { t: 'Cel' } })), []);
  clock.advance(30_000);
  stage.process(reading('b', clock.now(), { t: 18 }));
  stage.process(reading('a', clock.now() - 40_000, { t: 19 })); // older than what the map has: ignored
  clock.advance(30_000); // 00:01:00
  const [s1] = events(ctx.emitted);
  assert.equal(s1?.type, 'livemap.snapshot');
  assert.equal(s1?.ts, T0 + MIN);
  assert.equal(s1?.message, '3 live value(s) from 2 device(s)');
  assert.deepEqual(s1?.data, {
    'a/t': 20,
    'a/t/ageMs': 60_000,
    'a/t/unit': 'Cel',
    'a/h': 50,
    'a/h/ageMs': 60_000,
    'b/t': 18,
    'b/t/ageMs': 30_000,
  });
  clock.advance(4 * MIN); // 00:05:00: a's values are exactly maxAge old, which is still live
  assert.deepEqual(events(ctx.emitted).at(-1)?.data, {
    'a/t': 20,
    'a/t/ageMs': 5 * MIN,
    'a/t/unit': 'Cel',
    'a/h': 50,
    'a/h/ageMs': 5 * MIN,
    'b/t': 18,
    'b/t/ageMs': 4 * MIN + 30_000,
  });
  clock.advance(MIN);
  assert.deepEqual(events(ctx.emitted).at(-1)?.data, {});
  assert.equal(events(ctx.emitted).at(-1)?.message, '0 live value(s) from 0 device(s)');
  stage.stop?.();
  const n = ctx.emitted.length;
  clock.advance(10 * MIN);
  assert.equal(ctx.emitted.length, n);
});

test('livemap: onChange snapshots, at most one per minInterval; an unchanged value is not a change; expiry is', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(livemapStage, { onChange: true, minInterval: '10s', maxAge: '1m' }, clock);
  assert.equal(events(stage.process(reading('a', T0, { t: 20 }))).length, 1);
  clock.advance(1000);
  assert.deepEqual(stage.process(reading('a', clock.now(), { t: 21 })), []); // held back
  assert.deepEqual(stage.process(reading('a', clock.now(), { t: 22 })), []);
  clock.advance(9000);
  assert.deepEqual(events(ctx.emitted).map((e) => e.data?.['a/t']), [22]);
  clock.advance(5000);
  assert.deepEqual(stage.process(reading('a', clock.now(), { t: 22 })), []); // same value
  clock.advance(20_000);
  assert.equal(ctx.emitted.length, 1);
  clock.advance(MIN);
  assert.deepEqual(events(ctx.emitted).at(-1)?.data, {}); // expired: the map changed
  stage.stop?.();
});

test('livemap: readings are consumed, events pass; past maxKeys new entries are refused (counted)', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(livemapStage, { every: '1m' }, clock);
  const e = event();
  assert.deepEqual(stage.process(e), [e]);
  for (let i = 0; i < 100_000; i++) stage.process(reading(`d${i}`, T0, { t: i }));
  assert.equal(ctx.drops.get('max_keys'), 90_000); // default 10,000 entries
  stage.process(reading('d0', T0, { t: -1 })); // known entries still update
  clock.advance(MIN);
  const snap = events(ctx.emitted)[0];
  assert.equal(Object.keys(snap?.data ?? {}).length, 20_000);
  assert.equal(snap?.data?.['d0/t'], -1);
  stage.stop?.();
  assert.deepEqual(problems(livemapStage, {}), [': give every, onChange: true, or both']);
});

test('livemap: readings older than maxAge never enter', () => {
  const clock = new ManualClock(T0 + 2 * 3_600_000);
  const { stage, ctx } = make(livemapStage, { onChange: true }, clock);
  assert.deepEqual(readings(stage.process(reading('a', T0, { t: 1 }))), []);
  assert.equal(ctx.drops.get('too_old'), 1);
  stage.stop?.();
});

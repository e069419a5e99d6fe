import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { windowStage } from '../../src/pipeline/stages/window/index.js';
import { MIN, T0, event, make, problems, reading, readings } from './harness.js';

const LIVE = () => new ManualClock(T0);
/** A clock far after the readings, as when a log of 2016 is replayed today. */
const REPLAY = () => new ManualClock(Date.parse('2030-01-01T00:00:00Z'));

const vals = (ms: readonly { ts: number; values: unknown }[]) => ms.map((m) => [new Date(m.ts).toISOString().slice(11, 19), m.values]);

test('window: a replay closes each window when a reading past its end + grace arrives (event time)', () => {
  const { stage, ctx } = make(windowStage, { every: '15m', op: 'mean', grace: '5s' }, REPLAY());
  assert.deepEqual(stage.process(reading('a', T0 + 1 * MIN, { temperature: 20 }, { units: { temperature: 'Cel' } })), []);
  assert.deepEqual(stage.process(reading('a', T0 + 7 * MIN, { temperature: 22 })), []);
  assert.deepEqual(stage.process(reading('a', T0 + 14 * MIN, { temperature: 21 })), []);
  // In the next window but inside the grace: the first window is still open.
  assert.deepEqual(stage.process(reading('a', T0 + 15 * MIN + 4_999, { temperature: 30 })), []);
  const out = stage.process(reading('a', T0 + 15 * MIN + 5_000, { temperature: 31 }));
  assert.deepEqual(vals(readings(out)), [['00:00:00', { temperature: 21 }]]);
  assert.deepEqual(readings(out)[0]!.units, { temperature: 'Cel' });
  assert.equal(readings(out)[0]!.device, 'a');
  assert.deepEqual(ctx.emitted, []);
});

test('window: boundaries: a reading at exactly the end belongs to the next window', () => {
  const { stage } = make(windowStage, { every: '15m', op: 'count', grace: 0 }, REPLAY());
  stage.process(reading('a', T0 + 15 * MIN - 1, { n: 1 }));
  const out = stage.process(reading('a', T0 + 15 * MIN, { n: 1 }));
  assert.deepEqual(vals(readings(out)), [['00:00:00', { n: 1 }]]);
  assert.deepEqual(readings(out)[0]!.units, { n: 'count' });
  const next = stage.process(reading('a', T0 + 30 * MIN, { n: 1 }));
  assert.deepEqual(vals(readings(next)), [['00:15:00', { n: 1 }]]);
});

test('window: live data: the clock closes a window at end + grace, through ctx.emit', () => {
  const clock = LIVE();
  const { stage, ctx } = make(windowStage, { every: '15m', op: 'max', grace: '5s' }, clock);
  clock.advance(2 * MIN);
  stage.process(reading('a', clock.now(), { temperature: 20 }));
  clock.advance(5 * MIN);
  stage.process(reading('a', clock.now(), { temperature: 23 }));
  clock.advance(8 * MIN + 4_999); // 00:15:04.999
  assert.deepEqual(ctx.emitted, []);
  clock.advance(1);
  assert.deepEqual(vals(readings(ctx.emitted)), [['00:00:00', { temperature: 23 }]]);
  // A device silent ever after: nothing more, and no timer left running.
  clock.advance(60 * MIN);
  assert.equal(ctx.emitted.length, 1);
});

test('window: a late reading inside the grace joins its window; after it, drop counts it', () => {
  const clock = LIVE();
  const { stage, ctx } = make(windowStage, { every: '15m', op: 'sum', grace: '30s' }, clock);
  clock.advance(14 * MIN);
  stage.process(reading('a', clock.now(), { n: 1 }));
  clock.advance(MIN + 20_000); // 00:15:20, in the grace
  stage.process(reading('a', T0 + 14 * MIN + 59_000, { n: 10 }));
  clock.advance(10_000); // 00:15:30: closes
  assert.deepEqual(vals(readings(ctx.emitted)), [['00:00:00', { n: 11 }]]);
  stage.process(reading('a', T0 + 14 * MIN + 59_500, { n: 100 }));
  assert.equal(ctx.drops.get('late'), 1);
  assert.equal(ctx.emitted.length, 1);
});

test('window: late: correct re-emits the window with the late reading and a revision, until correctFor', () => {
  const { stage, ctx } = make(windowStage, { every: '15m', ops: ['count', 'median'], grace: 0, late: 'correct', correctFor: '30m' }, REPLAY());
  stage.process(reading('a', T0 + MIN, { t: 20 }));
  stage.process(reading('a', T0 + 2 * MIN, { t: 22 }));
  const first = stage.process(reading('a', T0 + 16 * MIN, { t: 1 }));
  assert.deepEqual(vals(readings(first)), [['00:00:00', { t_count: 2, t_median: 21 }]]);
  const fix = stage.process(reading('a', T0 + 3 * MIN, { t: 30 }));
  assert.deepEqual(vals(readings(fix)), [['00:00:00', { t_count: 3, t_median: 22, revision: 1 }]]);
  const fix2 = stage.process(reading('a', T0 + 4 * MIN, { t: 31 }));
  assert.deepEqual(vals(readings(fix2)), [['00:00:00', { t_count: 4, t_median: 26, revision: 2 }]]);
  // 00:15 + 30m: the first window takes no more corrections.
  const closing = stage.process(reading('a', T0 + 45 * MIN, { t: 2 }));
  assert.deepEqual(vals(readings(closing)), [['00:15:00', { t_count: 1, t_median: 1 }]]);
  assert.deepEqual(stage.process(reading('a', T0 + 5 * MIN, { t: 40 })), []);
  assert.equal(ctx.drops.get('too_late'), 1);
});

test('window: every aggregate, with `last` the latest by time rather than by arrival', () => {
  const { stage } = make(windowStage, { every: '1h', ops: ['mean', 'median', 'min', 'max', 'count', 'sum', 'last'], grace: 0 }, REPLAY());
  stage.process(reading('a', T0 + 10 * MIN, { v: 4 }, { units: { v: 'W' } }));
  stage.process(reading('a', T0 + 30 * MIN, { v: 1 }));
  stage.process(reading('a', T0 + 20 * MIN, { v: 10 })); // out of order, not late
  const [w] = readings(stage.process(reading('a', T0 + 60 * MIN, { v: 0 })));
  assert.deepEqual(w?.values, { v_mean: 5, v_median: 4, v_min: 1, v_max: 10, v_count: 3, v_sum: 15, v_last: 1 });
  assert.deepEqual(w?.units, { v_mean: 'W', v_median: 'W', v_min: 'W', v_max: 'W', v_count: 'count', v_sum: 'W', v_last: 'W' });
});

test('window: devices and measurements are separate series; measurements narrows; non-numbers are ignored', () => {
  const { stage, ctx } = make(windowStage, { every: '15m', op: 'mean', grace: 0, measurements: ['t', 'h'] }, REPLAY());
  stage.process(reading('a', T0, { t: 10, h: 50, light: 3, label: 'x' }));
  stage.process(reading('b', T0, { t: 30 }));
  stage.process(reading('a', T0 + MIN, { t: 20 }));
  stage.process(reading('a', T0 + 2 * MIN, { label: 'y' }));
  assert.equal(ctx.drops.get('not_aggregated'), 1);
  const outA = readings(stage.process(reading('a', T0 + 15 * MIN, { t: 0 })));
  assert.deepEqual(outA.map((r) => [r.device, r.values]), [['a', { t: 15, h: 50 }]]);
  // b's window waits for b's own readings (or the clock): one device's watermark does not close another's windows.
  const outB = readings(stage.process(reading('b', T0 + 15 * MIN, { t: 0 })));
  assert.deepEqual(outB.map((r) => [r.device, r.values]), [['b', { t: 30 }]]);
});

test('window: events pass unchanged; a reading stamped in the future is refused', () => {
  const clock = LIVE();
  const { stage, ctx } = make(windowStage, { every: '15m' }, clock);
  const e = event();
  assert.deepEqual(stage.process(e), [e]);
  assert.deepEqual(stage.process(reading('a', T0 + 2 * 3_600_000, { t: 1 })), []);
  assert.equal(ctx.drops.get('future'), 1);
  // The bad reading did not move the watermark: a normal one is not late.
  stage.process(reading('a', T0, { t: 1 }));
  assert.equal(ctx.drops.get('late'), undefined);
});

test('window: stop() emits the open windows (flushOnStop) and clears the timer', () => {
  const clock = LIVE();
  const { stage, ctx } = make(windowStage, { every: '15m', op: 'last' }, clock);
  stage.process(reading('a', T0 + MIN, { t: 1 }));
  stage.process(reading('b', T0 + MIN, { t: 2 }));
  stage.stop?.();
  assert.deepEqual(readings(ctx.emitted).map((r) => [r.device, r.values]), [['a', { t: 1 }], ['b', { t: 2 }]]);
  clock.advance(3_600_000);
  assert.equal(ctx.emitted.length, 2);
  assert.deepEqual(stage.process(reading('a', clock.now(), { t: 1 })), []);

  const quiet = make(windowStage, { every: '15m', flushOnStop: false }, LIVE());
  quiet.stage.process(reading('a', T0 + MIN, { t: 1 }));
  quiet.stage.stop?.();
  quiet.clock.advance(3_600_000);
  assert.deepEqual(quiet.ctx.emitted, []);
});

test('window: maxKeys refuses new series past the limit (counted) and frees them as windows close', () => {
  const { stage, ctx } = make(windowStage, { every: '15m', grace: 0, maxKeys: 2 }, REPLAY());
  stage.process(reading('a', T0, { t: 1, h: 2 }));
  stage.process(reading('b', T0, { t: 1 }));
  assert.equal(ctx.drops.get('max_keys'), 1);
  // a's window closes: its two series are released, so b gets room.
  assert.equal(readings(stage.process(reading('a', T0 + 15 * MIN, {}))).length, 1);
  stage.process(reading('b', T0 + MIN, { t: 3 }));
  const out = readings(stage.process(reading('b', T0 + 15 * MIN, {})));
  assert.deepEqual(out.map((r) => r.values), [{ t: 3 }]);
});

test('window: 100,000 series at the default limit; the next is refused; memory is released as they close', () => {
  const clock = LIVE();
  const { stage, ctx } = make(windowStage, { every: '1m', grace: 0 }, clock);
  for (let i = 0; i < 100_000; i++) stage.process(reading(`d${i}`, T0, { t: i }));
  assert.equal(ctx.drops.get('max_keys'), undefined);
  stage.process(reading('one-too-many', T0, { t: 1 }));
  assert.equal(ctx.drops.get('max_keys'), 1);
  clock.advance(MIN);
  assert.equal(ctx.emitted.length, 100_000);
  // Every device is idle now; the oldest one's watermark is forgotten to make room.
  stage.process(reading('late-comer', T0 + MIN, { t: 1 }));
  assert.equal(ctx.drops.get('max_keys'), 1);
  assert.equal(ctx.drops.get('key_evicted'), 1);
  stage.stop?.();
});

test('window: config problems', () => {
  assert.deepEqual(problems(windowStage, { every: '15m', op: 'mean', ops: ['max'] }), ['ops: give either op or ops, not both']);
  assert.deepEqual(problems(windowStage, { every: '0s' }), ['every: must be more than 0']);
  assert.deepEqual(problems(windowStage, { every: '15 minutes' }), [
    'every: "15 minutes" is not a duration: write e.g. "15m", "30s", "1h", "500ms", "1d", or a number of ms',
  ]);
  assert.equal(problems(windowStage, { every: '15m', op: 'average' }).length, 1);
  assert.deepEqual(problems(windowStage, { every: '1m', late: 'correct', correctFor: '1d' }), [
    'correctFor: at most 1000 windows can be kept for corrections: shorten correctFor or lengthen every',
  ]);
});

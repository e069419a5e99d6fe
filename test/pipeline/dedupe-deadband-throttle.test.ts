import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { deadbandStage } from '../../src/pipeline/stages/deadband/index.js';
import { dedupeStage } from '../../src/pipeline/stages/dedupe/index.js';
import { throttleStage } from '../../src/pipeline/stages/throttle/index.js';
import { MIN, T0, event, make, problems, reading, readings } from './harness.js';

// ---------------------------------------------------------------- dedupe

test('dedupe: the second transmission of a frame (same device and seq, within the window) is dropped and counted', () => {
  const { stage, ctx } = make(dedupeStage, { window: '1m' });
  assert.equal(stage.process(reading('2d1a', T0, { t: 20.5 }, { seq: 0 })).length, 1);
  assert.equal(stage.process(reading('2d1a', T0, { t: 20.5 }, { seq: 0 })).length, 0); // exact copy
  assert.equal(stage.process(reading('2d1a', T0 + 1000, { t: 20.5 }, { seq: 0 })).length, 0); // heard again 1 s later
  assert.equal(stage.process(reading('819c', T0, { t: 20.5 }, { seq: 0 })).length, 1); // another device
  assert.equal(stage.process(reading('2d1a', T0 + 2 * MIN, { t: 20.4 }, { seq: 1 })).length, 1);
  // The 3-bit sequence number wraps: seq 0 again 16 minutes later is a new frame.
  assert.equal(stage.process(reading('2d1a', T0 + 16 * MIN, { t: 20 }, { seq: 0 })).length, 1);
  assert.equal(ctx.drops.get('duplicate'), 2);
});

test('dedupe: readings without a seq and events pass; by content compares time and values', () => {
  const { stage } = make(dedupeStage, {});
  const r = reading('a', T0, { t: 1 });
  assert.deepEqual(stage.process(r), [r]);
  assert.deepEqual(stage.process(r), [r]);
  const e = event();
  assert.deepEqual(stage.process(e), [e]);
  const c = make(dedupeStage, { by: 'content' });
  assert.equal(c.stage.process(reading('a', T0, { t: 1, h: 2 })).length, 1);
  assert.equal(c.stage.process(reading('a', T0, { h: 2, t: 1 })).length, 0);
  assert.equal(c.stage.process(reading('a', T0, { t: 1, h: 3 })).length, 1);
  assert.equal(c.stage.process(reading('a', T0 + 1, { t: 1, h: 2 })).length, 1);
});

test('dedupe: past maxKeys the least recently heard device is forgotten first (counted); 100,000 keys stay bounded', () => {
  const { stage, ctx } = make(dedupeStage, { maxKeys: 2 });
  stage.process(reading('a', T0, {}, { seq: 1 }));
  stage.process(reading('b', T0, {}, { seq: 1 }));
  stage.process(reading('c', T0, {}, { seq: 1 })); // a is forgotten
  assert.equal(ctx.drops.get('key_evicted'), 1);
  assert.equal(stage.process(reading('a', T0, {}, { seq: 1 })).length, 1); // a's repeat now passes
  assert.equal(stage.process(reading('c', T0, {}, { seq: 1 })).length, 0);

  const big = make(dedupeStage, {});
  for (let i = 0; i < 100_000; i++) big.stage.process(reading(`d${i}`, T0, {}, { seq: 1 }));
  assert.equal(big.ctx.drops.get('key_evicted'), undefined);
  assert.equal(big.stage.process(reading('d99999', T0, {}, { seq: 1 })).length, 0);
  big.stage.process(reading('new', T0, {}, { seq: 1 }));
  assert.equal(big.ctx.drops.get('key_evicted'), 1);
  assert.equal(big.stage.process(reading('d0', T0, {}, { seq: 1 })).length, 1); // the oldest went
});

// ---------------------------------------------------------------- deadband

test('deadband: a value passes only when it moved more than the absolute deadband; maxSilence passes it anyway', () => {
  const { stage, ctx } = make(deadbandStage, { absolute: 0.5, maxSilence: '10m' });
  const out = (ts: number, t: number) => readings(stage.process(reading('a', T0 + ts, { t }))).map((r) => r.values['t']);
  assert.deepEqual(out(0, 20), [20]); // first value
  assert.deepEqual(out(MIN, 20.5), []); // exactly the deadband: not more
  assert.deepEqual(out(2 * MIN, 20.6), [20.6]);
  assert.deepEqual(out(3 * MIN, 20.2), []); // compared with the last value passed, 20.6
  assert.deepEqual(out(4 * MIN, 20.0), [20.0]);
  assert.deepEqual(out(13 * MIN, 20.1), []);
  assert.deepEqual(out(14 * MIN, 20.1), [20.1]); // 10 minutes since 20.0 was passed
  assert.equal(ctx.drops.get('deadband'), 3);
});

test('deadband: relative amounts, per device and measurement; other values and strings', () => {
  const { stage } = make(deadbandStage, { relative: 0.1, measurements: ['p', 'state'] });
  assert.deepEqual(readings(stage.process(reading('a', T0, { p: 100, state: 'on', light: 1 }))).map((r) => r.values), [{ p: 100, state: 'on', light: 1 }]);
  assert.deepEqual(readings(stage.process(reading('a', T0, { p: 109, state: 'on', light: 1 }))).map((r) => r.values), [{ light: 1 }]);
  assert.deepEqual(readings(stage.process(reading('a', T0, { p: 111, state: 'off' }))).map((r) => r.values), [{ p: 111, state: 'off' }]);
  assert.deepEqual(readings(stage.process(reading('b', T0, { p: 100 }))).map((r) => r.values), [{ p: 100 }]);
  assert.deepEqual(stage.process(reading('b', T0, { p: 101 })), []);
  assert.deepEqual(problems(deadbandStage, {}), [': give absolute, relative or both']);
});

test('deadband: past maxKeys the least recently seen pair is forgotten (counted) and its next value passes', () => {
  const { stage, ctx } = make(deadbandStage, { absolute: 1, maxKeys: 100_000 });
  for (let i = 0; i < 100_000; i++) stage.process(reading(`d${i}`, T0, { t: 1 }));
  assert.equal(ctx.drops.get('key_evicted'), undefined);
  assert.deepEqual(stage.process(reading('d0', T0, { t: 1 })), []); // still known; d0 is now the most recent
  stage.process(reading('new', T0, { t: 1 })); // d1 goes
  assert.equal(ctx.drops.get('key_evicted'), 1);
  assert.equal(stage.process(reading('d1', T0, { t: 1 })).length, 1);
  assert.deepEqual(stage.process(reading('d0', T0, { t: 1 })), []);
});

// ---------------------------------------------------------------- throttle

test('throttle drop: at most max per aligned interval per device, the rest counted', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(throttleStage, { max: 2, interval: '1m' }, clock);
  const pass = (d: string) => stage.process(reading(d, clock.now(), { n: 1 })).length;
  assert.deepEqual([pass('a'), pass('a'), pass('a'), pass('b')], [1, 1, 0, 1]);
  clock.advance(59_999);
  assert.equal(pass('a'), 0);
  clock.advance(1);
  assert.deepEqual([pass('a'), pass('a'), pass('a')], [1, 1, 0]);
  assert.equal(ctx.drops.get('throttled'), 3);
  assert.deepEqual(ctx.emitted, []);
});

test('throttle latest-wins: the last of the excess goes out when the next interval starts', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(throttleStage, { max: 1, interval: '1m', mode: 'latest-wins', key: 'route' }, clock);
  assert.equal(stage.process(reading('a', T0, { n: 1 })).length, 1);
  assert.deepEqual(stage.process(reading('b', T0, { n: 2 })), []);
  clock.advance(10_000);
  assert.deepEqual(stage.process(reading('a', T0 + 10_000, { n: 3 })), []);
  assert.equal(ctx.drops.get('throttled'), 1); // n: 2 was replaced
  clock.advance(50_000);
  assert.deepEqual(readings(ctx.emitted).map((r) => r.values), [{ n: 3 }]);
  // It used the new interval's budget.
  assert.deepEqual(stage.process(reading('a', clock.now(), { n: 4 })), []);
  stage.stop?.();
  assert.deepEqual(readings(ctx.emitted).map((r) => r.values), [{ n: 3 }, { n: 4 }]); // the held one is sent, not lost
  clock.advance(5 * MIN);
  assert.equal(ctx.emitted.length, 2);
});

test('throttle: events count against their device\'s budget too', () => {
  const { stage } = make(throttleStage, { interval: '1h' }, new ManualClock(T0));
  assert.equal(stage.process(event({ device: 'a' })).length, 1);
  assert.equal(stage.process(event({ device: 'a' })).length, 0);
  assert.equal(stage.process(event({ device: 'b' })).length, 1);
});

test('throttle: past maxKeys in one interval, messages of further keys are dropped (counted); 100,000 keys', () => {
  const clock = new ManualClock(T0);
  const { stage, ctx } = make(throttleStage, { interval: '1m' }, clock);
  for (let i = 0; i < 100_000; i++) stage.process(reading(`d${i}`, T0, { n: 1 }));
  assert.equal(ctx.drops.get('max_keys'), undefined);
  assert.deepEqual(stage.process(reading('new', T0, { n: 1 })), []);
  assert.equal(ctx.drops.get('max_keys'), 1);
  clock.advance(MIN); // a new interval forgets every key
  assert.equal(stage.process(reading('new', clock.now(), { n: 1 })).length, 1);
  assert.deepEqual(problems(throttleStage, { interval: 0 }), ['interval: must be more than 0']);
});

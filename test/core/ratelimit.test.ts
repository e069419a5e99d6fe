import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { RateLimiter } from '../../src/core/ratelimit.js';

const opts = { burst: 3, perSecond: 1, failuresBeforeBackoff: 2, backoffMs: 1000, maxBackoffMs: 8000 };

test('attempts beyond the burst are refused until tokens come back, per key', () => {
  const clock = new ManualClock(0);
  const rl = new RateLimiter(clock, opts);
  for (let i = 0; i < 3; i++) assert.equal(rl.attempt('a').ok, true);
  const d = rl.attempt('a');
  assert.equal(d.ok, false);
  assert.equal(!d.ok && d.reason, 'rate');
  assert.equal(rl.attempt('b').ok, true, 'another address is not affected');
  clock.advance(1000);
  assert.equal(rl.attempt('a').ok, true);
  assert.equal(rl.attempt('a').ok, false);
});

test('failures back the key off, doubling up to the cap; a success resets', () => {
  const clock = new ManualClock(0);
  const rl = new RateLimiter(clock, { ...opts, burst: 100, perSecond: 100 });
  rl.failure('a');
  assert.equal(rl.attempt('a').ok, true, 'one failure is not yet a backoff');
  rl.failure('a');
  const d = rl.attempt('a');
  assert.deepEqual(d, { ok: false, retryAfterMs: 1000, reason: 'backoff' });
  clock.advance(1000);
  rl.failure('a');
  assert.equal(!rl.attempt('a').ok && 'refused', 'refused');
  clock.advance(1999);
  assert.equal(rl.attempt('a').ok, false);
  clock.advance(1);
  assert.equal(rl.attempt('a').ok, true);
  for (let i = 0; i < 20; i++) rl.failure('a');
  const capped = rl.attempt('a');
  assert.equal(!capped.ok && capped.retryAfterMs, 8000);
  rl.success('a');
  assert.equal(rl.attempt('a').ok, true);
});

test('memory is bounded: the least recently touched key is forgotten first', () => {
  const clock = new ManualClock(0);
  const rl = new RateLimiter(clock, { ...opts, maxKeys: 2 });
  rl.failure('a');
  rl.failure('a');
  rl.attempt('b');
  rl.attempt('c');
  assert.equal(rl.size, 2);
  assert.equal(rl.attempt('a').ok, true, 'a was forgotten');
});

test('check reports a backoff without taking an attempt, so good requests never drain the bucket', () => {
  const clock = new ManualClock(0);
  const rl = new RateLimiter(clock, opts);
  for (let i = 0; i < 10; i++) assert.deepEqual(rl.check('a'), { ok: true });
  assert.equal(rl.size, 0, 'checking remembers nothing');
  rl.failure('a');
  rl.failure('a');
  assert.deepEqual(rl.check('a'), { ok: false, retryAfterMs: 1000, reason: 'backoff' });
  assert.deepEqual(rl.check('b'), { ok: true });
  clock.advance(1000);
  assert.deepEqual(rl.check('a'), { ok: true });
  // The bucket is untouched by the checks: a full burst is still there.
  for (let i = 0; i < 3; i++) assert.equal(rl.attempt('a').ok, true);
});

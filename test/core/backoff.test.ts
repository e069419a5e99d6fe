// backoffMs: exponential with equal jitter, within [max(min, step/2), step], capped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs } from '../../src/core/backoff.js';

test('backoff doubles per attempt, jitters within the upper half of its step, and stays within min and max', () => {
  const low = () => 0;
  const high = () => 0.999999;
  assert.equal(backoffMs(0, 100, 10_000, low), 100); // half of 100 is below min: min
  assert.equal(backoffMs(0, 100, 10_000, high), 100);
  assert.equal(backoffMs(3, 100, 10_000, low), 400); // step 800
  assert.equal(backoffMs(3, 100, 10_000, high), 800);
  assert.equal(backoffMs(10, 100, 10_000, low), 5_000); // capped step 10,000
  assert.equal(backoffMs(10, 100, 10_000, high), 10_000);
  assert.equal(backoffMs(1_000, 100, 10_000, high), 10_000); // huge attempts do not overflow
  for (let i = 0; i < 200; i++) {
    const d = backoffMs(i % 12, 250, 30_000);
    assert.ok(d >= 250 && d <= 30_000, `${d}`);
  }
});

// What the gate learns from the rhythm of devices' messages (src/devices/cadence.ts), on explicit times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CadenceLearner, FrameCounters } from '../../src/devices/cadence.js';

test('cadence: factor × the median gap after `samples` gaps, within bounds; bursts skipped; moved only by more than a fifth', () => {
  const l = new CadenceLearner({ factor: 3, samples: 3, minMs: 1000, maxMs: 3_600_000 });
  const at = [0, 60_000, 60_200 /* a burst */, 120_000, 180_000];
  assert.deepEqual(at.map((t) => l.observe('d', t, undefined)), [undefined, undefined, undefined, undefined, 180_000]);
  assert.equal(l.learned('d'), 180_000);
  // A slightly different gap does not move it; a slower cadence does.
  assert.equal(l.observe('d', 245_000, undefined), undefined);
  for (const t of [365_000, 485_000, 605_000, 725_000]) l.observe('d', t, undefined);
  assert.equal(l.learned('d'), 360_000);
  // Bounds: a device reporting every 2 s is not called silent after 6 s when minMs says 1 min.
  const b = new CadenceLearner({ factor: 3, samples: 2, minMs: 60_000, maxMs: 100_000 });
  [0, 2000, 4000].forEach((t) => b.observe('x', t, undefined));
  assert.equal(b.learned('x'), 60_000);
  // What was learned before (the registry's) is the base: the same cadence writes nothing new.
  const again = new CadenceLearner({ factor: 3, samples: 2, minMs: 1000, maxMs: 3_600_000 });
  assert.deepEqual([0, 60_000, 120_000].map((t) => again.observe('d', t, 180_000)), [undefined, undefined, undefined]);
  again.forget('d');
  assert.equal(again.learned('d'), undefined);
});

test('frame counters: a repeat is a duplicate, a gap counts lost uplinks, a fall is a reset, a join starts again', () => {
  const f = new FrameCounters();
  assert.deepEqual(f.observe('d', 100), { lost: 0 });
  assert.equal(f.observe('d', 100), 'duplicate');
  assert.deepEqual(f.observe('d', 104), { lost: 3 });
  assert.equal(f.observe('d', 102), 'duplicate', 'a little below the last: late');
  assert.deepEqual(f.observe('d', 2), { lost: 0 }, 'far below (or under 16): a reset');
  f.joined('d');
  assert.deepEqual(f.observe('d', 0), { lost: 0 });
  assert.deepEqual(f.counts('d'), { lastFCnt: 0, lost: 3, duplicates: 2, resets: 1 });
  assert.deepEqual(f.observe('d', 5), { lost: 4 });
  assert.equal(f.counts('other'), undefined);
});

// The runner's window: several batches in flight to one sink, answered in any order, acknowledged in order; a
// failure in the middle sends again only what was not acknowledged, so the sink sees at most one window twice.
// The sink is a real Sink whose answers the test releases one by one; the outbox is a real journal lane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SinkError, type Sink } from '../../src/core/driver.js';
import type { Message, Reading } from '../../src/core/types.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { driverContext, tempDir } from '../helpers/context.js';
import { journalLane } from '../helpers/journal.js';
import { until } from '../helpers/until.js';

const r = (n: number): Reading => ({ kind: 'reading', device: 'd', ts: n, seq: n, values: { n }, authenticated: false, source: { input: 'i', decoder: 'json' } });
const seqOf = (m: Message) => (m.kind === 'reading' ? m.seq! : -1);

/** Holds every write until the test answers it. */
class HeldSink implements Sink {
  readonly pending: Array<{ batch: readonly Message[]; ok: () => void; fail: (e: Error) => void }> = [];
  readonly received: number[] = [];
  open() {
    return Promise.resolve();
  }
  write(batch: readonly Message[]): Promise<void> {
    this.received.push(...batch.map(seqOf));
    return new Promise((ok, fail) => this.pending.push({ batch, ok, fail }));
  }
  close() {
    return Promise.resolve();
  }
}

const opts = {
  type: 'sqlite' as const,
  sync: 'full' as const,
  maxItems: 10_000,
  maxBytes: 1 << 30,
  overflow: 'drop-oldest' as const,
  batchSize: 10,
  lingerMs: 0,
  retryMinMs: 10,
  retryMaxMs: 20, failingAfterMs: 300_000,
  window: 4,
};

test('window: up to 4 batches in flight; answers out of order are acknowledged in order; a failure resends only the unacknowledged', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const sink = new HeldSink();
  const outbox = await journalLane(join(d.path, 'journal.sqlite'), opts);
  const runner = new SinkRunner('s', 'held', sink, outbox, opts, driverContext());
  t.after(() => runner.stop(100));
  await runner.enqueue(Array.from({ length: 100 }, (_, i) => r(i)));
  runner.start();
  await until(() => sink.pending.length === 4, { what: 'four batches in flight' });
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(sink.pending.length, 4, 'no more than the window');
  assert.deepEqual(sink.received, Array.from({ length: 40 }, (_, i) => i), 'in order');

  // The second batch answers first: nothing is acknowledged until the first does.
  sink.pending[1]!.ok();
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(runner.status().backlog, 100);
  sink.pending[0]!.ok();
  await until(() => runner.status().delivered === 20, { what: 'the first two acknowledged' });
  assert.equal(runner.status().backlog, 80);

  // The third fails while the fourth (and the two sent in the meantime) succeed: all after the third go again.
  await until(() => sink.pending.length === 6, { what: 'the window refilled' });
  sink.pending[2]!.fail(new SinkError('far end hiccup', true));
  for (const p of sink.pending.slice(3)) p.ok();
  await until(() => sink.received.length > 60 && sink.received.at(-1)! >= 20, { what: 'resent' });
  // From here answer everything as it comes.
  const answerAll = setInterval(() => {
    while (sink.pending.length > 6) sink.pending.splice(6, 1)[0]!.ok();
  }, 5);
  t.after(() => clearInterval(answerAll));
  await until(() => runner.status().backlog === 0, { what: 'all delivered' });
  const received = sink.received;
  // Every message arrived; the only repeats are the window that was in flight when the third batch failed.
  assert.deepEqual([...new Set(received)].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  const twice = received.length - 100;
  assert.ok(twice > 0 && twice <= opts.window * opts.batchSize, `${twice} sent twice, at most one window (${opts.window * opts.batchSize})`);
  // After the failure the resend starts at the failed batch, in order.
  const resendAt = received.indexOf(20, 30);
  assert.deepEqual(received.slice(resendAt, resendAt + 10), Array.from({ length: 10 }, (_, i) => 20 + i));
});

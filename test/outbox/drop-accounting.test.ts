// drop-oldest while a batch is being written: the batch is delivered and never also counted as dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Sink } from '../../src/core/driver.js';
import type { Message, Reading } from '../../src/core/types.js';
import { journalLane } from '../helpers/journal.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { driverContext, tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

const r = (n: number): Reading => ({ kind: 'reading', device: 'd', ts: n, seq: n, values: { n }, authenticated: false, source: { input: 'i', decoder: 'json' } });

test('runner: with drop-oldest, readings evicted while their batch is being written are not both delivered and dropped', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const got: Message[] = [];
  // Writes wait until the test opens the gate: the first batch is being written for as long as the test needs.
  let writing = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const slow: Sink = {
    open: () => Promise.resolve(),
    close: () => Promise.resolve(),
    write: async (batch) => {
      writing++;
      await gate;
      got.push(...batch);
    },
  };
  const opts = { type: 'sqlite' as const, sync: 'full' as const, maxItems: 10, maxBytes: 1 << 30, overflow: 'drop-oldest' as const, batchSize: 10, lingerMs: 0, retryMinMs: 50, retryMaxMs: 100, failingAfterMs: 300_000 };
  const outbox = await journalLane(join(d.path, 'journal.sqlite'), opts);
  const runner = new SinkRunner('s', 'test', slow, outbox, opts, driverContext());
  t.after(() => runner.stop(100));
  for (let i = 0; i < 10; i++) await runner.enqueue([r(i)]);
  runner.start();
  await until(() => writing === 1, { what: 'the runner writing 0..9' });
  for (let i = 10; i < 20; i++) await runner.enqueue([r(i)]); // the outbox is full
  open();
  await until(() => runner.status().backlog === 0, { what: 'the outbox emptied' });
  const st = runner.status();
  // 0..9 were being written: overflow drops from the newer ones instead, keeping the outbox at its cap.
  assert.deepEqual(
    got.slice(0, 10).map((m) => (m.kind === 'reading' ? m.seq : -1)),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.equal(got.length, st.delivered, 'what the sink got is what status calls delivered');
  // 20 readings went in; each is either delivered or dropped, never both.
  assert.equal(st.delivered + st.dropped + st.backlog, 20, `delivered ${st.delivered} + dropped ${st.dropped} + backlog ${st.backlog}`);
});

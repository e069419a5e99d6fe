import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SinkError, type Sink, type SinkWriteResult } from '../../src/core/driver.js';
import { BackhaulError } from '../../src/core/errors.js';
import type { HubEvent, Message, Reading } from '../../src/core/types.js';
import { memoryOutbox as newMemoryOutbox } from '../../src/outbox/journal.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { driverContext } from '../helpers/context.js';
import { until } from '../helpers/until.js';
import { ManualClock, systemClock } from '../../src/core/clock.js';

const r = (n: number): Reading => ({
  kind: 'reading',
  device: 'd',
  ts: n,
  seq: n,
  values: { n },
  authenticated: false,
  source: { input: 'i', decoder: 'json' },
});
const seqs = (ms: readonly Message[]) => ms.map((m) => (m.kind === 'reading' ? m.seq : -1));

/** A real Sink implementation whose faults the test switches (the fault is injected; the runner is what's tested). */
class FlakySink implements Sink {
  delivered: Message[] = [];
  failures = 0;
  mode: 'ok' | 'retryable' | 'fatal' | 'reject-odd' = 'ok';
  open() {
    return Promise.resolve();
  }
  write(batch: readonly Message[]): Promise<SinkWriteResult | void> {
    if (this.mode === 'retryable') {
      this.failures++;
      return Promise.reject(new SinkError('remote 503', true));
    }
    if (this.mode === 'fatal') return Promise.reject(new SinkError('remote 401', false));
    if (this.mode === 'reject-odd') {
      const rejected = batch
        .map((m, index) => ({ m, index }))
        .filter(({ m }) => m.kind === 'reading' && (m.seq ?? 0) % 2 === 1)
        .map(({ index }) => ({ index, error: new BackhaulError('BH_SINK_REJECTED', 'odd') }));
      this.delivered.push(...batch.filter((_, i) => !rejected.some((x) => x.index === i)));
      return Promise.resolve({ rejected });
    }
    this.delivered.push(...batch);
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
}

const opts = { type: 'memory' as const, sync: 'full' as const, maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const, batchSize: 7, lingerMs: 0, retryMinMs: 5, retryMaxMs: 20, failingAfterMs: 300_000 };

test('runner delivers in order in batches, and after failures retries without loss or reordering', async () => {
  const ctx = driverContext({ id: 's' });
  const sink = new FlakySink();
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock), opts, ctx);
  runner.start();
  await runner.enqueue([r(0), r(1), r(2)]);
  await until(() => sink.delivered.length === 3, { what: 'sink.delivered.length === 3' });
  sink.mode = 'retryable';
  for (let i = 3; i < 50; i++) await runner.enqueue([r(i)]);
  await until(() => sink.failures >= 3, { what: 'sink.failures >= 3' });
  assert.equal(runner.status().state, 'retrying');
  sink.mode = 'ok';
  await until(() => sink.delivered.length === 50, { what: 'sink.delivered.length === 50' });
  assert.deepEqual(seqs(sink.delivered), Array.from({ length: 50 }, (_, i) => i));
  assert.ok((await ctx.metrics.value('backhaul_sink_retries_total', { sink: 's' })) >= 3);
  assert.equal(await ctx.metrics.value('backhaul_sink_delivered_total', { sink: 's' }), 50);
  assert.equal(runner.status().state, 'up');
  await runner.stop();
});

test('items refused for good are removed and counted; the rest are delivered', async () => {
  const ctx = driverContext({ id: 's' });
  const sink = new FlakySink();
  sink.mode = 'reject-odd';
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock), opts, ctx);
  runner.start();
  await runner.enqueue(Array.from({ length: 10 }, (_, i) => r(i)));
  await until(() => runner.status().backlog === 0, { what: 'runner.status().backlog === 0' });
  assert.deepEqual(seqs(sink.delivered), [0, 2, 4, 6, 8]);
  assert.equal(await ctx.metrics.value('backhaul_sink_dropped_total', { sink: 's', reason: 'rejected' }), 5);
  await runner.stop();
});

test('a fatal error stops the sink and keeps its queue', async () => {
  const ctx = driverContext({ id: 's' });
  const sink = new FlakySink();
  sink.mode = 'fatal';
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock), opts, ctx);
  runner.start();
  await runner.enqueue([r(1), r(2)]);
  await until(() => runner.status().state === 'stopped', { what: 'runner.status().state === \'stopped\'' });
  assert.equal(runner.status().backlog, 2);
  assert.match(runner.status().lastError?.message ?? '', /401/);
  await runner.stop(100);
});

test('overflow drops are counted per sink', async () => {
  const ctx = driverContext({ id: 's' });
  const sink = new FlakySink();
  sink.mode = 'retryable';
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox({ maxItems: 5, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock), { ...opts, maxItems: 5 }, ctx);
  runner.start();
  await runner.enqueue(Array.from({ length: 12 }, (_, i) => r(i)));
  assert.equal(await ctx.metrics.value('backhaul_sink_dropped_total', { sink: 's', reason: 'overflow' }), 7);
  sink.mode = 'ok';
  await until(() => sink.delivered.length === 5, { what: 'sink.delivered.length === 5' });
  assert.deepEqual(seqs(sink.delivered), [7, 8, 9, 10, 11]);
  await runner.stop();
});

test('a rate limit (token bucket) paces delivery; without one a backlog drains at once', async () => {
  const clock = new ManualClock(1_000_000);
  const ctx = driverContext({ id: 's', clock });
  const sink = new FlakySink();
  const limits = { maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox(limits, clock), { ...opts, batchSize: 100, ratePerSecond: 10, rateBurst: 10 }, ctx);
  runner.start();
  await runner.enqueue(Array.from({ length: 35 }, (_, i) => r(i)));
  // The runner waits for tokens on the clock: once it delivered n and a clock timer is set, it sends nothing more
  // until the clock moves.
  const paused = (n: number) => until(() => sink.delivered.length >= n && clock.pending() > 0, { what: `${n} delivered, then a wait on the clock` });
  await paused(10);
  assert.equal(sink.delivered.length, 10, 'the first burst');
  clock.advance(1000);
  await paused(20);
  assert.equal(sink.delivered.length, 20);
  clock.advance(500);
  await paused(25);
  assert.equal(sink.delivered.length, 25);
  clock.advance(1000);
  await until(() => sink.delivered.length >= 35, { what: 'all 35 delivered' });
  assert.equal(sink.delivered.length, 35);
  assert.deepEqual(seqs(sink.delivered), Array.from({ length: 35 }, (_, i) => i));
  const stopping = runner.stop(0);
  clock.advance(100);
  await stopping;

  const free = new FlakySink();
  const unpaced = new SinkRunner('u', 'flaky', free, newMemoryOutbox(limits, clock), { ...opts, batchSize: 100 }, driverContext({ id: 'u', clock }));
  unpaced.start();
  await unpaced.enqueue(Array.from({ length: 350 }, (_, i) => r(i)));
  await until(() => free.delivered.length === 350, { what: 'no limit: drained without waiting for the clock' });
  assert.equal(clock.pending(), 0, 'and without a timer');
  const s2 = unpaced.stop(0);
  clock.advance(100);
  await s2;
});

/** A sink with a connection: it tells the runner when its far end is reachable again. */
class ConnectedSink extends FlakySink {
  ready: (() => void) | undefined;
  onReady(listener: () => void): void {
    this.ready = listener;
  }
}

test('a sink reporting its far end reachable again ends the retry wait at once; the backoff holds otherwise', async () => {
  const clock = new ManualClock(1_000_000);
  const ctx = driverContext({ id: 's', clock });
  const sink = new ConnectedSink();
  const limits = { maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox(limits, clock), { ...opts, retryMinMs: 60_000, retryMaxMs: 60_000 }, ctx);
  runner.start();
  const ready = sink.ready;
  assert.ok(ready, 'the runner hands the sink its listener when it starts');
  // After a failure the runner waits out its backoff on the clock (a timer set): it tries nothing more until then.
  const backingOff = (n: number) => until(() => sink.failures >= n && clock.pending() > 0, { what: `failure ${n}, then the backoff on the clock` });

  ready(); // while nothing is failing: it must not shorten a later, unrelated wait
  sink.mode = 'retryable';
  await runner.enqueue([r(0), r(1)]);
  await backingOff(1);
  assert.equal(sink.failures, 1, 'the backoff holds: the clock has not moved and nothing said the sink is ready');
  assert.equal(runner.status().state, 'retrying');

  ready(); // one attempt per signal, even if it fails again
  await backingOff(2);
  assert.equal(sink.failures, 2);

  sink.mode = 'ok';
  ready();
  await until(() => sink.delivered.length === 2, { what: 'sink.delivered.length === 2' });
  assert.deepEqual(seqs(sink.delivered), [0, 1]);
  assert.equal(clock.now(), 1_000_000, 'delivered without the 60 s backoff running out');
  assert.equal(runner.status().retries, 2);
  assert.equal(clock.pending(), 0, 'a wait ended early leaves no timer behind');
  await runner.stop(0);
});

test('sink.failing once the failures span failingAfterMs, sink.recovered at the next success; a deferred write is no failure and waits its retryAfterMs', async () => {
  const clock = new ManualClock(1_000_000);
  const events: HubEvent[] = [];
  const ctx = { ...driverContext({ id: 's', clock }), raise: (e: HubEvent) => events.push(e) };
  const sink = new FlakySink();
  const limits = { maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox(limits, clock), { ...opts, retryMinMs: 1000, retryMaxMs: 1000, failingAfterMs: 5000 }, ctx);
  runner.start();
  sink.mode = 'retryable';
  await runner.enqueue([r(0)]);
  // Retries every second (the clock moves by hand): under 5 s of failures, nothing; at 5 s, sink.failing once.
  for (let n = 1; n <= 8; n++) {
    await until(() => sink.failures >= n && clock.pending() > 0, { what: `failure ${n}` });
    if (n === 5) assert.deepEqual(events.map((e) => e.type), [], 'four seconds of failures: no event yet');
    clock.advance(1000);
  }
  await until(() => sink.failures >= 9, { what: 'failure 9' });
  assert.deepEqual(events.map((e) => e.type), ['sink.failing'], 'raised once, not at every failure after');
  const failing = events[0]!;
  assert.equal(failing.data?.['sink'], 's');
  assert.equal(failing.data?.['since'], 1_000_000);
  assert.equal(failing.data?.['error'], 'BH_SINK_WRITE remote 503');
  assert.match(failing.message, /^sink s has been failing for 5 s \(6 failed attempts\): BH_SINK_WRITE remote 503$/);

  sink.mode = 'ok';
  clock.advance(1000);
  await until(() => sink.delivered.length === 1, { what: 'delivered after recovery' });
  await until(() => events.length === 2, { what: 'sink.recovered' });
  assert.equal(events[1]!.type, 'sink.recovered');
  assert.equal(events[1]!.data?.['durationMs'], 9000);

  // A sink's own rate limit: deferred, with the wait it asks for; not a retry, not a failure, no event.
  const retriesBefore = runner.status().retries;
  let deferrals = 0;
  const write = sink.write.bind(sink);
  sink.write = (batch) => (deferrals++ === 0 ? Promise.reject(new SinkError('rate limit', true, { deferred: true, retryAfterMs: 30_000 })) : write(batch));
  await runner.enqueue([r(1)]);
  await until(() => deferrals === 1 && clock.pending() > 0, { what: 'the deferral and its wait' });
  clock.advance(29_999);
  assert.equal(sink.delivered.length, 1, 'waits the 30 s it asked for');
  clock.advance(1);
  await until(() => sink.delivered.length === 2, { what: 'delivered after the deferral' });
  assert.equal(runner.status().retries, retriesBefore);
  assert.notEqual(runner.status().state, 'retrying');
  assert.deepEqual(events.map((e) => e.type), ['sink.failing', 'sink.recovered']);
  await runner.stop(0);
});

test('a sink that stops for good raises sink.failing at once', async () => {
  const events: HubEvent[] = [];
  const ctx = { ...driverContext({ id: 's', clock: systemClock }), raise: (e: HubEvent) => events.push(e) };
  const sink = new FlakySink();
  sink.mode = 'fatal';
  const limits = { maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };
  const runner = new SinkRunner('s', 'flaky', sink, newMemoryOutbox(limits, systemClock), opts, ctx);
  runner.start();
  await runner.enqueue([r(0)]);
  await until(() => runner.status().state === 'stopped', { what: 'stopped' });
  assert.deepEqual(events.map((e) => e.type), ['sink.failing']);
  assert.match(events[0]!.message, /^sink s has stopped for good \(1 failed attempt\): BH_SINK_FATAL remote 401$/);
  await runner.stop(0);
});

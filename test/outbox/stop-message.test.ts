// What a stop says about messages a sink could not deliver in time: kept (durable outbox, sent after the next start)
// or lost (in-memory outbox). A sink that is down holds them; the outbox is real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SinkError, type Sink } from '../../src/core/driver.js';
import { systemClock } from '../../src/core/clock.js';
import { createLogger } from '../../src/core/logger.js';
import type { Reading } from '../../src/core/types.js';
import { memoryOutbox } from '../../src/outbox/journal.js';
import type { Outbox } from '../../src/outbox/outbox.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { journalLane } from '../helpers/journal.js';
import { driverContext, tempDir } from '../helpers/context.js';

const reading = (n: number): Reading => ({
  kind: 'reading',
  device: 'd',
  ts: n,
  seq: n,
  values: { n },
  authenticated: false,
  source: { input: 'i', decoder: 'json' },
});

const down: Sink = {
  open: () => Promise.resolve(),
  write: () => Promise.reject(new SinkError('far end down', true)),
  close: () => Promise.resolve(),
};

async function stopMessage(type: 'sqlite' | 'memory'): Promise<{ level: number; msg: string; kept: boolean }> {
  const dir = tempDir();
  try {
    let out = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString('utf8');
        cb();
      },
    });
    const logger = createLogger({ pretty: false, destination: stream, level: 'info' });
    const limits = { maxItems: 100, maxBytes: 1 << 20, overflow: 'drop-oldest' as const };
    const outbox: Outbox = type === 'memory' ? memoryOutbox(limits, systemClock) : await journalLane(join(dir.path, 'journal.sqlite'), limits);
    const opts = { type, sync: 'full' as const, ...limits, batchSize: 10, lingerMs: 0, retryMinMs: 10_000, retryMaxMs: 10_000, failingAfterMs: 300_000 };
    const runner = new SinkRunner('s', 'test', down, outbox, opts, { ...driverContext({ dataDir: dir.path }), logger });
    runner.start();
    await outbox.put([reading(1), reading(2), reading(3)]);
    await runner.stop(50);
    const line = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: number; msg: string; kept?: boolean; backlog?: number })
      .find((l) => l.msg.startsWith('sink stopped'));
    assert.ok(line, out);
    return { level: line.level, msg: line.msg, kept: line.kept ?? false };
  } finally {
    dir.cleanup();
  }
}

test('stopping with messages queued in a durable outbox says they are kept for the next start', async () => {
  const m = await stopMessage('sqlite');
  assert.equal(m.msg, 'sink stopped with 3 message(s) not delivered yet; they are kept in its outbox and sent after the next start');
  assert.equal(m.kept, true);
  assert.equal(m.level, 30);
});

test('stopping with messages queued in an in-memory outbox warns that they are lost', async () => {
  const m = await stopMessage('memory');
  assert.equal(m.msg, 'sink stopped with 3 message(s) not delivered; its outbox is in memory, so they are lost');
  assert.equal(m.kept, false);
  assert.equal(m.level, 40);
});

// What only the durable outbox promises: a resolved put is on disk, the file gives its space back as it drains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock } from '../../src/core/clock.js';
import { SqliteOutbox } from '../../src/outbox/sqlite.js';
import { tempDir } from '../helpers/context.js';
import { r } from './conformance.js';

const limits = { maxItems: 1_000_000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const, sync: 'full' as const };

test('sqlite outbox: once put resolves, another connection sees the rows (they are committed)', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'o.sqlite');
  const o = SqliteOutbox.open(path, limits, systemClock);
  t.after(() => o.close());
  await Promise.all(Array.from({ length: 50 }, (_, i) => o.put([r(i)])));
  const other = new Database(path, { readonly: true });
  try {
    assert.equal((other.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n, 50);
  } finally {
    other.close();
  }
});

test('sqlite outbox: the file shrinks as a large backlog drains', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const o = SqliteOutbox.open(join(d.path, 'o.sqlite'), limits, systemClock);
  t.after(() => o.close());
  for (let i = 0; i < 20; i++) await o.put(Array.from({ length: 1000 }, (_, j) => r(i * 1000 + j)));
  const full = o.fileBytes();
  assert.ok(full > 2_000_000, `a 20,000-item backlog takes space (${full} bytes)`);
  for (;;) {
    const batch = await o.peek(500);
    if (batch.length === 0) break;
    await o.remove(batch.map((e) => e.id));
  }
  const drained = o.fileBytes();
  assert.ok(drained < full / 10, `drained file ${drained} bytes vs ${full} when full`);
  assert.deepEqual(o.stats(), { items: 0, bytes: 0, oldestAt: undefined });
});

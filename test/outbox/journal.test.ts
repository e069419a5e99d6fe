// What only the shared journal promises: one row per message however many sinks take it, rows deleted when the
// last lane is done with them (a dead sink holds only its own share), each lane resuming at its own place after a
// restart, outbox files of an earlier version brought in, and a resolved put on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock } from '../../src/core/clock.js';
import { createPrivateFile } from '../../src/core/private-files.js';
import { Journal } from '../../src/outbox/journal.js';
import { tempDir } from '../helpers/context.js';
import { r, seqs } from './conformance.js';

const open = { maxItems: 1_000_000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };

function rows(path: string): Array<{ seq: number; lanes: number }> {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT seq, lanes FROM journal ORDER BY seq').all() as Array<{ seq: number; lanes: Buffer }>).map((x) => ({ seq: x.seq, lanes: x.lanes.length / 2 }));
  } finally {
    db.close();
  }
}

test('journal: a message routed to three sinks is one row naming three lanes, committed when put resolves', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  const j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a', 'b', 'c'] });
  t.after(() => j.close());
  const [a, b, c] = ['a', 'b', 'c'].map((n) => j.lane(n, open));
  const msgs = Array.from({ length: 50 }, (_, i) => r(i));
  // As the router hands a route's output to each of its sinks: the same objects, in the same turn.
  await Promise.all([a!.put(msgs), b!.put(msgs), c!.put(msgs)]);
  const written = rows(path); // another connection sees them: they are committed
  assert.equal(written.length, 50);
  assert.ok(written.every((x) => x.lanes === 3));
  for (const lane of [a!, b!, c!]) assert.deepEqual(seqs(await lane.take(100)), msgs.map((m) => m.seq));
});

test('journal: rows go when the last lane is done; a dead sink holds only its own share, and its overflow frees it', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  const j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['live', 'dead'] });
  t.after(() => j.close());
  const live = j.lane('live', open);
  const dead = j.lane('dead', { ...open, maxItems: 10 });
  const both = Array.from({ length: 10 }, (_, i) => r(i));
  await Promise.all([live.put(both), dead.put(both)]);
  const liveOnly = Array.from({ length: 100 }, (_, i) => r(100 + i));
  await live.put(liveOnly);
  assert.equal(rows(path).length, 110);
  await live.take(1000);
  await live.ack(110);
  // Only the dead sink's ten are left: the live one's own rows went, though they came after the dead one's.
  assert.deepEqual(rows(path).map((x) => x.seq).length, 10);
  // The dead sink's overflow (drop-oldest at 10) takes its share away as new ones come.
  const more = Array.from({ length: 5 }, (_, i) => r(200 + i));
  await Promise.all([live.put(more), dead.put(more)]);
  await live.take(100);
  await live.ack(5);
  assert.equal(dead.stats().items, 10);
  await live.put([r(300)]); // one more commit carries the deletes
  assert.equal(rows(path).length, 11, 'the dead sink keeps 10, the live one 1 not yet delivered');
  assert.deepEqual(seqs(await dead.take(100)), [5, 6, 7, 8, 9, 200, 201, 202, 203, 204]);
});

test('journal: after a restart each lane resumes at its own place; a row dropped out of order by one lane stays for the other', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  let j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a', 'b'] });
  let a = j.lane('a', open);
  let b = j.lane('b', { ...open, maxItems: 4 });
  const msgs = [r(1), r(2), r(3), r(4)];
  await Promise.all([a.put(msgs), b.put(msgs)]);
  await a.take(3);
  await a.ack(3);
  await b.take(1); // 1 in flight for b
  const next = [r(5), r(6)];
  await Promise.all([a.put(next), b.put(next)]); // b drops 2 and 3, behind the one in flight
  await j.close();
  j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a', 'b'] });
  t.after(() => j.close());
  a = j.lane('a', open);
  b = j.lane('b', { ...open, maxItems: 4 });
  assert.deepEqual(seqs(await a.take(10)), [4, 5, 6]);
  assert.deepEqual(seqs(await b.take(10)), [1, 4, 5, 6], 'b: 1 was in flight, so it comes again; 2 and 3 stay dropped');
});

test('journal: messages beyond what it keeps in memory are read back from the file, in order and intact', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  const j = await Journal.open({ path, sync: 'normal', clock: systemClock, lanes: ['s'] });
  t.after(() => j.close());
  const s = j.lane('s', open);
  const N = 45_000; // more than the 20,000 kept in memory
  for (let i = 0; i < N; i += 1000) await s.put(Array.from({ length: 1000 }, (_, k) => r(i + k)));
  let expect = 0;
  for (;;) {
    const batch = await s.take(5000);
    if (batch.length === 0) break;
    for (const e of batch) {
      assert.deepEqual(e.msg, r(expect), `message ${expect}`);
      expect++;
    }
    await s.ack(batch.length);
  }
  assert.equal(expect, N);
});

test('journal: the file gives its space back once a large backlog drained', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  let j = await Journal.open({ path, sync: 'normal', clock: systemClock, lanes: ['s'] });
  const s = j.lane('s', open);
  for (let i = 0; i < 30; i++) await s.put(Array.from({ length: 1000 }, (_, k) => r(i * 1000 + k)));
  await j.close();
  const full = statSync(path).size;
  assert.ok(full > 2_000_000, `a 30,000-message backlog takes space (${full} bytes)`);
  j = await Journal.open({ path, sync: 'normal', clock: systemClock, lanes: ['s'] });
  const again = j.lane('s', open);
  for (;;) {
    const batch = await again.take(2000);
    if (batch.length === 0) break;
    await again.ack(batch.length);
  }
  await j.close();
  const drained = statSync(path).size;
  assert.ok(drained < full / 10, `drained file ${drained} bytes vs ${full} when full`);
});

test('journal: an outbox file of an earlier version is brought in, in order, before anything new, then deleted', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const old = join(d.path, 'hook.sqlite');
  createPrivateFile(old);
  const db = new Database(old);
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, bytes INTEGER NOT NULL, body BLOB NOT NULL)');
  const { Encoder } = await import('cbor-x');
  const enc = new Encoder({ useRecords: false, mapsAsObjects: true });
  const ins = db.prepare('INSERT INTO items (at, bytes, body) VALUES (?, ?, ?)');
  for (let i = 0; i < 5; i++) {
    const body = enc.encode(r(i));
    ins.run(1_700_000_000_000, body.length, body);
  }
  db.close();
  const j = await Journal.open({ path: join(d.path, 'journal.sqlite'), sync: 'full', clock: systemClock, lanes: ['hook'], migrate: [['hook', old]] });
  t.after(() => j.close());
  const hook = j.lane('hook', open);
  await hook.put([r(5)]);
  assert.deepEqual(seqs(await hook.take(10)), [0, 1, 2, 3, 4, 5]);
  assert.throws(() => statSync(old), /ENOENT/);
});

test('journal: a lane whose sink left the config is reported with what it holds, and discarded only when asked', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  let j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a', 'gone'] });
  const msgs = [r(1), r(2), r(3)];
  await Promise.all([j.lane('a', open).put(msgs), j.lane('gone', open).put(msgs)]);
  await j.close();
  j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a'] });
  assert.deepEqual(j.orphans(new Set(['a'])), [{ sink: 'gone', items: 3 }]);
  assert.equal(j.discard('gone'), 3);
  assert.deepEqual(j.orphans(new Set(['a'])), []);
  await j.close();
  j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['a'] });
  t.after(() => j.close());
  assert.deepEqual(j.orphans(new Set(['a'])), [], 'the discard reached the disk');
  assert.deepEqual(seqs(await j.lane('a', open).take(10)), [1, 2, 3], 'the other lane keeps its share');
});

test('journal: commits run on its storage thread: while another connection holds the file locked, a put waits and the event loop runs on', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'journal.sqlite');
  const j = await Journal.open({ path, sync: 'full', clock: systemClock, lanes: ['s'] });
  t.after(() => j.close());
  const s = j.lane('s', open);
  await s.put([r(0)]);
  const lock = new Database(path);
  lock.exec('BEGIN EXCLUSIVE');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  let done = false;
  const put = s.put([r(1)]).then(() => (done = true));
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(done, false, 'the commit waits for the lock');
  assert.ok(ticks >= 10, `timers kept firing while it waited (${ticks})`); // a commit on this thread would block them
  lock.exec('COMMIT');
  lock.close();
  await put;
  clearInterval(timer);
  assert.equal(rows(path).length, 2);
});

// One conformance suite that every outbox (a lane of a journal) must pass: ordering, batches in flight, in-order
// acknowledgement and release, bounds and overflow policies, blocking, and — for durable ones — restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, Reading } from '../../src/core/types.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';

export interface OutboxMaker {
  /** A fresh, empty outbox. Its `close()` releases everything the maker made for it. */
  make(limits: OutboxLimits): Promise<Outbox>;
  /** Durable implementations: close and open the same outbox again (a restart). */
  reopen?(old: Outbox, limits: OutboxLimits): Promise<Outbox>;
}

export const r = (seq: number, device = 'd'): Reading => ({
  kind: 'reading',
  device,
  ts: 1_700_000_000_000 + seq,
  seq,
  values: { n: seq, t: 20.5 },
  units: { t: 'Cel' },
  authenticated: false,
  source: { input: 'i', decoder: 'json' },
});
export const seqs = (ms: ReadonlyArray<{ msg: Message }>) => ms.map((e) => (e.msg.kind === 'reading' ? e.msg.seq : -1));

const open: OutboxLimits = { maxItems: 1_000_000, maxBytes: 1 << 30, overflow: 'drop-oldest' };

export function outboxConformance(name: string, maker: OutboxMaker): void {
  test(`${name}: puts come out in order, in batches, and stay until acknowledged`, async () => {
    const o = await maker.make(open);
    try {
      await o.put([r(0), r(1), r(2)]);
      await o.put([r(3)]);
      await Promise.all([o.put([r(4), r(5)]), o.put([r(6)]), o.put([r(7), r(8), r(9)])]); // concurrent puts keep call order
      assert.equal(o.stats().items, 10);
      assert.deepEqual(seqs(await o.take(4)), [0, 1, 2, 3]);
      // released (a failed delivery): the same batch comes out again
      o.release();
      assert.deepEqual(seqs(await o.take(4)), [0, 1, 2, 3]);
      await o.ack(4);
      assert.equal(o.stats().items, 6);
      // messages come back exactly as they went in
      const next = await o.take(100);
      assert.deepEqual(seqs(next), [4, 5, 6, 7, 8, 9]);
      assert.deepEqual(next[0]!.msg, r(4));
      assert.ok(next.every((e, i) => i === 0 || e.id > next[i - 1]!.id), 'ids grow in delivery order');
      assert.deepEqual(await o.take(100), [], 'nothing more while all is in flight');
      await o.ack(6);
      assert.deepEqual(o.stats(), { items: 0, bytes: 0, oldestAt: undefined });
    } finally {
      await o.close();
    }
  });

  test(`${name}: a window of batches in flight, acknowledged in order; a release sends the unacknowledged again`, async () => {
    const o = await maker.make(open);
    try {
      await o.put(Array.from({ length: 10 }, (_, i) => r(i)));
      assert.deepEqual(seqs(await o.take(3)), [0, 1, 2]);
      assert.deepEqual(seqs(await o.take(3)), [3, 4, 5]);
      assert.deepEqual(seqs(await o.take(3)), [6, 7, 8]);
      await o.ack(3); // the first batch came back
      assert.equal(o.stats().items, 7);
      o.release(); // the second failed: it and the third go again, in order
      assert.deepEqual(seqs(await o.take(100)), [3, 4, 5, 6, 7, 8, 9]);
      await o.ack(7);
      assert.equal(o.stats().items, 0);
    } finally {
      await o.close();
    }
  });

  test(`${name}: stats count items and bytes, and know the oldest`, async () => {
    const o = await maker.make(open);
    try {
      await o.put([r(1), r(2)]);
      const s = o.stats();
      assert.equal(s.items, 2);
      assert.ok(s.bytes > 20 && s.bytes < 2000, `bytes ${s.bytes}`);
      assert.equal(typeof s.oldestAt, 'number');
    } finally {
      await o.close();
    }
  });

  test(`${name}: whenReadable waits for the first put`, async () => {
    const o = await maker.make(open);
    try {
      let woke = false;
      assert.equal(o.readable(), false);
      const w = o.whenReadable().then(() => (woke = true));
      await new Promise((res) => setImmediate(res));
      assert.equal(woke, false);
      await o.put([r(1)]);
      await w;
      assert.equal(woke, true);
      assert.equal(o.readable(), true);
      await o.take(1);
      assert.equal(o.readable(), false, 'what is in flight is not readable again');
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-oldest keeps the newest maxItems and counts the drops`, async () => {
    const o = await maker.make({ ...open, maxItems: 3 });
    try {
      assert.deepEqual(await o.put([r(1), r(2)]), { dropped: 0 });
      assert.deepEqual(await o.put([r(3), r(4), r(5)]), { dropped: 2 });
      assert.deepEqual(seqs(await o.take(10)), [3, 4, 5]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-oldest never drops what is in flight (taken, not yet acknowledged)`, async () => {
    const o = await maker.make({ ...open, maxItems: 4 });
    try {
      await o.put([r(1), r(2), r(3), r(4)]);
      await o.take(2);
      assert.deepEqual(await o.put([r(5), r(6)]), { dropped: 2 });
      o.release();
      assert.deepEqual(seqs(await o.take(10)), [1, 2, 5, 6], '3 and 4 went, not the batch in flight');
      // now all four are in flight: a new one goes over the cap rather than drop them
      assert.deepEqual(await o.put([r(7)]), { dropped: 0 });
      // the write failed: released, they are just waiting again, and overflow takes the oldest
      o.release();
      assert.deepEqual(await o.put([r(8)]), { dropped: 2 });
      assert.deepEqual(seqs(await o.take(10)), [5, 6, 7, 8]);
      await o.ack(4);
      assert.equal(o.stats().items, 0);
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-newest keeps the first maxItems and counts the refusals`, async () => {
    const o = await maker.make({ ...open, maxItems: 3, overflow: 'drop-newest' });
    try {
      assert.deepEqual(await o.put([r(1), r(2), r(3), r(4)]), { dropped: 1 });
      assert.deepEqual(await o.put([r(5)]), { dropped: 1 });
      assert.deepEqual(seqs(await o.take(10)), [1, 2, 3]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: a byte cap drops like an item cap`, async () => {
    const probe = await maker.make(open);
    await probe.put([r(1)]);
    const one = probe.stats().bytes;
    await probe.close();
    const cap = Math.max(1024, one * 3 + 1);
    const o = await maker.make({ ...open, maxBytes: cap });
    try {
      const n = Math.floor(cap / one);
      const res = await o.put(Array.from({ length: n + 2 }, (_, i) => r(i)));
      assert.equal(res.dropped, 2);
      assert.equal(o.stats().items, n);
      assert.ok(o.stats().bytes <= cap);
    } finally {
      await o.close();
    }
  });

  test(`${name}: block makes a put wait for room instead of dropping, first come first served`, async () => {
    const o = await maker.make({ ...open, maxItems: 2, overflow: 'block' });
    try {
      await o.put([r(1), r(2)]);
      const order: number[] = [];
      const p3 = o.put([r(3)]).then((x) => (order.push(3), x));
      const p4 = o.put([r(4)]).then((x) => (order.push(4), x));
      await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(order, [], 'both wait while the outbox is full');
      await o.take(1);
      await o.ack(1);
      assert.deepEqual(await p3, { dropped: 0 });
      await o.take(1);
      await o.ack(1);
      assert.deepEqual(await p4, { dropped: 0 });
      assert.deepEqual(order, [3, 4]);
      assert.deepEqual(seqs(await o.take(10)), [3, 4]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: close fails puts still waiting for room`, async () => {
    const o = await maker.make({ ...open, maxItems: 1, overflow: 'block' });
    await o.put([r(1)]);
    const waiting = o.put([r(2)]);
    await new Promise((res) => setTimeout(res, 10));
    const rejected = assert.rejects(waiting, /closed/); // watched before the close, which may take a while
    await o.close();
    await rejected;
  });

  if (maker.reopen) {
    const reopen = maker.reopen.bind(maker);
    test(`${name}: a restart resumes: what was not acknowledged comes out first, in order, and ids keep growing`, async () => {
      let o = await maker.make(open);
      await o.put(Array.from({ length: 50 }, (_, i) => r(i)));
      await o.take(20);
      await o.ack(20);
      await o.take(5); // in flight when the process stops: sent again after the restart
      const lastId = (await o.take(100)).at(-1)!.id;
      o = await reopen(o, open);
      try {
        assert.equal(o.stats().items, 30);
        await o.put([r(50), r(51)]);
        const all = await o.take(100);
        assert.deepEqual(seqs(all), Array.from({ length: 32 }, (_, i) => 20 + i));
        assert.ok(all.at(-1)!.id > lastId);
        assert.deepEqual(all[0]!.msg, r(20), 'a message read back after a restart is the one that was put');
      } finally {
        await o.close();
      }
    });

    test(`${name}: a restart after drops out of order keeps them dropped`, async () => {
      let o = await maker.make({ ...open, maxItems: 4 });
      await o.put([r(1), r(2), r(3), r(4)]);
      await o.take(2); // 1, 2 in flight
      assert.deepEqual(await o.put([r(5), r(6)]), { dropped: 2 }); // 3 and 4 dropped behind them
      o = await reopen(o, { ...open, maxItems: 4 });
      try {
        assert.deepEqual(seqs(await o.take(10)), [1, 2, 5, 6]);
      } finally {
        await o.close();
      }
    });
  }
}

// One conformance suite that every outbox implementation must pass: ordering, batching, ack (remove) and nack
// (leave in place), bounds and overflow policies, blocking, and — for durable ones — restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, Reading } from '../../src/core/types.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';

export interface OutboxMaker {
  /** A fresh, empty outbox. */
  make(limits: OutboxLimits): Outbox;
  /** Durable implementations: close and open the same outbox again. */
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
  test(`${name}: puts come out in order, in batches, and stay until removed`, async () => {
    const o = maker.make(open);
    try {
      await o.put([r(0), r(1), r(2)]);
      await o.put([r(3)]);
      await Promise.all([o.put([r(4), r(5)]), o.put([r(6)]), o.put([r(7), r(8), r(9)])]); // concurrent puts keep call order
      assert.equal(o.stats().items, 10);
      const first = await o.peek(4);
      assert.deepEqual(seqs(first), [0, 1, 2, 3]);
      // not removed (a failed delivery): the same batch comes out again
      assert.deepEqual(seqs(await o.peek(4)), [0, 1, 2, 3]);
      await o.remove(first.map((e) => e.id));
      assert.deepEqual(seqs(await o.peek(100)), [4, 5, 6, 7, 8, 9]);
      // partial ack: only some of a batch removed
      const next = await o.peek(3);
      await o.remove([next[0]!.id, next[2]!.id]);
      assert.deepEqual(seqs(await o.peek(100)), [5, 7, 8, 9]);
      await o.remove([999_999]); // unknown ids are ignored
      assert.equal(o.stats().items, 4);
      // messages come back exactly as they went in
      assert.deepEqual((await o.peek(1))[0]!.msg, r(5));
      const rest = await o.peek(100);
      await o.remove(rest.map((e) => e.id));
      assert.deepEqual(o.stats(), { items: 0, bytes: 0, oldestAt: undefined });
    } finally {
      await o.close();
    }
  });

  test(`${name}: stats count items and bytes, and know the oldest`, async () => {
    const o = maker.make(open);
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
    const o = maker.make(open);
    try {
      let woke = false;
      const w = o.whenReadable().then(() => (woke = true));
      await new Promise((res) => setImmediate(res));
      assert.equal(woke, false);
      await o.put([r(1)]);
      await w;
      assert.equal(woke, true);
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-oldest keeps the newest maxItems and counts the drops`, async () => {
    const o = maker.make({ ...open, maxItems: 3 });
    try {
      assert.deepEqual(await o.put([r(1), r(2)]), { dropped: 0 });
      assert.deepEqual(await o.put([r(3), r(4), r(5)]), { dropped: 2 });
      assert.deepEqual(seqs(await o.peek(10)), [3, 4, 5]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-oldest never drops the batch being delivered (taken by peek, not yet removed)`, async () => {
    const o = maker.make({ ...open, maxItems: 4 });
    try {
      await o.put([r(1), r(2), r(3), r(4)]);
      const inFlight = await o.peek(2);
      assert.deepEqual(await o.put([r(5), r(6)]), { dropped: 2 });
      assert.deepEqual(seqs(await o.peek(10)), [1, 2, 5, 6], '3 and 4 went, not the batch in delivery');
      await o.peek(4); // now all four are in delivery: a new one goes over the cap rather than drop them
      assert.deepEqual(await o.put([r(7)]), { dropped: 0 });
      // the write failed: released, the batch is just waiting again, and overflow takes the oldest
      o.release();
      assert.deepEqual(await o.put([r(8)]), { dropped: 2 });
      assert.deepEqual(seqs(await o.peek(10)), [5, 6, 7, 8]);
      await o.remove(inFlight.map((e) => e.id)); // ids already gone are ignored
      assert.deepEqual(seqs(await o.peek(10)), [5, 6, 7, 8]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: drop-newest keeps the first maxItems and counts the refusals`, async () => {
    const o = maker.make({ ...open, maxItems: 3, overflow: 'drop-newest' });
    try {
      assert.deepEqual(await o.put([r(1), r(2), r(3), r(4)]), { dropped: 1 });
      assert.deepEqual(await o.put([r(5)]), { dropped: 1 });
      assert.deepEqual(seqs(await o.peek(10)), [1, 2, 3]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: a byte cap drops like an item cap`, async () => {
    const probe = maker.make(open);
    await probe.put([r(1)]);
    const one = probe.stats().bytes;
    await probe.close();
    const o = maker.make({ ...open, maxBytes: Math.max(1024, one * 3 + 1) });
    try {
      const n = Math.floor(Math.max(1024, one * 3 + 1) / one);
      const res = await o.put(Array.from({ length: n + 2 }, (_, i) => r(i)));
      assert.equal(res.dropped, 2);
      assert.equal(o.stats().items, n);
      assert.ok(o.stats().bytes <= Math.max(1024, one * 3 + 1));
    } finally {
      await o.close();
    }
  });

  test(`${name}: block makes a put wait for room instead of dropping, first come first served`, async () => {
    const o = maker.make({ ...open, maxItems: 2, overflow: 'block' });
    try {
      await o.put([r(1), r(2)]);
      const order: number[] = [];
      const p3 = o.put([r(3)]).then((x) => (order.push(3), x));
      const p4 = o.put([r(4)]).then((x) => (order.push(4), x));
      await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(order, [], 'both wait while the outbox is full');
      const head = await o.peek(1);
      await o.remove(head.map((e) => e.id));
      assert.deepEqual(await p3, { dropped: 0 });
      const head2 = await o.peek(1);
      await o.remove(head2.map((e) => e.id));
      assert.deepEqual(await p4, { dropped: 0 });
      assert.deepEqual(order, [3, 4]);
      assert.deepEqual(seqs(await o.peek(10)), [3, 4]);
    } finally {
      await o.close();
    }
  });

  test(`${name}: close fails puts still waiting for room`, async () => {
    const o = maker.make({ ...open, maxItems: 1, overflow: 'block' });
    await o.put([r(1)]);
    const waiting = o.put([r(2)]);
    await new Promise((res) => setTimeout(res, 10));
    await o.close();
    await assert.rejects(waiting, /closed/);
  });

  if (maker.reopen) {
    const reopen = maker.reopen.bind(maker);
    test(`${name}: a restart resumes: what was not removed comes out first, in order, and ids keep growing`, async () => {
      let o = maker.make(open);
      await o.put(Array.from({ length: 50 }, (_, i) => r(i)));
      const done = await o.peek(20);
      await o.remove(done.map((e) => e.id));
      const lastId = (await o.peek(100)).at(-1)!.id;
      o = await reopen(o, open);
      try {
        assert.equal(o.stats().items, 30);
        await o.put([r(50), r(51)]);
        const all = await o.peek(100);
        assert.deepEqual(seqs(all), Array.from({ length: 32 }, (_, i) => 20 + i));
        assert.ok(all.at(-1)!.id > lastId);
      } finally {
        await o.close();
      }
    });
  }
}

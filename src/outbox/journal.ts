// The journal: one durable log of routed messages shared by every sink, each sink reading its share (its lane)
// through its own cursor. A message routed to three sinks is written once, as one row naming its three lanes, and
// deleted once, when the last of them is done with it. Group commits run on a storage thread (journal-thread.ts):
// while one commits and syncs, the next group fills here, so the event loop never waits for the disk.
//
// What is on disk: rows (seq, put time, lanes, CBOR body) and one cursor per lane: every row of that lane at or
// below its cursor is done. A lane finishes its rows in order (acknowledged deliveries, or overflow dropping its
// oldest waiting row), so its cursor says it all; the one exception, `drop-oldest` dropping rows behind the ones in
// flight, rewrites those rows' lane sets. A restart gives each lane the rows above its cursor that name it.
//
// Kept in memory per waiting row: its seq, time, size, how many lanes still need it and, for the newest 20,000
// rows, the message itself; older ones (a long outage's backlog) are read back from the file when their turn comes.
import { Encoder } from 'cbor-x';
import type { Clock } from '../core/clock.js';
import type { Message } from '../core/types.js';
import { WorkerClient } from '../core/worker.js';
import type { CommitRequest, OpenReply, ReadReply, ThreadOptions } from './journal-protocol.js';
import { OutboxClosedError, type Outbox, type OutboxEntry, type OutboxLimits, type OutboxStats, type PutResult } from './outbox.js';

// Plain CBOR maps (no shared record structures): every row decodes on its own, by any future version.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

/** Messages kept decoded in memory at most; the rest wait on disk only. */
const HOT_MAX = 20_000;

/**
 * A commit with nothing but cursors and deletes (sinks acknowledging) waits this long for puts to ride with: on a
 * fast disk a commit per acknowledgement was most of the CPU at 2,000 msg/s. A crash meanwhile only means those
 * messages are sent again, which the runner bounds by counting them in its window.
 */
const ACK_LINGER_MS = 20;

/**
 * Commits start at most this often while puts keep coming (the first after a quiet spell goes at once): each commit
 * costs two thread hops and an fsync whatever it holds, and at a few thousand readings a second on a fast disk they
 * held two or three readings each. Two milliseconds more before a PUBACK, a fraction of the commits.
 */
const COMMIT_EVERY_MS = 2;

const PENDING = 0; // not sent to the storage thread yet
const SENT = 1; // in the commit under way
const DURABLE = 2;

class Entry {
  state = PENDING;
  /** Lanes that still need it. */
  refs = 0;
  constructor(
    readonly seq: number,
    readonly at: number,
    readonly bytes: number,
    public msg: Message | undefined,
    public body: Buffer | undefined,
    /** Lanes it was put to (a lane that dropped it out of order is taken out). */
    public lanes: Lane[],
  ) {}
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export interface JournalOptions {
  readonly path: string;
  /** `full`: a committed put survives a power cut. `normal`: it survives a process crash. */
  readonly sync: 'full' | 'normal';
  readonly clock: Clock;
  /** Lanes the config has, created now if new. */
  readonly lanes: readonly string[];
  /** Per-sink outbox files of an earlier version to bring in, by lane: `[lane, path]`. */
  readonly migrate?: ReadonlyArray<readonly [string, string]>;
}

export class Journal {
  private nextSeq = 1;
  private readonly lanesByName = new Map<string, Lane>();
  private nextLaneNum = 0;
  private readonly newLanes: Lane[] = [];
  /** Entries of the group being gathered, and the message → entry index that lets lanes share one row. */
  private group: Entry[] = [];
  private groupIndex = new Map<Message, Entry>();
  private groupDone: Deferred | undefined;
  /** Work for the next commit besides new rows. */
  private deletes: number[] = [];
  private updates = new Set<Entry>();
  private dirty = new Set<Lane>();
  private committing = false;
  private flushScheduled = false;
  /** Entries in put order, for evicting the oldest messages from memory. */
  private order: Entry[] = [];
  private orderHead = 0;
  /** Entries of `order` before this one hold no message any more (or are done). */
  private evictAt = 0;
  private hot = 0;
  /** Entries some lane still needs (of the durable journal). */
  private live = 0;
  private closed = false;
  /** Resolved when no commit is under way and nothing waits for one (for close). */
  private idleWaiters: Array<() => void> = [];
  /** The last message sized for a lane, with its encoding: `add` right after reuses it. */
  private lastMsg: Message | undefined;
  private lastBody: Buffer | undefined;

  private constructor(
    private readonly store: WorkerClient | undefined,
    readonly path: string | undefined,
    readonly clock: Clock,
  ) {}

  /** A journal kept in memory only: lost when the process ends (`outbox.type: memory`). */
  static memory(clock: Clock): Journal {
    return new Journal(undefined, undefined, clock);
  }

  /** Open (or create) the durable journal. What a previous run left comes out first. */
  static async open(o: JournalOptions): Promise<Journal> {
    const data: ThreadOptions = { path: o.path, sync: o.sync };
    const store = new WorkerClient(new URL('./journal-thread.js', import.meta.url), data, 'journal');
    await store.start();
    let reply: OpenReply;
    try {
      reply = await store.call<OpenReply>('open', { lanes: o.lanes, migrate: o.migrate ?? [] });
    } catch (e) {
      await store.stop();
      throw e;
    }
    const j = new Journal(store, o.path, o.clock);
    j.restore(reply);
    return j;
  }

  private restore(r: OpenReply): void {
    this.nextSeq = r.nextSeq;
    const byNum = new Map<number, Lane>();
    for (const l of r.lanes) {
      const lane = new Lane(this, l.name, l.num, l.cursor);
      this.lanesByName.set(l.name, lane);
      byNum.set(l.num, lane);
      this.nextLaneNum = Math.max(this.nextLaneNum, l.num + 1);
    }
    let ln = 0;
    for (let i = 0; i < r.seqs.length; i++) {
      const seq = r.seqs[i]!;
      const lanes: Lane[] = [];
      const count = r.laneCounts[i]!;
      for (let k = 0; k < count; k++) {
        const lane = byNum.get(r.laneNums[ln + k]!);
        if (lane) lanes.push(lane);
      }
      ln += count;
      const e = new Entry(seq, r.ats[i]!, r.bytes[i]!, undefined, undefined, lanes);
      e.state = DURABLE;
      for (const lane of lanes) {
        if (seq > lane.cursor) {
          lane.restoreEntry(e);
          e.refs++;
        }
      }
      if (e.refs === 0) this.deletes.push(seq);
      else {
        this.order.push(e);
        this.live++;
      }
    }
    if (this.deletes.length > 0) this.schedule();
  }

  /** The lane (a sink's outbox) called `name`, with these limits. Created if new; a lane holds what it held. */
  lane(name: string, limits: OutboxLimits): Outbox {
    let lane = this.lanesByName.get(name);
    if (!lane) {
      lane = new Lane(this, name, this.nextLaneNum++, this.nextSeq - 1);
      this.lanesByName.set(name, lane);
      this.newLanes.push(lane);
    }
    lane.open(limits);
    return lane;
  }

  /** Lanes that hold messages and are not in `names` (sinks removed from the config), with how many each holds. */
  orphans(names: ReadonlySet<string>): Array<{ readonly sink: string; readonly items: number }> {
    const out: Array<{ sink: string; items: number }> = [];
    for (const [name, lane] of this.lanesByName) if (!names.has(name) && lane.stats().items > 0) out.push({ sink: name, items: lane.stats().items });
    return out;
  }

  /** Drop everything lane `name` holds (a sink removed for good). */
  discard(name: string): number {
    return this.lanesByName.get(name)?.discardAll() ?? 0;
  }

  /** @internal The message bytes of an entry: encoded once, however many lanes take it. */
  add(lane: Lane, msg: Message): Entry {
    const shared = this.groupIndex.get(msg);
    // Share the row only when it keeps this lane in order (seq above all it has) and the lane does not have it yet.
    if (shared && shared.refs > 0 && shared.seq > lane.lastSeq) {
      shared.lanes.push(lane);
      shared.refs++;
      return shared;
    }
    if (!this.store) {
      const e = new Entry(this.nextSeq++, this.clock.now(), estimateBytes(msg), msg, undefined, [lane]);
      e.refs = 1;
      e.state = DURABLE;
      return e;
    }
    const body = msg === this.lastMsg && this.lastBody ? this.lastBody : cbor.encode(msg);
    this.lastMsg = undefined;
    this.lastBody = undefined;
    const e = new Entry(this.nextSeq++, this.clock.now(), body.length, msg, body, [lane]);
    e.refs = 1;
    this.hot++;
    this.live++;
    this.order.push(e);
    this.group.push(e);
    this.groupIndex.set(msg, e);
    return e;
  }

  /** @internal Size of a message as the journal would store it (for `block` reservations). */
  sizeOf(msg: Message): number {
    const shared = this.groupIndex.get(msg);
    if (shared) return shared.bytes;
    if (!this.store) return estimateBytes(msg);
    if (msg !== this.lastMsg) {
      this.lastMsg = msg;
      this.lastBody = cbor.encode(msg);
    }
    return this.lastBody!.length;
  }

  /** @internal Resolves when what was added so far is committed. */
  committed(): Promise<void> {
    if (!this.store) return Promise.resolve();
    if (this.closed) return Promise.reject(new OutboxClosedError());
    this.groupDone ??= deferred();
    this.urgent = true;
    this.groupPuts++;
    this.schedule();
    return this.groupDone.promise;
  }

  /** Puts wait for the next commit: it goes at once. Otherwise (acknowledgements only) it may linger. */
  private urgent = false;
  private lazyTimer: NodeJS.Timeout | undefined;

  /** @internal A lane no longer needs `e` (delivered, rejected, dropped). */
  release(e: Entry, lane: Lane, inOrder: boolean): void {
    e.refs--;
    if (e.refs === 0) {
      e.body = undefined;
      if (!this.store) {
        e.msg = undefined; // the in-memory journal keeps no rows and no counts to update
        return;
      }
      this.live--;
      if (e.msg !== undefined) this.hot--;
      e.msg = undefined;
      if (e.state !== PENDING) this.deletes.push(e.seq);
      this.updates.delete(e);
    } else if (!inOrder) {
      // Dropped behind rows still in flight: its cursor cannot say so, its row must.
      e.lanes = e.lanes.filter((l) => l !== lane);
      if (e.state !== PENDING && this.store) this.updates.add(e);
    }
  }

  /** @internal A lane's cursor may have moved. Resolves when that is committed. */
  touched(lane: Lane): Promise<void> {
    if (!this.store) return Promise.resolve();
    if (this.closed) return Promise.reject(new OutboxClosedError());
    this.dirty.add(lane);
    this.groupDone ??= deferred();
    this.scheduleLazy();
    return this.groupDone.promise;
  }

  private scheduleLazy(): void {
    if (this.flushScheduled || this.committing || this.lazyTimer || !this.store) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.flush();
    }, ACK_LINGER_MS);
  }

  /** @internal Read back the messages of entries evicted from memory. */
  async load(entries: readonly Entry[]): Promise<void> {
    const cold = entries.filter((e) => e.msg === undefined);
    if (cold.length === 0) return;
    if (!this.store) throw new Error('an in-memory journal lost a message');
    const r = await this.store.call<ReadReply>('read', { seqs: cold.map((e) => e.seq) });
    const body = Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength);
    let off = 0;
    cold.forEach((e, i) => {
      const end = r.offsets[i]!;
      if (e.msg === undefined && e.refs > 0) {
        e.msg = cbor.decode(body.subarray(off, end)) as Message;
        this.hot++;
      }
      off = end;
    });
  }

  private schedule(): void {
    if (this.committing || !this.store) return;
    if (this.flushScheduled) {
      // Waiting out the pace: once as many puts are back as the last commit carried (senders that each wait for
      // their acknowledgement), no more are coming soon, so go now.
      if (this.paceTimer !== undefined && this.groupPuts >= this.lastGroupPuts) {
        clearTimeout(this.paceTimer);
        this.paceTimer = undefined;
        setImmediate(() => this.flush());
      }
      return;
    }
    this.flushScheduled = true;
    // Everything put in this turn of the event loop goes into one commit; while puts keep coming from more senders
    // than came back, everything put within COMMIT_EVERY_MS. Pacing on the real clock: it is about the disk, not the
    // readings' time. A lone sender, or all of the last commit's senders back, go at once.
    const wait = this.groupPuts >= this.lastGroupPuts ? 0 : this.lastCommitAt + COMMIT_EVERY_MS - performance.now();
    if (wait <= 0) setImmediate(() => this.flush());
    else {
      this.paceTimer = setTimeout(() => {
        this.paceTimer = undefined;
        this.flush();
      }, wait);
    }
  }

  private paceTimer: NodeJS.Timeout | undefined;

  private lastCommitAt = -Infinity;
  /** Puts waiting for the group being gathered, and how many the last commit carried. */
  private groupPuts = 0;
  private lastGroupPuts = 0;

  private flush(): void {
    this.flushScheduled = false;
    const store = this.store;
    if (this.committing || !store) return;
    clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    this.urgent = false;
    const group = this.group.filter((e) => e.refs > 0);
    const done = this.groupDone;
    if (group.length === 0 && this.deletes.length === 0 && this.updates.size === 0 && this.dirty.size === 0 && this.newLanes.length === 0) {
      done?.resolve();
      this.groupDone = undefined;
      this.group = [];
      this.groupIndex.clear();
      return;
    }
    this.group = [];
    this.groupIndex = new Map();
    this.groupDone = undefined;
    const n = group.length;
    const seqs = new Float64Array(n);
    const ats = new Float64Array(n);
    const laneCounts = new Uint16Array(n);
    const offsets = new Float64Array(n);
    let laneTotal = 0;
    for (const e of group) laneTotal += e.lanes.length;
    const laneNums = new Uint16Array(laneTotal);
    const bodies: Buffer[] = [];
    let total = 0;
    let ln = 0;
    group.forEach((e, i) => {
      seqs[i] = e.seq;
      ats[i] = e.at;
      laneCounts[i] = e.lanes.length;
      for (const l of e.lanes) laneNums[ln++] = l.num;
      bodies.push(e.body!);
      total += e.bytes;
      offsets[i] = total;
      e.body = undefined;
      e.state = SENT;
    });
    const updates = [...this.updates].filter((e) => e.refs > 0);
    this.updates.clear();
    const deletes = this.deletes;
    this.deletes = [];
    const dirty = [...this.dirty];
    this.dirty.clear();
    const newLanes = this.newLanes.splice(0);
    const cursors = dirty.map((l) => [l, l.cursorNow()] as const).filter(([l, c]) => c !== l.savedCursor);
    const req: CommitRequest = {
      seqs,
      ats,
      laneCounts,
      laneNums,
      body: Buffer.concat(bodies, total),
      offsets,
      updates: updates.map((e) => [e.seq, e.lanes.map((l) => l.num)] as const),
      deletes: ranges(deletes),
      deleted: deletes.length,
      cursors: cursors.map(([l, c]) => [l.num, c] as const),
      newLanes: newLanes.map((l) => [l.num, l.name, l.savedCursor] as const),
      nextSeq: this.nextSeq,
    };
    this.committing = true;
    this.lastCommitAt = performance.now();
    this.lastGroupPuts = this.groupPuts;
    this.groupPuts = 0;
    store.call('commit', req).then(
      () => {
        this.committing = false;
        for (const e of group) e.state = DURABLE;
        for (const [l, c] of cursors) l.savedCursor = c;
        const woken = new Set<Lane>();
        for (const e of group) for (const l of e.lanes) woken.add(l);
        for (const l of woken) l.wake();
        done?.resolve();
        this.evict();
        this.trimOrder();
        this.afterCommit();
      },
      (err: unknown) => {
        this.committing = false;
        // Nothing of this group is on disk: its puts fail (their senders were not acknowledged and send again) and
        // its rows leave the lanes. Deletes, lane sets and cursors go with the next commit.
        for (const e of group) {
          for (const l of e.lanes) l.unput(e);
          if (e.msg !== undefined) this.hot--;
          if (e.refs > 0) this.live--;
          e.msg = undefined;
          e.refs = 0;
        }
        this.deletes.push(...deletes);
        for (const e of updates) this.updates.add(e);
        for (const l of dirty) this.dirty.add(l);
        this.newLanes.unshift(...newLanes);
        done?.reject(err);
        // Not at once: a disk that fails now (full, gone) would otherwise be asked again in a busy loop.
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.afterCommit();
        }, 100);
        this.wakeIdle();
      },
    );
  }

  private retryTimer: NodeJS.Timeout | undefined;

  private hasWork(): boolean {
    return this.group.length > 0 || this.groupDone !== undefined || this.deletes.length > 0 || this.dirty.size > 0 || this.updates.size > 0 || this.newLanes.length > 0;
  }

  private afterCommit(): void {
    if (this.urgent || this.group.length > 0) this.schedule();
    else if (this.hasWork()) this.scheduleLazy();
    else this.wakeIdle();
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Forget the oldest messages held in memory once there are too many: they are on disk, and read back in turn. */
  private evict(): void {
    if (this.hot <= HOT_MAX) return;
    const order = this.order;
    let i = Math.max(this.orderHead, this.evictAt);
    while (this.hot > HOT_MAX / 2 && i < order.length) {
      const e = order[i]!;
      if (e.refs > 0 && e.state === DURABLE && e.msg !== undefined) {
        e.msg = undefined;
        this.hot--;
      }
      i++;
    }
    this.evictAt = i;
  }

  /**
   * Entries no lane needs leave the order list: from its front as lanes finish in order, and all at once when a lane
   * that does not move (a dead sink) keeps old entries at the front while the others' go by.
   */
  private trimOrder(): void {
    const order = this.order;
    let h = this.orderHead;
    while (h < order.length && order[h]!.refs === 0) h++;
    this.orderHead = h;
    if (order.length - h > 2 * this.live + 4096) {
      this.order = order.slice(h).filter((e) => e.refs > 0);
      this.orderHead = 0;
      this.evictAt = 0;
    } else if (h > 4096 && h * 2 > order.length) {
      this.order = order.slice(h);
      this.evictAt = Math.max(0, this.evictAt - h);
      this.orderHead = 0;
    }
  }

  /** Commit what is pending, then stop the storage thread. Lanes should be closed first. */
  async close(): Promise<void> {
    if (this.closed) return;
    const store = this.store;
    if (store) {
      // Let the commit under way, and one with whatever is left, land (once: a failing disk does not hold a stop).
      for (let round = 0; round < 2 && (this.committing || this.hasWork()); round++) {
        await new Promise<void>((resolve) => {
          this.idleWaiters.push(resolve);
          if (!this.committing) {
            clearTimeout(this.retryTimer);
            this.retryTimer = undefined;
            this.flush();
            if (!this.committing) this.wakeIdle();
          }
        });
      }
      clearTimeout(this.retryTimer);
      clearTimeout(this.lazyTimer);
      this.closed = true;
      try {
        await store.call('close', null);
      } finally {
        await store.stop();
      }
    }
    this.closed = true;
    for (const l of this.lanesByName.values()) await l.close();
  }
}

/** Sorted seqs as inclusive [lo, hi] pairs of consecutive runs. */
function ranges(seqs: number[]): number[] {
  if (seqs.length === 0) return [];
  seqs.sort((a, b) => a - b);
  const out: number[] = [];
  let lo = seqs[0]!;
  let hi = lo;
  for (let i = 1; i < seqs.length; i++) {
    const s = seqs[i]!;
    if (s === hi + 1) hi = s;
    else if (s !== hi) {
      out.push(lo, hi);
      lo = hi = s;
    }
  }
  out.push(lo, hi);
  return out;
}

/** The in-memory journal stores no bytes; its byte caps count an estimate of the JSON size. */
function estimateBytes(msg: Message): number {
  return JSON.stringify(msg).length;
}

/** One sink's share of the journal. */
class Lane implements Outbox {
  /** This lane's entries not done yet, oldest first, from `head`; `null` where one was dropped out of order. */
  private q: Array<Entry | null> = [];
  private head = 0;
  /** Entries from `head` up to here are taken (in flight). */
  private next = 0;
  /** From `next` up to here every slot is null: where the next drop-oldest looks first. */
  private dropScan = 0;
  private items = 0;
  private bytes = 0;
  /** Highest seq ever given to this lane. */
  lastSeq: number;
  savedCursor: number;
  private limits: OutboxLimits = { maxItems: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER, overflow: 'drop-oldest' };
  private readers: Array<() => void> = [];
  private roomWaiters: Array<{ items: number; bytes: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private reservedItems = 0;
  private reservedBytes = 0;
  private closed = false;

  constructor(
    private readonly journal: Journal,
    readonly name: string,
    readonly num: number,
    readonly cursor: number,
  ) {
    this.lastSeq = cursor;
    this.savedCursor = cursor;
  }

  open(limits: OutboxLimits): void {
    this.limits = limits;
    this.closed = false;
  }

  /** At restart: a row above this lane's cursor that names it. */
  restoreEntry(e: Entry): void {
    this.q.push(e);
    this.items++;
    this.bytes += e.bytes;
    this.lastSeq = Math.max(this.lastSeq, e.seq);
  }

  async put(msgs: readonly Message[]): Promise<PutResult> {
    if (this.closed) throw new OutboxClosedError();
    if (msgs.length === 0) return { dropped: 0 };
    let dropped = 0;
    let admitted: readonly Message[] = msgs;
    let reserved = 0;
    let reservedBytes = 0;
    if (this.limits.overflow === 'block') {
      // Wait, first come first served, until the whole put fits. Messages that can never fit are dropped.
      const sized = msgs.map((m) => ({ m, size: this.journal.sizeOf(m) })).filter((x) => x.size <= this.limits.maxBytes);
      dropped = msgs.length - sized.length;
      const n = Math.min(sized.length, this.limits.maxItems);
      dropped += sized.length - n; // a single put larger than the whole outbox
      const fit = sized.slice(0, n);
      admitted = fit.map((x) => x.m);
      reserved = fit.length;
      reservedBytes = fit.reduce((s, x) => s + x.size, 0);
      await this.reserve(reserved, reservedBytes);
      if (this.closed) {
        this.unreserve(reserved, reservedBytes);
        throw new OutboxClosedError();
      }
    }
    for (const m of admitted) dropped += this.add(m, reserved > 0);
    this.unreserve(reserved, reservedBytes);
    const done = this.journal.committed();
    await done;
    return { dropped };
  }

  /** Put one message in, applying the overflow policy. Returns how many messages that dropped (it, or older ones). */
  private add(msg: Message, reserved: boolean): number {
    let dropped = 0;
    if (!reserved) {
      const size = this.journal.sizeOf(msg);
      if (size > this.limits.maxBytes) return 1;
      if (this.items + 1 > this.limits.maxItems || this.bytes + size > this.limits.maxBytes) {
        if (this.limits.overflow === 'drop-newest') return 1;
        // drop-oldest: make room from the oldest waiting; with only entries in flight left, go over the cap.
        while (this.items > 0 && (this.items + 1 > this.limits.maxItems || this.bytes + size > this.limits.maxBytes)) {
          if (!this.dropOldest()) break;
          dropped++;
        }
      }
    }
    const e = this.journal.add(this, msg);
    this.q.push(e);
    this.items++;
    this.bytes += e.bytes;
    this.lastSeq = e.seq;
    if (e.state === DURABLE) this.wake(); // the in-memory journal
    return dropped;
  }

  /** Drop the oldest entry not in flight. False when every entry is in flight. */
  private dropOldest(): boolean {
    let i = Math.max(this.dropScan, this.next);
    while (i < this.q.length && this.q[i] === null) i++;
    this.dropScan = i;
    const e = this.q[i];
    if (!e) return false;
    this.q[i] = null;
    this.items--;
    this.bytes -= e.bytes;
    const front = i === this.head;
    this.journal.release(e, this, front);
    if (front) this.advanceHead();
    else {
      this.dropScan = i + 1;
      // A sink that does not move, at its cap: every put drops one behind its batch in flight. Keep the holes bounded.
      if (this.q.length - this.head > 2 * this.items + 4096) this.compact();
    }
    void this.journal.touched(this).catch(() => undefined);
    return true;
  }

  private advanceHead(): void {
    while (this.head < this.q.length && this.q[this.head] === null) this.head++;
    if (this.next < this.head) this.next = this.head;
    if (this.dropScan < this.next) this.dropScan = this.next;
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.next -= this.head;
      this.dropScan -= this.head;
      this.head = 0;
    }
  }

  /** Rebuild the queue without its holes, keeping what is in flight in flight. */
  private compact(): void {
    const q: Entry[] = [];
    let next = 0;
    for (let i = this.head; i < this.q.length; i++) {
      const e = this.q[i];
      if (!e) continue;
      q.push(e);
      if (i < this.next) next++;
    }
    this.q = q;
    this.head = 0;
    this.next = next;
    this.dropScan = next;
  }

  /** This lane's cursor now: everything of it below its oldest entry not done is done. */
  cursorNow(): number {
    for (let i = this.head; i < this.q.length; i++) {
      const e = this.q[i];
      if (e) return e.seq - 1;
    }
    return this.lastSeq;
  }

  /** A commit failed: `e` never became durable and leaves this lane. */
  unput(e: Entry): void {
    for (let i = this.q.length - 1; i >= this.head; i--) {
      if (this.q[i] === e) {
        this.q[i] = null;
        this.items--;
        this.bytes -= e.bytes;
        if (i === this.head) this.advanceHead();
        return;
      }
    }
  }

  async take(max: number): Promise<readonly OutboxEntry[]> {
    if (this.closed) return [];
    const out: Entry[] = [];
    let i = this.next;
    while (out.length < max && i < this.q.length) {
      const e = this.q[i];
      if (e) {
        if (e.state !== DURABLE) break; // not committed yet: not delivered before it is on disk
        out.push(e);
      }
      i++;
    }
    if (out.length === 0) return [];
    const from = this.next;
    this.next = i;
    if (this.dropScan < i) this.dropScan = i;
    try {
      await this.journal.load(out);
    } catch (err) {
      this.next = from;
      throw err;
    }
    return out.map((e) => ({ id: e.seq, msg: e.msg! }));
  }

  ack(n: number): Promise<void> {
    let left = n;
    let i = this.head;
    while (left > 0 && i < this.next) {
      const e = this.q[i];
      if (e) {
        this.q[i] = null;
        this.items--;
        this.bytes -= e.bytes;
        this.journal.release(e, this, true);
        left--;
      }
      i++;
    }
    this.advanceHead();
    this.pumpRoom();
    return this.journal.touched(this);
  }

  release(): void {
    this.next = this.head;
    this.dropScan = this.head;
  }

  /** Drop everything (a sink removed for good). Returns how many. */
  discardAll(): number {
    let n = 0;
    for (let i = this.head; i < this.q.length; i++) {
      const e = this.q[i];
      if (!e) continue;
      this.journal.release(e, this, true);
      n++;
    }
    this.q = [];
    this.head = this.next = this.dropScan = 0;
    this.items = 0;
    this.bytes = 0;
    void this.journal.touched(this).catch(() => undefined);
    return n;
  }

  stats(): OutboxStats {
    let oldestAt: number | undefined;
    for (let i = this.head; i < this.q.length; i++) {
      const e = this.q[i];
      if (e) {
        oldestAt = e.at;
        break;
      }
    }
    return { items: this.items, bytes: this.bytes, oldestAt };
  }

  readable(): boolean {
    if (this.closed) return false;
    for (let i = this.next; i < this.q.length; i++) {
      const e = this.q[i];
      if (e) return e.state === DURABLE;
    }
    return false;
  }

  whenReadable(): Promise<void> {
    // Closed: nothing will be readable again; the runner's stop wakes it by its own signal, so no busy loop here.
    if (this.closed) return new Promise(() => undefined);
    if (this.readable()) return Promise.resolve();
    return new Promise((resolve) => this.readers.push(resolve));
  }

  wake(): void {
    if (this.readers.length === 0 || !this.readable()) return;
    const r = this.readers;
    this.readers = [];
    for (const f of r) f();
  }

  private hasRoom(items: number, bytes: number): boolean {
    const usedItems = this.items + this.reservedItems;
    const usedBytes = this.bytes + this.reservedBytes;
    // An empty outbox always admits one put, so a put larger than maxBytes cannot wait forever.
    return usedItems === 0 || (usedItems + items <= this.limits.maxItems && usedBytes + bytes <= this.limits.maxBytes);
  }

  private reserve(items: number, bytes: number): Promise<void> {
    if (this.roomWaiters.length === 0 && this.hasRoom(items, bytes)) {
      this.reservedItems += items;
      this.reservedBytes += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.roomWaiters.push({ items, bytes, resolve, reject }));
  }

  private unreserve(items: number, bytes: number): void {
    this.reservedItems -= items;
    this.reservedBytes -= bytes;
  }

  /** Admit blocked puts, in order, while there is room. */
  private pumpRoom(): void {
    for (;;) {
      const w = this.roomWaiters[0];
      if (!w || !this.hasRoom(w.items, w.bytes)) return;
      this.roomWaiters.shift();
      this.reservedItems += w.items;
      this.reservedBytes += w.bytes;
      w.resolve();
    }
  }

  close(): Promise<void> {
    this.closed = true;
    const r = this.readers;
    this.readers = [];
    for (const f of r) f();
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w.reject(new OutboxClosedError());
    return Promise.resolve();
  }
}

/** A sink's outbox in memory only, alone in its own journal (tests, `outbox.type: memory`). */
export function memoryOutbox(limits: OutboxLimits, clock: Clock): Outbox {
  return Journal.memory(clock).lane('memory', limits);
}

/**
 * A durable outbox alone in a journal of its own, whose close also closes the journal and its storage thread (for
 * benchmarks and tests of one outbox; the hub shares one journal among all its sinks).
 */
export async function soloDurableOutbox(path: string, limits: OutboxLimits, sync: 'full' | 'normal', clock: Clock): Promise<Outbox> {
  const j = await Journal.open({ path, sync, clock, lanes: ['s'] });
  const lane = j.lane('s', limits);
  return {
    put: (m) => lane.put(m),
    take: (max) => lane.take(max),
    ack: (n) => lane.ack(n),
    release: () => lane.release(),
    stats: () => lane.stats(),
    readable: () => lane.readable(),
    whenReadable: () => lane.whenReadable(),
    close: async () => {
      await lane.close();
      await j.close();
    },
  };
}

// A bounded in-memory outbox: fast, and lost if the process dies. For sinks whose data is worthless after a
// restart (a console, a live view) and for tests; the durable SQLite outbox is the default.
import type { Clock } from '../core/clock.js';
import type { Message } from '../core/types.js';
import { OutboxClosedError, type Outbox, type OutboxEntry, type OutboxLimits, type OutboxStats, type PutResult } from './outbox.js';

interface Slot extends OutboxEntry {
  readonly bytes: number;
  readonly at: number;
}

export class MemoryOutbox implements Outbox {
  private entries: Slot[] = [];
  private head = 0;
  private nextId = 1;
  private bytes = 0;
  private readers: Array<() => void> = [];
  private room: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private closed = false;
  /** Highest id handed out by the last peek: the batch being delivered, which overflow must not drop. */
  private leased = 0;

  constructor(
    private readonly limits: OutboxLimits,
    private readonly clock: Clock,
  ) {}

  async put(msgs: readonly Message[]): Promise<PutResult> {
    let dropped = 0;
    for (const msg of msgs) {
      if (this.closed) throw new OutboxClosedError();
      const bytes = JSON.stringify(msg).length; // an estimate of its size, for the byte cap
      if (bytes > this.limits.maxBytes) {
        dropped++; // could never fit
        continue;
      }
      let refused = false;
      while (this.full(bytes)) {
        if (this.limits.overflow === 'block') {
          await this.waitForRoom();
        } else if (this.limits.overflow === 'drop-newest') {
          refused = true;
          break;
        } else {
          // drop-oldest, but never the batch being delivered; with only that left, go over the cap by one batch.
          let i = this.head;
          while (i < this.entries.length && this.entries[i]!.id <= this.leased) i++;
          if (i >= this.entries.length) break;
          const [old] = this.entries.splice(i, 1);
          this.bytes -= old!.bytes;
          dropped++;
        }
      }
      if (refused) {
        dropped++;
        continue;
      }
      this.entries.push({ id: this.nextId++, msg, bytes, at: this.clock.now() });
      this.bytes += bytes;
      this.wake();
    }
    this.compact();
    return { dropped };
  }

  peek(max: number): Promise<readonly OutboxEntry[]> {
    const batch = this.entries.slice(this.head, this.head + max);
    this.leased = batch.at(-1)?.id ?? 0;
    return Promise.resolve(batch);
  }

  remove(ids: readonly number[]): Promise<void> {
    this.leased = 0;
    if (ids.length === 0) return Promise.resolve();
    const gone = new Set(ids);
    const maxId = Math.max(...ids);
    // Entries are in id order and a batch is taken from the head, so only the head region needs looking at.
    let i = this.head;
    while (i < this.entries.length && this.entries[i]!.id <= maxId) i++;
    const region = this.entries.slice(this.head, i);
    const kept = region.filter((e) => !gone.has(e.id));
    for (const e of region) if (gone.has(e.id)) this.bytes -= e.bytes;
    this.entries.splice(this.head, i - this.head, ...kept);
    this.compact();
    const waiters = this.room;
    this.room = [];
    for (const w of waiters) w.resolve();
    return Promise.resolve();
  }

  release(): void {
    this.leased = 0;
  }

  stats(): OutboxStats {
    return { items: this.size(), bytes: this.bytes, oldestAt: this.entries[this.head]?.at };
  }

  whenReadable(): Promise<void> {
    if (this.size() > 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.readers.push(resolve));
  }

  close(): Promise<void> {
    this.closed = true;
    this.wake();
    const waiters = this.room;
    this.room = [];
    for (const w of waiters) w.reject(new OutboxClosedError());
    return Promise.resolve();
  }

  private size(): number {
    return this.entries.length - this.head;
  }

  private full(extraBytes: number): boolean {
    return this.size() + 1 > this.limits.maxItems || this.bytes + extraBytes > this.limits.maxBytes;
  }

  private waitForRoom(): Promise<void> {
    if (this.closed) return Promise.reject(new OutboxClosedError());
    return new Promise((resolve, reject) => this.room.push({ resolve, reject }));
  }

  private wake(): void {
    const w = this.readers;
    this.readers = [];
    for (const f of w) f();
  }

  private compact(): void {
    // Drop the consumed prefix now and then, so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

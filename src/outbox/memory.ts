// A bounded in-memory outbox. Fast and simple; loses its content if the process dies (the durable outbox does not).
import type { Message } from '../core/types.js';
import type { Outbox, OutboxEntry, PutResult } from './outbox.js';

export type OverflowPolicy = 'drop-oldest' | 'drop-newest';

export class MemoryOutbox implements Outbox {
  private entries: OutboxEntry[] = [];
  private head = 0;
  private nextId = 1;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly maxItems: number,
    private readonly overflow: OverflowPolicy,
  ) {}

  put(msgs: readonly Message[]): Promise<PutResult> {
    let dropped = 0;
    for (const msg of msgs) {
      if (this.size() >= this.maxItems) {
        dropped++;
        if (this.overflow === 'drop-newest') continue;
        this.head++;
      }
      this.entries.push({ id: this.nextId++, msg });
    }
    this.compact();
    if (this.size() > 0) this.wake();
    return Promise.resolve({ dropped });
  }

  peek(max: number): readonly OutboxEntry[] {
    return this.entries.slice(this.head, this.head + max);
  }

  remove(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const gone = new Set(ids);
    const maxId = Math.max(...ids);
    // Entries are in id order and a batch is taken from the head, so only the head region needs looking at.
    let i = this.head;
    while (i < this.entries.length && this.entries[i]!.id <= maxId) i++;
    const region = this.entries.slice(this.head, i).filter((e) => !gone.has(e.id));
    this.entries.splice(this.head, i - this.head, ...region);
    this.compact();
  }

  size(): number {
    return this.entries.length - this.head;
  }

  whenReadable(): Promise<void> {
    if (this.size() > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): Promise<void> {
    this.wake();
    return Promise.resolve();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
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

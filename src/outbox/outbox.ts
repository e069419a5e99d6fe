// The outbox interface: each sink owns one. The hub puts routed messages in; the sink's runner takes batches out in
// order and removes them once delivered. Two implementations pass one conformance suite
// (test/outbox/conformance.ts): `SqliteOutbox` (durable, the default) and `MemoryOutbox`.
import type { Message } from '../core/types.js';

export interface OutboxEntry {
  /** Increases with every put; delivery order. */
  readonly id: number;
  readonly msg: Message;
}

export interface PutResult {
  /** Messages the overflow policy dropped to make this put fit (old ones for drop-oldest, new ones for drop-newest). */
  readonly dropped: number;
}

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'block';

export interface OutboxLimits {
  readonly maxItems: number;
  readonly maxBytes: number;
  readonly overflow: OverflowPolicy;
}

export interface OutboxStats {
  readonly items: number;
  readonly bytes: number;
  /** When the oldest waiting message was put in (ms since the epoch), if any. */
  readonly oldestAt: number | undefined;
}

export interface Outbox {
  /**
   * Add messages in order. Resolves once they are as durable as this outbox makes them (committed to disk for the
   * SQLite outbox). With the `block` policy it waits for room, which is how backpressure reaches the inputs.
   */
  put(msgs: readonly Message[]): Promise<PutResult>;
  /**
   * Up to `max` of the oldest entries, left in place. They are the batch being written until `remove` or `release`:
   * `drop-oldest` overflow does not drop them meanwhile (with only they left, the outbox goes over its cap by at most
   * that batch), so a message is never both delivered and counted as dropped.
   */
  peek(max: number): Promise<readonly OutboxEntry[]>;
  /** The batch taken by `peek` is no longer being written (the write failed and waits for a retry). */
  release(): void;
  /** Remove entries (delivered, or rejected for good). Ids no longer present (dropped meanwhile) are ignored. */
  remove(ids: readonly number[]): Promise<void>;
  stats(): OutboxStats;
  /** Resolves as soon as the outbox is not empty. */
  whenReadable(): Promise<void>;
  /** Release files and wake every waiter (blocked puts reject). */
  close(): Promise<void>;
}

/** Raised to blocked puts when the outbox closes under them. */
export class OutboxClosedError extends Error {
  constructor() {
    super('outbox closed');
    this.name = 'OutboxClosedError';
  }
}

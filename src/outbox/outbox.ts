// The outbox interface: each sink owns one. The hub puts routed messages in; the sink's runner takes batches out in
// order and removes them once delivered. This issue ships a bounded in-memory outbox; the durable SQLite one
// implements the same interface.
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

export interface Outbox {
  /** Add messages in order. Resolves once they are as durable as this outbox makes them. */
  put(msgs: readonly Message[]): Promise<PutResult>;
  /** Up to `max` of the oldest entries, left in place. */
  peek(max: number): readonly OutboxEntry[];
  /** Remove entries (delivered, or rejected for good). Ids no longer present (dropped meanwhile) are ignored. */
  remove(ids: readonly number[]): void;
  /** Messages waiting. */
  size(): number;
  /** Resolves as soon as the outbox is not empty. */
  whenReadable(): Promise<void>;
  close(): Promise<void>;
}

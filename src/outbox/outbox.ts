// The outbox interface: each sink owns one, its share of the journal (src/outbox/journal.ts). The hub puts routed
// messages in; the sink's runner takes batches out in order, keeps a window of them in flight, and acknowledges them
// in order. Durable and in-memory journals pass one conformance suite (test/outbox/conformance.ts).
import { BackhaulError } from '../core/errors.js';
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
   * Add messages in order. Resolves once they are as durable as this outbox makes them (committed to disk by the
   * durable journal). With the `block` policy it waits for room, which is how backpressure reaches the inputs.
   */
  put(msgs: readonly Message[]): Promise<PutResult>;
  /**
   * Up to `max` of the oldest entries not taken yet (only durable ones). Taken entries are in flight until `ack` or
   * `release`: `drop-oldest` overflow does not drop them meanwhile (with only they left, the outbox goes over its cap
   * by at most the window), so a message is never both delivered and counted as dropped.
   */
  take(max: number): Promise<readonly OutboxEntry[]>;
  /**
   * The oldest `n` taken entries are done (delivered, or rejected for good). Resolves once that is on disk, so a
   * restart does not send them again.
   */
  ack(n: number): Promise<void>;
  /** Every taken entry not acknowledged waits again (a write failed); the next `take` starts with the oldest. */
  release(): void;
  stats(): OutboxStats;
  /** True when `take` would return something now. */
  readable(): boolean;
  /** Resolves as soon as `readable()` is true. A closed outbox is never readable: waiters then resolve at the close, later calls never. */
  whenReadable(): Promise<void>;
  /** Detach: wake every waiter (blocked puts reject). What it holds stays in the journal. */
  close(): Promise<void>;
}

/** Raised to blocked puts when the outbox closes under them. */
export class OutboxClosedError extends BackhaulError {
  constructor() {
    super('BH_OUTBOX_CLOSED', 'outbox closed (Backhaul is stopping)');
    this.name = 'OutboxClosedError';
  }
}

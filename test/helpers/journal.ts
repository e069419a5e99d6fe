// A sink's durable outbox for tests: alone in a journal of its own (closing it ends the journal's storage thread,
// which would otherwise keep the test process alive).
import { systemClock } from '../../src/core/clock.js';
import { soloDurableOutbox } from '../../src/outbox/journal.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';

export function journalLane(path: string, limits: OutboxLimits, sync: 'full' | 'normal' = 'full'): Promise<Outbox> {
  return soloDurableOutbox(path, limits, sync, systemClock);
}

// A sink's durable outbox for tests: a lane of a journal of its own, whose close also closes the journal (and its
// storage thread, which would otherwise keep the test process alive).
import { systemClock } from '../../src/core/clock.js';
import { Journal } from '../../src/outbox/journal.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';

export async function journalLane(path: string, limits: OutboxLimits, sync: 'full' | 'normal' = 'full'): Promise<Outbox> {
  const j = await Journal.open({ path, sync, clock: systemClock, lanes: ['s'] });
  const lane = j.lane('s', limits);
  return {
    put: (m) => lane.put(m),
    take: (max) => lane.take(max),
    ack: (k) => lane.ack(k),
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

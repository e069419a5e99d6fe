import { join } from 'node:path';
import { systemClock } from '../../src/core/clock.js';
import { memoryOutbox } from '../../src/outbox/journal.js';
import { journalLane } from '../helpers/journal.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';
import { tempDir } from '../helpers/context.js';
import { outboxConformance } from './conformance.js';

outboxConformance('memory outbox', { make: (limits) => Promise.resolve(memoryOutbox(limits, systemClock)) });

const dir = tempDir();
let n = 0;
const paths = new WeakMap<Outbox, string>();

async function laneOf(path: string, limits: OutboxLimits): Promise<Outbox> {
  const o = await journalLane(path, limits);
  paths.set(o, path);
  return o;
}

outboxConformance('journal lane (sqlite)', {
  make: (limits) => laneOf(join(dir.path, `j${n++}.sqlite`), limits),
  async reopen(old, limits) {
    await old.close();
    return laneOf(paths.get(old)!, limits);
  },
});

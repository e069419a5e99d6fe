import { join } from 'node:path';
import { systemClock } from '../../src/core/clock.js';
import { MemoryOutbox } from '../../src/outbox/memory.js';
import { SqliteOutbox } from '../../src/outbox/sqlite.js';
import type { Outbox, OutboxLimits } from '../../src/outbox/outbox.js';
import { tempDir } from '../helpers/context.js';
import { outboxConformance } from './conformance.js';

outboxConformance('memory outbox', { make: (limits) => new MemoryOutbox(limits, systemClock) });

const dir = tempDir();
let n = 0;
const paths = new WeakMap<Outbox, string>();
outboxConformance('sqlite outbox', {
  make(limits: OutboxLimits) {
    const path = join(dir.path, `o${n++}.sqlite`);
    const o = SqliteOutbox.open(path, { ...limits, sync: 'full' }, systemClock);
    paths.set(o, path);
    return o;
  },
  async reopen(old: Outbox, limits: OutboxLimits) {
    const path = paths.get(old)!;
    await old.close();
    const o = SqliteOutbox.open(path, { ...limits, sync: 'full' }, systemClock);
    paths.set(o, path);
    return o;
  },
});

// dedupe: drop repeats of one (device, sequence number) within a time window: radios send each frame twice, and a
// receiver may hear both (the OpenTRV valve logs hold such pairs, 0 to 1 s apart).
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../../core/driver.js';
import type { Reading } from '../../../core/types.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';

const Options = Type.Object(
  {
    window: Duration({
      description: 'A reading repeating an earlier one of the same device (by `by`) at most this long apart, in measurement time, is a duplicate.',
      default: '1m',
    }),
    by: Type.Union([Type.Literal('seq'), Type.Literal('content')], {
      default: 'seq',
      description: '`seq`: same device and sequence number (readings without one pass). `content`: same device, time, values and units.',
    }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'Most readings remembered at once. Past it, the one of the least recently heard device is forgotten (`key_evicted`).',
    }),
  },
  { additionalProperties: false },
);

function contentKey(r: Reading): string {
  const values = Object.entries(r.values).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const units = Object.entries(r.units ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([r.ts, values, units]);
}

export const dedupeStage = defineStage({
  kind: 'stage',
  type: 'dedupe',
  keyed: true,
  description: 'Drop repeats of the same (device, sequence number) within a time window, counted as duplicate.',
  options: Options,
  check(o) {
    return durationProblems(o, { window: 'any' });
  },
  create(o, ctx) {
    const windowMs = durationMs(o.window);
    const byContent = (o.by) === 'content';
    const maxKeys = o.maxKeys;
    // device → (key → time first seen), both in least-recently-used-first order.
    const seen = new Map<string, Map<string, number>>();
    let size = 0;

    const evictOne = (): void => {
      const first = seen.entries().next();
      if (first.done) return;
      const [device, entries] = first.value;
      const oldest = entries.keys().next();
      if (!oldest.done) {
        entries.delete(oldest.value);
        size--;
        ctx.dropped('key_evicted');
      }
      if (entries.size === 0) seen.delete(device);
    };

    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        let key: string;
        if (byContent) key = contentKey(m);
        else if (m.seq !== undefined) key = String(m.seq);
        else return [m];
        let entries = seen.get(m.device);
        if (entries) seen.delete(m.device);
        else entries = new Map();
        seen.set(m.device, entries);
        // Forget what is older than the window (entries are in arrival order, near enough time order).
        for (const [k, ts] of entries) {
          if (ts >= m.ts - windowMs) break;
          entries.delete(k);
          size--;
        }
        const at = entries.get(key);
        if (at !== undefined && Math.abs(m.ts - at) <= windowMs) {
          ctx.dropped('duplicate');
          return [];
        }
        if (at !== undefined) {
          entries.delete(key);
          size--;
        }
        entries.set(key, m.ts);
        size++;
        while (size > maxKeys) evictOne();
        return [m];
      },
    };
  },
});

// deadband: report by exception. A value passes only when it moved far enough from the last value passed for its
// device and measurement, or when that one is older than `maxSilence`.
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import type { Value } from '../../../core/types.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';
import { pickValues } from '../../values.js';

const Options = Type.Object(
  {
    measurements: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Values the deadband applies to; others pass. Default: all.' }),
    ),
    absolute: Type.Optional(Type.Number({ minimum: 0, description: 'Pass a number when it differs from the last one passed by more than this.' })),
    relative: Type.Optional(
      Type.Number({ minimum: 0, description: 'Pass a number when it differs from the last one passed by more than this fraction of it (0.05 = 5 %).' }),
    ),
    maxSilence: Type.Optional(
      Duration({ description: 'Pass a value anyway when the last one passed is this much older (measurement time). Default: no limit.' }),
    ),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'Most (device, measurement) pairs remembered. Past it, the least recently seen is forgotten (`key_evicted`); its next value passes.',
    }),
  },
  { additionalProperties: false },
);

interface Last {
  readonly value: Value;
  readonly ts: number;
}

export const deadbandStage = defineStage({
  kind: 'stage',
  type: 'deadband',
  keyed: true,
  description: 'Report by exception: pass a value only when it changed by more than an absolute or relative amount, or after a maximum silence.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = durationProblems(o, { maxSilence: 'positive' });
    if (o.absolute === undefined && o.relative === undefined) problems.push({ path: '', message: 'give absolute, relative or both' });
    return problems;
  },
  create(o, ctx) {
    const only = o.measurements ? new Set(o.measurements) : undefined;
    const silenceMs = o.maxSilence === undefined ? Infinity : durationMs(o.maxSilence);
    const maxKeys = o.maxKeys;
    // device NUL measurement → last value passed; least recently seen first.
    const last = new Map<string, Last>();

    const changed = (prev: Value, v: Value): boolean => {
      if (typeof prev !== 'number' || typeof v !== 'number') return prev !== v;
      const d = Math.abs(v - prev);
      if (Number.isNaN(d)) return !(Number.isNaN(prev) && Number.isNaN(v));
      if (o.absolute !== undefined && d > o.absolute) return true;
      if (o.relative !== undefined && d > o.relative * Math.abs(prev)) return true;
      return false;
    };

    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const suppressed = new Set<string>();
        for (const [name, v] of Object.entries(m.values)) {
          if (only && !only.has(name)) continue;
          const key = `${m.device}\u0000${name}`;
          const prev = last.get(key);
          const pass = !prev || changed(prev.value, v) || m.ts - prev.ts >= silenceMs;
          if (prev) last.delete(key);
          if (prev && !pass) {
            last.set(key, prev);
            suppressed.add(name);
          } else {
            last.set(key, { value: v, ts: m.ts });
          }
        }
        while (last.size > maxKeys) {
          const oldest = last.keys().next();
          if (oldest.done) break;
          last.delete(oldest.value);
          ctx.dropped('key_evicted');
        }
        if (suppressed.size === 0) return [m];
        ctx.dropped('deadband', suppressed.size);
        const kept = pickValues(m, (n) => !suppressed.has(n));
        return kept ? [kept] : [];
      },
    };
  },
});

// range: drop physically impossible values (a radiator valve at 400 °C is a bad frame, not a fire).
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../../core/driver.js';
import { pickValues } from '../../values.js';

const Limit = Type.Object(
  { min: Type.Optional(Type.Number()), max: Type.Optional(Type.Number()) },
  { additionalProperties: false, minProperties: 1 },
);

const Options = Type.Object(
  {
    limits: Type.Record(Type.String({ minLength: 1 }), Limit, { description: 'measurement → { min, max } (inclusive).' }),
    action: Type.Union([Type.Literal('drop-value'), Type.Literal('drop-reading')], {
      default: 'drop-value',
      description: 'Remove only the bad value, or the whole reading.',
    }),
  },
  { additionalProperties: false },
);

export const rangeStage = defineStage({
  kind: 'stage',
  type: 'range',
  description: 'Drop values outside physical bounds, counted as out_of_range.',
  options: Options,
  create(o, ctx) {
    const limits = Object.entries(o.limits);
    const action = o.action;
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const bad = new Set<string>();
        for (const [name, l] of limits) {
          const v = m.values[name];
          if (typeof v !== 'number') continue;
          if ((l.min !== undefined && v < l.min) || (l.max !== undefined && v > l.max) || Number.isNaN(v)) bad.add(name);
        }
        if (bad.size === 0) return [m];
        ctx.dropped('out_of_range', bad.size);
        ctx.logger.debug({ device: m.device, measurements: [...bad] }, 'value out of range dropped');
        if (action === 'drop-reading') return [];
        const kept = pickValues(m, (n) => !bad.has(n));
        return kept ? [kept] : [];
      },
    };
  },
});

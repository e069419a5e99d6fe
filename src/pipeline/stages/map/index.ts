// map: rename, drop and add values; set units.
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../../core/driver.js';
import type { Value } from '../../../core/types.js';
import { withValues } from '../../values.js';

const Options = Type.Object(
  {
    rename: Type.Optional(Type.Record(Type.String(), Type.String({ minLength: 1 }), { description: 'old name → new name' })),
    drop: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Value names to remove.' })),
    add: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Boolean()]), { description: 'Constant values to add.' }),
    ),
    units: Type.Optional(Type.Record(Type.String(), Type.String({ minLength: 1 }), { description: 'Set the unit of a value (SenML name).' })),
  },
  { additionalProperties: false },
);

export const mapStage = defineStage({
  kind: 'stage',
  type: 'map',
  description: 'Rename, drop and add values; set units.',
  options: Options,
  create(o, ctx) {
    const rename = o.rename ?? {};
    const drop = new Set(o.drop ?? []);
    const add = o.add ?? {};
    const setUnits = o.units ?? {};
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const values: Record<string, Value> = {};
        const units: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.values)) {
          if (drop.has(k)) continue;
          const name = rename[k] ?? k;
          values[name] = v;
          const u = m.units?.[k];
          if (u !== undefined) units[name] = u;
        }
        for (const [k, v] of Object.entries(add)) values[k] = v;
        for (const [k, u] of Object.entries(setUnits)) if (k in values) units[k] = u;
        if (Object.keys(values).length === 0) {
          ctx.dropped('no_values');
          return [];
        }
        return [withValues(m, values, units)];
      },
    };
  },
});

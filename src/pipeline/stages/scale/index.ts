// scale: value × factor + offset, optionally with a new unit and name (°C → °F, Wh → kWh).
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../../core/driver.js';
import type { Value } from '../../../core/types.js';
import { withValues } from '../../values.js';

const Options = Type.Object(
  {
    measurement: Type.String({ minLength: 1, description: 'The value to scale.' }),
    factor: Type.Number({ default: 1, description: 'Multiplied first.' }),
    offset: Type.Number({ default: 0, description: 'Added after the factor.' }),
    unit: Type.Optional(Type.String({ minLength: 1, description: 'Unit of the result.' })),
    as: Type.Optional(Type.String({ minLength: 1, description: 'Store the result under this name (the original is removed).' })),
    decimals: Type.Optional(Type.Integer({ minimum: 0, maximum: 12, description: 'Round the result.' })),
  },
  { additionalProperties: false },
);

export const scaleStage = defineStage({
  kind: 'stage',
  type: 'scale',
  description: 'Scale one value (factor, offset), optionally renaming it and changing its unit.',
  options: Options,
  create(o) {
    const factor = o.factor ?? 1;
    const offset = o.offset ?? 0;
    const target = o.as ?? o.measurement;
    // Round through the decimal exponent form: toFixed(2) gives 61.92 for 61.925 because of binary representation.
    const d = o.decimals;
    const round = d === undefined ? (x: number) => x : (x: number) => Number(`${Math.round(Number(`${x}e${d}`))}e-${d}`);
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const v = m.values[o.measurement];
        if (typeof v !== 'number') return [m];
        const result = round(v * factor + offset);
        if (target === o.measurement && (o.unit === undefined || m.units?.[target] === o.unit)) {
          // In place of the old value, units as they were: one copy of the values, no deletes (which make V8 fall
          // back to slow dictionary objects).
          return [{ ...m, values: { ...m.values, [target]: result } }];
        }
        const values: Record<string, Value> = { ...m.values };
        const units: Record<string, string> = { ...(m.units ?? {}) };
        const unit = o.unit ?? units[o.measurement];
        delete values[o.measurement];
        delete units[o.measurement];
        values[target] = result;
        if (unit !== undefined) units[target] = unit;
        return [withValues(m, values, units)];
      },
    };
  },
});

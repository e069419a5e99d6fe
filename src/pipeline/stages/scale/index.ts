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
    const { factor, offset } = o;
    const target = o.as ?? o.measurement;
    // Round through the decimal exponent form: toFixed(2) gives 61.92 for 61.925 because of binary representation.
    const d = o.decimals;
    const p = d === undefined ? 1 : 10 ** d;
    const exact = (x: number) => {
      const s = String(x);
      // 1e-7 and 1e21 print with an exponent, which the decimal trick cannot extend: there ties are moot anyway.
      if (s.includes('e')) return Math.round(x * p) / p + 0;
      return Number(`${Math.round(Number(`${s}e${d}`))}e-${d}`) + 0;
    };
    // An integer divided by a power of ten is the double nearest that decimal, as the string form gives; only near a
    // tie (…5 at the last place) can the binary product round the wrong way, and there the string form decides.
    const round =
      d === undefined
        ? (x: number) => x
        : (x: number) => {
            const y = x * p;
            const f = y - Math.floor(y);
            return Math.abs(f - 0.5) < 1e-6 || !(Math.abs(y) < 2 ** 52) ? exact(x) : Math.round(y) / p + 0; // + 0: no -0, as the string form gives none
          };
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
        // Renamed (or a new unit): copied without the old entry rather than deleted from a copy, which would make V8
        // fall back to slow dictionary objects.
        const values: Record<string, Value> = {};
        for (const k in m.values) if (k !== o.measurement) values[k] = m.values[k]!;
        const units: Record<string, string> = {};
        if (m.units) for (const k in m.units) if (k !== o.measurement) units[k] = m.units[k]!;
        const unit = o.unit ?? m.units?.[o.measurement];
        values[target] = result;
        if (unit !== undefined) units[target] = unit;
        return [withValues(m, values, units)];
      },
    };
  },
});

// expr: a condition and/or computed values, in CEL (see ../../expression.ts for the language and its variables).
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import { joinPath } from '../../../core/errors.js';
import type { Value } from '../../../core/types.js';
import { compileExpression, expressionProblem } from '../../expression.js';
import { withValues } from '../../values.js';

const Options = Type.Object(
  {
    condition: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Keep only readings for which this is true, e.g. `temperature > 30 && device != "0d49"`. A reading it cannot be evaluated on (a value it names is absent) is dropped.',
      }),
    ),
    set: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), {
        description: 'Values to compute: name → expression, e.g. `{ "temperature_f": "temperature * 1.8 + 32" }`. Evaluated in order, on the reading as it came in.',
      }),
    ),
    units: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), { description: 'Unit of a computed value (SenML name).' })),
  },
  { additionalProperties: false },
);

export const exprStage = defineStage({
  kind: 'stage',
  type: 'expr',
  description: 'A condition and/or computed values in CEL, a small safe expression language (compiled at config load).',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = [];
    if (o.condition === undefined && o.set === undefined) problems.push({ path: '', message: 'give a condition, values to set, or both' });
    if (o.condition !== undefined) {
      const p = expressionProblem(o.condition, 'condition');
      if (p) problems.push({ path: 'condition', message: p });
    }
    for (const [name, src] of Object.entries(o.set ?? {})) {
      const p = expressionProblem(src, 'value');
      if (p) problems.push({ path: joinPath('set', name), message: p });
    }
    for (const name of Object.keys(o.units ?? {})) {
      if (!(name in (o.set ?? {}))) problems.push({ path: joinPath('units', name), message: `${name} is not one of the values in set` });
    }
    return problems;
  },
  create(o, ctx) {
    const condition = o.condition === undefined ? undefined : compileExpression(o.condition, 'condition');
    const set = Object.entries(o.set ?? {}).map(([name, src]) => [name, compileExpression(src, 'value')] as const);
    const setUnits = o.units ?? {};
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        if (condition && !condition.test(m)) {
          ctx.dropped('filtered');
          return [];
        }
        if (set.length === 0) return [m];
        const values: Record<string, Value> = { ...m.values };
        const units: Record<string, string> = { ...(m.units ?? {}) };
        let failed = 0;
        for (const [name, e] of set) {
          const v = e.value(m);
          if (v === undefined) {
            failed++;
            continue;
          }
          values[name] = v;
          const u = setUnits[name];
          if (u !== undefined) units[name] = u;
          else delete units[name];
        }
        if (failed > 0) ctx.dropped('expr_error', failed);
        return [withValues(m, values, units)];
      },
    };
  },
});

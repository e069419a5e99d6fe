// filter: keep or drop messages by device, value condition or expression, and values by measurement name.
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../../core/driver.js';
import type { Message, Value } from '../../../core/types.js';
import { compileExpression, expressionProblem } from '../../expression.js';
import { globMatcher } from '../../../core/glob.js';
import { pickValues } from '../../values.js';

const Condition = Type.Object(
  {
    measurement: Type.String({ minLength: 1 }),
    op: Type.Union(['<', '<=', '>', '>=', '==', '!='].map((o) => Type.Literal(o)), { description: 'Comparison.' }),
    value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
  },
  { additionalProperties: false },
);

const Options = Type.Object(
  {
    action: Type.Union([Type.Literal('keep'), Type.Literal('drop')], {
      default: 'keep',
      description: 'keep: pass only what matches; drop: remove what matches.',
    }),
    devices: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Device ids or globs.' })),
    when: Type.Optional(Type.Array(Condition, { minItems: 1, description: 'Value conditions, all of which must hold.' })),
    expr: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A condition in CEL, e.g. `temperature > 30 && device.startsWith("81")`; see the `expr` stage for the variables. A message it cannot be evaluated on (a value it names is absent) does not match.',
      }),
    ),
    measurements: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Measurements kept (keep) or removed (drop) from each reading.' }),
    ),
  },
  { additionalProperties: false },
);

function compare(a: Value, op: string, b: Value): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
  }
  if (typeof a !== typeof b || typeof a === 'boolean') return false;
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

export const filterStage = defineStage({
  kind: 'stage',
  type: 'filter',
  handlesEvents: true,
  description: 'Keep or drop messages by device, value conditions or an expression, and values by measurement.',
  options: Options,
  check(o) {
    const problem = o.expr === undefined ? undefined : expressionProblem(o.expr, 'condition');
    return problem ? [{ path: 'expr', message: problem }] : [];
  },
  create(o, ctx) {
    const action = o.action;
    const device = globMatcher(o.devices);
    const measurements = o.measurements ? new Set(o.measurements) : undefined;
    const when = o.when ?? [];
    const expr = o.expr === undefined ? undefined : compileExpression(o.expr, 'condition');
    const messageMatches = (m: Message): boolean => {
      if (device && (m.device === undefined || !device(m.device))) return false;
      if (expr && !expr.test(m)) return false;
      if (when.length > 0) {
        if (m.kind !== 'reading') return false;
        for (const c of when) {
          const v = m.values[c.measurement];
          if (v === undefined || !compare(v, c.op, c.value)) return false;
        }
      }
      return true;
    };
    return {
      process(m) {
        const hit = messageMatches(m);
        if (action === 'drop' && hit && !measurements) {
          ctx.dropped('filtered');
          return [];
        }
        if (action === 'keep' && !hit) {
          ctx.dropped('filtered');
          return [];
        }
        if (!measurements || m.kind !== 'reading') return [m];
        // Applies to matching messages only (keep: all that passed; drop: those the device/when criteria picked).
        const picked = pickValues(m, (name) => (action === 'keep' ? measurements.has(name) : !(hit && measurements.has(name))));
        if (!picked) {
          ctx.dropped('filtered');
          return [];
        }
        return [picked];
      },
    };
  },
});

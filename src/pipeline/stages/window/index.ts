// window: tumbling time windows per device and measurement (mean, median, min, max, count, sum, last), in event
// time, closed by the readings themselves or by the clock; late readings dropped or emitted as corrections.
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import { AGG_OPS, type AggOp } from '../../aggregate.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';
import { WindowEngine, mod } from '../../windows.js';

const Op = Type.Union(
  AGG_OPS.map((o) => Type.Literal(o)),
  { description: 'Aggregate; the result keeps the measurement\'s name.' },
);

const Options = Type.Object(
  {
    every: Duration({ description: 'Window length. Windows are aligned to multiples of it since the Unix epoch (UTC): 15m windows start at :00, :15, :30, :45.' }),
    op: Type.Optional(Op),
    ops: Type.Optional(
      Type.Array(Type.Union(AGG_OPS.map((o) => Type.Literal(o))), {
        minItems: 1,
        uniqueItems: true,
        description: 'Several aggregates at once; each is named `<measurement>_<op>`. Instead of `op`.',
      }),
    ),
    measurements: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Values to aggregate. Default: every numeric value.' }),
    ),
    grace: Duration({ description: 'How long after a window\'s end it waits for late readings before it is emitted.', default: '5s' }),
    late: Type.Union([Type.Literal('drop'), Type.Literal('correct')], {
      default: 'drop',
      description: 'A reading for a window already emitted: `drop` it (counted as `late`), or emit the window again with it included, as a correction.',
    }),
    correctFor: Duration({
      description: 'With `late: correct`: how long after it was emitted a window still takes corrections; later readings are dropped (`too_late`).',
      default: '1h',
    }),
    timestamp: Type.Union([Type.Literal('start'), Type.Literal('end')], { default: 'start', description: 'Time given to a window\'s aggregate.' }),
    flushOnStop: Type.Boolean({
      default: true,
      description: 'On shutdown, emit the windows still open as they are (partial). false: they are lost.',
    }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'Most aggregates (one device, measurement and window) held at once. Past it, values that would start a new one are dropped (`max_keys`).',
    }),
  },
  { additionalProperties: false },
);

/** `op`/`ops` → the list of aggregates and how results are named. */
export function opsOf(o: { op?: AggOp; ops?: AggOp[] }): { ops: AggOp[]; naming: 'same' | 'suffix' } {
  if (o.ops) return { ops: o.ops, naming: 'suffix' };
  return { ops: [o.op ?? 'mean'], naming: 'same' };
}

export const windowStage = defineStage({
  kind: 'stage',
  type: 'window',
  keyed: true,
  description: 'Tumbling time windows per device and measurement: mean, median, min, max, count, sum or last, in event time.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = durationProblems(o, { every: 'positive', grace: 'any', correctFor: 'any' });
    if (problems.length > 0) return problems;
    const every = durationMs(o.every);
    if (every > 7 * 86_400_000) problems.push({ path: 'every', message: 'the window length must be at most 7d' });
    if (o.op !== undefined && o.ops !== undefined) problems.push({ path: 'ops', message: 'give either op or ops, not both' });
    if (o.late === 'correct' && every > 0 && durationMs(o.correctFor) / every > 1000) {
      problems.push({ path: 'correctFor', message: 'at most 1000 windows can be kept for corrections: shorten correctFor or lengthen every' });
    }
    return problems;
  },
  create(o, ctx) {
    const everyMs = durationMs(o.every);
    const { ops, naming } = opsOf(o);
    const measurements = o.measurements ? new Set(o.measurements) : undefined;
    const engine = new WindowEngine(
      {
        everyMs,
        graceMs: durationMs(o.grace),
        align: (ts) => ts - mod(ts, everyMs),
        ops,
        naming,
        late: o.late,
        correctForMs: durationMs(o.correctFor),
        maxKeys: o.maxKeys,
        stamp: o.timestamp,
        minCount: 1,
      },
      ctx,
    );
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const values: Array<[string, number]> = [];
        for (const [k, v] of Object.entries(m.values)) {
          if (typeof v === 'number' && !Number.isNaN(v) && (!measurements || measurements.has(k))) values.push([k, v]);
        }
        if (values.length === 0) ctx.dropped('not_aggregated');
        return engine.add(m, values);
      },
      stop() {
        engine.stop(o.flushOnStop);
      },
    };
  },
});

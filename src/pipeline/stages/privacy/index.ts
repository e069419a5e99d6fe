// privacy: during configured local hours, suppress readings or publish only a coarser aggregate (hourly counts), so
// that a public feed never shows a lone person at a bus stop at 3 a.m.
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import type { Message } from '../../../core/types.js';
import { AGG_OPS } from '../../aggregate.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';
import { globMatcher } from '../../../core/glob.js';
import { HOURS_PATTERN, Zone, inRange, parseHours, zoneProblem } from '../../../core/localtime.js';
import { pickValues } from '../../values.js';
import { WindowEngine, mod } from '../../windows.js';

const Hours = Type.String({ pattern: HOURS_PATTERN });

const Options = Type.Object(
  {
    hours: Type.Union([Hours, Type.Array(Hours, { minItems: 1 })], {
      description: 'Private local hours, `"HH:MM-HH:MM"` (start included, end not; `"22:00-06:00"` spans midnight), or a list of them.',
    }),
    tz: Type.String({ minLength: 1, default: 'UTC', description: 'IANA time zone the hours are in, e.g. `Europe/London`; daylight saving time is followed.' }),
    action: Type.Union([Type.Literal('suppress'), Type.Literal('aggregate')], {
      default: 'suppress',
      description: '`suppress`: private values are removed. `aggregate`: they are replaced by one aggregate per device, measurement and `every`.',
    }),
    devices: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Devices (ids or globs) this applies to. Default: all.' })),
    measurements: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Values this applies to; others pass. Default: all.' }),
    ),
    every: Duration({ description: 'With `aggregate`: the bucket, aligned to local time; must divide a day.', default: '1h' }),
    op: Type.Union(
      AGG_OPS.map((o) => Type.Literal(o)),
      { default: 'count', description: 'With `aggregate`: the aggregate published; it keeps the measurement\'s name (`count` has the unit `count`).' },
    ),
    minCount: Type.Integer({
      minimum: 1,
      default: 1,
      description: 'With `aggregate`: buckets of fewer readings are not published at all (`min_count`); e.g. 3 so a count never shows one or two people.',
    }),
    grace: Duration({ description: 'With `aggregate`: how long after a bucket\'s end it waits for late readings.', default: '5s' }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'With `aggregate`: most (device, measurement, bucket) aggregates held. Past it, private values are suppressed (`max_keys`).',
    }),
  },
  { additionalProperties: false },
);

export const privacyStage = defineStage({
  kind: 'stage',
  type: 'privacy',
  keyed: true,
  description: 'During configured local hours, suppress readings or replace them by a coarser aggregate (e.g. hourly counts).',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = durationProblems(o, { every: 'positive', grace: 'any' });
    if (problems.length > 0) return problems;
    const tz = zoneProblem(o.tz);
    if (tz) problems.push({ path: 'tz', message: tz });
    const hours = typeof o.hours === 'string' ? [o.hours] : o.hours;
    hours.forEach((h, i) => {
      const r = parseHours(h);
      if (r.start === r.end) problems.push({ path: typeof o.hours === 'string' ? 'hours' : `hours[${i}]`, message: `${h} is empty; write 00:00-24:00 for the whole day` });
    });
    const every = durationMs(o.every);
    if (every <= 0 || 86_400_000 % every !== 0) problems.push({ path: 'every', message: 'the bucket must divide a day (e.g. 15m, 1h, 6h, 1d)' });
    return problems;
  },
  create(o, ctx) {
    const zone = new Zone(o.tz);
    const ranges = (typeof o.hours === 'string' ? [o.hours] : o.hours).map(parseHours);
    const device = globMatcher(o.devices);
    const only = o.measurements ? new Set(o.measurements) : undefined;
    const aggregate = (o.action) === 'aggregate';
    const everyMs = durationMs(o.every);
    const engine = aggregate
      ? new WindowEngine(
          {
            everyMs,
            graceMs: durationMs(o.grace),
            // Buckets follow local time: hourly buckets start on the local hour, daily ones at local midnight.
            align: (ts) => ts - mod(ts + zone.offsetMs(ts), everyMs),
            ops: [o.op],
            naming: 'same',
            late: 'drop',
            correctForMs: 0,
            maxKeys: o.maxKeys,
            stamp: 'start',
            minCount: o.minCount,
          },
          ctx,
        )
      : undefined;
    const isPrivate = (ts: number): boolean => {
      const minute = zone.minuteOfDay(ts);
      return ranges.some((r) => inRange(r, minute));
    };
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        if (device && !device(m.device)) return [m];
        if (!isPrivate(m.ts)) {
          // Public readings still move the device's buckets along (a 05:10 reading closes the 04:00 bucket).
          return engine ? [...engine.add(m, []), m] : [m];
        }
        const hidden = Object.keys(m.values).filter((k) => !only || only.has(k));
        if (hidden.length === 0) return [m];
        const out: Message[] = [];
        if (engine) {
          const numeric: Array<[string, number]> = [];
          for (const k of hidden) {
            const v = m.values[k];
            if (typeof v === 'number' && !Number.isNaN(v)) numeric.push([k, v]);
            // A count counts readings whatever their values; other aggregates need numbers.
            else if ((o.op) === 'count') numeric.push([k, 1]);
          }
          if (numeric.length < hidden.length) ctx.dropped('privacy', hidden.length - numeric.length);
          out.push(...engine.add(m, numeric));
        } else {
          ctx.dropped('privacy', hidden.length);
        }
        const rest = pickValues(m, (k) => !hidden.includes(k));
        if (rest) out.push(rest);
        return out;
      },
      stop() {
        // Open buckets are emitted as they are: a part-hour count is no finer than a whole-hour one, and `minCount`
        // still applies.
        engine?.stop(true);
      },
    };
  },
});

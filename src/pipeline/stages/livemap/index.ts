// livemap: the latest value of every device and measurement, with its age, emitted as one `livemap.snapshot` Event
// periodically and/or when something changes. Values older than `maxAge` leave the map.
import { Type } from '@sinclair/typebox';
import type { ClockTimer } from '../../../core/clock.js';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import { makeEvent } from '../../../core/events.js';
import type { HubEvent, Value } from '../../../core/types.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';

const Options = Type.Object(
  {
    every: Type.Optional(Duration({ description: 'Emit a snapshot this often (aligned to the clock), changed or not.' })),
    onChange: Type.Boolean({ default: false, description: 'Emit a snapshot when a value changes, appears or leaves the map.' }),
    minInterval: Duration({ description: 'With `onChange`: at most one snapshot per this interval; changes in between are sent together at its end.', default: '1s' }),
    maxAge: Duration({ description: 'A value measured longer ago than this leaves the map.', default: '1h' }),
    measurements: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Values kept in the map. Default: all.' })),
    units: Type.Boolean({ default: false, description: 'Also give each value\'s unit, as `<device>/<measurement>/unit`.' }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 10_000,
      description: 'Most (device, measurement) entries in the map (every snapshot carries them all). Past it, new entries are refused (`max_keys`) until some expire.',
    }),
  },
  { additionalProperties: false },
);

interface Entry {
  readonly device: string;
  value: Value;
  ts: number;
  unit: string | undefined;
}

/** Timer sweeps (expiry, coalesced changes) are at least this far apart. */
const MIN_SWEEP_MS = 1000;

export const livemapStage = defineStage({
  kind: 'stage',
  type: 'livemap',
  keyed: true,
  description: 'A snapshot of every live value (latest per device and measurement, with its age), emitted as one event periodically and/or on change.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = durationProblems(o, { every: 'positive', minInterval: 'any', maxAge: 'positive' });
    if (problems.length > 0) return problems;
    if (o.every === undefined && !o.onChange) problems.push({ path: '', message: 'give every, onChange: true, or both' });
    if (o.every !== undefined && durationMs(o.every) < 1000) problems.push({ path: 'every', message: 'snapshots can be at most one a second' });
    return problems;
  },
  create(o, ctx) {
    const clock = ctx.clock;
    const everyMs = o.every === undefined ? undefined : durationMs(o.every);
    const onChange = o.onChange;
    const minIntervalMs = durationMs(o.minInterval);
    const maxAgeMs = durationMs(o.maxAge);
    const only = o.measurements ? new Set(o.measurements) : undefined;
    const withUnits = o.units;
    const maxKeys = o.maxKeys;
    // "device/measurement" → entry
    const map = new Map<string, Entry>();
    let periodic: ClockTimer | undefined;
    let sweep: ClockTimer | undefined;
    let sweepAt = Infinity;
    let lastSweep = -Infinity;
    let lastSnapshot = -Infinity;
    let dirty = false;
    let stopped = false;
    /** No value expires before this (a lower bound, made exact by each expiry pass). */
    let earliestExpiry = Infinity;

    const expire = (now: number): boolean => {
      let removed = false;
      earliestExpiry = Infinity;
      for (const [k, e] of map) {
        if (now - e.ts > maxAgeMs) {
          map.delete(k);
          removed = true;
        } else {
          earliestExpiry = Math.min(earliestExpiry, e.ts + maxAgeMs + 1);
        }
      }
      return removed;
    };

    const snapshot = (): HubEvent => {
      const now = clock.now();
      expire(now);
      const data: Record<string, Value> = {};
      const devices = new Set<string>();
      for (const [k, e] of map) {
        data[k] = e.value;
        data[`${k}/ageMs`] = Math.max(0, now - e.ts);
        if (withUnits && e.unit !== undefined) data[`${k}/unit`] = e.unit;
        devices.add(e.device);
      }
      lastSnapshot = now;
      dirty = false;
      return makeEvent('livemap.snapshot', data, { ts: now, message: `${map.size} live value(s) from ${devices.size} device(s)` });
    };

    /** The next moment a sweep has work: a value expiring (when changes matter) or held-back changes going out. */
    const armSweep = (): void => {
      if (stopped) return;
      let at = Infinity;
      if (dirty) at = lastSnapshot + minIntervalMs;
      if (onChange) at = Math.min(at, earliestExpiry);
      if (at === Infinity) return;
      at = Math.max(at, lastSweep + MIN_SWEEP_MS);
      if (at >= sweepAt) return;
      if (sweep) clock.clearTimeout(sweep);
      sweepAt = at;
      sweep = clock.setTimeout(onSweep, Math.max(0, at - clock.now()));
    };

    const onSweep = (): void => {
      sweep = undefined;
      sweepAt = Infinity;
      const now = clock.now();
      lastSweep = now;
      if (onChange && expire(now)) dirty = true;
      if (dirty && now - lastSnapshot >= minIntervalMs) ctx.emit(snapshot());
      armSweep();
    };

    const armPeriodic = (): void => {
      if (stopped || everyMs === undefined) return;
      const now = clock.now();
      periodic = clock.setTimeout(
        () => {
          ctx.emit(snapshot());
          armPeriodic();
        },
        everyMs - (now % everyMs),
      );
    };
    armPeriodic();

    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const now = clock.now();
        let changed = false;
        let refused = 0;
        let stale = 0;
        for (const [name, value] of Object.entries(m.values)) {
          if (only && !only.has(name)) continue;
          if (now - m.ts > maxAgeMs) {
            stale++;
            continue;
          }
          const k = `${m.device}/${name}`;
          const e = map.get(k);
          if (e) {
            if (m.ts < e.ts) continue; // an older reading does not replace a newer value
            if (e.value !== value) changed = true;
            e.value = value;
            e.ts = m.ts;
            e.unit = m.units?.[name] ?? e.unit;
          } else if (map.size >= maxKeys) {
            refused++;
            continue;
          } else {
            map.set(k, { device: m.device, value, ts: m.ts, unit: m.units?.[name] });
            changed = true;
          }
          earliestExpiry = Math.min(earliestExpiry, m.ts + maxAgeMs + 1);
        }
        if (refused > 0) ctx.dropped('max_keys', refused);
        if (stale > 0) ctx.dropped('too_old', stale);
        if (changed && onChange) {
          dirty = true;
          if (now - lastSnapshot >= minIntervalMs) {
            const snap = snapshot();
            armSweep();
            return [snap];
          }
        }
        armSweep();
        return [];
      },
      stop() {
        stopped = true;
        if (periodic) clock.clearTimeout(periodic);
        if (sweep) clock.clearTimeout(sweep);
        periodic = sweep = undefined;
        map.clear();
      },
    };
  },
});

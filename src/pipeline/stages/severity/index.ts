// severity: NORMAL / WARNING / DANGER per device from thresholds on one measurement, with hysteresis; an Event
// (`severity.changed`) only when a device's level changes.
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import { makeEvent } from '../../../core/events.js';
import type { EventSeverity, Message, Value } from '../../../core/types.js';

const Thresholds = Type.Object(
  {
    above: Type.Optional(Type.Number({ description: 'The level holds at this value and above.' })),
    below: Type.Optional(Type.Number({ description: 'The level holds at this value and below.' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Options = Type.Object(
  {
    measurement: Type.String({ minLength: 1, description: 'The value judged.' }),
    warning: Type.Optional(Thresholds),
    danger: Type.Optional(Thresholds),
    hysteresis: Type.Number({
      minimum: 0,
      default: 0,
      description: 'A level is left only when the value is back past its threshold by more than this (no flapping around a threshold).',
    }),
    passReadings: Type.Boolean({ default: false, description: 'Pass the readings on too (events follow the reading that caused them). false: only events leave.' }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'Most devices whose level is remembered. Past it, the least recently seen is forgotten (`key_evicted`) and starts again from NORMAL.',
    }),
  },
  { additionalProperties: false },
);

export const LEVELS = ['NORMAL', 'WARNING', 'DANGER'] as const;
export type Level = 0 | 1 | 2;
const EVENT_SEVERITY: Record<Level, EventSeverity> = { 0: 'info', 1: 'warning', 2: 'critical' };

interface Limits {
  readonly above?: number;
  readonly below?: number;
}

/** Does `v` reach the thresholds, with them moved `margin` towards normal (hysteresis when leaving a level)? */
function reaches(t: Limits | undefined, v: number, margin: number): boolean {
  if (!t) return false;
  return (t.above !== undefined && v >= t.above - margin) || (t.below !== undefined && v <= t.below + margin);
}

/** The level for `v` given the current one: up at once, down only past the threshold by more than `h`. */
export function nextLevel(cur: Level, v: number, warning: Limits | undefined, danger: Limits | undefined, h: number): Level {
  const raw: Level = reaches(danger, v, 0) ? 2 : reaches(warning, v, 0) ? 1 : 0;
  if (raw >= cur) return raw;
  // Relaxed by the hysteresis, the value may still hold a level above `raw`, but never above the current one.
  const held: Level = reaches(danger, v, h) ? 2 : reaches(warning, v, h) ? 1 : 0;
  return Math.max(raw, Math.min(cur, held)) as Level;
}

export const severityStage = defineStage({
  kind: 'stage',
  type: 'severity',
  keyed: true,
  description: 'NORMAL / WARNING / DANGER from thresholds on a measurement, with hysteresis; emits a severity.changed Event when a device\'s level changes.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = [];
    if (!o.warning && !o.danger) problems.push({ path: '', message: 'give warning thresholds, danger thresholds or both' });
    const w = o.warning;
    const d = o.danger;
    if (w?.above !== undefined && d?.above !== undefined && d.above < w.above) {
      problems.push({ path: 'danger.above', message: `danger.above (${d.above}) must not be below warning.above (${w.above})` });
    }
    if (w?.below !== undefined && d?.below !== undefined && d.below > w.below) {
      problems.push({ path: 'danger.below', message: `danger.below (${d.below}) must not be above warning.below (${w.below})` });
    }
    for (const t of [w, d]) {
      if (t?.above !== undefined && t.below !== undefined && t.below >= t.above) {
        problems.push({ path: t === w ? 'warning' : 'danger', message: 'below must be less than above' });
      }
    }
    return problems;
  },
  create(o, ctx) {
    const h = o.hysteresis;
    const pass = o.passReadings;
    const maxKeys = o.maxKeys;
    // device → level; least recently seen first. A device not here is NORMAL.
    const levels = new Map<string, Level>();
    return {
      process(m) {
        if (m.kind !== 'reading') return [m];
        const out: Message[] = pass ? [m] : [];
        const v: Value | undefined = m.values[o.measurement];
        if (typeof v !== 'number' || Number.isNaN(v)) return out;
        const cur = levels.get(m.device) ?? 0;
        const next = nextLevel(cur, v, o.warning, o.danger, h);
        levels.delete(m.device);
        levels.set(m.device, next);
        while (levels.size > maxKeys) {
          const oldest = levels.keys().next();
          if (oldest.done) break;
          levels.delete(oldest.value);
          ctx.dropped('key_evicted');
        }
        if (next === cur) return out;
        const unit = m.units?.[o.measurement];
        out.push(
          makeEvent(
            'severity.changed',
            { measurement: o.measurement, value: v, level: LEVELS[next], previous: LEVELS[cur], ...(unit !== undefined ? { unit } : {}) },
            {
              ts: m.ts,
              severity: EVENT_SEVERITY[next],
              device: m.device,
              message: `${m.device} ${o.measurement} ${v}${unit ? ` ${unit}` : ''}: ${LEVELS[next]} (was ${LEVELS[cur]})`,
            },
          ),
        );
        return out;
      },
    };
  },
});

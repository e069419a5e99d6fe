// Durations in stage options: a person writes `"15m"`, `"90s"`, `"1h"`, `"500ms"` or `"1d"`, or a number of
// milliseconds. The schema accepts both; stages call `durationMs` on the validated value.
import { Type, type TUnion, type TInteger, type TString } from '@sinclair/typebox';
import type { ConfigProblem } from './driver.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$';
const RE = new RegExp(PATTERN);

export type DurationValue = number | string;

/** Schema of a duration option: an integer of ms or a string such as `"15m"`. */
export function Duration(opts: { description: string; default?: DurationValue; minimumMs?: number }): TUnion<[TInteger, TString]> {
  const { description, minimumMs = 0 } = opts;
  return Type.Union(
    [
      Type.Integer({ minimum: minimumMs }),
      // The form is checked by `durationProblems` (from the stage's `check`), which says what is expected.
      Type.String({ minLength: 1 }),
    ],
    { description: `${description} A duration: \`"15m"\`, \`"30s"\`, \`"1h"\`, \`"500ms"\`, \`"1d"\`, or ms.`, ...(opts.default !== undefined ? { default: opts.default } : {}) },
  );
}

/**
 * Problems with the duration options `keys` of a stage's options: not a duration, or zero where `positive`. For the
 * stage's `check`; `durationMs` trusts its input afterwards.
 */
export function durationProblems(o: object, keys: Readonly<Record<string, 'positive' | 'any'>>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [key, rule] of Object.entries(keys)) {
    const v: unknown = (o as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v === 'string' && !RE.test(v)) {
      problems.push({ path: key, message: `${JSON.stringify(v)} is not a duration: write e.g. "15m", "30s", "1h", "500ms", "1d", or a number of ms` });
    } else if (rule === 'positive' && durationMs(v as DurationValue) <= 0) {
      problems.push({ path: key, message: 'must be more than 0' });
    }
  }
  return problems;
}

/** Milliseconds of a validated duration value. */
export function durationMs(d: DurationValue): number {
  if (typeof d === 'number') return d;
  const m = RE.exec(d);
  if (!m) throw new Error(`not a duration: ${d}`);
  const unit = m[2] as keyof typeof UNIT_MS;
  return Math.round(Number(d.slice(0, d.length - unit.length)) * UNIT_MS[unit]);
}

/** A ms duration as a config would write it, exact (it reads back through durationMs): 900000 → "15m". */
export function formatDuration(ms: number): string {
  for (const [u, f] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= f && ms % f === 0) return `${ms / f}${u}`;
  }
  return `${ms}ms`;
}

/** A duration as a person says it, rounded down to two units: `45 s`, `31 min`, `2 h 5 min`, `3 d 4 h`. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

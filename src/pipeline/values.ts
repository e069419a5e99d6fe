// Helpers for stages that rewrite a reading's values: they copy, never mutate, because one reading may travel
// down several routes.
import type { Reading, Value } from '../core/types.js';

export function withValues(r: Reading, values: Record<string, Value>, units: Record<string, string> | undefined): Reading {
  // One copy of the reading, not two (this runs for every reading every such stage sees).
  if (units) for (const _ in units) return { ...r, values, units };
  if (r.units === undefined) return { ...r, values };
  const { units: _drop, ...rest } = r;
  return { ...rest, values };
}

/** Keep only the values `keep` says yes to; undefined when none are left. */
export function pickValues(r: Reading, keep: (name: string) => boolean): Reading | undefined {
  const values: Record<string, Value> = {};
  const units: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(r.values)) {
    if (!keep(k)) continue;
    values[k] = v;
    const u = r.units?.[k];
    if (u !== undefined) units[k] = u;
    any = true;
  }
  if (!any) return undefined;
  if (Object.keys(values).length === Object.keys(r.values).length) return r;
  return withValues(r, values, units);
}

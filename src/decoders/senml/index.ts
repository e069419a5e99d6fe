// senml: SenML packs (RFC 8428) in JSON or CBOR → one Reading per (device, time). Parsing and resolution live in
// resolve.ts; this file turns resolved records into readings. See README.md for how names split into device and
// measurement.
import { Type } from '@sinclair/typebox';
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { Frame, Reading, Value } from '../../core/types.js';
import { decodeSenmlPayload, resolveSenmlEntries, type ResolvedEntry } from './resolve.js';

export { decodeSenmlPayload, resolveSenml, resolveSenmlEntries, SENML_VERSION } from './resolve.js';
export type { ResolvedEntry, ResolvedRecord } from './resolve.js';

/** Default cap on the records of one pack: a frame's work and its readings are bounded by it. */
export const DEFAULT_MAX_RECORDS = 10_000;

const Options = Type.Object(
  {
    format: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('cbor')], {
        default: 'auto',
        description:
          '`auto`: text, or bytes whose first non-blank byte is `[`, is SenML JSON and other bytes are SenML CBOR; ' +
          '`json` or `cbor` force one representation.',
      }),
    maxRecords: Type.Integer({
        minimum: 1,
        default: DEFAULT_MAX_RECORDS,
        description: 'Most records one pack may hold (base-only records count); a larger pack is refused whole with BH_DECODE_TOO_MANY.',
      }),
  },
  { additionalProperties: false },
);

/** Measurement name for a record that has no name of its own, from its SenML unit. */
const UNIT_NAMES: Readonly<Record<string, string>> = {
  Cel: 'temperature',
  '%RH': 'humidity',
  V: 'voltage',
  A: 'current',
  W: 'power',
  lon: 'longitude',
  lat: 'latitude',
  '%EL': 'battery_pct',
  '/': 'ratio',
};

export function measurementFromUnit(unit: string | undefined): string {
  return unit !== undefined && Object.hasOwn(UNIT_NAMES, unit) ? (UNIT_NAMES[unit] ?? 'value') : 'value';
}

/**
 * Device and measurement of a resolved record: with a base name in effect, the device is the base name less one
 * trailing `:` or `/` and the measurement the record's own `n` (or a name from its unit); without one, the device is
 * the whole name and the measurement comes from the unit.
 */
export function splitName(e: ResolvedEntry): { device: string; measurement: string } {
  if (e.baseName !== undefined) {
    const b = e.baseName;
    const device = b.endsWith(':') || b.endsWith('/') ? b.slice(0, -1) : b;
    return { device, measurement: e.ownName ?? measurementFromUnit(e.record.u) };
  }
  return { device: e.record.n, measurement: measurementFromUnit(e.record.u) };
}

/** Seconds → ms, rounded to the microsecond so float noise (1276020076.001 × 1000) does not leak into `ts`. */
function toMs(t: number): number {
  return Math.round(t * 1e6) / 1e3;
}

interface Group {
  device: string;
  ts: number;
  values: Record<string, Value>;
  units: Record<string, string>;
  /**
   * Per measurement and what the record needs free (`v` its value name, `s` its sum name, `vs` both), the suffix
   * to try next. Names are only ever added to a group, so a name found taken stays taken and the search for a free
   * `_k` resumes where the last one stopped: linear in the records, where searching from `_2` every time made a pack
   * repeating one name quadratic.
   */
  next: Map<string, number>;
}

/** Groups resolved entries into readings, one per (device, time), in order of first appearance. */
export function readingsFromEntries(entries: readonly ResolvedEntry[], frame: Frame): Reading[] {
  const groups = new Map<string, Group>();
  for (const e of entries) {
    const { device, measurement } = splitName(e);
    const ts = toMs(e.record.t);
    const key = `${device}\u0000${ts}`;
    const g = groups.get(key) ?? { device, ts, values: {}, units: {}, next: new Map<string, number>() };
    groups.set(key, g);
    const r = e.record;
    const value: Value | undefined = r.v ?? r.vs ?? r.vb ?? r.vd;
    const taken = (name: string): boolean =>
      (value !== undefined && Object.hasOwn(g.values, name)) || (r.s !== undefined && Object.hasOwn(g.values, `${name}_sum`));
    const searchKey = `${value === undefined ? '' : 'v'}${r.s === undefined ? '' : 's'}\u0000${measurement}`;
    let k = g.next.get(searchKey) ?? 1;
    let name = k === 1 ? measurement : `${measurement}_${k}`;
    while (taken(name)) name = `${measurement}_${++k}`;
    g.next.set(searchKey, k);
    if (value !== undefined) {
      g.values[name] = value;
      if (r.u !== undefined) g.units[name] = r.u;
    }
    if (r.s !== undefined) g.values[`${name}_sum`] = r.s;
  }
  const source = { input: frame.input, decoder: 'senml', ...(frame.topic === undefined ? {} : { topic: frame.topic }) };
  return [...groups.values()].map((g) => ({
    kind: 'reading' as const,
    device: g.device,
    ts: g.ts,
    values: g.values,
    ...(Object.keys(g.units).length > 0 ? { units: g.units } : {}),
    authenticated: false,
    source,
  }));
}

export const senmlDecoder = defineDecoder({
  kind: 'decoder',
  type: 'senml',
  description: 'SenML (RFC 8428) packs in JSON or CBOR; one reading per device and time.',
  deviceType: 'senml-device',
  options: Options,
  create(o) {
    const { format, maxRecords } = o;
    return (frame: Frame): DecodeResult => {
      const pack = decodeSenmlPayload(frame.payload, format);
      if (Array.isArray(pack) && pack.length > maxRecords) {
        throw new BackhaulError('BH_DECODE_TOO_MANY', `the pack holds ${pack.length} records, more than maxRecords (${maxRecords})`, { path: '$' });
      }
      const entries = resolveSenmlEntries(pack, frame.receivedAt);
      if (entries.length === 0) throw new BackhaulError('BH_DECODE_NO_VALUES', 'the pack holds no records with a value', { path: '$' });
      return { readings: readingsFromEntries(entries, frame) };
    };
  },
});

// opentrv: the serial line formats of an OpenTRV V0p2 hub (one line a frame): JSON stats lines
// `{"@":"819c","+":3,"T|C16":266}`, binary stats lines `@D49;T17C6;L61;O1`, the logged form
// `[ "2016-01-01T00:00:09Z", "concentrator", {stats} ]`, and the hub's own lines (`!`, `?`, `+`, `=`, `>`), which are
// recognised and skipped. See README.md for the key table.
import { Type } from '@sinclair/typebox';
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError, joinPath, shown } from '../../core/errors.js';
import { canonicalNodeId } from '../../core/ids.js';
import { checkJsonBounds } from '../../core/json.js';
import type { Frame, Reading, Value } from '../../core/types.js';
import { parseIsoTime } from '../time.js';

const Options = Type.Object(
  {
    unknownKeys: Type.Union([Type.Literal('keep'), Type.Literal('drop')], {
        default: 'keep',
        description:
          'What to do with JSON stats keys and binary stats fields not in the key table: `keep` them under their own ' +
          'name (numbers, strings and booleans only), or `drop` them.',
      }),
  },
  { additionalProperties: false },
);

/** How one JSON stats key maps to a Reading value. */
interface KeySpec {
  readonly name: string;
  readonly unit?: string;
  readonly divide?: number;
  /** Also take a string (error codes). */
  readonly text?: boolean;
}

/** JSON stats keys (`name` or `name|unit`) and what they become. Exported for the README test and for sinks' docs. */
export const OPENTRV_KEYS: Readonly<Record<string, KeySpec>> = {
  'T|C16': { name: 'temperature', unit: 'Cel', divide: 16 },
  'H|%': { name: 'humidity', unit: '%RH' },
  'B|cV': { name: 'battery', unit: 'V', divide: 100 },
  'B|mV': { name: 'battery', unit: 'V', divide: 1000 },
  L: { name: 'light' },
  O: { name: 'occupancy' },
  'occ|%': { name: 'occupancy_pct', unit: '%' },
  'vac|h': { name: 'vacancy', unit: 'h' },
  'v|%': { name: 'valve', unit: '/', divide: 100 },
  'vC|%': { name: 'valve_travel', unit: '%' },
  'tT|C': { name: 'target', unit: 'Cel' },
  'tS|C': { name: 'setback', unit: 'Cel' },
  b: { name: 'boiler' },
  err: { name: 'error', text: true },
};

/** Skip reasons, by the first character of a hub line. */
const SKIPPED: Readonly<Record<string, string>> = {
  '!': 'error_line',
  '?': 'warning_line',
  '+': 'info_line',
  '=': 'status_line',
  '>': 'prompt',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Payload as text, or BH_DECODE_SYNTAX for bytes that are not UTF-8. */
function text(payload: Uint8Array | string): string {
  if (typeof payload === 'string') return payload.startsWith('\uFEFF') ? payload.slice(1) : payload;
  try {
    return utf8.decode(payload);
  } catch (e) {
    throw new BackhaulError('BH_DECODE_SYNTAX', 'the frame is not UTF-8 text', { cause: e });
  }
}

interface Parts {
  device: string;
  seq?: number;
  values: Record<string, Value>;
  units: Record<string, string>;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Adds a value under `name`, or under `fallback` when `name` is taken (a stats line with both `B|cV` and `B|mV`). */
function put(p: Parts, name: string, fallback: string, v: Value, unit: string | undefined): void {
  const key = Object.hasOwn(p.values, name) ? fallback : name;
  p.values[key] = v;
  if (unit !== undefined) p.units[key] = unit;
}

/** Decodes a parsed JSON stats object. `base` prefixes error paths (`[2]` inside the logged form). */
function statsObject(o: unknown, base: string, keepUnknown: boolean): Parts {
  if (!isRecord(o)) throw new BackhaulError('BH_DECODE_SHAPE', 'JSON stats must be an object', { path: base || '$' });
  const at = keyPath(base, '@');
  const rawId = o['@'];
  if (rawId === undefined || rawId === '') throw new BackhaulError('BH_DECODE_NO_DEVICE', 'no node id (`@`)', { path: at });
  if (typeof rawId !== 'string') throw new BackhaulError('BH_DECODE_SHAPE', 'the node id must be a hex string', { path: at });
  const device = canonicalNodeId(rawId);
  if (device === undefined) {
    throw new BackhaulError('BH_DECODE_SHAPE', `node id ${shown(rawId, 20)} is not 2 to 8 bytes of hex`, { path: at });
  }
  const p: Parts = { device, values: {}, units: {} };
  for (const [key, v] of Object.entries(o)) {
    if (key === '@' || key === '__proto__') continue;
    const path = keyPath(base, key);
    if (key === '+') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw new BackhaulError('BH_DECODE_SHAPE', 'the sequence number `+` must be a non-negative integer', { path });
      }
      p.seq = v;
      continue;
    }
    const spec = Object.hasOwn(OPENTRV_KEYS, key) ? OPENTRV_KEYS[key] : undefined;
    if (spec) {
      if (typeof v === 'number' && Number.isFinite(v)) put(p, spec.name, key, spec.divide ? v / spec.divide : v, spec.unit);
      else if (spec.text && typeof v === 'string') put(p, spec.name, key, v, undefined);
      else throw new BackhaulError('BH_DECODE_SHAPE', `expected a number, got ${describe(v)}`, { path });
      continue;
    }
    if (!keepUnknown) continue;
    if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string' || typeof v === 'boolean') put(p, key, key, v, undefined);
    else throw new BackhaulError('BH_DECODE_SHAPE', `expected a number, string or boolean, got ${describe(v)}`, { path });
  }
  if (Object.keys(p.values).length === 0) {
    throw new BackhaulError('BH_DECODE_NO_VALUES', 'the stats line holds no values', { path: base || '$' });
  }
  return p;
}

/** Error path of a stats key: the bare key on a stats line (`T|C16`), `[2]["T|C16"]` inside the logged form. */
function keyPath(base: string, key: string): string {
  return base === '' ? key : joinPath(base, key);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${shown(v, 20)}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function parseJson(line: string): unknown {
  checkJsonBounds(line, 'the line');
  try {
    return JSON.parse(line) as unknown;
  } catch {
    throw new BackhaulError('BH_DECODE_SYNTAX', `not valid JSON: ${shown(line, 60)}`);
  }
}

/** `@D49;T17C6;L61;O1;P`: id; `T` whole degrees `C` a hex digit of sixteenths; `L` light; `O` occupancy; `P` power low. */
function binaryStats(line: string, keepUnknown: boolean): Parts {
  const fields = line.slice(1).split(';');
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop(); // tolerate one trailing `;`
  const rawId = fields[0] ?? '';
  if (rawId === '') throw new BackhaulError('BH_DECODE_NO_DEVICE', 'no node id after `@`', { path: '@' });
  const device = canonicalNodeId(rawId);
  if (device === undefined) {
    throw new BackhaulError('BH_OPENTRV_LINE', `node id ${shown(rawId, 20)} is not 2 to 8 bytes of hex`, { path: '@' });
  }
  const p: Parts = { device, values: {}, units: {} };
  const seen = new Set<string>();
  for (const [k, f] of fields.entries()) {
    if (k === 0) continue;
    const m = /^([A-Za-z])(.*)$/.exec(f);
    // Fields are numbered from the id (field 0), the way they are split on `;`.
    if (!m) throw new BackhaulError('BH_OPENTRV_LINE', `field ${shown(f, 20)} does not start with a letter`, { path: `[${k}]` });
    const letter = m[1] ?? '';
    const rest = m[2] ?? '';
    if (seen.has(letter)) throw new BackhaulError('BH_OPENTRV_LINE', 'the field appears twice', { path: letter });
    seen.add(letter);
    if (letter === 'T') {
      const t = /^(-?\d+)C([0-9A-Fa-f])$/.exec(rest);
      if (!t) throw new BackhaulError('BH_OPENTRV_LINE', `temperature ${shown(f, 20)} is not T<degrees>C<hex sixteenths>`, { path: 'T' });
      // Whole degrees are floor(x): the hex digit is always the positive part (T-2C8 = -1.5 Cel).
      put(p, 'temperature', 'T', Number(t[1]) + parseInt(t[2] ?? '0', 16) / 16, 'Cel');
    } else if (letter === 'P') {
      if (rest !== '') throw new BackhaulError('BH_OPENTRV_LINE', '`P` (power low) takes no value', { path: 'P' });
      put(p, 'battery_low', 'P', true, undefined);
    } else {
      if (!/^-?\d+(\.\d+)?$/.test(rest)) {
        throw new BackhaulError('BH_OPENTRV_LINE', `field ${shown(f, 20)} is not a letter and a number`, { path: letter });
      }
      const n = Number(rest);
      if (letter === 'L') put(p, 'light', 'L', n, undefined);
      else if (letter === 'O') put(p, 'occupancy', 'O', n, undefined);
      else if (keepUnknown) put(p, letter, letter, n, undefined);
    }
  }
  if (Object.keys(p.values).length === 0) throw new BackhaulError('BH_DECODE_NO_VALUES', 'the stats line holds no values', { path: '$' });
  return p;
}

/** The logged form `[ "ISO time", "concentrator id", {stats} ]`. */
function loggedRecord(line: string, keepUnknown: boolean): { parts: Parts; ts: number } {
  const a = parseJson(line);
  if (!Array.isArray(a) || a.length !== 3) {
    throw new BackhaulError('BH_DECODE_SHAPE', 'a logged record must be [ "time", "concentrator", {stats} ]', { path: '$' });
  }
  const [time, , stats] = a as [unknown, unknown, unknown];
  const ts = typeof time === 'string' ? parseIsoTime(time) : undefined;
  if (ts === undefined) {
    throw new BackhaulError('BH_DECODE_TIME', `${describe(time)} is not an ISO 8601 time with a zone`, { path: '[0]' });
  }
  if (typeof a[1] !== 'string') throw new BackhaulError('BH_DECODE_SHAPE', 'the concentrator id must be a string', { path: '[1]' });
  return { parts: statsObject(stats, '[2]', keepUnknown), ts };
}

function reading(frame: Frame, parts: Parts, ts: number): Reading {
  return {
    kind: 'reading',
    device: parts.device,
    ts,
    ...(parts.seq === undefined ? {} : { seq: parts.seq }),
    values: parts.values,
    ...(Object.keys(parts.units).length > 0 ? { units: parts.units } : {}),
    authenticated: false,
    source: { input: frame.input, decoder: 'opentrv', ...(frame.topic === undefined ? {} : { topic: frame.topic }) },
  };
}

export const opentrvDecoder = defineDecoder({
  kind: 'decoder',
  type: 'opentrv',
  description: 'OpenTRV hub serial lines: JSON and binary stats lines, the logged [time, concentrator, stats] form.',
  options: Options,
  idKind: 'opentrv',
  deviceType: 'opentrv-valve',
  create(o) {
    const keepUnknown = o.unknownKeys === 'keep';
    return (frame: Frame): DecodeResult => {
      const line = text(frame.payload).trim();
      if (line === '') return { skipped: 'blank' };
      if (/[\r\n]/.test(line)) throw new BackhaulError('BH_DECODE_SYNTAX', 'a frame must hold one line');
      const first = line[0] ?? '';
      const skip = Object.hasOwn(SKIPPED, first) ? SKIPPED[first] : undefined;
      if (skip !== undefined) return { skipped: skip };
      if (first === '{') return { readings: [reading(frame, statsObject(parseJson(line), '', keepUnknown), frame.receivedAt)] };
      if (first === '@') return { readings: [reading(frame, binaryStats(line, keepUnknown), frame.receivedAt)] };
      if (first === '[') {
        const r = loggedRecord(line, keepUnknown);
        return { readings: [reading(frame, r.parts, r.ts)] };
      }
      throw new BackhaulError('BH_DECODE_SYNTAX', `not an OpenTRV line: ${shown(line, 60)}`);
    };
  },
});

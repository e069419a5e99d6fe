// json: any JSON body, with a configured mapping of where the device id, time, sequence number and values are.
// Paths are a small subset of JSONPath: `sensor.id`, `readings[0].dev`, `$.a["odd key"]`, `[-1]` (last element).
// The device may also come from a level of the frame's topic (`topic:1`, `topic:-1`). See README.md.
import { Type } from '@sinclair/typebox';
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError, isBackhaulError, joinPath, shown } from '../../core/errors.js';
import type { Frame, Reading, Value } from '../../core/types.js';
import { checkJsonBounds } from '../../core/json.js';
import { parseIsoTime } from '../time.js';

/** Default cap on the readings of one array body: a frame's work and its readings are bounded by it. */
export const DEFAULT_MAX_READINGS = 10_000;
/**
 * Longest device id taken. A topic level is the device of every element of an array body, so an unbounded one would
 * make the work grow with its length times the elements; no registry id is anywhere near this long.
 */
export const MAX_DEVICE_ID = 256;

function checkedId(id: string, path: string): string {
  if (id.length > MAX_DEVICE_ID) throw new BackhaulError('BH_DECODE_NO_DEVICE', `the device id is longer than ${MAX_DEVICE_ID} characters`, { path });
  return id;
}

const ValueSpec = Type.Union([
  Type.String({ minLength: 1, description: 'Path of the value in the body.' }),
  Type.Object(
    {
      path: Type.String({ minLength: 1, description: 'Path of the value in the body.' }),
      unit: Type.Optional(Type.String({ minLength: 1, description: 'SenML unit of the result (after scale and offset).' })),
      scale: Type.Optional(Type.Number({ description: 'Multiply the value (which must then be a number) by this.' })),
      offset: Type.Optional(Type.Number({ description: 'Then add this.' })),
    },
    { additionalProperties: false },
  ),
]);

const Options = Type.Object(
  {
    device: Type.String({
        minLength: 1,
        default: 'device',
        description:
          'Where the device id is: a path into the body (`sensor.id`, `readings[0].dev`), or `topic:N` for level N ' +
          '(0-based) of the frame topic, `topic:-1` for its last level.',
      }),
    time: Type.Optional(
      Type.String({ minLength: 1, description: 'Path of the measurement time. Absent: the time the frame was received.' }),
    ),
    timeFormat: Type.Union([Type.Literal('auto'), Type.Literal('ms'), Type.Literal('s'), Type.Literal('iso')], {
        default: 'auto',
        description:
          'How to read `time`: `auto` (a number above 1e12 is ms, else seconds; a string is ISO 8601), `ms` or `s` ' +
          'since the Unix epoch, or `iso` (ISO 8601 with a zone).',
      }),
    values: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), ValueSpec, {
        description:
          'Measurement name → path, or { path, unit, scale, offset }. Absent: every top-level number, string and ' +
          'boolean of the body except the device, time and seq fields.',
      }),
    ),
    units: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), {
        description: 'Measurement name → SenML unit (a `unit` in `values` wins).',
      }),
    ),
    seq: Type.Optional(Type.String({ minLength: 1, description: 'Path of the device\'s frame sequence number.' })),
    maxReadings: Type.Integer({
        minimum: 1,
        default: DEFAULT_MAX_READINGS,
        description: 'Most elements an array body may hold (one reading each); a larger one is refused whole with BH_DECODE_TOO_MANY.',
      }),
    array: Type.Optional(
      Type.Boolean({
        description:
          '`true`: the body is an array and each element is one reading. `false`: the body is one reading even when ' +
          'it is an array. Absent: an array body is a list of readings.',
      }),
    ),
  },
  { additionalProperties: false },
);

// ---------------------------------------------------------------- paths

export type PathSegment = string | number;

/** Parses `a.b[0]["odd key"]` (optionally starting with `$`) into segments. Throws a plain Error on bad syntax. */
export function parsePath(src: string): PathSegment[] {
  let s = src.trim();
  if (s.startsWith('$')) s = s.slice(1);
  else if (s !== '' && !s.startsWith('[')) s = `.${s}`;
  const segs: PathSegment[] = [];
  const re = /\.([^.[\]"]+)|\[(-?\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  while (re.lastIndex < s.length) {
    const at = re.lastIndex;
    const m = re.exec(s);
    if (!m) throw new Error(`bad path ${JSON.stringify(src)} at character ${at}`);
    if (m[1] !== undefined) segs.push(m[1]);
    else if (m[2] !== undefined) segs.push(Number(m[2]));
    else segs.push(JSON.parse(m[3] ?? '""') as string);
  }
  return segs;
}

/** The value at `segs`, or undefined when any step is missing. A negative index counts from the end. */
export function getPath(body: unknown, segs: readonly PathSegment[]): unknown {
  let cur = body;
  for (const seg of segs) {
    if (typeof seg === 'number') {
      if (!Array.isArray(cur)) return undefined;
      cur = (cur as unknown[])[seg < 0 ? cur.length + seg : seg];
    } else {
      if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  return cur;
}

/** `$.sensor.id`, `$[2].readings[0].dev`: the path as error messages print it. */
export function formatPath(root: string, segs: readonly PathSegment[]): string {
  return segs.reduce<string>((acc, seg) => joinPath(acc, seg), root);
}

// ---------------------------------------------------------------- helpers

const utf8 = new TextDecoder('utf-8', { fatal: true });


function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${shown(v, 30)}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function isScalar(v: unknown): v is Value {
  return (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string' || typeof v === 'boolean';
}

type TimeFormat = 'auto' | 'ms' | 's' | 'iso';

function toTime(v: unknown, format: TimeFormat, path: string): number {
  if (v === undefined || v === null) throw new BackhaulError('BH_DECODE_TIME', 'the time is missing', { path });
  let ms: number | undefined;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) {
    if (format === 'ms' || (format === 'auto' && v > 1e12)) ms = v;
    else if (format === 's' || format === 'auto') ms = v * 1000;
  } else if (typeof v === 'string' && (format === 'iso' || format === 'auto')) {
    ms = parseIsoTime(v);
  }
  if (ms === undefined) {
    const want = { auto: 'a number or an ISO 8601 string', ms: 'a number of ms', s: 'a number of seconds', iso: 'an ISO 8601 string with a zone' };
    throw new BackhaulError('BH_DECODE_TIME', `expected ${want[format]}, got ${describe(v)}`, { path });
  }
  return ms;
}

/** Drops float noise from scaling (3 × 0.1 → 0.3). */
function clean(x: number): number {
  return Number(x.toPrecision(15));
}

// ---------------------------------------------------------------- the decoder

interface CompiledValue {
  readonly name: string;
  readonly segs: readonly PathSegment[];
  readonly unit?: string;
  readonly scale?: number;
  readonly offset?: number;
}

function compile(path: string, option: string): PathSegment[] {
  try {
    return parsePath(path);
  } catch (e) {
    throw new BackhaulError('BH_CONFIG_SCHEMA', e instanceof Error ? e.message : 'bad path', { path: option });
  }
}

export const jsonDecoder = defineDecoder({
  kind: 'decoder',
  type: 'json',
  description: 'Generic JSON with a configured mapping of device id (body path or topic level), time and values.',
  options: Options,
  check(o) {
    try {
      jsonDecoder.create(o);
      return [];
    } catch (e) {
      return [{ path: isBackhaulError(e) ? (e.path ?? '') : '', message: isBackhaulError(e) ? e.detail : String(e) }];
    }
  },
  create(o) {
    const deviceOpt = o.device;
    const topicMatch = /^topic:(-?\d+)$/.exec(deviceOpt);
    const topicLevel = topicMatch ? Number(topicMatch[1]) : undefined;
    const deviceSegs = topicLevel === undefined ? compile(deviceOpt, 'device') : undefined;
    const timeSegs = o.time === undefined ? undefined : compile(o.time, 'time');
    const seqSegs = o.seq === undefined ? undefined : compile(o.seq, 'seq');
    const timeFormat: TimeFormat = o.timeFormat;
    const maxReadings = o.maxReadings;
    const unitsOpt: Readonly<Record<string, string>> = o.units ?? {};
    const mapped: CompiledValue[] | undefined =
      o.values === undefined
        ? undefined
        : Object.entries(o.values).map(([name, spec]) =>
            typeof spec === 'string'
              ? { name, segs: compile(spec, joinPath('values', name)) }
              : {
                  name,
                  segs: compile(spec.path, joinPath(joinPath('values', name), 'path')),
                  ...(spec.unit === undefined ? {} : { unit: spec.unit }),
                  ...(spec.scale === undefined ? {} : { scale: spec.scale }),
                  ...(spec.offset === undefined ? {} : { offset: spec.offset }),
                },
          );
    // Top-level fields that the default (no `values`) mode leaves out: the device, time and seq fields.
    const excluded = new Set<string>();
    for (const segs of [deviceSegs, timeSegs, seqSegs]) {
      if (segs && segs.length === 1 && typeof segs[0] === 'string') excluded.add(segs[0]);
    }

    function topicDevice(frame: Frame): string {
      const where = `topic:${topicLevel}`;
      if (frame.topic === undefined) throw new BackhaulError('BH_DECODE_NO_DEVICE', 'the frame has no topic', { path: where });
      const n = topicLevel ?? 0;
      const levels = frame.topic.split('/');
      const level = levels[n < 0 ? levels.length + n : n];
      if (level === undefined || level === '') {
        throw new BackhaulError('BH_DECODE_NO_DEVICE', `topic ${shown(frame.topic, 60)} has no level ${topicLevel}`, { path: where });
      }
      return checkedId(level, where);
    }

    function device(body: unknown, root: string): string {
      const segs = deviceSegs ?? [];
      const path = formatPath(root, segs);
      const v = getPath(body, segs);
      if (v === undefined || v === null || v === '') throw new BackhaulError('BH_DECODE_NO_DEVICE', 'no device id here', { path });
      if (typeof v === 'string') return checkedId(v, path);
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
      throw new BackhaulError('BH_DECODE_NO_DEVICE', `the device id must be a string or a number, not ${describe(v)}`, { path });
    }

    /** `fromTopic`: the frame's device from its topic, worked out once per frame rather than once per element. */
    function one(body: unknown, root: string, frame: Frame, fromTopic: () => string): Reading {
      if (typeof body !== 'object' || body === null) {
        throw new BackhaulError('BH_DECODE_SHAPE', `expected an object, got ${describe(body)}`, { path: root });
      }
      const dev = topicLevel !== undefined ? fromTopic() : device(body, root);
      const ts = timeSegs === undefined ? frame.receivedAt : toTime(getPath(body, timeSegs), timeFormat, formatPath(root, timeSegs));
      let seq: number | undefined;
      if (seqSegs) {
        const v = getPath(body, seqSegs);
        if (v !== undefined && v !== null) {
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
            throw new BackhaulError('BH_DECODE_SHAPE', `the sequence number must be a non-negative integer, not ${describe(v)}`, {
              path: formatPath(root, seqSegs),
            });
          }
          seq = v;
        }
      }
      const values: Record<string, Value> = {};
      const units: Record<string, string> = {};
      if (mapped) {
        for (const m of mapped) {
          const v = getPath(body, m.segs);
          if (v === undefined || v === null) continue;
          const path = formatPath(root, m.segs);
          if (m.scale !== undefined || m.offset !== undefined) {
            if (typeof v !== 'number' || !Number.isFinite(v)) {
              throw new BackhaulError('BH_DECODE_SHAPE', `\`${m.name}\` is scaled, so it must be a number, not ${describe(v)}`, { path });
            }
            values[m.name] = clean(v * (m.scale ?? 1) + (m.offset ?? 0));
          } else if (isScalar(v)) {
            values[m.name] = v;
          } else {
            throw new BackhaulError('BH_DECODE_SHAPE', `expected a number, string or boolean, got ${describe(v)}`, { path });
          }
          const unit = m.unit ?? (Object.hasOwn(unitsOpt, m.name) ? unitsOpt[m.name] : undefined);
          if (unit !== undefined) units[m.name] = unit;
        }
      } else if (!Array.isArray(body)) {
        for (const [k, v] of Object.entries(body)) {
          if (excluded.has(k) || k === '__proto__' || !isScalar(v)) continue;
          values[k] = v;
          const unit = Object.hasOwn(unitsOpt, k) ? unitsOpt[k] : undefined;
          if (unit !== undefined) units[k] = unit;
        }
      }
      if (Object.keys(values).length === 0) throw new BackhaulError('BH_DECODE_NO_VALUES', 'no values found', { path: root });
      return {
        kind: 'reading',
        device: dev,
        ts,
        ...(seq === undefined ? {} : { seq }),
        values,
        ...(Object.keys(units).length > 0 ? { units } : {}),
        authenticated: false,
        source: { input: frame.input, decoder: 'json', ...(frame.topic === undefined ? {} : { topic: frame.topic }) },
      };
    }

    return (frame: Frame): DecodeResult => {
      let text: string;
      if (typeof frame.payload === 'string') text = frame.payload;
      else {
        try {
          text = utf8.decode(frame.payload);
        } catch (e) {
          throw new BackhaulError('BH_DECODE_SYNTAX', 'the frame is not UTF-8 text', { cause: e });
        }
      }
      const json = text.startsWith('\uFEFF') ? text.slice(1) : text;
      checkJsonBounds(json, 'the body');
      let body: unknown;
      try {
        body = JSON.parse(json) as unknown;
      } catch {
        throw new BackhaulError('BH_DECODE_SYNTAX', `not valid JSON: ${shown(text, 60)}`);
      }
      let fromTopic: string | undefined;
      const topicOnce = () => (fromTopic ??= topicDevice(frame));
      const many = o.array ?? Array.isArray(body);
      if (!many) return { readings: [one(body, '$', frame, topicOnce)] };
      if (!Array.isArray(body)) throw new BackhaulError('BH_DECODE_SHAPE', `expected an array, got ${describe(body)}`, { path: '$' });
      if (body.length === 0) throw new BackhaulError('BH_DECODE_NO_VALUES', 'the array is empty', { path: '$' });
      if (body.length > maxReadings) {
        throw new BackhaulError('BH_DECODE_TOO_MANY', `the array holds ${body.length} readings, more than maxReadings (${maxReadings})`, { path: '$' });
      }
      return { readings: (body as unknown[]).map((el, i) => one(el, `$[${i}]`, frame, topicOnce)) };
    };
  },
});

// Fuzz target: every decoder of the built-in registry, fed generated frames (fast-check): random bytes and text,
// well-formed SenML (JSON and CBOR), JSON and OpenTRV lines, the same mutated and truncated, and large inputs made of
// repeated structure (the shape of issue 11's 20,000-record pack), nesting, long strings. The property: a decoder
// returns readings or a skip, or throws a BackhaulError whose code is in the catalog; nothing else.
import fc from 'fast-check';
import { Decoder, Encoder } from 'cbor-x';
import { Value } from '@sinclair/typebox/value';
import type { Decode, DecodeResult, DecoderDefinition } from '../src/core/driver.js';
import { BackhaulError, ERROR_CATALOG } from '../src/core/errors.js';
import type { Frame, Reading } from '../src/core/types.js';
import { builtinRegistry } from '../src/runtime/registry.js';
import { cpuNs, fastestCpuNs, formatReport, slope, TargetStats, type Scaling } from './stats.js';

/** A generated input: the payload, how it reaches the decoder, and which generator made it. */
export interface DecoderInput {
  readonly family: string;
  readonly payload: Uint8Array | string;
  readonly topic?: string;
  /** Which of the decoder's option variants decodes it. */
  readonly variant: number;
}

/** Option variants per decoder type: the defaults, and the options that change what the decoder reads. */
const VARIANTS: Readonly<Record<string, readonly object[]>> = {
  senml: [{}, { format: 'json' }, { format: 'cbor' }, { maxRecords: 50 }],
  json: [
    {},
    { device: 'topic:1' },
    { device: 'topic:-1', array: true, maxReadings: 50 },
    { device: 'sensor.id', time: 'ts', seq: 'n', values: { temperature: { path: 'data.t', scale: 0.1, unit: 'Cel' }, humidity: 'data.rh' } },
    { device: '[0].dev', array: false, timeFormat: 'iso', time: '[0].at', values: { v: 'data[-1]' } },
  ],
  opentrv: [{}, { unknownKeys: 'drop' }],
  chirpstack: [{}, { radio: true }],
  tts: [{}, { radio: true, statusValues: false }],
};

export interface DecoderTarget {
  readonly type: string;
  readonly decoders: readonly Decode[];
}

/** Every decoder in the registry, each created with its option variants (a decoder added later gets `{}`). */
export function decoderTargets(): DecoderTarget[] {
  return [...builtinRegistry().decoders.values()].map((def: DecoderDefinition) => ({
    type: def.type,
    decoders: (VARIANTS[def.type] ?? [{}]).map((o) => def.create(Value.Default(def.options, structuredClone(o)) as never)),
  }));
}

// ---------------------------------------------------------------- generators

// Plain CBOR maps (no tag 259, which cbor-x's types do not list but its encoder reads) and untagged byte strings, as
// a SenML device sends them.
const cborOptions = { useRecords: false, mapsAsObjects: false, useTag259ForMaps: false, tagUint8Array: false };
const cbor = new Encoder(cborOptions);
const cborDecoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const utf8 = new TextEncoder();

const SENML_LABELS = ['bn', 'bt', 'bu', 'bv', 'bs', 'bver', 'n', 'u', 'v', 'vs', 'vb', 'vd', 's', 't', 'ut', 'l', 'x_', 'bz'] as const;
const CBOR_LABELS: Readonly<Record<string, number>> = { bver: -1, bn: -2, bt: -3, bu: -4, bv: -5, bs: -6, n: 0, u: 1, v: 2, vs: 3, vb: 4, s: 5, t: 6, ut: 7, vd: 8 };

const smallValue = fc.oneof(
  fc.constantFrom('urn:dev:mac:0024befffe804ff1:', 'urn:dev:ow:10e2073a01080063', 't', 'temp', 'Cel', '%RH', 'AQID', '', '_', 'a b'),
  fc.string({ maxLength: 12 }),
  fc.double(),
  fc.integer({ min: -3, max: 12 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.constant({}),
);

/** Records that mostly resolve: a good name, one value (or a sum), maybe a unit and a time. */
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const validSenmlRecord = fc
  .record({
    bn: fc.option(fc.constantFrom('urn:dev:mac:0024befffe804ff1:', 'urn:dev:x:', 'dev-1/', ''), { nil: undefined }),
    n: fc.option(fc.constantFrom('temp', 't', 'humidity', 'a/b', 'x.y'), { nil: undefined }),
    u: fc.option(fc.constantFrom('Cel', '%RH', 'V', 'W', '%EL'), { nil: undefined }),
    t: fc.option(fc.oneof(fc.integer({ min: -100, max: 100 }), fc.integer({ min: 1_600_000_000, max: 1_800_000_000 })), { nil: undefined }),
    value: fc.oneof(fc.record({ v: finite }), fc.record({ vs: fc.string({ maxLength: 8 }) }), fc.record({ vb: fc.boolean() }), fc.record({ s: finite }), fc.record({ vd: fc.constantFrom('AQID', 'aGVsbG8') })),
  })
  .map(({ value, ...rest }) => ({ ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)), ...value }));
const validSenmlPack = fc.array(validSenmlRecord, { minLength: 1, maxLength: 12 });

const senmlRecord = fc.dictionary(fc.constantFrom(...SENML_LABELS), smallValue, { maxKeys: 6 });
const senmlPack = fc.array(senmlRecord, { maxLength: 16 });

function toCbor(pack: ReadonlyArray<Record<string, unknown>>, bytesForVd: boolean): Uint8Array {
  const records = pack.map(
    (r) =>
      new Map<unknown, unknown>(
        Object.entries(r).map(([k, v]) => [
          CBOR_LABELS[k] ?? k,
          bytesForVd && k === 'vd' && typeof v === 'string' ? utf8.encode(v) : v,
        ]),
      ),
  );
  return cbor.encode(records);
}

/** The head of a CBOR tag (major type 6) with number `tag`. */
function tagHead(tag: number): number[] {
  if (tag < 24) return [0xc0 | tag];
  if (tag < 0x100) return [0xd8, tag];
  if (tag < 0x10000) return [0xd9, tag >> 8, tag & 0xff];
  return [0xda, (tag >>> 24) & 0xff, (tag >> 16) & 0xff, (tag >> 8) & 0xff, tag & 0xff];
}

/** Tags cbor-x acts on (dates, bignums, records, shared references, sets, maps, typed arrays), and any other. */
const cborTag = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 25, 27, 28, 29, 51, 64, 72, 105, 256, 258, 259, 55799, 57344, 57599), fc.nat({ max: 0xffffffff }));
const cborTagged = fc
  .record({ tags: fc.array(cborTag, { minLength: 1, maxLength: 3 }), inner: fc.oneof(senmlPack.map((p) => toCbor(p, true)), fc.uint8Array({ maxLength: 24 })), where: fc.nat({ max: 2 }) })
  .map(({ tags, inner, where }) => {
    const heads = tags.flatMap(tagHead);
    // Around the whole pack, around its first record, or a shared reference to itself (issue 11's d81c81d81d00).
    if (where === 0) return Uint8Array.from([...heads, ...inner]);
    if (where === 1 && inner[0] !== undefined && inner[0] >= 0x81 && inner[0] <= 0x97) return Uint8Array.from([inner[0], ...heads, ...inner.subarray(1)]);
    return Uint8Array.from([0xd8, 28, 0x81, 0xd8, 29, 0x00]);
  });

const OPENTRV_KEYS = ['@', '+', 'T|C16', 'H|%', 'B|cV', 'B|mV', 'L', 'O', 'occ|%', 'vac|h', 'v|%', 'vC|%', 'tT|C', 'tS|C', 'b', 'err', 'zz'] as const;
const opentrvStats = fc.dictionary(fc.constantFrom(...OPENTRV_KEYS), fc.oneof(smallValue, fc.constantFrom('819c', 'D49', '0d49', 'cdfb')), { maxKeys: 8 });
const binaryField = fc.oneof(
  fc.constantFrom('T17C6', 'T-2C8', 'L61', 'O1', 'P', 'X12', 'T1', 'Tx', '', 'L', 'P1'),
  fc.tuple(fc.constantFrom(...'TLOPXYZtl'), fc.string({ maxLength: 6 })).map(([a, b]) => a + b),
);
const binaryLine = fc.tuple(fc.constantFrom('D49', '819c', 'cdfb', '', 'zz', '0123456789abcdef01'), fc.array(binaryField, { maxLength: 6 }), fc.boolean()).map(
  ([id, fields, trailing]) => `@${[id, ...fields].join(';')}${trailing ? ';' : ''}`,
);
const opentrvLine = fc.oneof(
  opentrvStats.map((o) => JSON.stringify(o)),
  binaryLine,
  fc.tuple(fc.constantFrom('2016-01-01T00:00:09Z', '2016-02-31T00:00:00Z', 'x', ''), fc.constantFrom('concentrator', ''), opentrvStats).map((a) => JSON.stringify(a)),
  fc.constantFrom('>', '! error', '? warn', '+ info', '= status', '', '   ', 'a\nb'),
);

const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({ device: smallValue, temperature: smallValue, rh: smallValue }, { requiredKeys: [] }),
  fc.array(fc.record({ device: smallValue, v: smallValue }, { requiredKeys: [] }), { maxLength: 8 }),
  fc.record({ sensor: fc.record({ id: smallValue }), ts: smallValue, n: smallValue, data: fc.record({ t: smallValue, rh: smallValue }) }, { requiredKeys: [] }),
);

const topic = fc.oneof(fc.constant(undefined), fc.constantFrom('home/kitchen/env', 'a', '/x/', 'u4/301/shutter/data', ''), fc.string({ maxLength: 20 }));

/** A mutation of bytes: flip, overwrite, insert or delete at a relative position, or cut the end off. */
const mutation = fc.record({ op: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'dup'), at: fc.double({ min: 0, max: 1, noNaN: true }), byte: fc.integer({ min: 0, max: 255 }) });

export function mutate(input: Uint8Array, ops: ReadonlyArray<{ op: string; at: number; byte: number }>): Uint8Array {
  let b = Uint8Array.from(input);
  for (const { op, at, byte } of ops) {
    const i = Math.min(b.length, Math.floor(at * b.length));
    if (op === 'flip' && i < b.length) b[i] = b[i]! ^ (1 << (byte & 7));
    else if (op === 'set' && i < b.length) b[i] = byte;
    else if (op === 'insert') b = Uint8Array.from([...b.subarray(0, i), byte, ...b.subarray(i)]);
    else if (op === 'delete' && i < b.length) b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1)]);
    else if (op === 'truncate') b = b.subarray(0, i);
    else if (op === 'dup') b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i, i + 8), ...b.subarray(i)]);
  }
  return b;
}

/** Large inputs of repeated structure, `n` (1 to 12,000) controlling their size: up to the caps (10,000 records,
 * readings, object members) and a little past them. */
const LARGE: ReadonlyArray<[string, (n: number) => Uint8Array | string]> = [
  ['senml-repeated-name', (n) => `[{"bn":"urn:dev:mac:00000000ffff:","n":"t","v":1}${',{"n":"t","v":1}'.repeat(n - 1)}]`],
  ['senml-many-times', (n) => `[${Array.from({ length: n }, (_, i) => `{"bn":"urn:dev:x:","n":"t","t":${i},"v":${i}}`).join(',')}]`],
  ['senml-cbor-repeated', (n) => toCbor([{ bn: 'urn:dev:x:', n: 't', v: 1 }, ...Array.from({ length: n - 1 }, () => ({ n: 't', v: 1 }))], false)],
  ['json-array', (n) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ device: `d${i % 7}`, v: i, rh: 40 })))],
  ['json-wide-object', (n) => JSON.stringify(Object.fromEntries([['device', 'wide'], ...Array.from({ length: n - 1 }, (_, i) => [`k${i}`, i])]))],
  ['opentrv-wide-stats', (n) => JSON.stringify(Object.fromEntries([['@', '819c'], ...Array.from({ length: n - 1 }, (_, i) => [`k${i}`, i])]))],
  ['senml-cbor-wide-record', (n) => toCbor([Object.fromEntries([['bn', 'urn:dev:x:'], ['n', 't'], ['v', 1], ...Array.from({ length: n - 3 }, (_, i) => [`k${i}`, i])])], false)],
  ['deep-json', (n) => `${'['.repeat(n * 4)}${']'.repeat(n * 4)}`],
  ['deep-cbor', (n) => Uint8Array.from([...new Array<number>(n * 4).fill(0x81), 0x00])],
  ['long-string', (n) => `[{"n":"a","vs":"${'x'.repeat(n * 20)}"}]`],
  ['long-base-name', (n) => `[{"bn":"${'a'.repeat(n * 20)}","n":"t","v":1}]`],
];

/** All inputs: mostly small and varied, a few percent large (up to about a megabyte). */
export function decoderInput(variants: number): fc.Arbitrary<DecoderInput> {
  const variant = fc.nat({ max: variants - 1 });
  const asText = (family: string, a: fc.Arbitrary<string>) =>
    fc.record({ s: a, bytes: fc.boolean(), topic, variant }).map(({ s, bytes, topic: tp, variant: v }) => ({
      family,
      payload: bytes ? utf8.encode(s) : s,
      variant: v,
      ...(tp === undefined ? {} : { topic: tp }),
    }));
  const small = fc.oneof(
    fc.record({ payload: fc.uint8Array({ maxLength: 300 }), variant }).map((x) => ({ family: 'random-bytes', ...x })),
    asText('random-text', fc.string({ unit: 'binary', maxLength: 200 })),
    asText('senml-json', senmlPack.map((p) => JSON.stringify(p))),
    fc.record({ pack: senmlPack, vdBytes: fc.boolean(), variant }).map(({ pack, vdBytes, variant: v }) => ({ family: 'senml-cbor', payload: toCbor(pack, vdBytes), variant: v })),
    fc.record({ payload: cborTagged, variant }).map((x) => ({ family: 'cbor-tags', ...x })),
    asText('senml-valid-json', validSenmlPack.map((p) => JSON.stringify(p))),
    fc.record({ pack: validSenmlPack, vdBytes: fc.boolean(), variant }).map(({ pack, vdBytes, variant: v }) => ({ family: 'senml-valid-cbor', payload: toCbor(pack, vdBytes), variant: v })),
    asText(
      'opentrv-valid',
      fc
        .record({ id: fc.constantFrom('819c', 'D49', 'cdfb'), seq: fc.nat({ max: 15 }), t: fc.integer({ min: 0, max: 600 }), h: fc.integer({ min: 0, max: 100 }), l: fc.nat({ max: 255 }) })
        .map(({ id, seq, t, h, l }) => JSON.stringify({ '@': id, '+': seq, 'T|C16': t, 'H|%': h, L: l })),
    ),
    asText('json', jsonBody.map((b) => JSON.stringify(b))),
    // LoRaWAN network servers' uplinks (ChirpStack v4 and The Things Stack v3 JSON), told apart by their bodies.
    fc
      .record({ eui: fc.constantFrom('0101010101010101', '70B3D57ED0000001', 'nope'), fCnt: fc.nat({ max: 70_000 }), object: jsonBody, rssi: fc.integer({ min: -130, max: 0 }), variant })
      .map(({ eui, fCnt, object, rssi, variant: v }) => ({
        family: 'lorawan-valid',
        payload: JSON.stringify({ deviceInfo: { devEui: eui }, time: '2026-12-03T10:00:00.123456789+00:00', fCnt, fPort: 1, object, rxInfo: [{ rssi, snr: 7.5 }], end_device_ids: { dev_eui: eui }, uplink_message: { f_cnt: fCnt, decoded_payload: object, rx_metadata: [{ rssi }] } }),
        variant: v,
      })),
    asText('opentrv', opentrvLine),
  );
  const mutated = fc
    .record({ base: small, ops: fc.array(mutation, { minLength: 1, maxLength: 6 }), asText: fc.boolean() })
    .map(({ base, ops, asText: t }): DecoderInput => {
      const bytes = mutate(typeof base.payload === 'string' ? utf8.encode(base.payload) : base.payload, ops);
      // As text, invalid UTF-8 becomes U+FFFD: what an input that decodes text would hand on.
      return { ...base, family: `${base.family}-mutated`, payload: t ? new TextDecoder().decode(bytes) : bytes };
    });
  const large = fc
    .record({ which: fc.nat({ max: LARGE.length - 1 }), n: fc.integer({ min: 500, max: 12_000 }), cut: fc.boolean(), variant })
    .map(({ which, n, cut, variant: v }): DecoderInput => {
      const [family, make] = LARGE[which]!;
      const p = make(n);
      // Sometimes cut short: a large input that is truncated must fail as fast as it would succeed.
      const payload = cut ? (typeof p === 'string' ? p.slice(0, Math.floor(p.length * 0.7)) : p.subarray(0, Math.floor(p.length * 0.7))) : p;
      return { family, payload, variant: v };
    });
  return fc.oneof({ arbitrary: small, weight: 60 }, { arbitrary: mutated, weight: 37 }, { arbitrary: large, weight: 3 });
}

// ---------------------------------------------------------------- the property

const RECEIVED_AT = 1_700_000_000_000;

export function frameOf(i: DecoderInput): Frame {
  return { input: 'fuzz', payload: i.payload, receivedAt: RECEIVED_AT, ...(i.topic === undefined ? {} : { topic: i.topic }) };
}

/** Decodes once; returns the outcome's name, or throws when the decoder broke the property. */
export function decodeChecked(decode: Decode, frame: Frame): string {
  let result: DecodeResult;
  try {
    result = decode(frame);
  } catch (e) {
    if (e instanceof BackhaulError && Object.hasOwn(ERROR_CATALOG, e.code)) return e.code;
    throw new Error(`the decoder threw something else than a coded BackhaulError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, {
      cause: e,
    });
  }
  if ('skipped' in result) return 'skipped';
  const readings: readonly Reading[] = result.readings;
  if (readings.length === 0) throw new Error('the decoder returned no readings and no skip reason');
  for (const r of readings) {
    if (typeof r.device !== 'string' || r.device === '' || !Number.isFinite(r.ts)) throw new Error(`a reading without a device or a finite time: ${JSON.stringify(r).slice(0, 200)}`);
  }
  return 'decoded';
}

/** What the decoders' own parsing costs, as a baseline: JSON.parse for text, cbor-x for bytes. */
function parseAlone(p: Uint8Array | string): unknown {
  try {
    return typeof p === 'string' ? JSON.parse(p) : cborDecoder.decode(p);
  } catch {
    return undefined;
  }
}

function byteLength(p: Uint8Array | string): number {
  return typeof p === 'string' ? Buffer.byteLength(p) : p.length;
}

export interface DecoderFuzzOptions {
  readonly runs: number;
  readonly seed?: number;
  /** Also measure time at doubling sizes (the slope); off in CI, where only the property counts. */
  readonly scaling?: boolean;
}

/** Runs the property on one decoder type; throws (fast-check's report, shrunk) when it fails. */
export function fuzzDecoder(target: DecoderTarget, o: DecoderFuzzOptions): { stats: TargetStats; scaling: Scaling[] } {
  const stats = new TargetStats(`decoder ${target.type}`, 'CPU time');
  fc.assert(
    fc.property(decoderInput(target.decoders.length), (input) => {
      const frame = frameOf(input);
      const decode = target.decoders[input.variant] ?? target.decoders[0]!;
      // CPU time, not wall time: on a shared machine other processes' work must not pass for a slow input.
      const t0 = cpuNs();
      const outcome = decodeChecked(decode, frame); // throws when the property fails: fast-check shrinks and reports
      stats.record(byteLength(input.payload), cpuNs() - t0, input.family, outcome);
    }),
    { numRuns: o.runs, ...(o.seed === undefined ? {} : { seed: o.seed }) },
  );
  const scaling: Scaling[] = [];
  if (o.scaling) {
    const decode = target.decoders[0]!;
    for (const [family, make] of LARGE) {
      // Up to the caps (10,000 records, readings, members): what a decoder does with the most it takes.
      const sizes = [1250, 2500, 5000, 10_000];
      const payloads = sizes.map((n) => make(n));
      const points = payloads.map((payload) => {
        const frame = frameOf({ family, payload, variant: 0 });
        return { bytes: byteLength(payload), ns: fastestCpuNs(() => void decodeChecked(decode, frame)) };
      });
      const parsed = payloads.map((p) => ({ bytes: byteLength(p), ns: fastestCpuNs(() => void parseAlone(p)) }));
      scaling.push({ family, points, slope: slope(points), parseSlope: slope(parsed) });
    }
  }
  return { stats, scaling };
}

/** Every decoder in turn; returns the report text. */
export function fuzzDecoders(o: DecoderFuzzOptions, log: (s: string) => void = () => undefined): { reports: string[]; worstSlope: number } {
  const reports: string[] = [];
  let worstSlope = 0;
  for (const target of decoderTargets()) {
    const { stats, scaling } = fuzzDecoder(target, o);
    for (const s of scaling) worstSlope = Math.max(worstSlope, s.slope);
    const report = formatReport(stats, scaling);
    log(report);
    reports.push(report);
  }
  return { reports, worstSlope };
}

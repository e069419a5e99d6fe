// SenML (RFC 8428) parsing and resolution: JSON or CBOR bytes → a pack (an array of label → value objects), and a
// pack → resolved records (RFC 8428 §4.6): base values applied, times absolute, names concatenated and checked.
import { Decoder } from 'cbor-x';
import { BackhaulError, joinPath } from '../../core/errors.js';
import { checkJsonBounds, MAX_JSON_DEPTH, MAX_JSON_MEMBERS } from '../../core/json.js';
import { checkSenmlCbor } from './cbor.js';

/** A resolved SenML record (RFC 8428 §4.6). `t` is absolute, in seconds since the Unix epoch. */
export interface ResolvedRecord {
  n: string;
  u?: string;
  t: number;
  v?: number;
  vs?: string;
  vb?: boolean;
  /** Data value, base64url as sent (CBOR byte strings are converted to base64url without padding). */
  vd?: string;
  s?: number;
  ut?: number;
  /** Present only when the pack's version is not 10 (RFC 8428 §4.6: then it MUST be in every resolved record). */
  bver?: number;
  /** Labels this implementation does not know (and that do not end in `_`) pass through unchanged, like ex8's `l`. */
  [label: string]: unknown;
}

/** A resolved record plus what the decoder needs to split its name into device and measurement. */
export interface ResolvedEntry {
  readonly record: ResolvedRecord;
  /** Index of the record in the pack. */
  readonly index: number;
  /** The base name in effect for the record, when one was (and was not empty). */
  readonly baseName?: string;
  /** The record's own `n`, when it had one. */
  readonly ownName?: string;
}

/** SenML version this implementation understands. */
export const SENML_VERSION = 10;
/** Times below this are relative to "now" (RFC 8428 §4.5.3). */
const RELATIVE_LIMIT = 2 ** 28;
/**
 * Longest base name. Every record after it repeats it in its resolved name and, as the device id, in its reading, so
 * without a bound a long `bn` would make the work (and the readings) grow with its length times the records; no
 * registry id is anywhere near this long.
 */
export const MAX_BASE_NAME = 256;

/** CBOR integer labels (RFC 8428 Table 4). The table is conclusive: any other integer label is ignored. */
const CBOR_LABELS: ReadonlyMap<number, string> = new Map([
  [-1, 'bver'],
  [-2, 'bn'],
  [-3, 'bt'],
  [-4, 'bu'],
  [-5, 'bv'],
  [-6, 'bs'],
  [0, 'n'],
  [1, 'u'],
  [2, 'v'],
  [3, 'vs'],
  [4, 'vb'],
  [5, 's'],
  [6, 't'],
  [7, 'ut'],
  [8, 'vd'],
]);

type LabelType = 'string' | 'number' | 'boolean' | 'version';
const LABEL_TYPES: Readonly<Record<string, LabelType>> = {
  bn: 'string',
  bt: 'number',
  bu: 'string',
  bv: 'number',
  bs: 'number',
  bver: 'version',
  n: 'string',
  u: 'string',
  v: 'number',
  vs: 'string',
  vb: 'boolean',
  vd: 'string',
  s: 'number',
  t: 'number',
  ut: 'number',
};
const BASE_LABELS = new Set(['bn', 'bt', 'bu', 'bv', 'bs', 'bver']);
const VALUE_LABELS = ['v', 'vs', 'vb', 'vd'] as const;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9\-:./_]*$/;
const BASE64_RE = /^[A-Za-z0-9_\-+/]*={0,2}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array) && !(x instanceof Map);
}

function parseJsonText(s: string): unknown {
  checkJsonBounds(s, 'the SenML pack');
  try {
    return JSON.parse(s) as unknown;
  } catch (e) {
    throw new BackhaulError('BH_DECODE_SYNTAX', `not valid SenML JSON (${e instanceof Error ? e.message.slice(0, 60) : 'parse error'})`);
  }
}

function base64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** CBOR data item → the JSON data model: maps to objects, byte strings to base64url, big integers to numbers. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return base64url(x);
  if (typeof x === 'bigint') return Number(x);
  if (Array.isArray(x)) return x.map(plain);
  if (x instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of x) if (String(k) !== '__proto__') o[String(k)] = plain(v);
    return o;
  }
  return x;
}

/** One CBOR record map → a record with string labels. Unknown integer labels are dropped (RFC 8428 §6). */
function cborRecord(m: unknown, i: number): unknown {
  if (!(m instanceof Map)) return plain(m); // not a map: the resolver reports it with its path
  const o: Record<string, unknown> = {};
  for (const [k, v] of m as Map<unknown, unknown>) {
    let label: string | undefined;
    if (typeof k === 'number' || typeof k === 'bigint') label = CBOR_LABELS.get(Number(k));
    else if (typeof k === 'string') label = k;
    else throw new BackhaulError('BH_DECODE_SHAPE', 'a CBOR label must be an integer or a text string', { path: `[${i}]` });
    if (label === undefined || label === '__proto__') continue;
    if (Object.hasOwn(o, label)) throw new BackhaulError('BH_DECODE_SHAPE', 'the label appears twice', { path: joinPath(`[${i}]`, label) });
    // Byte strings are only right for `vd` (RFC 8428 §6); elsewhere keep them as bytes so the type check fails.
    o[label] = v instanceof Uint8Array && label !== 'vd' && Object.hasOwn(LABEL_TYPES, label) ? v : plain(v);
  }
  return o;
}

/**
 * Parses a SenML payload. A string, or bytes whose first non-whitespace byte is `[`, is SenML JSON; other bytes are
 * SenML CBOR, whose integer labels are turned into the JSON labels (`-2` → `bn`, `2` → `v`, ...) and whose `vd` byte
 * strings become base64url text, so both come out in the JSON data model. Throws BH_DECODE_SYNTAX, and
 * BH_DECODE_DEPTH (JSON or CBOR nested deeper than 64 levels) or BH_DECODE_CBOR_TAG (a CBOR tag SenML does not use)
 * before parsing anything.
 */
export function decodeSenmlPayload(payload: Uint8Array | string, format: 'auto' | 'json' | 'cbor' = 'auto'): unknown {
  if (typeof payload === 'string') {
    if (format === 'cbor') throw new BackhaulError('BH_DECODE_SYNTAX', 'SenML CBOR must arrive as bytes, not text');
    return parseJsonText(payload.startsWith('\uFEFF') ? payload.slice(1) : payload);
  }
  let k = 0;
  while (k < payload.length && (payload[k] === 0x20 || payload[k] === 0x09 || payload[k] === 0x0a || payload[k] === 0x0d)) k++;
  if (k === payload.length) throw new BackhaulError('BH_DECODE_SYNTAX', 'the payload is empty');
  if (format === 'json' || (format === 'auto' && payload[k] === 0x5b)) {
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch (e) {
      throw new BackhaulError('BH_DECODE_SYNTAX', 'SenML JSON must be UTF-8', { cause: e });
    }
    return parseJsonText(text);
  }
  checkSenmlCbor(payload, MAX_JSON_DEPTH, MAX_JSON_MEMBERS);
  let item: unknown;
  try {
    // cbor-x caches a DataView on the array it decodes (a `dataView` property); a view of our own takes it, so
    // the frame's payload is left as it came (decoders are pure).
    item = cbor.decode(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)) as unknown;
  } catch (e) {
    throw new BackhaulError('BH_DECODE_SYNTAX', `not valid CBOR (${e instanceof Error ? e.message.slice(0, 60) : 'decode error'})`);
  }
  return Array.isArray(item) ? item.map(cborRecord) : plain(item);
}

function typeOk(t: LabelType, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'version':
      return typeof v === 'number' && Number.isInteger(v) && v > 0;
  }
}

const TYPE_NAMES: Readonly<Record<LabelType, string>> = {
  string: 'a string',
  number: 'a finite number',
  boolean: 'a boolean',
  version: 'a positive integer',
};

/**
 * Resolves a SenML pack (RFC 8428 §4.6) and keeps, per record, the base name and own name the decoder needs.
 * Records holding only base fields (ex9's `{"bn": ...}`) set base values and yield no resolved record.
 */
export function resolveSenmlEntries(pack: unknown, nowMs: number): ResolvedEntry[] {
  if (!Array.isArray(pack)) throw new BackhaulError('BH_DECODE_SHAPE', 'a SenML pack must be an array of records', { path: '$' });
  const out: ResolvedEntry[] = [];
  let version: number | undefined;
  let bn: string | undefined;
  let bt = 0;
  let bu: string | undefined;
  let bv: number | undefined;
  let bs: number | undefined;
  for (const [i, rec] of (pack as unknown[]).entries()) {
    const at = `[${i}]`;
    if (!isRecord(rec)) throw new BackhaulError('BH_DECODE_SHAPE', 'a SenML record must be an object', { path: at });
    let regular = false;
    let base = false;
    for (const [label, value] of Object.entries(rec)) {
      if (label.endsWith('_')) {
        throw new BackhaulError('BH_SENML_MUST_UNDERSTAND', 'the label ends in `_`, so it must be understood, and is not', {
          path: joinPath(at, label),
        });
      }
      const type = Object.hasOwn(LABEL_TYPES, label) ? LABEL_TYPES[label] : undefined;
      if (type === undefined) continue;
      if (!typeOk(type, value)) {
        throw new BackhaulError('BH_DECODE_SHAPE', `\`${label}\` must be ${TYPE_NAMES[type]}`, { path: joinPath(at, label) });
      }
      if (BASE_LABELS.has(label)) base = true;
      else regular = true;
    }
    const r = rec as {
      bver?: number; bn?: string; bt?: number; bu?: string; bv?: number; bs?: number;
      n?: string; u?: string; v?: number; vs?: string; vb?: boolean; vd?: string; s?: number; t?: number; ut?: number;
    };

    // Version: the first record's `bver` (or 10) is the pack's; every later `bver` must repeat it.
    if (r.bver !== undefined) {
      if (r.bver > SENML_VERSION) {
        throw new BackhaulError('BH_SENML_VERSION', `version ${r.bver} is newer than ${SENML_VERSION}, the one understood`, {
          path: joinPath(at, 'bver'),
        });
      }
      if (i > 0 && r.bver !== (version ?? SENML_VERSION)) {
        throw new BackhaulError('BH_SENML_VERSION', `version ${r.bver} differs from the pack's version ${version ?? SENML_VERSION}`, {
          path: joinPath(at, 'bver'),
        });
      }
    }
    if (i === 0) version = r.bver ?? SENML_VERSION;

    // Base values carry over to later records until redefined.
    if (r.bn !== undefined) {
      if (r.bn !== '' && !NAME_RE.test(r.bn)) {
        throw new BackhaulError('BH_SENML_NAME', 'a base name must start with A-Z a-z 0-9 and use only A-Z a-z 0-9 - : . / _', {
          path: joinPath(at, 'bn'),
        });
      }
      if (r.bn.length > MAX_BASE_NAME) {
        throw new BackhaulError('BH_SENML_NAME', `a base name must be at most ${MAX_BASE_NAME} characters`, { path: joinPath(at, 'bn') });
      }
      bn = r.bn === '' ? undefined : r.bn;
    }
    if (r.bt !== undefined) bt = r.bt;
    if (r.bu !== undefined) bu = r.bu;
    if (r.bv !== undefined) bv = r.bv;
    if (r.bs !== undefined) bs = r.bs;
    if (base && !regular) continue;

    const name = (bn ?? '') + (r.n ?? '');
    if (name === '') throw new BackhaulError('BH_SENML_NAME', 'the record has no name and no base name is in effect', { path: joinPath(at, 'n') });
    if (!NAME_RE.test(name)) {
      throw new BackhaulError('BH_SENML_NAME', 'a name must start with A-Z a-z 0-9 and use only A-Z a-z 0-9 - : . / _', {
        path: joinPath(at, 'n'),
      });
    }

    const count = VALUE_LABELS.filter((l) => r[l] !== undefined).length;
    const sum = r.s !== undefined || bs !== undefined ? (bs ?? 0) + (r.s ?? 0) : undefined;
    if (count > 1) throw new BackhaulError('BH_SENML_VALUE', 'a record may hold only one of v, vs, vb, vd', { path: at });
    if (count === 0 && sum === undefined) throw new BackhaulError('BH_SENML_VALUE', 'the record has no value (v, vs, vb, vd) and no sum', { path: at });
    if (r.vd !== undefined && !BASE64_RE.test(r.vd)) {
      throw new BackhaulError('BH_DECODE_SHAPE', '`vd` must be base64url text', { path: joinPath(at, 'vd') });
    }

    let t = bt + (r.t ?? 0);
    if (t < RELATIVE_LIMIT) t = nowMs / 1000 + t;

    const resolved: ResolvedRecord = { n: name, t };
    const unit = r.u ?? bu;
    if (unit !== undefined) resolved.u = unit;
    if (r.v !== undefined) resolved.v = (bv ?? 0) + r.v;
    if (r.vs !== undefined) resolved.vs = r.vs;
    if (r.vb !== undefined) resolved.vb = r.vb;
    if (r.vd !== undefined) resolved.vd = r.vd;
    if (sum !== undefined) resolved.s = sum;
    if (r.ut !== undefined) resolved.ut = r.ut;
    if (version !== undefined && version !== SENML_VERSION) resolved.bver = version;
    // Unknown labels are ignored, not interpreted: they pass through, except unknown base labels (`b...`), since a
    // resolved record holds no base fields (§4.6).
    for (const [label, value] of Object.entries(rec)) {
      if (!Object.hasOwn(LABEL_TYPES, label) && !label.startsWith('b') && label !== '__proto__') resolved[label] = value;
    }
    out.push({ record: resolved, index: i, ...(bn === undefined ? {} : { baseName: bn }), ...(r.n === undefined ? {} : { ownName: r.n }) });
  }
  return out;
}

/** The RFC 8428 §4.6 resolved records of a pack; `nowMs` is "now" for relative times (ms since the epoch). */
export function resolveSenml(pack: unknown, nowMs: number): ResolvedRecord[] {
  return resolveSenmlEntries(pack, nowMs).map((e) => e.record);
}

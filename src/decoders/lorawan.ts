// Shared by the decoders of LoRaWAN network servers' integrations (chirpstack, tts): what an uplink becomes, the
// radio metadata kept as values, and the checks every NS message passes before it is read.
import { Type, type Static } from '@sinclair/typebox';
import { BackhaulError, joinPath } from '../core/errors.js';
import { checkJsonBounds } from '../core/json.js';
import type { DecodeResult, DeviceNotice } from '../core/driver.js';
import type { Frame, LorawanMeta, Reading, Value } from '../core/types.js';
import { parseIsoTime } from './time.js';

/** Most values one uplink's decoded payload may give (a codec's output flattened). */
export const MAX_UPLINK_VALUES = 1000;

export const LorawanOptions = Type.Object(
  {
    radio: Type.Boolean({
      default: false,
      description: 'Keep radio metadata as values: `rssi` and `snr` (best gateway), `gateways`, `sf` (spreading factor), `fCnt`, `fPort`.',
    }),
    statusValues: Type.Boolean({
      default: true,
      description: 'ChirpStack `status` events become readings: `battery` (%, absent on external power) and `margin` (dB).',
    }),
  },
  { additionalProperties: false },
);
export type LorawanOptions = Static<typeof LorawanOptions>;

export type JsonRecord = Record<string, unknown>;

export function isRecord(v: unknown): v is JsonRecord {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The NS message as a JSON object. `protobufHint` says how to switch the integration to JSON: a payload that is not
 * JSON text (its first byte is no `{`) is taken for protobuf, which Backhaul does not read.
 */
export function parseNsMessage(frame: Frame, protobufHint: string): JsonRecord {
  let text: string;
  if (typeof frame.payload === 'string') text = frame.payload;
  else {
    const first = frame.payload.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
    if (first !== undefined && first !== 0x7b) throw new BackhaulError('BH_LORAWAN_PROTOBUF', `the message is not JSON (protobuf?): ${protobufHint}`, { path: '$' });
    try {
      text = utf8.decode(frame.payload);
    } catch {
      throw new BackhaulError('BH_DECODE_SYNTAX', 'the message is not UTF-8 text', { path: '$' });
    }
  }
  checkJsonBounds(text, 'the message');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new BackhaulError('BH_DECODE_SYNTAX', `the message is not JSON: ${(e as Error).message}`, { path: '$' });
  }
  if (!isRecord(body)) throw new BackhaulError('BH_DECODE_SHAPE', 'the message must be a JSON object', { path: '$' });
  return body;
}

/** A DevEUI as the registry keeps it: 16 lower-case hex digits. BH_DECODE_NO_DEVICE when there is none. */
export function devEuiOf(v: unknown, path: string): string {
  if (typeof v !== 'string' || v === '') throw new BackhaulError('BH_DECODE_NO_DEVICE', 'the message names no DevEUI', { path });
  const hex = v.replace(/[-:]/g, '').toLowerCase();
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new BackhaulError('BH_DECODE_NO_DEVICE', `${JSON.stringify(v.slice(0, 40))} is not a DevEUI (16 hex digits)`, { path });
  return hex;
}

/** The NS's time of the message (ISO 8601, nanoseconds allowed), else when the frame was received. */
export function timeOf(v: unknown, path: string, frame: Frame): number {
  if (v === undefined) return frame.receivedAt;
  const ms = typeof v === 'string' ? parseIsoTime(v) : undefined;
  if (ms === undefined) throw new BackhaulError('BH_DECODE_TIME', `${JSON.stringify(v)} is not an ISO 8601 time with a zone`, { path });
  return ms;
}

/** An optional non-negative integer field (omitted when zero, as the NS's JSON mappings do). */
export function countOf(body: JsonRecord, key: string, path: string): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v; // protobuf JSON writes 64-bit integers as strings
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new BackhaulError('BH_DECODE_SHAPE', 'must be a non-negative integer', { path: joinPath(path, key) });
  return n;
}

/**
 * The NS's (or a codec's) decoded payload as flat values: nested objects become dotted names (`env.temperature`),
 * array elements their index (`levels.0`); null is left out. BH_DECODE_TOO_MANY past MAX_UPLINK_VALUES.
 */
export function flattenValues(obj: JsonRecord, path: string): Record<string, Value> {
  const out: Record<string, Value> = {};
  let n = 0;
  const walk = (v: unknown, name: string, at: string, depth: number): void => {
    if (v === null || v === undefined) return;
    if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') {
      if (typeof v === 'number' && !Number.isFinite(v)) return;
      if (++n > MAX_UPLINK_VALUES) throw new BackhaulError('BH_DECODE_TOO_MANY', `the decoded payload holds more than ${MAX_UPLINK_VALUES} values`, { path: at });
      out[name] = v;
      return;
    }
    if (depth > 8) throw new BackhaulError('BH_DECODE_DEPTH', 'the decoded payload nests deeper than 8 levels', { path: at });
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${name}.${i}`, joinPath(at, i), depth + 1));
    else if (isRecord(v)) for (const [k, x] of Object.entries(v)) walk(x, name === '' ? k : `${name}.${k}`, joinPath(at, k), depth + 1);
  };
  walk(obj, '', path, 0);
  return out;
}

/** The uplink's raw bytes from the NS's base64 field; BH_DECODE_SHAPE when it is not base64. */
export function rawOf(v: unknown, path: string): Uint8Array | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0 || v.length > 1000) {
    throw new BackhaulError('BH_DECODE_SHAPE', 'must be the payload in base64 (at most 750 bytes)', { path });
  }
  return Uint8Array.from(Buffer.from(v, 'base64'));
}

export interface Uplink {
  readonly devEui: string;
  readonly ts: number;
  readonly fCnt: number | undefined;
  readonly fPort: number | undefined;
  readonly values: Record<string, Value>;
  readonly units?: Record<string, string>;
  /** Per gateway that heard it. */
  readonly gateways: ReadonlyArray<{ readonly rssi?: number; readonly snr?: number }>;
  readonly sf: number | undefined;
  /** The raw payload, kept as values `payload` (hex) and `fPort` when the NS decoded nothing: a codec's input. */
  readonly raw?: Uint8Array | undefined;
  /** The NS's ids a downlink to the device needs. */
  readonly link: NsLink;
}

/** The ids a network server knows the device by, besides its DevEUI. */
export interface NsLink {
  readonly applicationId?: string | undefined;
  readonly tenant?: string | undefined;
  readonly deviceId?: string | undefined;
}

/** A string id field, or undefined where absent or not a short string. */
export function idOf(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' && v.length <= 128 && !/[/+#\s]/.test(v) ? v : undefined;
}

/** The correlation id Backhaul gives a downlink (The Things Stack echoes it in what it says of the downlink). */
export const ORDER_CORRELATION = 'backhaul:order:';

/** The order id in a downlink's correlation ids, looked for in the message's `correlation_ids` at any depth up to 3. */
export function orderCorrelation(body: JsonRecord): string | undefined {
  const walk = (v: unknown, depth: number): string | undefined => {
    if (!isRecord(v) || depth > 3) return undefined;
    const ids = v['correlation_ids'];
    if (Array.isArray(ids)) {
      for (const c of ids) if (typeof c === 'string' && c.startsWith(ORDER_CORRELATION)) return c.slice(ORDER_CORRELATION.length);
    }
    for (const x of Object.values(v)) {
      const found = isRecord(x) ? walk(x, depth + 1) : undefined;
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(body, 0);
}

/** What became of a downlink: a notice for the order, or skipped (`skipped`) when it names no order of Backhaul's. */
export function downlinkResult(skipped: string, device: string, ts: number, command: string | undefined, outcome: 'sent' | 'acknowledged' | 'failed', reason?: string): DecodeResult {
  if (command === undefined) return { skipped };
  const notice: DeviceNotice = { kind: 'downlink', device, ts, command, outcome, ...(reason !== undefined ? { reason } : {}) };
  return { skipped, notice };
}

/** A downlink's bytes as the NS's JSON mappings carry them. */
export function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The gateways' rssi and snr, from rxInfo / rx_metadata entries. */
export function gatewaysOf(list: unknown): Array<{ rssi?: number; snr?: number }> {
  if (!Array.isArray(list)) return [];
  return list.filter(isRecord).map((g) => {
    const rssi = num(g['rssi']);
    const snr = num(g['snr']);
    return { ...(rssi !== undefined ? { rssi } : {}), ...(snr !== undefined ? { snr } : {}) };
  });
}

/** The object at `keys` below `v` (`txInfo.modulation.lora`), or undefined where a step is not an object. */
export function nested(v: unknown, ...keys: readonly string[]): JsonRecord | undefined {
  let cur: unknown = v;
  for (const k of keys) cur = isRecord(cur) ? cur[k] : undefined;
  return isRecord(cur) ? cur : undefined;
}

/** The NS's (or its payload formatter's) decoded values at `path`; none when absent, BH_DECODE_SHAPE when no object. */
export function decodedValues(v: unknown, path: string): Record<string, Value> {
  if (v === undefined) return {};
  if (!isRecord(v)) throw new BackhaulError('BH_DECODE_SHAPE', 'must be an object (the network server\'s decoded payload)', { path });
  return flattenValues(v, path);
}

/** A join: no reading, a notice (the hub raises device.joined, the gate starts the frame counter again). */
export function joined(skipped: string, device: string, ts: number, devAddr: unknown): DecodeResult {
  return { skipped, notice: { kind: 'joined', device, ts, ...(typeof devAddr === 'string' ? { devAddr } : {}) } };
}

/** An uplink's result: its reading, or skipped when it holds no values, no bytes and the radio is not asked for. */
export function uplinkResult(u: Uplink, opts: LorawanOptions, frame: Frame, decoder: string): DecodeResult {
  if (Object.keys(u.values).length === 0 && u.raw === undefined && !opts.radio) return { skipped: 'no_decoded_payload' };
  return { readings: [uplinkReading(u, opts, frame, decoder)] };
}

/** One reading of an uplink, with the radio metadata when asked. `fCnt` is the reading's `seq`. */
export function uplinkReading(u: Uplink, opts: LorawanOptions, frame: Frame, decoder: string): Reading {
  const values: Record<string, Value> = { ...u.values };
  const units: Record<string, string> = { ...u.units };
  if (u.raw !== undefined && Object.keys(u.values).length === 0) {
    values['payload'] = Buffer.from(u.raw).toString('hex');
    values['fPort'] = u.fPort ?? 0;
  }
  let rssi = -Infinity;
  let snr = -Infinity;
  for (const g of u.gateways) {
    if (g.rssi !== undefined && g.rssi > rssi) rssi = g.rssi;
    if (g.snr !== undefined && g.snr > snr) snr = g.snr;
  }
  if (opts.radio) {
    if (Number.isFinite(rssi)) [values['rssi'], units['rssi']] = [rssi, 'dBm'];
    if (Number.isFinite(snr)) [values['snr'], units['snr']] = [snr, 'dB'];
    values['gateways'] = u.gateways.length;
    if (u.sf !== undefined) values['sf'] = u.sf;
    values['fCnt'] = u.fCnt ?? 0;
    if (u.fPort !== undefined) values['fPort'] = u.fPort;
  }
  // Kept in the registry whatever `radio` says (the dashboard shows the signal); the gate takes it off the reading.
  const lorawan: LorawanMeta = {
    ns: decoder,
    ...(u.link.applicationId !== undefined ? { applicationId: u.link.applicationId } : {}),
    ...(u.link.tenant !== undefined ? { tenant: u.link.tenant } : {}),
    ...(u.link.deviceId !== undefined ? { deviceId: u.link.deviceId } : {}),
    ...(u.fPort !== undefined ? { fPort: u.fPort } : {}),
    ...(Number.isFinite(rssi) ? { rssi } : {}),
    ...(Number.isFinite(snr) ? { snr } : {}),
    gateways: u.gateways.length,
    ...(u.sf !== undefined ? { sf: u.sf } : {}),
  };
  return {
    kind: 'reading',
    device: u.devEui,
    ts: u.ts,
    ...(u.fCnt !== undefined ? { seq: u.fCnt } : {}),
    values,
    ...(Object.keys(units).length > 0 ? { units } : {}),
    authenticated: false,
    source: { input: frame.input, decoder, ...(frame.topic !== undefined ? { topic: frame.topic } : {}) },
    lorawan,
  };
}

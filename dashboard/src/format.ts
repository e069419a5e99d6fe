// Small formatting helpers: times, durations, sizes, values.
import type { JsonValue, Liveness } from './api';

const pad = (n: number): string => String(n).padStart(2, '0');

/** `14:03:27` (local time). */
export function fmtTime(ts: number): string {
  const d = new Date(ts);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `2025-11-22 14:03:27` (local time). */
export function fmtDateTime(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(ts)}`;
}

/** `45 s`, `3 min`, `2 h 05 min`, `4 d 3 h`. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${pad(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** `3 min ago`, or `never`. */
export function ago(ts: number | undefined, now = Date.now()): string {
  if (ts === undefined) return 'never';
  const d = now - ts;
  if (d < 1000) return 'just now';
  return `${humanDuration(d)} ago`;
}

export function humanBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function fmtNumber(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString();
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function fmtValue(v: JsonValue | undefined): string {
  if (v === undefined) return '-';
  if (typeof v === 'number') return fmtNumber(v);
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function fmtLocation(l: { site?: string; building?: string; room?: string }): string {
  const parts = [l.site, l.building, l.room].filter((p): p is string => p !== undefined && p !== '');
  return parts.length ? parts.join(' / ') : 'no location';
}

export const LIVENESS_LABEL: Readonly<Record<Liveness, string>> = {
  active: 'Active',
  late: 'Late',
  outdated: 'Outdated',
  disabled: 'Disabled',
  unknown: 'Unknown',
};

export const LIVENESS_HELP: Readonly<Record<Liveness, string>> = {
  active: 'heard from within half its silence threshold',
  late: 'silent for more than half its threshold',
  outdated: 'silent longer than its threshold (offline)',
  disabled: 'disabled or blocked',
  unknown: 'never heard from, or no threshold',
};

/** How worrying a liveness is, for sorting problems first. */
export const LIVENESS_RANK: Readonly<Record<Liveness, number>> = { outdated: 0, late: 1, unknown: 2, active: 3, disabled: 4 };

export function livenessOf(s: string): Liveness {
  return s === 'active' || s === 'late' || s === 'outdated' || s === 'disabled' ? s : 'unknown';
}

// ---------------------------------------------------------------- units

/**
 * SenML unit codes (RFC 8428 and its registry) as people write them after a number. The code itself stays in the
 * API and in a tooltip; an unknown code is shown as it is.
 */
const UNIT_TEXT: Readonly<Record<string, string>> = {
  Cel: '°C',
  K: 'K',
  Far: '°F',
  '%': '%',
  '%RH': '%RH',
  '%EL': '%',
  '/': '%', // a ratio 0..1, shown as a percentage (fmtMeasured multiplies)
  V: 'V',
  mV: 'mV',
  A: 'A',
  mA: 'mA',
  W: 'W',
  Wh: 'Wh',
  kWh: 'kWh',
  J: 'J',
  lx: 'lx',
  Pa: 'Pa',
  hPa: 'hPa',
  ppm: 'ppm',
  ppb: 'ppb',
  dB: 'dB',
  dBm: 'dBm',
  dBW: 'dBW',
  m: 'm',
  'm/s': 'm/s',
  s: 's',
  ms: 'ms',
  h: 'h',
  Hz: 'Hz',
  count: '',
};

/** The unit as people write it (`°C` for `Cel`); '' for none. */
export function unitText(unit: string | undefined): string {
  if (unit === undefined || unit === '') return '';
  return UNIT_TEXT[unit] ?? unit;
}

/** The tooltip naming the unit's SenML code, or undefined when there is none. */
export function unitTitle(unit: string | undefined): string | undefined {
  return unit ? `SenML unit: ${unit}` : undefined;
}

/** A value with its unit as people write it: `20.13 °C`, `51 %RH`, `2.98 V`, `-71 dBm`; a ratio `/` as a percentage. */
export function fmtMeasured(v: JsonValue | undefined, unit: string | undefined): string {
  const u = unitText(unit);
  if (typeof v === 'number' && unit === '/') return `${fmtNumber(v * 100)}%`;
  const text = fmtValue(v);
  if (!u || v === undefined) return text;
  // A space before the unit (SI style), none before a bare %.
  return u === '%' ? `${text}%` : `${text} ${u}`;
}

/** A number scaled for display in this unit (only `/` changes: 0..1 becomes 0..100). */
export function displayScale(unit: string | undefined): number {
  return unit === '/' ? 100 : 1;
}

// ---------------------------------------------------------------- measurements

/** Names of signal-quality measurements, as radios and gateways report them. */
const SIGNAL = /^(rssi|lqi|snr|rsrp|rsrq|sinr|linkquality|link_quality|signal|signal_strength|wifi_rssi|rssi_dbm)$/i;

export function isSignal(measurement: string): boolean {
  return SIGNAL.test(measurement);
}

/** The battery voltage measurement (the liveness monitor's default, src/devices/liveness.ts). */
export const BATTERY = 'battery';

/** Key values first on a device card, in this order; others follow alphabetically. */
const KEY_ORDER = ['temperature', 'humidity', 'co2', 'valve', 'position', 'light', 'pressure', 'power', 'energy', 'occupancy'];

export function keyRank(measurement: string): number {
  const i = KEY_ORDER.indexOf(measurement.toLowerCase());
  return i === -1 ? KEY_ORDER.length : i;
}

/** A LoRaWAN device's last signal in a few words: `-97 dBm, SNR 7.5 dB, SF9, 2 gateways`; '' when none is known. */
export function fmtRadio(l: { readonly rssi?: number; readonly snr?: number; readonly sf?: number; readonly gateways?: number }): string {
  const parts: string[] = [];
  if (l.rssi !== undefined) parts.push(`${l.rssi} dBm`);
  if (l.snr !== undefined) parts.push(`SNR ${l.snr} dB`);
  if (l.sf !== undefined) parts.push(`SF${l.sf}`);
  if (l.gateways !== undefined && l.gateways > 0) parts.push(`${l.gateways} gateway${l.gateways === 1 ? '' : 's'}`);
  return parts.join(', ');
}

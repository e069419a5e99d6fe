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

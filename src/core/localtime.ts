// Wall-clock time in a named time zone (IANA, e.g. Europe/London), through Intl (Node's full ICU): no dependency.
// Used by `privacy` (which hours are private, daylight saving time included), `template` (local time in text) and
// the notification sinks (quiet hours).

/** Why `tz` is not a usable time zone, or undefined. */
export function zoneProblem(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone ${JSON.stringify(tz)} (use an IANA name such as "Europe/London" or "UTC")`;
  }
}

/** Why `locale` is not a usable BCP 47 locale, or undefined. */
export function localeProblem(locale: string): string | undefined {
  try {
    new Intl.NumberFormat(locale);
    return undefined;
  } catch {
    return `invalid locale ${JSON.stringify(locale)} (use a BCP 47 tag such as "en-GB" or "de-DE")`;
  }
}

const BLOCK_MS = 15 * 60_000;

/** Offsets from UTC of one zone. Every zone in use changes its offset on a quarter hour, so offsets are cached per quarter hour. */
export class Zone {
  private readonly fmt: Intl.DateTimeFormat;
  private readonly cache = new Map<number, number>();

  constructor(readonly tz: string) {
    this.fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** Local time minus UTC at `ts`, in ms (+3 600 000 for British Summer Time). */
  offsetMs(ts: number): number {
    const block = Math.floor(ts / BLOCK_MS);
    let off = this.cache.get(block);
    if (off === undefined) {
      const at = block * BLOCK_MS;
      const p: Record<string, number> = {};
      for (const part of this.fmt.formatToParts(at)) if (part.type !== 'literal') p[part.type] = Number(part.value);
      const local = Date.UTC(p['year'] ?? 1970, (p['month'] ?? 1) - 1, p['day'] ?? 1, p['hour'] ?? 0, p['minute'] ?? 0, p['second'] ?? 0);
      off = local - at;
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(block, off);
    }
    return off;
  }

  /** Seconds since local midnight at `ts` (0..86399). */
  secondOfDay(ts: number): number {
    const local = ts + this.offsetMs(ts);
    return ((Math.floor(local / 1000) % 86_400) + 86_400) % 86_400;
  }

  /** Minutes since local midnight at `ts` (0..1439). */
  minuteOfDay(ts: number): number {
    const local = ts + this.offsetMs(ts);
    return ((Math.floor(local / 60_000) % 1440) + 1440) % 1440;
  }
}

/** `"22:00-06:00"` → minutes of the day [start, end); `24:00` is allowed as an end. */
export interface HourRange {
  readonly start: number;
  readonly end: number;
}

export const HOURS_PATTERN = '^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$';

export function parseHours(s: string): HourRange {
  const [a = '', b = ''] = s.split('-');
  const min = (hm: string) => {
    const [h = '0', m = '0'] = hm.split(':');
    return Number(h) * 60 + Number(m);
  };
  return { start: min(a), end: min(b) };
}

export function inRange(r: HourRange, minute: number): boolean {
  return r.start < r.end ? minute >= r.start && minute < r.end : minute >= r.start || minute < r.end;
}

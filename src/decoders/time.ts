// Shared by the decoders that read textual times (OpenTRV logs, mapped JSON).

/**
 * ISO 8601 date-time with a zone (`Z`, `±hh:mm` or `±hhmm`), as ms since the epoch; undefined otherwise. Checks the
 * calendar itself, since Date.parse rolls `02-31` over into March.
 */
export function parseIsoTime(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):?(\d{2}))$/i.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se, zh, zm] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || se > 59 || zh > 23 || zm > 59) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : undefined;
}

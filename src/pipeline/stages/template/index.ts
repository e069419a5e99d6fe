// template: a reading or an event as human text, for notification sinks. Several phrasings are taken in turn, so
// that repeated notifications are not identical (public services refuse messages that look automated); values are
// written with their units, times in a local time zone.
import { Type } from '@sinclair/typebox';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import { customEvent, isEventType } from '../../../core/events.js';
import type { Message, Value } from '../../../core/types.js';
import { localeProblem, zoneProblem } from '../../../core/localtime.js';

const Options = Type.Object(
  {
    phrases: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Phrasings with `{placeholders}`, used in turn (a phrasing whose placeholders a message cannot fill is skipped). `{{` and `}}` are literal braces.',
    }),
    tz: Type.String({ minLength: 1, default: 'UTC', description: 'IANA time zone for `{time}`, `{date}` and `{datetime}`.' }),
    locale: Type.String({ minLength: 1, default: 'en-GB', description: 'BCP 47 locale for numbers, dates and times.' }),
    decimals: Type.Integer({ minimum: 0, maximum: 6, default: 1, description: 'Most decimals shown for numbers.' }),
    unitSymbols: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String(), {
        description: 'SenML unit → text after the number, e.g. `{ "Cel": " °C" }` (include the space you want). Adds to and overrides the built-in ones.',
      }),
    ),
    deviceNames: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), { description: 'Device id → name used for `{device}` (`{id}` is always the id).' }),
    ),
    event: Type.String({ minLength: 1, default: 'notification', description: 'Type of the event made from a reading; not a built-in one (docs/events.md).' }),
    severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')], {
      default: 'info',
      description: 'Severity of the event made from a reading (an event keeps its own).',
    }),
  },
  { additionalProperties: false },
);

/** What follows a number for each SenML unit; other units are written after a space as they are. */
export const UNIT_SYMBOLS: Readonly<Record<string, string>> = {
  Cel: ' °C',
  K: ' K',
  '%': '%',
  '%RH': '% RH',
  '%EL': '%',
  V: ' V',
  A: ' A',
  W: ' W',
  Wh: ' Wh',
  kWh: ' kWh',
  J: ' J',
  lx: ' lx',
  Pa: ' Pa',
  hPa: ' hPa',
  ppm: ' ppm',
  m: ' m',
  'm/s': ' m/s',
  dB: ' dB',
  dBm: ' dBm',
  s: ' s',
  h: ' h',
  count: '',
};

type Piece = { readonly text: string } | { readonly field: string; readonly raw: boolean };

/** Split a phrasing into text and `{field}` / `{field:raw}` pieces; throws on an unbalanced brace. */
export function parsePhrase(p: string): Piece[] {
  const pieces: Piece[] = [];
  let text = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if ((c === '{' || c === '}') && p[i + 1] === c) {
      text += c;
      i++;
      continue;
    }
    if (c === '}') throw new Error(`unmatched } at character ${i + 1}`);
    if (c !== '{') {
      text += c;
      continue;
    }
    const close = p.indexOf('}', i);
    const inner = close < 0 ? '' : p.slice(i + 1, close);
    if (close < 0 || inner.includes('{')) throw new Error(`unclosed { at character ${i + 1}`);
    if (inner.trim() === '') throw new Error(`empty placeholder at character ${i + 1}`);
    if (text) pieces.push({ text });
    text = '';
    const raw = inner.endsWith(':raw');
    pieces.push({ field: (raw ? inner.slice(0, -4) : inner).trim(), raw });
    i = close;
  }
  if (text) pieces.push({ text });
  return pieces;
}

export const templateStage = defineStage({
  kind: 'stage',
  type: 'template',
  handlesEvents: true,
  description: 'Turn a reading or an event into human text (an event for notification sinks), varying the phrasing, with units and local times.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = [];
    const tz = zoneProblem(o.tz);
    if (tz) problems.push({ path: 'tz', message: tz });
    const loc = localeProblem(o.locale);
    if (loc) problems.push({ path: 'locale', message: loc });
    // A built-in type's data is the hub's own (docs/events.md); a reading's values would not be that.
    if (o.event !== undefined && isEventType(o.event)) problems.push({ path: 'event', message: `${o.event} is a built-in event type (docs/events.md); choose another` });
    o.phrases.forEach((p, i) => {
      try {
        parsePhrase(p);
      } catch (e) {
        problems.push({ path: `phrases[${i}]`, message: (e as Error).message });
      }
    });
    return problems;
  },
  create(o, ctx) {
    const phrases = o.phrases.map(parsePhrase);
    const locale = o.locale;
    const timeZone = o.tz;
    const num = new Intl.NumberFormat(locale, { maximumFractionDigits: o.decimals });
    const time = new Intl.DateTimeFormat(locale, { timeZone, hour: '2-digit', minute: '2-digit' });
    const date = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: 'medium' });
    const datetime = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: 'medium', timeStyle: 'short' });
    const symbols: Record<string, string> = { ...UNIT_SYMBOLS, ...(o.unitSymbols ?? {}) };
    const names = o.deviceNames ?? {};
    let turn = 0;

    const show = (v: Value, unit: string | undefined, raw: boolean): string => {
      const s = typeof v === 'number' ? num.format(v) : String(v);
      if (raw || unit === undefined || typeof v !== 'number') return s;
      return s + (symbols[unit] ?? ` ${unit}`);
    };

    const field = (m: Message, f: string, raw: boolean): string | undefined => {
      switch (f) {
        case 'device':
          return m.device === undefined ? undefined : (names[m.device] ?? m.device);
        case 'id':
          return m.device;
        case 'time':
          return time.format(m.ts);
        case 'date':
          return date.format(m.ts);
        case 'datetime':
          return datetime.format(m.ts);
      }
      if (m.kind === 'reading') {
        const v = m.values[f];
        if (v !== undefined) return show(v, m.units?.[f], raw);
        if (f === 'seq') return m.seq === undefined ? undefined : String(m.seq);
        if (f === 'input') return m.source.input;
        return undefined;
      }
      switch (f) {
        case 'type':
          return m.type;
        case 'severity':
          return m.severity;
        case 'message':
          return m.message;
      }
      const v = m.data?.[f];
      if (v === undefined) return undefined;
      // An event's `value` is written with the event's `unit` (as severity.changed events carry them).
      const unit = f === 'value' && typeof m.data?.['unit'] === 'string' ? m.data['unit'] : undefined;
      return show(v, unit, raw);
    };

    const fill = (pieces: readonly Piece[], m: Message): string | undefined => {
      let s = '';
      for (const p of pieces) {
        if ('text' in p) s += p.text;
        else {
          const v = field(m, p.field, p.raw);
          if (v === undefined) return undefined;
          s += v;
        }
      }
      return s;
    };

    return {
      process(m) {
        // Phrasings are taken in turn; one that cannot be filled is skipped for this message.
        for (let k = 0; k < phrases.length; k++) {
          const i = (turn + k) % phrases.length;
          const text = fill(phrases[i]!, m);
          if (text === undefined) continue;
          turn = i + 1;
          if (m.kind === 'event') return [{ ...m, message: text }];
          return [customEvent(o.event, { ...m.values }, { ts: m.ts, severity: o.severity, device: m.device, message: text })];
        }
        ctx.dropped('template_unfilled');
        return [];
      },
    };
  },
});

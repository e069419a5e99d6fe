// console: one line per message on stdout or stderr, for a first run, a demo or debugging a route.
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import type { Message, Value } from '../../core/types.js';
import { isoTime, messageToJson } from '../format.js';

const Options = Type.Object(
  {
    stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')], { default: 'stdout', description: 'Where the lines go.' }),
    format: Type.Union([Type.Literal('text'), Type.Literal('json')], {
        default: 'text',
        description: '`text`: `<ISO time> <device>[#seq] name=value<unit> ...`; `json`: one JSON object per line.',
      }),
  },
  { additionalProperties: false },
);

export type ConsoleFormat = 'text' | 'json';

function textValue(v: Value): string {
  if (typeof v !== 'string') return String(v);
  return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
}

/**
 * One message as one line, without the newline. Text form of a reading:
 * `2026-01-01T00:00:00.000Z 819c temperature=16.625Cel battery=2.55V` (`819c#12` when it has a seq); of an event:
 * `2026-01-01T00:00:00.000Z [warning] device.offline 819c: silent for 2h`.
 */
export function formatConsoleLine(m: Message, format: ConsoleFormat = 'text'): string {
  if (format === 'json') return JSON.stringify(messageToJson(m));
  if (m.kind === 'reading') {
    const parts = [isoTime(m.ts), m.seq === undefined ? m.device : `${m.device}#${m.seq}`];
    for (const [name, v] of Object.entries(m.values)) parts.push(`${name}=${textValue(v)}${m.units?.[name] ?? ''}`);
    return parts.join(' ');
  }
  const about = m.device === undefined ? '' : ` ${m.device}`;
  const data = m.data ? Object.entries(m.data).map(([k, v]) => ` ${k}=${textValue(v)}`).join('') : '';
  return `${isoTime(m.ts)} [${m.severity}] ${m.type}${about}: ${m.message}${data}`.replace(/[\r\n]+/g, ' ');
}

export const consoleSink = defineSink({
  kind: 'sink',
  type: 'console',
  description: 'Print each message as one line (text or JSON) on stdout or stderr.',
  options: Options,
  create(o) {
    const format: ConsoleFormat = o.format;
    const which = o.stream;
    const stream = (): NodeJS.WritableStream => (which === 'stderr' ? process.stderr : process.stdout);
    return {
      open: () => Promise.resolve(),
      write(batch) {
        if (batch.length === 0) return Promise.resolve();
        const text = batch.map((m) => formatConsoleLine(m, format) + '\n').join('');
        return new Promise<void>((resolve, reject) => {
          stream().write(text, (err) => {
            if (err) reject(new SinkError(`cannot write to ${which}: ${err.message}`, true, { cause: err }));
            else resolve();
          });
        });
      },
      close: () => Promise.resolve(),
    };
  },
});

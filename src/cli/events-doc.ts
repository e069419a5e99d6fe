// Renders docs/events.md from the map of event types (src/core/events.ts), so the reference cannot drift from the code.
import { cell } from './docs.js';
import type { TSchema } from '@sinclair/typebox';
import { EVENT_TYPES, type EventSpec } from '../core/events.js';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  patternProperties?: Record<string, Schema>;
  anyOf?: Schema[];
  const?: unknown;
}

function typeOf(s: Schema): string {
  if (s.anyOf) return s.anyOf.map(typeOf).join(' \\| ');
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  return s.type ?? 'any';
}

function severityOf(spec: EventSpec): string {
  if (typeof spec.severity === 'string') return spec.severity;
  return spec.severityRule ?? spec.severity.join(' / ');
}

function dataTable(schema: TSchema): string {
  const s = schema as Schema;
  if (s.patternProperties) {
    const [value] = Object.values(s.patternProperties);
    return `Any names: ${s.description ?? ''} (each ${value ? typeOf(value) : 'any'}).\n`;
  }
  const required = new Set(s.required ?? []);
  const rows = Object.entries(s.properties ?? {}).map(
    ([name, p]) => `| \`${name}\` | ${typeOf(p)} | ${required.has(name) ? 'always' : 'optional'} | ${cell(p.description ?? '')} |`,
  );
  return ['| field | type | present | meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n';
}

export function renderEvents(): string {
  const specs = Object.entries(EVENT_TYPES) as Array<[string, EventSpec]>;
  const lines = [
    '# Events',
    '',
    'Events are what the hub itself observed: a device gone silent, an unknown device, an order settled, a sink falling',
    'behind, the config it runs. Each is `{"kind": "event", "type", "ts", "severity", "device"?, "message", "data"}`:',
    '`ts` in ms since the epoch, `severity` `info`, `warning` or `critical`, `device` on events about one device (so a',
    'route\'s `match.devices` applies), `message` a line for people, `data` a flat object of numbers, strings and booleans',
    'whose fields each type fixes (below). Events go through the router like readings: a route takes them with',
    '`"match": {"kind": "event"}` (or `"any"`), narrowed by `"events": ["device.*", "sink.backlog"]` (types or globs), e.g.',
    '`{"match": {"kind": "event", "events": ["device.offline", "sink.*"]}, "to": ["alerts"]}` (docs/config.md). Sinks',
    'write them as `{event, ts, time, severity, device?, message, data}`. Every event is counted in',
    '`backhaul_events_total{type, severity}` and sent to the live feed `/api/v1/events/stream` (docs/api.md).',
    '',
    'This file is generated from `src/core/events.ts` by `npm run docs`; a test keeps the two in step. The code makes',
    'every event through that map (`makeEvent`), so an event with data of another shape does not compile.',
    '',
    '| type | severity | about a device | raised by |',
    '|---|---|---|---|',
    ...specs.map(([type, spec]) => `| [\`${type}\`](#${type.replace(/[^a-z0-9_]/g, '')}) | ${cell(severityOf(spec))} | ${spec.device ? 'yes' : 'no'} | ${cell(spec.by)} |`),
    '',
  ];
  for (const [type, spec] of specs) {
    lines.push(`## \`${type}\``, '', `${spec.when} Severity: ${severityOf(spec)}. Raised by ${spec.by}.`, '', dataTable(spec.data));
  }
  lines.push(
    '## Events of your own',
    '',
    'The `template` stage turns a reading into an event of the type its `event` option names (default `notification`),',
    'with the severity its `severity` option gives, the reading\'s device, and the reading\'s values as `data`. That type',
    'may not be one of the above (`backhaul check` says so): their data is the hub\'s own.',
    '',
  );
  return lines.join('\n');
}

// Renders reference docs from the code itself (driver schemas, the error catalog), so they cannot drift.
import type { TSchema } from '@sinclair/typebox';
import { ERROR_CATALOG, errorDescription, httpStatus, type ErrorCode } from '../core/errors.js';
import { builtinRegistry } from '../runtime/registry.js';

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  const?: unknown;
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  secret?: boolean;
  secretKeys?: string;
  urlCredentials?: boolean;
}

/** What redact.ts hides of an option, said in its table row. */
function secrecy(p: JsonSchema): string {
  if (p.secret === true) return ' Secret: shown redacted; write `{"secret": NAME}`.';
  if (p.secretKeys !== undefined) return ' Values of keys named like credentials (Authorization, X-Api-Key …) are secret: shown redacted.';
  if (p.urlCredentials === true) return ' A password in it is shown redacted.';
  return '';
}

function typeOf(s: JsonSchema): string {
  if (s.anyOf) {
    if (s.anyOf.every((x) => x.const !== undefined)) return s.anyOf.map((x) => JSON.stringify(x.const)).join(' \\| ');
    return s.anyOf.map(typeOf).join(' \\| ');
  }
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'array') {
    const inner = s.items ? typeOf(s.items) : 'any';
    return inner.includes(' \\| ') ? `(${inner})[]` : `${inner}[]`;
  }
  if (Array.isArray(s.type)) return s.type.join(' \\| ');
  return s.type ?? 'any';
}

/** Text for a Markdown table cell: pipes escaped, one line. */
export function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function optionsTable(schema: TSchema): string {
  const s = schema as JsonSchema;
  const props = Object.entries(s.properties ?? {});
  if (props.length === 0) return '_No options._\n';
  const required = new Set(s.required ?? []);
  const rows = props.map(([name, p]) => {
    const dflt = p.default !== undefined ? `\`${JSON.stringify(p.default)}\`` : required.has(name) && p.default === undefined ? 'required' : '—';
    return `| \`${name}\` | ${typeOf(p).replace(/^(.*)$/, '`$1`').replace(/ \\\| /g, '` \\| `')} | ${dflt} | ${cell(`${p.description ?? ''}${secrecy(p)}`)} |`;
  });
  return ['| option | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n';
}

export type DriverKind = 'input' | 'decoder' | 'stage' | 'sink';

/** One built-in driver as its docs see it: where its README is (relative to the repository root) and its schema. */
export interface DriverDoc {
  readonly kind: DriverKind;
  readonly type: string;
  readonly description: string;
  readonly options: TSchema;
  /** The folder of its kind, e.g. `src/pipeline/stages`. */
  readonly folder: string;
  readonly readme: string;
}

const FOLDERS: ReadonlyArray<readonly [DriverKind, string]> = [
  ['input', 'src/inputs'],
  ['decoder', 'src/decoders'],
  ['stage', 'src/pipeline/stages'],
  ['sink', 'src/sinks'],
];

/** Every built-in driver, kind by kind, each kind sorted by type. */
export function driverDocs(): DriverDoc[] {
  const reg = builtinRegistry();
  const defs: Record<DriverKind, ReadonlyMap<string, { type: string; description: string; options: TSchema }>> = {
    input: reg.inputs,
    decoder: reg.decoders,
    stage: reg.stages,
    sink: reg.sinks,
  };
  return FOLDERS.flatMap(([kind, folder]) =>
    [...defs[kind].values()]
      .sort((a, b) => a.type.localeCompare(b.type))
      .map((d) => ({ kind, type: d.type, description: d.description, options: d.options, folder, readme: `${folder}/${d.type}/README.md` })),
  );
}

export function renderConfigTables(): string {
  const reg = builtinRegistry();
  const titles: Record<DriverKind, string> = { input: 'Inputs', decoder: 'Decoders', stage: 'Stages', sink: 'Sinks' };
  const out: string[] = [];
  let kind: DriverKind | undefined;
  for (const d of driverDocs()) {
    if (d.kind !== kind) out.push(`### ${titles[d.kind]}\n`);
    kind = d.kind;
    const extra = d.kind === 'input' ? ` Default decoder: \`${reg.inputs.get(d.type)!.defaultDecoder}\`.` : '';
    out.push(`#### \`${d.type}\`\n`);
    out.push(`${d.description} See [${d.readme}](../${d.readme}).${extra}\n`);
    out.push(optionsTable(d.options));
  }
  return out.join('\n');
}

/** The markers a driver README's generated options table sits between. */
export const OPTIONS_BEGIN = '<!-- options:begin -->';
export const OPTIONS_END = '<!-- options:end -->';

/**
 * A driver README with the table between its option markers rendered afresh from the schema (the same table as in
 * docs/config.md). Undefined when the README lacks the markers, once each and in order.
 */
export function withOptionsTable(readme: string, schema: TSchema): string | undefined {
  const a = readme.indexOf(OPTIONS_BEGIN);
  const b = readme.indexOf(OPTIONS_END);
  if (a < 0 || b < a || readme.indexOf(OPTIONS_BEGIN, a + 1) >= 0 || readme.indexOf(OPTIONS_END, b + 1) >= 0) return undefined;
  return `${readme.slice(0, a + OPTIONS_BEGIN.length)}\n\n${optionsTable(schema)}\n${readme.slice(b)}`;
}

export function renderErrors(): string {
  const lines = [
    '# Error codes',
    '',
    'Every error Backhaul reports carries one of these codes, printed as `CODE path: message`, where `path` is the JSON',
    'path or field at fault (`routes[1].to[0]`, `inputs.radio.baud`, `[2].vs` in a SenML pack). Decode errors are counted',
    'in `backhaul_decode_errors_total{input, reason}` with the code as reason; drops in `backhaul_sink_dropped_total`.',
    '',
    'This file is generated from `src/core/errors.ts` by `npm run docs`; a test keeps the two in step.',
    '',
  ];
  let group = '';
  const groups: Array<[RegExp, string]> = [
    [/^BH_(CONFIG|SECRET)/, 'Config and secrets (`backhaul check`, start-up)'],
    [/^BH_(PORT|INPUT|SINK_OPEN|USAGE)/, 'Start-up and drivers'],
    [/^BH_(DECODE|OPENTRV|SENML)/, 'Decoding frames'],
    [/^BH_HTTP/, 'HTTP ingest'],
    [/^BH_MQTT/, 'Embedded MQTT broker'],
    [/^BH_(SINK|OUTBOX)/, 'Delivery'],
    [/^BH_(DEVICE|MANIFEST|REGISTRY|COMMAND)/, 'Devices, the registry and orders'],
    [/^BH_(API|BOOTSTRAP)/, 'HTTP API and device bootstrap'],
  ];
  for (const code of Object.keys(ERROR_CATALOG) as ErrorCode[]) {
    const text = `${errorDescription(code)} (HTTP ${httpStatus(code)})`;
    const g = groups.find(([re]) => re.test(code))?.[1] ?? 'Other';
    if (g !== group) {
      lines.push(`## ${g}`, '');
      group = g;
    }
    lines.push(`### ${code}`, '', text, '');
  }
  return lines.join('\n');
}

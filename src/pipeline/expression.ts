// Expressions in stage options (`filter.expr`, the `expr` stage): CEL, the Common Expression Language
// (https://github.com/google/cel-spec), through @marcbachmann/cel-js: parsed into a tree and interpreted, never turned
// into JavaScript (no eval, no new Function); no loops, no side effects, no access to anything but the variables given.
//
// The variables an expression sees (its scope):
//   readings: every value by name (`temperature > 30`), `values` (all values as a map: `values["T|C16"]`,
//             `has(values.humidity)`), `units`, `device`, `ts` (ms since the epoch), `seq`, `input`, `topic`, `kind`
//   events:   `kind`, `event` (the event's type: `type` is a CEL builtin), `severity`, `message`, `device`, `ts`,
//             `data` (a map)
// Reserved for the device registry (not filled yet): `location` (site, building, room) and `meta`. Reserved names win
// over values of the same name, which stay reachable through `values`, as do values named like CEL's own identifiers
// (`type`, `int`, `string`, `size`, `duration`, ...).
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import type { Message, Value } from '../core/types.js';

export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'kind',
  'device',
  'ts',
  'seq',
  'input',
  'topic',
  'values',
  'units',
  'event',
  'type',
  'severity',
  'message',
  'data',
  'location',
  'meta',
]);

type Num = number;
type Arith = (a: Num, b: Num) => Num;
const ARITH: ReadonlyArray<readonly [string, Arith]> = [
  ['+', (a, b) => a + b],
  ['-', (a, b) => a - b],
  ['*', (a, b) => a * b],
  ['/', (a, b) => a / b],
  ['%', (a, b) => a % b],
];

function environment(): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: true, limits: { maxAstNodes: 1000, maxDepth: 32 } });
  // Reading values are JavaScript numbers, so CEL sees doubles, while literals like `30` are ints. CEL has no mixed
  // arithmetic (`temperature + 1` would fail), so it is added here; comparisons across the two already work.
  for (const [op, f] of ARITH) {
    env.registerOperator(`double ${op} int`, (a: number, b: bigint) => f(a, Number(b)));
    env.registerOperator(`int ${op} double`, (a: bigint, b: number) => f(Number(a), b));
  }
  env.registerOperator('double % double', (a: number, b: number) => a % b);
  return env;
}

const env = environment();

export type ExpressionKind = 'condition' | 'value';

export interface Expression {
  readonly source: string;
  /** Evaluate on a message; throws when the expression cannot be evaluated (a value it names is absent). */
  evaluate(m: Message): unknown;
  /** true only when the expression evaluates to true; false for false and for errors. */
  test(m: Message): boolean;
  /** The result as a reading value, or undefined when it is an error or not a finite number, string or boolean. */
  value(m: Message): Value | undefined;
}

function first(s: string): string {
  return s.split('\n')[0] ?? s;
}

function located(e: unknown, src: string): string {
  const err = e as { summary?: string; message?: string; range?: { start: number } };
  const what = err.summary ?? first(err.message ?? String(e));
  const at = err.range ? ` at character ${err.range.start + 1}` : '';
  return `${what}${at} in ${JSON.stringify(src)}`;
}

/** Parse and type-check; returns the problem as text, or the parsed expression. */
function parse(src: string, kind: ExpressionKind): { parsed: ParseResult } | { problem: string } {
  let parsed: ParseResult;
  try {
    parsed = env.parse(src);
  } catch (e) {
    return { problem: `invalid expression: ${located(e, src)}` };
  }
  const checked = parsed.check();
  if (!checked.valid) return { problem: `invalid expression: ${located(checked.error, src)}` };
  const t = checked.type ?? 'dyn';
  if (kind === 'condition' && t !== 'bool' && t !== 'dyn') return { problem: `a condition must give true or false; ${JSON.stringify(src)} gives ${t}` };
  if (kind === 'value' && !['int', 'uint', 'double', 'string', 'bool', 'dyn'].includes(t)) {
    return { problem: `a value must be a number, string or boolean; ${JSON.stringify(src)} gives ${t}` };
  }
  return { parsed };
}

/** The problem with an expression (syntax, unknown function, type), or undefined; for a driver's `check`. */
export function expressionProblem(src: string, kind: ExpressionKind): string | undefined {
  const r = parse(src, kind);
  return 'problem' in r ? r.problem : undefined;
}

/** Compile once (at stage creation); `check` has reported any problem before, so this throws only on a bug. */
export function compileExpression(src: string, kind: ExpressionKind): Expression {
  const r = parse(src, kind);
  if ('problem' in r) throw new Error(r.problem);
  const fn = r.parsed;
  const evaluate = (m: Message): unknown => fn(scopeOf(m)) as unknown;
  return {
    source: src,
    evaluate,
    test(m) {
      try {
        return evaluate(m) === true;
      } catch {
        return false;
      }
    },
    value(m) {
      let v: unknown;
      try {
        v = evaluate(m);
      } catch {
        return undefined;
      }
      if (typeof v === 'bigint') v = Number(v);
      if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
      if (typeof v === 'string' || typeof v === 'boolean') return v;
      return undefined;
    },
  };
}

function dict(src: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  const d = Object.create(null) as Record<string, unknown>;
  if (src) for (const [k, v] of Object.entries(src)) d[k] = v;
  return d;
}

/** The variables an expression sees for a message (null-prototype objects: nothing inherited is reachable). */
export function scopeOf(m: Message): Record<string, unknown> {
  const s = Object.create(null) as Record<string, unknown>;
  if (m.kind === 'reading') {
    for (const [k, v] of Object.entries(m.values)) if (!RESERVED_NAMES.has(k)) s[k] = v;
    s['kind'] = 'reading';
    s['device'] = m.device;
    s['ts'] = m.ts;
    if (m.seq !== undefined) s['seq'] = m.seq;
    s['input'] = m.source.input;
    if (m.source.topic !== undefined) s['topic'] = m.source.topic;
    s['values'] = dict(m.values);
    s['units'] = dict(m.units);
  } else {
    s['kind'] = 'event';
    s['event'] = m.type;
    s['severity'] = m.severity;
    s['message'] = m.message;
    s['ts'] = m.ts;
    if (m.device !== undefined) s['device'] = m.device;
    s['data'] = dict(m.data);
  }
  return s;
}

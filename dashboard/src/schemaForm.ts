// From a device type's config JSON Schema to form fields, and between a config object and the form's draft.
// Understood: `type: object` with `properties` of number, integer, string, boolean, an enum (`enum`, or `anyOf` /
// `oneOf` of `const`s as TypeBox writes unions of literals) and arrays of such an enum (checkboxes). Anything else is
// a JSON text field; a schema that is not an object with properties is edited as one JSON text (see ConfigForm).
import type { JsonObject, JsonSchema, JsonValue } from './api';

export type FieldKind = 'number' | 'integer' | 'string' | 'boolean' | 'enum' | 'multi' | 'json';

export interface Field {
  readonly key: string;
  readonly kind: FieldKind;
  readonly schema: JsonSchema;
  readonly required: boolean;
  /** enum and multi: the allowed values. */
  readonly options: readonly JsonValue[];
  readonly label: string;
  readonly help: string | undefined;
}

/** Each field's text (number, integer, string, json, and enum/boolean as the JSON of the value, '' = not set), or the
 * JSON of each checked value (multi). */
export type Draft = Readonly<Record<string, string | readonly string[]>>;

export function mainType(s: JsonSchema): string | undefined {
  if (typeof s.type === 'string') return s.type;
  if (Array.isArray(s.type)) return (s.type as readonly string[]).find((t) => t !== 'null');
  return undefined;
}

function isScalar(v: JsonValue): boolean {
  return v === null || typeof v !== 'object';
}

/** The values an enum-like schema allows, or undefined. */
export function enumOf(s: JsonSchema): readonly JsonValue[] | undefined {
  const e = s.enum;
  if (e !== undefined && e.length > 0 && e.every(isScalar)) return e;
  const alts = s.anyOf ?? s.oneOf;
  if (alts && alts.length && alts.every((a) => a.const !== undefined && isScalar(a.const))) return alts.map((a) => a.const!);
  if (s.const !== undefined && isScalar(s.const)) return [s.const];
  return undefined;
}

/** The form fields, or undefined when the schema is not an object with properties (edit it as JSON). */
export function fieldsOf(schema: JsonSchema | undefined): Field[] | undefined {
  if (!schema || mainType(schema) !== 'object' || !schema.properties) return undefined;
  const entries = Object.entries(schema.properties);
  if (!entries.length) return undefined;
  const required = new Set(schema.required ?? []);
  return entries.map(([key, s]): Field => {
    const t = mainType(s);
    const values = enumOf(s);
    let kind: FieldKind = 'json';
    let options: readonly JsonValue[] = [];
    if (values) {
      kind = 'enum';
      options = values;
    } else if (t === 'number' || t === 'integer' || t === 'string' || t === 'boolean') {
      kind = t;
    } else if (t === 'array' && s.items) {
      const itemValues = enumOf(s.items);
      if (itemValues) {
        kind = 'multi';
        options = itemValues;
      }
    }
    return { key, kind, schema: s, required: required.has(key), options, label: s.title ?? key, help: s.description };
  });
}

/** The draft showing `config`. */
export function draftOf(fields: readonly Field[], config: JsonObject): Draft {
  const d: Record<string, string | readonly string[]> = {};
  for (const f of fields) {
    const v = config[f.key];
    switch (f.kind) {
      case 'multi':
        d[f.key] = Array.isArray(v) ? v.map((x) => JSON.stringify(x)) : [];
        break;
      case 'enum':
      case 'boolean':
        d[f.key] = v === undefined ? '' : JSON.stringify(v);
        break;
      case 'number':
      case 'integer':
        d[f.key] = typeof v === 'number' ? String(v) : v === undefined ? '' : JSON.stringify(v);
        break;
      case 'string':
        d[f.key] = typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v);
        break;
      case 'json':
        d[f.key] = v === undefined ? '' : JSON.stringify(v, null, 2);
        break;
    }
  }
  return d;
}

export interface Built {
  readonly config: JsonObject;
  /** Problems found before asking the server, by field key. */
  readonly errors: Readonly<Record<string, string>>;
}

function checkNumber(f: Field, n: number): string | undefined {
  const s = f.schema;
  if (f.kind === 'integer' && !Number.isInteger(n)) return 'must be a whole number';
  if (s.minimum !== undefined && n < s.minimum) return `must be at least ${s.minimum}`;
  if (s.maximum !== undefined && n > s.maximum) return `must be at most ${s.maximum}`;
  if (s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum) return `must be more than ${s.exclusiveMinimum}`;
  if (s.exclusiveMaximum !== undefined && n >= s.exclusiveMaximum) return `must be less than ${s.exclusiveMaximum}`;
  return undefined;
}

function checkString(f: Field, v: string): string | undefined {
  const s = f.schema;
  if (s.minLength !== undefined && v.length < s.minLength) return `must be at least ${s.minLength} characters`;
  if (s.maxLength !== undefined && v.length > s.maxLength) return `must be at most ${s.maxLength} characters`;
  if (s.pattern !== undefined) {
    try {
      if (!new RegExp(s.pattern, 'u').test(v)) return `must match ${s.pattern}`;
    } catch {
      // A pattern the browser cannot compile: the server judges.
    }
  }
  return undefined;
}

/**
 * The config the draft describes: `base` (keys the schema does not name are kept as they are) with each field set,
 * or left out when empty. Obvious problems are reported per field; the server has the last word.
 */
export function buildConfig(fields: readonly Field[], draft: Draft, base: JsonObject): Built {
  const config: JsonObject = { ...base };
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const raw = draft[f.key];
    delete config[f.key];
    if (f.kind === 'multi') {
      const list = Array.isArray(raw) ? (raw as readonly string[]) : [];
      // Keep the schema's order, not the order of clicks.
      const chosen = f.options.filter((o) => list.includes(JSON.stringify(o)));
      if (chosen.length || f.required) config[f.key] = chosen;
      continue;
    }
    const text = typeof raw === 'string' ? raw : '';
    if (text.trim() === '') {
      if (f.required) errors[f.key] = 'is required';
      continue;
    }
    switch (f.kind) {
      case 'number':
      case 'integer': {
        const n = Number(text);
        if (!Number.isFinite(n)) {
          errors[f.key] = 'must be a number';
          break;
        }
        const problem = checkNumber(f, n);
        if (problem) errors[f.key] = problem;
        config[f.key] = n;
        break;
      }
      case 'string': {
        const problem = checkString(f, text);
        if (problem) errors[f.key] = problem;
        config[f.key] = text;
        break;
      }
      case 'enum':
      case 'boolean':
        config[f.key] = JSON.parse(text) as JsonValue;
        break;
      case 'json':
        try {
          config[f.key] = JSON.parse(text) as JsonValue;
        } catch (e) {
          errors[f.key] = `is not valid JSON (${e instanceof Error ? e.message : String(e)})`;
        }
        break;
    }
  }
  return { config, errors };
}

/** `body.config.targetC` → `targetC`; `body.config` or another path → undefined. */
export function configKeyOf(path: string | undefined): string | undefined {
  if (!path) return undefined;
  const m = /^(?:body\.)?config\.([^.[\]]+)/.exec(path);
  return m?.[1];
}

/** Parse a whole config typed as JSON; it must be an object. */
export function parseConfigJson(text: string): { config?: JsonObject; error?: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'the config must be a JSON object ({…})' };
  return { config: v as JsonObject };
}

/** Parse `k=v` lines (v is JSON when it parses: `3`, `true`, `{"a":1}`, else text), like the CLI's `--param k=v`. */
export function parseParams(text: string): { params?: JsonObject; error?: string } {
  const params: JsonObject = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { error: `line ${i + 1}: write k=v, not ${JSON.stringify(line)}` };
    const k = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1).trim();
    let v: JsonValue;
    try {
      v = JSON.parse(raw) as JsonValue;
    } catch {
      v = raw;
    }
    params[k] = v;
  }
  return { params };
}

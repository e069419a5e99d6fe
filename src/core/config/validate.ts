// Ajv (compiled once per schema) and the translation of its errors into coded errors with readable paths.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import { BackhaulError, joinPath } from '../errors.js';

export class SchemaValidator {
  // verbose: errors carry their schema, which lets us print "must be one of: a, b" for unions of literals.
  private readonly ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
  private readonly cache = new WeakMap<object, ValidateFunction>();

  compile(schema: TSchema): ValidateFunction {
    let v = this.cache.get(schema);
    if (!v) {
      v = this.ajv.compile(schema);
      this.cache.set(schema, v);
    }
    return v;
  }

  /** Validate (filling defaults in place) and return coded errors; `base` is the config path of `data`. */
  validate(schema: TSchema, data: unknown, base: string): BackhaulError[] {
    const v = this.compile(schema);
    if (v(data)) return [];
    return translate(v.errors ?? [], data, base);
  }
}

function pointerSegments(pointer: string): string[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** JSON pointer → `a.b[2].c`, using the data to tell array indexes from numeric-looking keys. */
export function pointerToPath(pointer: string, data: unknown, base: string): string {
  let path = base;
  let node: unknown = data;
  for (const seg of pointerSegments(pointer)) {
    if (Array.isArray(node)) {
      const i = Number(seg);
      path = joinPath(path, i);
      node = node[i];
    } else {
      path = joinPath(path, seg);
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return path;
}

function constUnion(schema: unknown): string[] | undefined {
  if (!Array.isArray(schema)) return undefined;
  const out: string[] = [];
  for (const s of schema) {
    if (typeof s !== 'object' || s === null || !('const' in s)) return undefined;
    out.push(JSON.stringify((s as { const: unknown }).const));
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

/** "did you mean" for a misspelt key or type name. */
export function suggest(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const dist = editDistance(word.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function translate(errors: readonly ErrorObject[], data: unknown, base: string): BackhaulError[] {
  const out: BackhaulError[] = [];
  const seen = new Set<string>();
  const unionPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const add = (e: BackhaulError) => {
    const key = `${e.code} ${e.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(e);
    }
  };
  for (const e of errors) {
    const path = pointerToPath(e.instancePath, data, base);
    // Errors of the branches of a union are summarised by the union's own error.
    if (e.keyword !== 'anyOf' && unionPaths.has(e.instancePath) && (e.keyword === 'const' || e.keyword === 'type')) continue;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        const parent = e.parentSchema as { properties?: Record<string, unknown>; patternProperties?: unknown } | undefined;
        if (parent?.patternProperties && !parent.properties) {
          add(new BackhaulError('BH_CONFIG_SCHEMA', 'ids must start with a letter and use only letters, digits, _ and - (at most 64)', { path: joinPath(path, key) }));
          break;
        }
        const known = Object.keys(parent?.properties ?? {}).filter((k) => k !== '$schema');
        add(
          new BackhaulError(
            'BH_CONFIG_UNKNOWN_KEY',
            `unknown key "${key}"${suggest(key, known)}${known.length ? `; known keys: ${known.join(', ')}` : ''}`,
            { path: joinPath(path, key) },
          ),
        );
        break;
      }
      case 'required': {
        const key = String((e.params as { missingProperty: string }).missingProperty);
        add(new BackhaulError('BH_CONFIG_SCHEMA', 'is required', { path: joinPath(path, key) }));
        break;
      }
      case 'anyOf': {
        const consts = constUnion(e.schema);
        add(new BackhaulError('BH_CONFIG_SCHEMA', consts ? `must be one of: ${consts.join(', ')}` : 'does not match any allowed form', { path }));
        break;
      }
      case 'type': {
        const got = (() => {
          let node: unknown = data;
          for (const seg of pointerSegments(e.instancePath)) node = (node as Record<string, unknown> | undefined)?.[seg];
          return Array.isArray(node) ? 'array' : node === null ? 'null' : typeof node;
        })();
        add(new BackhaulError('BH_CONFIG_SCHEMA', `must be ${String((e.params as { type: string }).type)}, not ${got}`, { path }));
        break;
      }
      default:
        // Ajv's messages never include the value, so nothing secret leaks here.
        add(new BackhaulError('BH_CONFIG_SCHEMA', e.message ?? `fails ${e.keyword}`, { path }));
    }
  }
  return out;
}

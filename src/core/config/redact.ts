// Secrets in what is shown: schema-driven. A schema marks an option that holds a secret with `secret: true` (a
// password, an API key, a token), a map whose values are secret by their key with `secretKeys` (a regular
// expression over the keys, any case: HTTP headers named Authorization, X-Api-Key …), and a URL that may carry a
// password (`https://user:pass@host`) with `urlCredentials: true` (only the password is hidden). Wherever the config or an
// order's parameters are shown (the API, `backhaul check`, the orders list, the audit log) such a value is replaced by
// REDACTED, unless it is a `{"secret": NAME}` reference (the name is safe to show). Values written inline are
// reported, so `check` can warn, and handed to the logger, which scrubs them from every line like resolved secrets.
//
// A test walks every registered driver's schema and every device type's config and order schemas, and fails when a
// property named like a credential is not marked: marking stays the rule, not guessing by name at run time.
import { joinPath } from '../errors.js';
import { isSecretRef } from './secrets.js';

export const REDACTED = '<redacted>';

/** A secret written inline in the config: where, and its value (for the logger to scrub; never shown). */
export interface InlineSecret {
  readonly path: string;
  readonly value: string;
}

interface Schemaish {
  readonly secret?: unknown;
  readonly secretKeys?: unknown;
  readonly urlCredentials?: unknown;
  readonly properties?: Readonly<Record<string, Schemaish>>;
  readonly patternProperties?: Readonly<Record<string, Schemaish>>;
  readonly additionalProperties?: unknown;
  readonly items?: unknown;
  readonly anyOf?: readonly Schemaish[];
  readonly oneOf?: readonly Schemaish[];
  readonly allOf?: readonly Schemaish[];
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when the schema (or a branch of its union) marks its value as a secret. */
export function isSecretSchema(schema: unknown): boolean {
  if (!isObject(schema)) return false;
  const s = schema as Schemaish;
  if (s.secret === true) return true;
  return [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])].some(isSecretSchema);
}

function secretValue(value: unknown, path: string, found: InlineSecret[]): unknown {
  if (value === undefined || isSecretRef(value)) return value;
  if (typeof value === 'string') {
    if (value !== '') found.push({ path, value });
    return value === '' ? value : REDACTED;
  }
  return REDACTED;
}

/**
 * `value` with every part `schema` marks secret replaced by REDACTED (references kept); `found` collects inline
 * secrets with their paths. Pure: `value` is not changed.
 */
export function redactWith(schema: unknown, value: unknown, path: string, found: InlineSecret[] = []): unknown {
  if (!isObject(schema) || value === undefined) return value;
  const s = schema as Schemaish;
  if (isSecretSchema(s)) return secretValue(value, path, found);
  if (s.urlCredentials === true && typeof value === 'string') return urlWithoutPassword(value, path, found);
  let out: unknown = value;
  for (const branch of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) out = redactWith(branch, out, path, found);
  if (Array.isArray(out) && isObject(s.items)) {
    const items = s.items;
    return out.map((v, i) => redactWith(items, v, joinPath(path, i), found));
  }
  if (isObject(out) && !isSecretRef(out)) {
    const keys = typeof s.secretKeys === 'string' ? new RegExp(s.secretKeys, 'i') : undefined;
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out)) {
      const p = joinPath(path, k);
      if (keys?.test(k)) {
        o[k] = secretValue(v, p, found);
        continue;
      }
      const sub = s.properties?.[k] ?? patternSchema(s, k) ?? (isObject(s.additionalProperties) ? s.additionalProperties : undefined);
      o[k] = redactWith(sub, v, p, found);
    }
    return o;
  }
  return out;
}

function urlWithoutPassword(raw: string, path: string, found: InlineSecret[]): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return raw;
  }
  if (u.password === '') return raw;
  found.push({ path, value: decodeURIComponent(u.password) });
  if (u.password !== decodeURIComponent(u.password)) found.push({ path, value: u.password });
  u.password = 'redacted';
  return u.toString().replace(':redacted@', `:${REDACTED}@`);
}

function patternSchema(s: Schemaish, key: string): Schemaish | undefined {
  for (const [pattern, sub] of Object.entries(s.patternProperties ?? {})) if (new RegExp(pattern).test(key)) return sub;
  return undefined;
}

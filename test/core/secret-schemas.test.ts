// Secrets are marked in the schemas, not guessed: every registered driver's options, the top-level config, and every
// device type's config and order schemas are walked, and a property named like a credential (password, apikey, token,
// key, authorization, secret, cookie …) that takes free text must be marked `secret: true` (or, when it is no secret
// despite its name, `secret: false`); a map of headers must name its secret keys (`secretKeys`); a URL option must
// say that its password part is secret (`urlCredentials`). A driver added later is held to the same rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CREDENTIAL_NAME } from '../../src/core/config/secrets.js';
import { ConfigFile } from '../../src/core/config/schema.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { builtinRegistry } from '../../src/runtime/registry.js';

type Schema = Record<string, unknown>;

function isSchema(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function branches(s: Schema): Schema[] {
  return (['anyOf', 'oneOf', 'allOf'] as const).flatMap((k) => (Array.isArray(s[k]) ? (s[k] as unknown[]).filter(isSchema) : []));
}

/** Takes free text: a string without const or enum, or a union with such a branch. */
function takesText(s: Schema): boolean {
  if (s['type'] === 'string' && s['const'] === undefined && s['enum'] === undefined) return true;
  return branches(s).some(takesText);
}

function marked(s: Schema, key: string): unknown {
  return s[key] ?? branches(s).map((b) => b[key]).find((v) => v !== undefined);
}

interface Finding {
  readonly path: string;
  readonly problem: string;
}

const CREDENTIAL = new RegExp(CREDENTIAL_NAME, 'i');

function walk(s: unknown, path: string, out: Finding[]): void {
  if (!isSchema(s)) return;
  for (const b of branches(s)) walk(b, path, out);
  if (isSchema(s['items'])) walk(s['items'], `${path}[]`, out);
  const maps = [...Object.values(isSchema(s['patternProperties']) ? s['patternProperties'] : {}), s['additionalProperties']].filter(isSchema);
  for (const m of maps) walk(m, `${path}.*`, out);
  for (const [name, sub] of Object.entries(isSchema(s['properties']) ? s['properties'] : {})) {
    if (!isSchema(sub)) continue;
    const p = `${path}.${name}`;
    if (CREDENTIAL.test(name) && takesText(sub) && typeof marked(sub, 'secret') !== 'boolean') out.push({ path: p, problem: 'named like a credential but not marked secret' });
    if (/headers$/i.test(name) && typeof marked(sub, 'secretKeys') !== 'string') out.push({ path: p, problem: 'a map of headers without secretKeys' });
    if (/(^|[a-z])(url|Url|URL)$/.test(name) && takesText(sub) && marked(sub, 'urlCredentials') !== true) out.push({ path: p, problem: 'a URL option without urlCredentials' });
    // Inside a secret (the `{"secret": NAME}` reference form) names are no longer options.
    if (marked(sub, 'secret') !== true) walk(sub, p, out);
  }
}

function allSchemas(): Array<[string, unknown]> {
  const reg = builtinRegistry();
  const out: Array<[string, unknown]> = [['config', ConfigFile]];
  for (const [kind, m] of [['input', reg.inputs], ['decoder', reg.decoders], ['stage', reg.stages], ['sink', reg.sinks]] as const) {
    for (const [type, def] of m) out.push([`${kind} ${type}`, def.options]);
  }
  for (const t of new DeviceTypes().list()) {
    out.push([`device type ${t.name} config`, t.config]);
    for (const [order, schema] of Object.entries(t.orders ?? {})) out.push([`device type ${t.name} order ${order}`, schema]);
  }
  return out;
}

test('every option named like a credential, in every driver, the top-level config and every device type, is marked', () => {
  const findings: string[] = [];
  for (const [where, schema] of allSchemas()) {
    const out: Finding[] = [];
    walk(schema, '', out);
    findings.push(...out.map((f) => `${where} ${f.path}: ${f.problem}`));
  }
  assert.deepEqual(findings, []);
});

test('the walk finds the credentials we know of (so a broken walker cannot pass by finding nothing)', () => {
  const secrets: string[] = [];
  const collect = (s: unknown, path: string): void => {
    if (!isSchema(s)) return;
    if (marked(s, 'secret') === true) secrets.push(path);
    for (const b of branches(s)) if (b['secret'] === undefined) collect(b, path);
    if (isSchema(s['items'])) collect(s['items'], `${path}[]`);
    for (const [k, v] of Object.entries(isSchema(s['properties']) ? s['properties'] : {})) collect(v, `${path}.${k}`);
  };
  for (const [where, schema] of allSchemas()) collect(schema, where);
  for (const want of [
    'sink mqtt.password',
    'sink emoncms.apikey',
    'input mqtt.password',
    'input broker.users[].password',
    'config.devices.declared[].password',
    'device type room-sensor order wifi.password',
  ]) {
    assert.ok(secrets.includes(want), `${want} in ${secrets.join(', ')}`);
  }
  // The walker does flag an unmarked one.
  const out: Finding[] = [];
  walk({ type: 'object', properties: { apiKey: { type: 'string' }, headers: { type: 'object', patternProperties: { '^(.*)$': { type: 'string' } } }, url: { type: 'string' } } }, '', out);
  assert.deepEqual(out.map((f) => f.path), ['.apiKey', '.headers', '.url']);
});

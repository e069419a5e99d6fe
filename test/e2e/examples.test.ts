// Every example config passes `backhaul check` through the real program: examples/backhaul.jsonc exactly as the
// README has a newcomer type it (no credentials anywhere), the others given a value for each secret they name,
// as their header says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'jsonc-parser';
import { isSecretRef, secretEnvName } from '../../src/core/config/secrets.js';
import { runToEnd } from '../helpers/process.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function configs(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) configs(p, out);
    else if (/\.jsonc?$/.test(name)) out.push(p);
  }
  return out;
}

function secretNames(node: unknown, out = new Set<string>()): Set<string> {
  if (isSecretRef(node)) out.add(node.secret);
  else if (Array.isArray(node)) node.forEach((v) => secretNames(v, out));
  else if (typeof node === 'object' && node !== null) Object.values(node).forEach((v) => secretNames(v, out));
  return out;
}

/** No BACKHAUL_SECRET_* from the machine running the tests: only what the test gives. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BACKHAUL_')) env[k] = v;
  return { ...env, ...extra };
}

test('examples/backhaul.jsonc passes check as shipped, with no secret set anywhere', async () => {
  const r = await runToEnd(['check', '-c', 'examples/backhaul.jsonc'], cleanEnv({}));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^config .*examples\/backhaul\.jsonc is valid$/m);
});

for (const file of configs(join(root, 'examples'))) {
  const name = relative(root, file);
  test(`${name} passes check, given a value for each secret it names`, async () => {
    const env: Record<string, string> = {};
    for (const s of secretNames(parse(readFileSync(file, 'utf8')))) env[secretEnvName(s)] = `example-value-of-${s}`;
    const header = readFileSync(file, 'utf8');
    for (const v of Object.keys(env)) assert.ok(header.includes(v), `${name} tells the reader to set ${v}`);
    const r = await runToEnd(['check', '-c', file], cleanEnv(env));
    assert.equal(r.code, 0, `${name}:\n${r.stderr}`);
    assert.match(r.stdout, / is valid$/m);
    assert.doesNotMatch(r.stdout, /example-value-of-/, 'no secret value in the summary');
  });
}

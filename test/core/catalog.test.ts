// The error catalog, docs/errors.md and the code stay in step; every built-in driver is documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CATALOG } from '../../src/core/errors.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { renderConfigTables, renderErrors } from '../../src/cli/docs.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('docs/errors.md documents exactly the codes in the catalog', () => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const documented = [...doc.matchAll(/^### (BH_[A-Z_]+)/gm)].map((m) => m[1]!).sort();
  assert.deepEqual(documented, Object.keys(ERROR_CATALOG).sort());
});

test('every catalog code is raised somewhere in the code', () => {
  const code = sources(join(root, 'src'))
    .filter((f) => !f.endsWith(join('core', 'errors.ts')))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const unused = Object.keys(ERROR_CATALOG).filter((c) => !new RegExp(`\\b${c}\\b`).test(code));
  assert.deepEqual(unused, []);
});

test('every built-in driver has a README in its folder and a section in docs/config.md', () => {
  const reg = builtinRegistry();
  const config = readFileSync(join(root, 'docs/config.md'), 'utf8');
  const folders: Array<[string, ReadonlyMap<string, unknown>]> = [
    ['src/inputs', reg.inputs],
    ['src/decoders', reg.decoders],
    ['src/pipeline/stages', reg.stages],
    ['src/sinks', reg.sinks],
  ];
  const missing: string[] = [];
  for (const [dir, defs] of folders) {
    for (const type of defs.keys()) {
      if (!existsSync(join(root, dir, type, 'README.md'))) missing.push(`${dir}/${type}/README.md`);
      if (!config.includes(`\`${type}\``)) missing.push(`docs/config.md: ${dir} ${type}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('the generated docs are current (run `npm run docs` when this fails)', () => {
  assert.equal(readFileSync(join(root, 'docs/errors.md'), 'utf8'), renderErrors());
  const config = readFileSync(join(root, 'docs/config.md'), 'utf8');
  const begin = '<!-- BEGIN GENERATED: drivers -->\n';
  const generated = config.slice(config.indexOf(begin) + begin.length, config.indexOf('\n<!-- END GENERATED: drivers -->'));
  assert.equal(generated, renderConfigTables());
});

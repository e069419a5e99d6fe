// The error catalog, docs/errors.md and the code stay in step; every built-in driver is documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
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

/** The source as code only: TypeScript's printer drops every comment (strings, templates and regexes stay). */
function withoutComments(text: string, file = 'x.ts'): string {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  return ts.createPrinter({ removeComments: true }).printFile(sf);
}

/** Catalog codes that no code (comments not counted) names. */
function unusedCodes(code: string): string[] {
  return Object.keys(ERROR_CATALOG).filter((c) => !new RegExp(`\\b${c}\\b`).test(code));
}

test('every catalog code is raised somewhere in the code (a mention in a comment does not count)', () => {
  const code = sources(join(root, 'src'))
    .filter((f) => !f.endsWith(join('core', 'errors.ts')))
    .map((f) => withoutComments(readFileSync(f, 'utf8'), f))
    .join('\n');
  assert.deepEqual(unusedCodes(code), []);
});

test('the raised-codes check counts code, not comments', () => {
  const codes = Object.keys(ERROR_CATALOG);
  const [a = '', b = '', c = ''] = codes;
  const text = `// ${a} in a line comment\n/* ${b} in a block comment */\nthrow new BackhaulError('${c}', 'in code');\nconst url = 'http://x/*not a comment*/';\n`;
  const stripped = withoutComments(text);
  assert.ok(!stripped.includes(a) && !stripped.includes(b), stripped);
  assert.ok(stripped.includes(c) && stripped.includes('/*not a comment*/'), stripped);
  assert.deepEqual(unusedCodes(stripped), codes.filter((x) => x !== c));
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

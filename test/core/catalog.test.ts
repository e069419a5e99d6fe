// The error catalog, docs/errors.md and the code stay in step; every built-in driver is documented: a section in
// docs/config.md, and a README in one shape whose options table is generated and whose examples load.
import { sourceFiles } from '../helpers/files.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ConfigErrors, ERROR_CATALOG } from '../../src/core/errors.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { driverDocs, renderConfigTables, renderErrors, withOptionsTable, OPTIONS_BEGIN, OPTIONS_END, type DriverKind } from '../../src/cli/docs.js';
import { loadConfigText, type LoadedConfig } from '../../src/runtime/config.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

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
  const code = sourceFiles(join(root, 'src'))
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

test('every built-in driver has a section in docs/config.md', () => {
  const config = readFileSync(join(root, 'docs/config.md'), 'utf8');
  const missing = driverDocs()
    .filter((d) => !config.includes(`#### \`${d.type}\``))
    .map((d) => `docs/config.md: ${d.folder} ${d.type}`);
  assert.deepEqual(missing, []);
});

/** The sections every driver README has, in this order (others may come between them). */
const SECTIONS = ['What it is for', 'Options', 'Example', 'When it fails', 'Metrics'];

/** The text under a `## title` heading, up to the next heading of level 2 (code blocks skipped: `## ` may be in them). */
function section(lines: readonly string[], title: string): string {
  const out: string[] = [];
  let inside = false;
  let fenced = false;
  for (const line of lines) {
    if (line.startsWith('```')) fenced = !fenced;
    if (!fenced && /^## /.test(line)) inside = line === `## ${title}`;
    else if (inside) out.push(line);
  }
  return out.join('\n');
}

function headings(lines: readonly string[]): string[] {
  let fenced = false;
  const out: string[] = [];
  for (const line of lines) {
    if (line.startsWith('```')) fenced = !fenced;
    else if (!fenced && line.startsWith('## ')) out.push(line.slice(3));
  }
  return out;
}

test('every built-in driver has a README in one shape: its title, the five sections in order, the options markers, only catalog codes', () => {
  const problems: string[] = [];
  for (const d of driverDocs()) {
    const file = join(root, d.readme);
    if (!existsSync(file)) {
      problems.push(`${d.readme}: missing`);
      continue;
    }
    const lines = readFileSync(file, 'utf8').split('\n');
    const title = `# \`${d.type}\` ${d.kind}`;
    if (lines[0] !== title) problems.push(`${d.readme}: the first line must be "${title}", not "${lines[0] ?? ''}"`);
    const found = headings(lines).filter((h) => SECTIONS.includes(h));
    if (found.join('|') !== SECTIONS.join('|')) problems.push(`${d.readme}: sections ${SECTIONS.map((x) => `"## ${x}"`).join(', ')} once each in this order; found ${found.join(', ') || 'none'}`);
    for (const s of SECTIONS) if (found.includes(s) && section(lines, s).trim() === '') problems.push(`${d.readme}: "## ${s}" is empty`);
    for (const [code] of lines.join('\n').matchAll(/\bBH_[A-Z0-9_]+\b/g)) if (!(code in ERROR_CATALOG)) problems.push(`${d.readme}: ${code} is not in the error catalog`);
    const options = section(lines, 'Options');
    if (!options.includes(OPTIONS_BEGIN) || !options.includes(OPTIONS_END)) problems.push(`${d.readme}: "## Options" lacks ${OPTIONS_BEGIN} … ${OPTIONS_END}`);
  }
  assert.deepEqual(problems, []);
});

test('every driver README\'s options table is the one its schema gives (run `npm run docs` when this fails)', () => {
  const stale: string[] = [];
  for (const d of driverDocs()) {
    const file = join(root, d.readme);
    if (!existsSync(file)) continue; // said by the test above
    const text = readFileSync(file, 'utf8');
    if (withOptionsTable(text, d.options) !== text) stale.push(d.readme);
  }
  assert.deepEqual(stale, []);
});

/** Every `{"secret": NAME}` an example names resolves, as it would from the credentials file. */
const exampleSecrets: NodeJS.ProcessEnv = new Proxy({}, {
  get: (_, k) => (typeof k === 'string' && k.startsWith('BACKHAUL_SECRET_') ? 'an-example-secret-value' : undefined),
});

function usesDriver(cfg: LoadedConfig, kind: DriverKind, type: string): boolean {
  switch (kind) {
    case 'input':
      return cfg.inputs.some((i) => i.def.type === type);
    case 'decoder':
      return cfg.inputs.some((i) => i.decoder.def.type === type);
    case 'stage':
      return cfg.routes.some((r) => r.stages.some((s) => s.def.type === type));
    case 'sink':
      return cfg.sinks.some((s) => s.def.type === type);
  }
}

test('every driver README\'s examples are whole configs that the config loader accepts, using that driver', () => {
  const registry = builtinRegistry();
  const problems: string[] = [];
  for (const d of driverDocs()) {
    const file = join(root, d.readme);
    if (!existsSync(file)) continue;
    const example = section(readFileSync(file, 'utf8').split('\n'), 'Example');
    const blocks = [...example.matchAll(/^```jsonc\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    if (blocks.length === 0) problems.push(`${d.readme}: "## Example" has no \`\`\`jsonc block`);
    blocks.forEach((text, i) => {
      const where = `${d.readme} example ${i + 1}`;
      try {
        // A config file in the README's own folder: relative paths in it are not opened by the loader.
        const cfg = loadConfigText(text, join(root, d.folder, d.type, 'backhaul.jsonc'), { registry, env: exampleSecrets });
        if (!usesDriver(cfg, d.kind, d.type)) problems.push(`${where}: does not use the ${d.type} ${d.kind}`);
        for (const w of cfg.warnings) if (!w.startsWith('inputs:')) problems.push(`${where}: ${w}`);
      } catch (e) {
        problems.push(`${where}: ${e instanceof ConfigErrors ? e.errors.map((x) => x.toString()).join('; ') : String(e)}`);
      }
    });
  }
  assert.deepEqual(problems, []);
});

test('the generated docs are current (run `npm run docs` when this fails)', () => {
  assert.equal(readFileSync(join(root, 'docs/errors.md'), 'utf8'), renderErrors());
  const config = readFileSync(join(root, 'docs/config.md'), 'utf8');
  const begin = '<!-- BEGIN GENERATED: drivers -->\n';
  const generated = config.slice(config.indexOf(begin) + begin.length, config.indexOf('\n<!-- END GENERATED: drivers -->'));
  assert.equal(generated, renderConfigTables());
});

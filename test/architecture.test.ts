// The invariants of docs/architecture.md ("Invariants"), checked on the source: what each part may import, that a
// driver never imports another driver, and which files of `core` may do I/O. A violation names the file, the import
// and the rule it breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

/** Each part (a folder of src/) and the parts it may import. runtime is the composition root; cli sits on top. */
export const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  core: [],
  decoders: ['core'],
  pipeline: ['core'],
  outbox: ['core'],
  devices: ['core'],
  inputs: ['core'],
  sinks: ['core'],
  api: ['core', 'devices'],
  runtime: ['core', 'decoders', 'pipeline', 'outbox', 'devices', 'inputs', 'sinks', 'api'],
  cli: ['core', 'decoders', 'pipeline', 'outbox', 'devices', 'inputs', 'sinks', 'api', 'runtime'],
};

/** Folders that hold one driver per subfolder; a driver imports only its own folder, the kind's shared files and core. */
const DRIVER_KINDS = ['inputs', 'decoders', 'sinks', 'pipeline/stages'];

/** The only files of core that touch the outside world, each for the one thing docs/architecture.md says. */
export const CORE_IO: Readonly<Record<string, string>> = {
  'core/logger.ts': 'writes log lines (pino) to its destination',
  'core/private-files.ts': 'makes the data folder and the files in it with private modes',
  'core/sqlite.ts': 'opens SQLite files (better-sqlite3)',
  'core/worker.ts': 'starts worker threads and talks to them',
  'core/config/secrets.ts': 'reads the credentials file',
  'core/tls-client.ts': 'reads the PEM files (CA, client certificate, key) of TLS connections Backhaul opens',
  'core/tls-server.ts': 'reads and watches the certificate and key files of the TLS listeners',
};

/** Modules that do I/O (files, network, processes, threads, databases). */
const IO_MODULES = /^(node:)?(fs|fs\/promises|net|tls|http|https|http2|dgram|dns|child_process|cluster|worker_threads|readline)$|^(better-sqlite3|serialport|mqtt|aedes|fastify|pg|nats)(\/|$)/;

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return walk(p);
    return /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

export interface Import {
  readonly from: string;
  /** As written. */
  readonly spec: string;
  /** For relative imports: the target, relative to src/, with `.ts`. */
  readonly target?: string;
}

/** Static and dynamic imports and re-exports of a TypeScript file, comments removed first. */
export function importsOf(file: string, text: string): Import[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const out: Import[] = [];
  const from = relative(SRC, file).split(sep).join('/');
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)'([^']+)'/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) {
      const target = relative(SRC, resolve(dirname(file), spec)).split(sep).join('/').replace(/\.js$/, '.ts');
      out.push({ from, spec, target });
    } else out.push({ from, spec });
  }
  return out;
}

/** Which part a src/-relative path belongs to (its first folder). */
function partOf(path: string): string {
  return path.split('/')[0]!;
}

/** The driver folder a path is in (`sinks/mqtt`, `pipeline/stages/window`), or undefined for shared files. */
function driverOf(path: string): string | undefined {
  for (const kind of DRIVER_KINDS) {
    if (!path.startsWith(`${kind}/`)) continue;
    const rest = path.slice(kind.length + 1).split('/');
    return rest.length > 1 ? `${kind}/${rest[0]}` : undefined;
  }
  return undefined;
}

/** Every broken rule in a set of imports, one line each. */
export function violations(imports: readonly Import[]): string[] {
  const bad: string[] = [];
  for (const i of imports) {
    const part = partOf(i.from);
    if (i.target === undefined) {
      if (part === 'core' && IO_MODULES.test(i.spec) && CORE_IO[i.from] === undefined) {
        bad.push(`${i.from} imports ${i.spec}: core does no I/O outside ${Object.keys(CORE_IO).join(', ')}`);
      }
      continue;
    }
    if (i.target.startsWith('..')) {
      bad.push(`${i.from} imports ${i.spec}: outside src/`);
      continue;
    }
    const to = partOf(i.target);
    const allowed = MAY_IMPORT[part];
    if (allowed === undefined) bad.push(`${i.from}: src/${part} is not a part docs/architecture.md names`);
    else if (to !== part && !allowed.includes(to)) {
      bad.push(`${i.from} imports ${i.target}: ${part} may import only ${allowed.length > 0 ? allowed.join(', ') : 'nothing outside itself'}`);
    }
    const mine = driverOf(i.from);
    const theirs = driverOf(i.target);
    if (theirs !== undefined && theirs !== mine && !/(^|\/)registry\.ts$/.test(i.from)) {
      bad.push(`${i.from} imports ${i.target}: a driver's folder is imported only by its kind's registry.ts`);
    }
  }
  return bad;
}

function sourceImports(): Import[] {
  return walk(SRC).flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));
}

test('every import in src/ keeps to the invariants of docs/architecture.md', () => {
  const imports = sourceImports();
  assert.ok(imports.length > 500, `read ${imports.length} imports: the scan found the source`);
  assert.deepEqual(violations(imports), []);
});

test('every part of src/ is named in the rules, and the rules in docs/architecture.md', () => {
  const parts = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  assert.deepEqual(parts, Object.keys(MAY_IMPORT).sort());
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Invariants'));
  assert.ok(doc.includes('## Invariants'), 'docs/architecture.md has an Invariants section');
  for (const [part, allowed] of Object.entries(MAY_IMPORT)) {
    const line = section.split('\n').find((l) => l.startsWith(`| \`${part}\``));
    assert.ok(line, `the Invariants table has a row for ${part}`);
    const named = [...line.split('|')[2]!.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    assert.deepEqual(named.sort(), [...allowed].sort(), `the row for ${part} names what it may import`);
  }
  for (const file of Object.keys(CORE_IO)) assert.ok(section.includes(`\`src/${file}\``), `the Invariants name ${file} as a core file with I/O`);
});

// The checker itself must catch what it is for: each rule, fed a deliberately bad import.
test('the invariant check fails on a bad import of each kind', () => {
  const imp = (from: string, spec: string): Import[] => importsOf(join(SRC, from), `import { x } from '${spec}';\n`);
  assert.match(violations(imp('core/config/schema.ts', '../../devices/types.js'))[0] ?? '', /core may import only nothing outside itself/);
  assert.match(violations(imp('devices/types.ts', '../decoders/opentrv/index.js')).join('\n'), /devices may import only core/);
  assert.match(violations(imp('pipeline/router.ts', '../inputs/util.js'))[0] ?? '', /pipeline may import only core/);
  assert.match(violations(imp('api/rest/data.ts', '../../sinks/sqlite/historian.js')).join('\n'), /api may import only core, devices/);
  assert.match(violations(imp('sinks/http/index.ts', '../mqtt/index.js'))[0] ?? '', /imported only by its kind's registry/);
  assert.match(violations(imp('core/clock.ts', 'node:fs'))[0] ?? '', /core does no I\/O/);
  assert.deepEqual(violations(imp('sinks/registry.ts', './mqtt/index.js')), []);
  assert.deepEqual(violations(imp('sinks/mqtt/index.ts', '../format.js')), []);
  assert.deepEqual(violations(imp('runtime/hub.ts', '../sinks/registry.js')), []);
  // Comments do not count: a path in prose is not an import.
  assert.deepEqual(importsOf(join(SRC, 'core/x.ts'), "// see import { y } from '../devices/types.js'\n/* from '../sinks/x.js' */\n"), []);
  // Dynamic imports and re-exports do.
  assert.equal(importsOf(join(SRC, 'core/x.ts'), "const m = await import('../sinks/x.js');\nexport { a } from '../api/y.js';\n").length, 2);
});

// Defaults live only in the schemas: the loader fills them in before a driver is made, so a driver that also wrote
// `o.timeoutMs ?? 10000` would keep a second copy that can drift from the schema's.
test('no driver repeats a default its schema gives (`o.name ?? …` for an option with a default)', async () => {
  const { builtinRegistry } = await import('../src/runtime/registry.js');
  const reg = builtinRegistry();
  const kinds: Array<[string, ReadonlyMap<string, { readonly options: unknown }>]> = [
    ['inputs', reg.inputs],
    ['decoders', reg.decoders],
    ['pipeline/stages', reg.stages],
    ['sinks', reg.sinks],
  ];
  const repeats: string[] = [];
  let checked = 0;
  for (const [kind, defs] of kinds) {
    for (const [type, def] of defs) {
      const props = (def.options as { properties?: Record<string, { default?: unknown }> }).properties ?? {};
      const dir = join(SRC, kind, type);
      const code = walk(dir)
        .map((f) => readFileSync(f, 'utf8'))
        .join('\n');
      for (const [name, schema] of Object.entries(props)) {
        if (schema.default === undefined) continue;
        checked++;
        if (new RegExp(`\\b(?:o|opts|options)\\.${name} \\?\\? `).test(code)) repeats.push(`${kind}/${type}: ${name}`);
      }
    }
  }
  assert.ok(checked > 80, `checked ${checked} defaulted options`);
  assert.deepEqual(repeats, []);
});

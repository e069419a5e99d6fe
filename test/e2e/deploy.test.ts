// The ways to run Backhaul for real, tried as far as this machine allows: the systemd unit is checked by systemd's own
// `systemd-analyze verify` (and `security`); no Docker engine runs here, so the Dockerfile cannot be built, and the
// test holds it to what can be checked: its commands are the README's, its paths exist, its ports, volume and
// config agree with the config it ships, and everything the program imports at run time is a production dependency
// (the image prunes the dev ones).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'jsonc-parser';
import { tempDir } from '../helpers/context.js';
import { requireServices } from '../helpers/services.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

function systemdSkip(): string | false {
  try {
    accessSync(SYSTEMD_ANALYZE, constants.X_OK);
    return false;
  } catch {
    if (requireServices) throw new Error(`${SYSTEMD_ANALYZE} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not there`);
    return `needs systemd-analyze at ${SYSTEMD_ANALYZE} (apt-get install -y systemd)`;
  }
}

/** `Key=value` lines of a unit file, in order (keys may repeat). */
function unitEntries(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('[') && l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

const UNIT = 'examples/systemd/backhaul.service';

test('the systemd unit passes systemd-analyze verify, and its exposure is rated low by systemd-analyze security', (t) => {
  const skip = systemdSkip();
  if (skip) return t.skip(skip);
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const unit = join(dir.path, 'backhaul.service');
  copyFileSync(join(root, UNIT), unit);
  const verify = spawnSync(SYSTEMD_ANALYZE, ['verify', unit], { encoding: 'utf8' });
  // verify prints unknown keys, bad values and missing executables on stderr, some without failing: none allowed.
  assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'systemd-analyze verify says nothing');
  assert.equal(verify.status, 0);
  const security = spawnSync(SYSTEMD_ANALYZE, ['security', '--offline=yes', unit], { encoding: 'utf8' });
  const level = /Overall exposure level for backhaul\.service: ([\d.]+)/.exec(security.stdout)?.[1];
  if (level === undefined) return t.diagnostic(`this systemd-analyze has no offline security check: ${security.stderr.trim()}`);
  assert.ok(Number(level) <= 3, `exposure ${level} (0 is best, 10 worst)`);
  t.diagnostic(`systemd-analyze security: exposure ${level}`);
});

test('the systemd unit runs the program as the docs say, and gives its stop the time the stop takes', () => {
  const e = unitEntries(read(UNIT));
  const get = (k: string) => e.filter(([key]) => key === k).map(([, v]) => v);
  assert.deepEqual(get('ExecStart'), ['/usr/bin/node /opt/backhaul/bin/backhaul.js start -c /etc/backhaul/backhaul.jsonc']);
  assert.deepEqual(get('StateDirectory'), ['backhaul']);
  assert.deepEqual(get('StateDirectoryMode'), ['0700']);
  assert.deepEqual(get('User'), ['backhaul']);
  assert.ok(get('SupplementaryGroups').includes('dialout'), 'the serial ports');
  // Backhaul stops on one SIGTERM and exits at once on a second: one signal, to the main process.
  assert.deepEqual(get('KillSignal'), ['SIGTERM']);
  assert.deepEqual(get('KillMode'), ['mixed']);
  // In-flight frames get 5 s, then every sink 5 s to drain: the stop must not be cut short before.
  assert.ok(Number(get('TimeoutStopSec')[0]) >= 15);
  for (const k of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'Restart']) assert.equal(get(k).length, 1, `${k} is set`);
  // The Raspberry Pi guide installs exactly this unit, with the data folder it names.
  const guide = read('docs/raspberry-pi.md');
  assert.ok(guide.includes(UNIT), 'the guide installs the unit');
  assert.ok(guide.includes('"data": "/var/lib/backhaul"'), 'the guide sets the data folder to the StateDirectory');
});

/** Dockerfile instructions, continuation lines joined. */
function dockerfile(text: string): Array<{ op: string; args: string; stage: number }> {
  const out: Array<{ op: string; args: string; stage: number }> = [];
  let stage = -1;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(l);
    assert.ok(m, `a Dockerfile instruction: ${l}`);
    if (m[1] === 'FROM') stage++;
    out.push({ op: m[1]!, args: m[2]!.replace(/\s+/g, ' '), stage });
  }
  return out;
}

test('the Dockerfile builds with the README\'s command and runs what the shipped container config says', () => {
  const steps = dockerfile(read('Dockerfile'));
  const readme = read('README.md');
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; dependencies: Record<string, string> };
  const froms = steps.filter((s) => s.op === 'FROM').map((s) => s.args);
  assert.equal(froms.length, 2, 'two stages: build, run');
  const major = /(\d+)/.exec(pkg.engines.node)![1]!;
  for (const f of froms) assert.match(f, new RegExp(`^node:${major}-bookworm-slim\\b`), 'the Node major version package.json asks for; one base for both stages');

  // Build stage: the README's install command exactly, with the build tools the README names.
  const build = steps.filter((s) => s.stage === 0);
  assert.ok(readme.includes('npm ci && npm start'), 'the README installs with npm ci');
  assert.ok(build.some((s) => s.op === 'RUN' && s.args === 'npm ci'), 'RUN npm ci');
  const apt = build.find((s) => s.op === 'RUN' && s.args.includes('apt-get install'))!.args;
  for (const tool of ['python3', 'make', 'g++']) assert.ok(apt.split(' ').includes(tool), `installs ${tool}`);
  assert.match(readme, /needs `python3`, `make` and a C\+\+ compiler/);

  // Run stage: what it copies exists (in the repository, or made by npm ci), and is not kept out by .dockerignore.
  const ignored = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const must of ['node_modules', 'dist', 'data', '.git']) assert.ok(ignored.includes(must), `.dockerignore keeps ${must} out`);
  const run = steps.filter((s) => s.stage === 1);
  for (const c of run.filter((s) => s.op === 'COPY')) {
    const src = /--from=build \/src\/(\S+)/.exec(c.args)?.[1];
    assert.ok(src, `copies from the build stage: ${c.args}`);
    for (const p of c.args.replace('--from=build ', '').split(' ').slice(0, -1).map((x) => x.replace(/^\/src\//, ''))) {
      if (p.startsWith('dist/') || p === 'node_modules') continue; // made by npm ci (prepare, install)
      assert.ok(existsSync(join(root, p)), `${p} exists`);
      assert.ok(!ignored.includes(p), `${p} reaches the build`);
    }
  }
  assert.match(read('bin/backhaul.js'), /\.\.\/dist\/src\/cli\/main\.js/, 'bin/ runs the dist/src the image copies');

  // Not root; the volume, ports, health check and config agree with the config the image ships.
  const user = run.filter((s) => s.op === 'USER').map((s) => s.args);
  assert.deepEqual(user, ['backhaul']);
  const cfgPath = run.find((s) => s.op === 'RUN' && s.args.includes('/etc/backhaul/backhaul.jsonc'))!.args;
  assert.match(cfgPath, /examples\/container\/backhaul\.jsonc \/etc\/backhaul\/backhaul\.jsonc/);
  const cfg = parse(read('examples/container/backhaul.jsonc')) as {
    data: string;
    inputs: Record<string, { type: string; port: number }>;
    api: { port: number };
  };
  assert.deepEqual(run.filter((s) => s.op === 'VOLUME').map((s) => s.args), [`["${cfg.data}"]`]);
  const ports = [...Object.values(cfg.inputs).filter((i) => i.type === 'broker').map((i) => i.port), cfg.api.port].sort();
  assert.deepEqual(run.filter((s) => s.op === 'EXPOSE').flatMap((s) => s.args.split(' ').map(Number)).sort(), ports);
  assert.ok(run.find((s) => s.op === 'HEALTHCHECK')!.args.includes(`http://127.0.0.1:${cfg.api.port}/api/v1/ready`));
  assert.deepEqual(run.filter((s) => s.op === 'ENTRYPOINT').map((s) => s.args), ['["node", "/opt/backhaul/bin/backhaul.js"]']);
  assert.deepEqual(run.filter((s) => s.op === 'CMD').map((s) => s.args), ['["start", "-c", "/etc/backhaul/backhaul.jsonc"]']);
  assert.deepEqual(run.filter((s) => s.op === 'STOPSIGNAL').map((s) => s.args), ['SIGTERM']);
  // The doc's commands are the Dockerfile's.
  const doc = read('docs/deploy.md');
  assert.ok(doc.includes('docker build -t backhaul .'));
  assert.ok(doc.includes('-v backhaul-data:/var/lib/backhaul'));
  assert.match(doc, /cannot be built here|not built on the machine/i, 'the doc says it was not built here');
});

test('everything the program imports at run time is a production dependency (the image prunes the others)', () => {
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
  const files: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.ts')) files.push(p);
    }
  };
  walk(join(root, 'src'));
  const missing = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    // Value imports only: `import type` is erased by the compiler.
    const found = [
      ...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"./][^'"]*)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"]([^'"./][^'"]*)['"]\s*\)/g),
    ];
    for (const m of found) {
      const spec = m[1]!;
      if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (!(name in pkg.dependencies)) missing.add(`${name} (${f.slice(root.length)})`);
    }
  }
  assert.deepEqual([...missing], []);
});

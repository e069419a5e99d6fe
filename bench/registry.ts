// Registry benchmark: a device registry of many devices (100,000 by default) in PostgreSQL and in SQLite, as the
// hub and the API use it: the lookup a login makes (getByUsername) and a device read (get), each timed one at a time
// (p50, p99), and a filtered device listing through a real hub's REST API (by building, and by search text).
// Not a test: nothing here asserts a time. See bench/README.md.
//
//   npm run bench:registry                                  (builds first)
//   node dist/bench/registry.js --devices 100000 --backends postgres,sqlite --url postgres://postgres@127.0.0.1:5432/test
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { silentLogger } from '../src/core/logger.js';
import { DeviceTypes } from '../src/devices/device-types.js';
import type { DeviceStore } from '../src/devices/store/index.js';
import { buildConfig } from '../src/runtime/config.js';
import { Hub } from '../src/runtime/hub.js';
import { builtinRegistry } from '../src/runtime/registry.js';
import { openDeviceStore } from '../src/runtime/stores.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    logins: { type: 'string', default: '10000' },
    lookups: { type: 'string', default: '5000' },
    requests: { type: 'string', default: '50' },
    backends: { type: 'string', default: 'postgres,sqlite' },
    url: { type: 'string', default: process.env['BACKHAUL_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(
    [
      'node dist/bench/registry.js [--devices N] [--logins N] [--lookups N] [--requests N] [--backends LIST] [--url URL] [--out FILE]',
      '  --devices   devices in the registry (default 100000)',
      '  --logins    of them with a login, for the login lookups (default 10000)',
      '  --lookups   lookups timed one at a time, per kind (default 5000)',
      '  --requests  API listing requests timed, per query (default 50)',
      '  --backends  postgres, sqlite or both (default postgres,sqlite)',
      '  --url       the PostgreSQL database (a fresh schema is made in it and dropped after)',
      '  --out       results file (default bench/results/registry-<date>-<git sha>.json)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

function int(v: string | undefined, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive whole number\n`);
    process.exit(2);
  }
  return n;
}
const N = int(args.devices, 'devices');
const LOGINS = Math.min(N, int(args.logins, 'logins'));
const LOOKUPS = int(args.lookups, 'lookups');
const REQUESTS = int(args.requests, 'requests');
const BACKENDS = (args.backends ?? '').split(',').filter((b): b is 'postgres' | 'sqlite' => b === 'postgres' || b === 'sqlite');
if (BACKENDS.length === 0) {
  process.stderr.write('--backends: postgres and/or sqlite\n');
  process.exit(2);
}

const mac = (i: number) => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

function percentiles(ms: number[]): { p50: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(s[s.length - 1] ?? NaN) };
}
const round = (x: number) => Math.round(x * 1000) / 1000;

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number; max: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    ms.push(performance.now() - t);
  }
  return percentiles(ms);
}

async function fill(store: DeviceStore): Promise<number> {
  const started = performance.now();
  const CHUNK = 1000;
  for (let i = 0; i < N; i += CHUNK) {
    const items = Array.from({ length: Math.min(CHUNK, N - i) }, (_, k) => {
      const n = i + k;
      return { id: mac(n), type: 'room-sensor', location: { building: `b${String(n % 200).padStart(3, '0')}`, room: `r${String(Math.floor(n / 200)).padStart(3, '0')}` }, description: `sensor ${n}` };
    });
    const r = await store.upsertMany(items);
    const bad = r.find((x) => 'error' in x);
    if (bad) throw new Error(`import failed: ${JSON.stringify(bad)}`);
    if ((i / CHUNK) % 10 === 0) process.stderr.write(`\r  ${i + items.length} / ${N} devices`);
  }
  for (let n = 0; n < LOGINS; n++) await store.setCredentials(mac(n), { username: mac(n), hash: store.logins.hash(randomBytes(24).toString('base64url')), passwordIssued: true });
  process.stderr.write(`\r  ${N} devices, ${LOGINS} with a login\n`);
  return Math.round(performance.now() - started);
}

interface BackendResult {
  backend: string;
  fillMs: number;
  loginLookup: { p50: number; p99: number; max: number };
  deviceGet: { p50: number; p99: number; max: number };
  hubStartMs: number;
  apiByBuilding: { p50: number; p99: number; max: number; total: number };
  apiBySearch: { p50: number; p99: number; max: number; total: number };
}

async function run(backend: 'postgres' | 'sqlite'): Promise<BackendResult> {
  process.stderr.write(`${backend}:\n`);
  const dir = mkdtempSync(join(tmpdir(), 'backhaul-bench-registry-'));
  const schema = `bh_bench_${randomBytes(4).toString('hex')}`;
  const storeConfig = backend === 'postgres' ? { type: 'postgres' as const, url: args.url ?? '', schema } : { type: 'sqlite' as const, schema: 'backhaul' };
  try {
    const store = await openDeviceStore(storeConfig, dir, { types: new DeviceTypes() });
    const fillMs = await fill(store);
    const loginLookup = await timed(LOOKUPS, (i) => store.getByUsername(mac((i * 7919) % LOGINS)));
    const deviceGet = await timed(LOOKUPS, (i) => store.get(mac((i * 104729) % N)));
    await store.close();

    const config = buildConfig(
      { data: dir, store: storeConfig, api: { host: '127.0.0.1', port: 0 }, sinks: { out: { type: 'file', path: join(dir, 'out.jsonl') } }, routes: [{ to: ['out'] }] },
      { source: 'bench', dir },
      { registry: builtinRegistry() },
    );
    let admin = '';
    const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (t) => (admin = t) });
    const t0 = performance.now();
    await hub.start();
    const hubStartMs = Math.round(performance.now() - t0);
    const get = async (q: string): Promise<number> => {
      const res = await fetch(`${hub.apiUrl() ?? ''}/api/v1/devices?${q}`, { headers: { authorization: `Bearer ${admin}` } });
      const body = (await res.json()) as { total?: number };
      if (res.status !== 200) throw new Error(`GET /api/v1/devices?${q}: ${res.status} ${JSON.stringify(body)}`);
      return body.total ?? -1;
    };
    let total1 = 0;
    let total2 = 0;
    const apiByBuilding = await timed(REQUESTS, async (i) => (total1 = await get(`building=b${String((i * 37) % 200).padStart(3, '0')}&limit=100`)));
    const apiBySearch = await timed(REQUESTS, async (i) => (total2 = await get(`search=sensor%20${(i * 7) % 1000}9&limit=100`)));
    await hub.stop();
    return { backend, fillMs, loginLookup, deviceGet, hubStartMs, apiByBuilding: { ...apiByBuilding, total: total1 }, apiBySearch: { ...apiBySearch, total: total2 } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (backend === 'postgres') {
      const c = new pg.Client({ connectionString: args.url });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    }
  }
}

function git(): { sha: string; dirty: boolean } {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return { sha, dirty };
  } catch {
    return { sha: 'unknown', dirty: false };
  }
}

const results: BackendResult[] = [];
for (const b of BACKENDS) results.push(await run(b));
const when = new Date();
const g = git();
const lines = [
  `Registry benchmark — ${when.toISOString()} — ${g.sha}${g.dirty ? ' (uncommitted changes)' : ''}; ${N.toLocaleString('en-US')} devices, ${LOGINS.toLocaleString('en-US')} logins`,
  `${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, ${platform()} ${release()}, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  '',
  'backend    import s  login lookup p50/p99 ms  device get p50/p99 ms  hub start s  API by building p50/p99 ms  API by search p50/p99 ms',
  ...results.map(
    (r) =>
      `${r.backend.padEnd(9)}  ${(r.fillMs / 1000).toFixed(1).padStart(8)}  ${`${r.loginLookup.p50} / ${r.loginLookup.p99}`.padStart(23)}  ${`${r.deviceGet.p50} / ${r.deviceGet.p99}`.padStart(21)}  ${(r.hubStartMs / 1000).toFixed(1).padStart(11)}  ${`${r.apiByBuilding.p50} / ${r.apiByBuilding.p99}`.padStart(26)}  ${`${r.apiBySearch.p50} / ${r.apiBySearch.p99}`.padStart(24)}`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
const file = args.out ?? join(ROOT, 'bench', 'results', `registry-${when.toISOString().slice(0, 10)}-${g.sha}.json`);
mkdirSync(join(file, '..'), { recursive: true });
writeFileSync(file, `${JSON.stringify({ bench: 'registry', date: when.toISOString(), git: g, options: { devices: N, logins: LOGINS, lookups: LOOKUPS, requests: REQUESTS }, results }, null, 2)}\n`);
process.stdout.write(`\nraw results: ${file}\n`);

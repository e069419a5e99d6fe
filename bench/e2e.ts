// End-to-end benchmark: simulated devices publish over MQTT (QoS 1) to a real Backhaul (`bin/backhaul.js start`),
// which decodes, checks the device, filters, scales and queues every reading durably for an MQTT sink and the SQLite
// historian; a subscriber on the sink's broker measures what arrives, how late, how much is lost or doubled. A bare
// aedes broker and Node-RED 5 (installed on the side, never a dependency) run the same load from the same load
// generator in the same run, so their figures can be compared on one machine at one moment. Two more scenarios run
// Backhaul alone: under a slow disk (every sync of its process delayed, e2e-slowdisk.ts) and in a reconnect storm
// (thousands of registered devices with their own passwords connecting at once, e2e-storm.ts).
// Not a test: nothing here asserts anything. See bench/README.md for what each scenario and figure means.
//
//   npm run bench                       the full run (about 25 minutes), then the outbox, codec and LoRaWAN benchmarks
//   npm run bench -- --quick            a few minutes: fewer loads, shorter runs, K = 10 only, a smaller storm; then
//                                       the codec benchmark and the LoRaWAN one's quick form
//   npm run bench -- --profile          also a 5k msg/s run of Backhaul under --cpu-prof, summarised
//   node dist/bench/e2e.js --help
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, copyFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { DeviceTypes } from '../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../src/devices/store/index.js';
import { brokerInput } from '../src/inputs/broker/index.js';
import { fetchStatus } from '../src/runtime/control.js';
import {
  ask,
  expect,
  fmtInt,
  frame,
  fmtMs,
  forkHelper,
  freePort,
  gitInfo,
  installCleanup,
  LineWatcher,
  loadAvg,
  machineInfo,
  makeTempDir,
  nowMs,
  ProcSampler,
  procTimes,
  removeTempDir,
  ROOT,
  round1,
  round2,
  sleep,
  spawnTracked,
  stopChild,
  table,
  type BrokerReply,
  type ConnectResult,
  type Percentiles,
  type ProcWindow,
  type RunResult,
  type SimDevice,
  type StormResult,
  type SubscriberStats,
} from './e2e-lib.js';
import { findNodeRed, installNodeRed, startNodeRed, type NodeRed } from './e2e-nodered.js';
import { cmdline, probeSlowDisk, readStraceCounts, straceArgs, SYNC_CALLS, tracerPid, type SlowDiskProbe } from './e2e-slowdisk.js';
import { stormRegistry } from './e2e-storm.js';
import { formatProfile, summariseProfile, type ProfileSummary } from './e2e-profile.js';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    k: { type: 'string' },
    loads: { type: 'string' },
    duration: { type: 'string' },
    idle: { type: 'string' },
    'node-red-dir': { type: 'string' },
    'no-node-red': { type: 'boolean', default: false },
    'no-outbox': { type: 'boolean', default: false },
    'no-lorawan': { type: 'boolean', default: false },
    'backhaul-env': { type: 'string', multiple: true },
    'backhaul-bin': { type: 'string' },
    'slow-disk-ms': { type: 'string' },
    'slow-disk-loads': { type: 'string' },
    'slow-disk-k': { type: 'string' },
    storm: { type: 'string' },
    'storm-concurrency': { type: 'string' },
    'storm-set': { type: 'string', multiple: true },
    'storm-timeout-s': { type: 'string' },
    'storm-deadline-s': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const HELP = `node dist/bench/e2e.js [options]          (npm run bench -- [options] builds first)
  --quick             a few minutes: loads 2k and 5k msg/s + unpaced, 3 s runs, K = 10, 2,000 idle devices,
                      a short backlog, slow disk at 1k and 2k msg/s, a storm of 2,000; Node-RED only if already
                      installed in the cache folder; no outbox benchmark; the LoRaWAN benchmark's quick form
  --profile           also run Backhaul under node --cpu-prof for one 5k msg/s run and summarise the hot functions
  --only LIST         scenarios to run, comma-separated: backhaul, aedes, nodered, slowdisk, idle, backlog,
                      storm, profile (default: all but profile; profile also with --profile)
  --k LIST            publishers per run (default 10,1000; quick 10)
  --loads LIST        paced loads in msg/s (default 2000,5000,10000,20000; quick 2000,5000)
  --duration MS       length of each measured run (default 8000; quick 3000)
  --idle N            devices in the idle scenario (default 10000; quick 2000)
  --slow-disk-ms N    slowdisk: delay of every fsync/fdatasync of Backhaul's process, ms (default 10)
  --slow-disk-loads L slowdisk: paced loads, msg/s (default 500,1000,2000,5000; quick 1000,2000)
  --slow-disk-k LIST  slowdisk: publishers per run (default: as --k)
  --storm N           storm: registered devices that connect at once (default 10000; quick 2000)
  --storm-concurrency C  storm: connection attempts in flight at most in the load generator (default 500)
  --storm-timeout-s S storm: how long a device waits for its CONNACK before it gives up and retries (default 30)
  --storm-deadline-s S  storm: give up after this long (default max(120, N × 0.03), i.e. 300 s for 10,000)
  --storm-set P=JSON  storm: set a config option of Backhaul's broker input (NAME=JSON), or any config path
                      (a.b.c=JSON) (repeatable), e.g. a per-address limit
  --node-red-dir DIR  where Node-RED is installed and looked for (default bench/.cache/node-red)
  --no-node-red       leave Node-RED out
  --no-outbox         do not run the outbox benchmark after a full run
  --no-lorawan        do not run the codec and LoRaWAN whole-path benchmarks after the run (quick: the LoRaWAN one's --quick)
  --backhaul-env K=V  an environment variable for the Backhaul processes (repeatable), for experiments such as
                      MALLOC_ARENA_MAX=2 or UV_THREADPOOL_SIZE=2; recorded in the results
  --backhaul-bin FILE the bin/backhaul.js to run (default this checkout's), e.g. another checkout's build to compare
  --out FILE          results file (default bench/results/<date>-<git sha>[-quick].json)
`;
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function list(v: string | undefined, dflt: number[]): number[] {
  if (v === undefined) return dflt;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isFinite(x) || x <= 0)) {
    process.stderr.write(`not a list of positive numbers: ${v}\n`);
    process.exit(2);
  }
  return xs;
}

const QUICK = args.quick ?? false;
const KS = list(args.k, QUICK ? [10] : [10, 1000]);
const LOADS = list(args.loads, QUICK ? [2000, 5000] : [2000, 5000, 10000, 20000]);
const DURATION = list(args.duration, [QUICK ? 3000 : 8000])[0]!;
const IDLE_N = list(args.idle, [QUICK ? 2000 : 10000])[0]!;
const SLOW_DISK_MS = list(args['slow-disk-ms'], [10])[0]!;
const SLOW_DISK_LOADS = list(args['slow-disk-loads'], QUICK ? [1000, 2000] : [500, 1000, 2000, 5000]);
const SLOW_DISK_KS = list(args['slow-disk-k'], KS);
const STORM_N = list(args.storm, [QUICK ? 2000 : 10000])[0]!;
const STORM_CONCURRENCY = list(args['storm-concurrency'], [500])[0]!;
const STORM_TIMEOUT_MS = list(args['storm-timeout-s'], [30])[0]! * 1000;
const STORM_DEADLINE_MS = list(args['storm-deadline-s'], [Math.max(120, STORM_N * 0.03)])[0]! * 1000;
const REFINE_STEPS = QUICK ? 1 : 2;
const WARM_MS = QUICK ? 1500 : 3000;
const QUIET_MS = QUICK ? 1500 : 2500;
const UNPACED_WINDOW = 512;
const SCENARIOS = new Set(
  (args.only ?? 'backhaul,aedes,nodered,slowdisk,idle,backlog,storm').split(',').map((s) => s.trim()).concat(args.profile ? ['profile'] : []),
);
const KNOWN_SCENARIOS = ['backhaul', 'aedes', 'nodered', 'slowdisk', 'idle', 'backlog', 'storm', 'profile'];
for (const s of SCENARIOS) {
  if (!KNOWN_SCENARIOS.includes(s)) {
    process.stderr.write(`unknown scenario "${s}"; known: ${KNOWN_SCENARIOS.join(', ')}\n`);
    process.exit(2);
  }
}
/** Options of the storm's Backhaul given with --storm-set NAME=JSON (Backhaul's config check judges them at start). */
const STORM_SET: Record<string, unknown> = {};
for (const kv of args['storm-set'] ?? []) {
  const i = kv.indexOf('=');
  let v: unknown;
  try {
    v = i > 0 ? JSON.parse(kv.slice(i + 1)) : undefined;
  } catch {
    v = undefined;
  }
  if (i <= 0 || v === undefined) {
    process.stderr.write(`--storm-set wants NAME=JSON (e.g. maxConnections=20000), not ${kv}\n`);
    process.exit(2);
  }
  STORM_SET[kv.slice(0, i)] = v;
}
const BACKHAUL_ENV: Record<string, string> = {};
for (const kv of args['backhaul-env'] ?? []) {
  const i = kv.indexOf('=');
  if (i <= 0) {
    process.stderr.write(`--backhaul-env wants NAME=VALUE, not ${kv}\n`);
    process.exit(2);
  }
  BACKHAUL_ENV[kv.slice(0, i)] = kv.slice(i + 1);
}
const NODE_RED_DIR = args['node-red-dir'] ?? join(ROOT, 'bench', '.cache', 'node-red');
const BIN = args['backhaul-bin'] ? resolve(args['backhaul-bin']) : join(ROOT, 'bin', 'backhaul.js');
/** The shared password of the simulated devices (each device has its own login; the password may be the same). */
const DEVICE_PASSWORD = 'bench-device-password-0123';

/** `slowdisk`: Backhaul with every sync of its process delayed SLOW_DISK_MS (e2e-slowdisk.ts). */
type SystemName = 'backhaul' | 'aedes' | 'nodered' | 'slowdisk';
const SYSTEM_LABEL: Record<SystemName, string> = {
  backhaul: 'Backhaul',
  aedes: 'bare aedes',
  nodered: 'Node-RED 5',
  slowdisk: `Backhaul, slow disk (${SLOW_DISK_MS} ms/sync)`,
};

const log = (s: string) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------- results

interface Run {
  system: SystemName;
  k: number;
  /** 'warm-up', 'paced', 'unpaced', 'search' (a paced run looking for the highest lossless rate). */
  kind: 'warm-up' | 'paced' | 'unpaced' | 'search';
  /** msg/s asked for; 0 for unpaced. */
  offered: number;
  sendRate: number;
  sent: number;
  acked: number;
  /** Publishes never acknowledged (connection lost, or no PUBACK within a minute of the end). */
  unacked: number;
  delivered: number;
  /** Acknowledged frames that never reached the subscriber. */
  lost: number;
  duplicates: number;
  /** Distinct deliveries per second, from the first publish to the last delivery. */
  deliveredRate: number;
  latency: Percentiles;
  /** Median latency of the first and last quarter of the frames (by send time). */
  latencyTrend: { firstP50: number; lastP50: number };
  ack: Percentiles;
  /** CPU of the system under test (its processes summed), % of one core, while publishing; RSS of its main process. */
  cpuPct: number;
  rssMaxMiB: number;
  /** CPU of everything else the benchmark runs (load generator, subscriber, output broker), % of one core. */
  othersCpuPct: number;
  procs: Record<string, ProcWindow>;
  /** Backhaul only: what its outboxes held when the subscriber had everything, and how long they took to empty. */
  backlogAtEnd?: Record<string, number>;
  historianDrainMs?: number;
  disconnects: number;
  sustained: boolean;
  why?: string;
  loadAverage: string;
}

/** The reconnect storm's figures (scenarioStorm); the storm fields are absent when it failed before the storm. */
interface StormReport {
  devices: number;
  concurrency: number;
  connectTimeoutMs: number;
  retryMs: number;
  deadlineMs: number;
  /** The same storm against a bare aedes broker (no login): the load generator's ceiling. */
  bareAedes?: StormFigures | { error: string };
  setup?: Record<string, number | string>;
  /** Broker input options (or config paths) the storm set, raised above what a storm from one address needs. */
  brokerOptionsSet?: Record<string, unknown>;
  backhaul?: StormFigures & {
    cpuSeconds: number | undefined;
    cpuMsPerConnected: number | undefined;
    rssBeforeMiB: number | undefined;
    rssPeakMiB: number | undefined;
    rssAfterMiB: number | undefined;
    timeline: number[];
    loadAverage: string;
  };
  error?: string;
}

interface StormFigures {
  allConnectedMs: number | null;
  connected: number;
  stormMs: number;
  connectsPerSecond: number;
  attempts: number;
  failedAttempts: number;
  failures: Record<string, number>;
  retriedDevices: number;
  dropped: number;
  errors: string[];
  connectLatency: Percentiles;
  /** CPU of the system under test (Backhaul, or the bare broker) and of the load generator, % of one core. */
  cpuPct: number | undefined;
  loadgenCpuPct: number | undefined;
}

interface SystemResult {
  system: SystemName;
  k: number;
  setup: Record<string, number | string>;
  runs: Run[];
  maxLossless?: number;
  /** Whether the highest lossless rate is a paced load that held or the unpaced (closed-loop) run's rate. */
  maxLosslessFrom?: 'paced' | 'unpaced';
  unpaced?: { rate: number; lossless: boolean };
  /** slowdisk: the sync calls strace counted over Backhaul's whole life, and the frames acknowledged meanwhile. */
  syncCalls?: Record<string, number>;
  framesAcked?: number;
  error?: string;
}

const results = {
  bench: 'e2e',
  mode: QUICK ? 'quick' : 'full',
  date: new Date().toISOString(),
  git: gitInfo(),
  machine: machineInfo(),
  options: {
    ks: KS,
    loads: LOADS,
    durationMs: DURATION,
    idleDevices: IDLE_N,
    slowDiskMs: SLOW_DISK_MS,
    slowDiskLoads: SLOW_DISK_LOADS,
    slowDiskKs: SLOW_DISK_KS,
    stormDevices: STORM_N,
    stormConcurrency: STORM_CONCURRENCY,
    stormTimeoutMs: STORM_TIMEOUT_MS,
    stormDeadlineMs: STORM_DEADLINE_MS,
    stormSet: STORM_SET,
    refineSteps: REFINE_STEPS,
    unpacedWindow: UNPACED_WINDOW,
    scenarios: [...SCENARIOS],
    backhaulEnv: BACKHAUL_ENV,
    backhaulBin: BIN,
  },
  frameExample: frame('1a2b', 17, 1_763_800_000_123.456),
  nodeRed: undefined as undefined | { version: string; node: string; dir: string; installedMs?: number } | { skipped: string },
  systems: [] as SystemResult[],
  slowDisk: undefined as undefined | ({ delayMs: number; calls: readonly string[] } & SlowDiskProbe) | { delayMs: number; skipped: string },
  idle: undefined as undefined | Record<string, unknown>,
  storm: undefined as undefined | StormReport,
  backlog: undefined as undefined | Record<string, unknown>,
  profile: undefined as undefined | (ProfileSummary & { offered: number; run: Run | undefined; savedAs?: string }) | { error: string },
  goals: [] as Array<{ goal: string; target: string; measured: string; met: boolean | null }>,
  notes: [] as string[],
};

// ---------------------------------------------------------------- helpers: brokers, Backhaul

interface Broker {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
}

async function startBroker(): Promise<Broker> {
  const port = await freePort();
  const child = forkHelper('e2e-broker', ['--port', String(port)]);
  await expect<Extract<BrokerReply, { t: 'ready' }>>(child, 'ready', 15_000);
  return { child, port, url: `mqtt://127.0.0.1:${port}` };
}

function devicesFor(k: number, withLogin: boolean): SimDevice[] {
  return Array.from({ length: k }, (_, i) => {
    const id = (0x1000 + i).toString(16);
    return { id, topic: `b1/r${i}/valve/frame`, ...(withLogin ? { username: id, password: DEVICE_PASSWORD } : {}) };
  });
}

/** The Backhaul config under test: embedded broker → json decoder → device gate → filter, scale → mqtt + sqlite. */
function backhaulConfig(port: number, outUrl: string) {
  return {
    data: './data',
    log: { level: 'info' },
    devices: { unknown: 'drop' },
    inputs: {
      devices: {
        type: 'broker',
        host: '127.0.0.1',
        port,
        topics: ['+/+/valve/#'],
        decoder: { type: 'json', device: 'id', seq: 'seq', values: { sent: 'sent', temperature_c16: '$["T|C16"]', battery_cv: '$["B|cV"]' } },
        // The per-address limits are raised for K devices by withAddressLimits (all share 127.0.0.1).
      },
    },
    sinks: {
      out: { type: 'mqtt', url: outUrl, topic: 'backhaul/{device}', qos: 1, outbox: { retryMaxMs: 2000 } },
      history: { type: 'sqlite' },
    },
    routes: [
      {
        name: 'valves',
        stages: [
          { type: 'filter', when: [{ measurement: 'temperature_c16', op: '>', value: -800 }] },
          { type: 'scale', measurement: 'temperature_c16', factor: 0.0625, unit: 'Cel', as: 'temperature', decimals: 2 },
          { type: 'scale', measurement: 'battery_cv', factor: 0.01, unit: 'V', as: 'battery', decimals: 2 },
        ],
        to: ['out', 'history'],
      },
    ],
  };
}

interface Backhaul {
  /** Backhaul's own process (also under strace: `strace -D` makes the spawned process the traced one). */
  readonly child: ChildProcess;
  readonly out: LineWatcher;
  readonly dir: string;
  readonly dataDir: string;
  readonly url: string;
  readonly devices: SimDevice[];
  readonly setup: Record<string, number | string>;
  /** Under strace (slow disk): where strace writes its count of sync calls when Backhaul exits. */
  readonly straceStats?: string;
}

interface BackhaulOptions {
  readonly profileDir?: string;
  /** Run under strace with every sync call delayed this long (ms). */
  readonly slowDiskMs?: number;
  /** Instead of `devices import` and one shared password: make the registry in the data folder, return the devices. */
  readonly registry?: (dataDir: string) => Promise<{ devices: SimDevice[]; setup: Record<string, number | string> }>;
  /** Change the generated config (address limits already raised) before it is written. */
  readonly config?: (cfg: object) => object;
}

/**
 * A fresh Backhaul: its own temp folder, K devices registered with `backhaul devices import` (one per room, so each
 * has its own base topic b1/r<i>/valve), each given a login (or the registry `o.registry` makes), the broker's
 * per-address limits raised for K devices from one address, then `bin/backhaul.js start` (under strace for the
 * slow disk).
 */
async function startBackhaul(k: number, outUrl: string, o: BackhaulOptions = {}): Promise<Backhaul> {
  const dir = makeTempDir('backhaul-bench-e2e-');
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const cfg = join(dir, 'backhaul.json');
  const limits = withAddressLimits(backhaulConfig(port, outUrl), k);
  const config = o.config ? o.config(limits.config) : limits.config;
  writeFileSync(cfg, JSON.stringify(config, null, 2));
  const setup: Record<string, number | string> = { brokerLimits: JSON.stringify(limits.set) };
  const note = `the broker input has options that look like per-address limits and the benchmark does not raise: ${limits.unset.join(', ')} (addressLimits in bench/e2e.ts, or --storm-set)`;
  if (limits.unset.length > 0 && !results.notes.includes(note)) results.notes.push(note);
  let devices: SimDevice[];
  let t = nowMs();
  if (o.registry) {
    const r = await o.registry(dataDir);
    devices = r.devices;
    Object.assign(setup, r.setup);
  } else {
    devices = devicesFor(k, true);
    const manifest = join(dir, 'devices.csv');
    writeFileSync(manifest, `id,kind,type,building,room\n${devices.map((d, i) => `${d.id},opentrv,opentrv-valve,b1,r${i}`).join('\n')}\n`);
    const imp = await execFileP(process.execPath, [BIN, 'devices', 'import', '-c', cfg, manifest], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
    setup.importMs = Math.round(nowMs() - t);
    setup.importSummary = imp.stdout.trim().split('\n').pop() ?? '';
    // Logins: what `backhaul devices reset-credentials` does, for every device in one go (the CLI would start one
    // process per device). One hash of the shared password (generated-shaped, so the registry's fast keyed format,
    // as reset-credentials stores it) serves them all.
    t = nowMs();
    const store = SqliteDeviceStore.open(registryPath(dataDir), { types: new DeviceTypes(), synchronous: 'NORMAL' });
    try {
      const hash = store.logins.hash(DEVICE_PASSWORD);
      setup.passwordHash = hash.split('$').slice(0, 2).join('$');
      for (const d of devices) await store.setCredentials(d.id, { username: d.id, hash, passwordIssued: true });
    } finally {
      await store.close();
    }
    setup.credentialsMs = Math.round(nowMs() - t);
  }
  t = nowMs();
  const execArgv = o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : [];
  const command = [process.execPath, ...execArgv, BIN, 'start', '-c', cfg];
  const straceStats = o.slowDiskMs !== undefined ? join(dir, 'syncs.strace') : undefined;
  const [cmd, ...argv] = straceStats !== undefined ? ['strace', ...straceArgs(o.slowDiskMs!, straceStats), ...command] : command;
  const child = spawnTracked(cmd!, argv, {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...BACKHAUL_ENV },
  });
  const out = new LineWatcher(child);
  await out.waitFor(/backhaul running/, 120_000);
  setup.startMs = Math.round(nowMs() - t);
  const b: Backhaul = { child, out, dir, dataDir, url: `mqtt://127.0.0.1:${port}`, devices, setup, ...(straceStats ? { straceStats } : {}) };
  if (straceStats !== undefined) {
    // The process sampled and signalled must be Backhaul itself, traced (strace -D: the tracer is a grandchild).
    const tracer = tracerPid(child.pid);
    const line = cmdline(child.pid) ?? '';
    if (!tracer || !line.includes(BIN)) {
      await stopBackhaul(b).catch(() => undefined);
      throw new Error(`the slow-disk Backhaul (pid ${String(child.pid)}: ${line || 'gone'}) is not traced (TracerPid ${String(tracer)})`);
    }
    setup.tracerPid = tracer;
  }
  return b;
}

/** Stops Backhaul (SIGINT, its normal shutdown); under strace, returns the sync calls strace counted. */
async function stopBackhaul(b: Backhaul): Promise<Record<string, number> | undefined> {
  await stopChild(b.child, 'SIGINT', 30_000);
  const counts = b.straceStats !== undefined ? await readStraceCounts(b.straceStats) : undefined;
  removeTempDir(b.dir);
  return counts;
}

/** Backlog (items) of each of Backhaul's sinks, asked over its control socket. */
async function backlogs(b: Backhaul): Promise<Record<string, number>> {
  const s = await fetchStatus(b.dataDir, 5000).catch(() => undefined);
  const out: Record<string, number> = {};
  for (const sink of s?.sinks ?? []) out[sink.id] = sink.backlog;
  return out;
}

// ---------------------------------------------------------------- one measured run

interface Rig {
  readonly system: SystemName;
  readonly k: number;
  readonly loadgen: ChildProcess;
  readonly sub: ChildProcess;
  readonly sampler: ProcSampler;
  /** Process names in the sampler that make up the system under test; the first is its main process. */
  readonly sut: string[];
  readonly backhaul?: Backhaul;
}

async function measure(rig: Rig, kind: Run['kind'], offered: number, durationMs: number): Promise<Run> {
  await ask(rig.sub, { t: 'reset', since: nowMs() }, 'count', 10_000);
  const t0 = nowMs();
  rig.sampler.sample();
  const r = await ask<RunResult>(
    rig.loadgen,
    { t: 'run', rate: offered, durationMs, maxInflight: Math.max(2000, offered * 2), window: UNPACED_WINDOW },
    'ran',
    durationMs + 180_000,
  );
  rig.sampler.sample();
  const s = await ask<SubscriberStats>(rig.sub, { t: 'wait', expected: r.acked, quietMs: QUIET_MS, timeoutMs: 90_000 }, 'stats', 120_000);
  rig.sampler.sample();
  const t1 = nowMs();
  const busy = rig.sampler.between(r.startedAt, r.startedAt + r.durationMs);
  const whole = rig.sampler.between(t0, t1);
  const procs: Record<string, ProcWindow> = {};
  for (const [name, w] of Object.entries(busy)) procs[name] = { cpuPct: w.cpuPct, rssMaxMiB: whole[name]?.rssMaxMiB ?? w.rssMaxMiB, rssEndMiB: whole[name]?.rssEndMiB ?? w.rssEndMiB };
  const cpuPct = round1(rig.sut.reduce((n, p) => n + (procs[p]?.cpuPct ?? 0), 0));
  const othersCpuPct = round1(Object.entries(procs).reduce((n, [p, w]) => n + (rig.sut.includes(p) ? 0 : w.cpuPct), 0));
  const lastAt = Math.max(s.lastAt, r.lastAckAt);
  const deliveredRate = s.unique > 0 ? round1((s.unique / Math.max(1, lastAt - r.startedAt)) * 1000) : 0;
  const run: Run = {
    system: rig.system,
    k: rig.k,
    kind,
    offered,
    sendRate: r.sendRate,
    sent: r.sent,
    acked: r.acked,
    unacked: r.failed,
    delivered: s.unique,
    lost: Math.max(0, r.acked - s.unique),
    duplicates: s.duplicates,
    deliveredRate,
    latency: s.latency,
    latencyTrend: s.trend,
    ack: r.ack,
    cpuPct,
    rssMaxMiB: procs[rig.sut[0]!]?.rssMaxMiB ?? 0,
    othersCpuPct,
    procs,
    disconnects: r.disconnects,
    sustained: false,
    loadAverage: loadAvg(),
  };
  if (rig.backhaul) {
    run.backlogAtEnd = await backlogs(rig.backhaul);
    // Let every outbox empty before the next run, so a lagging historian does not eat the next run's CPU.
    const t = nowMs();
    for (;;) {
      const b = await backlogs(rig.backhaul);
      if (Object.values(b).every((n) => n === 0) || nowMs() - t > 120_000) break;
      await sleep(250);
    }
    run.historianDrainMs = Math.round(nowMs() - t);
  }
  const why: string[] = [];
  if (run.lost > 0) why.push(`${fmtInt(run.lost)} lost`);
  if (run.unacked > 0) why.push(`${fmtInt(run.unacked)} unacknowledged`);
  if (run.disconnects > 0) why.push(`${fmtInt(run.disconnects)} publishers disconnected`);
  if (offered > 0 && run.sendRate < offered * 0.95) why.push(`generator held back to ${fmtInt(run.sendRate)}/s (PUBACKs too slow)`);
  if (offered > 0 && run.deliveredRate < offered * 0.95) why.push(`delivered only ${fmtInt(run.deliveredRate)}/s`);
  if (run.latency.p99 > 1000) why.push(`p99 ${fmtMs(run.latency.p99)} ms`);
  const { firstP50, lastP50 } = s.trend;
  if (lastP50 > Math.max(2 * firstP50, firstP50 + 50)) why.push(`latency rising (p50 ${fmtMs(firstP50)} → ${fmtMs(lastP50)} ms)`);
  const lag = run.backlogAtEnd?.history ?? 0;
  const rate = offered > 0 ? offered : run.sendRate;
  if (lag > Math.max(500, rate * 0.5)) why.push(`historian ${fmtInt(lag)} behind`);
  run.sustained = why.length === 0;
  if (why.length > 0) run.why = why.join('; ');
  return run;
}

function runLine(r: Run): string {
  const load = r.kind === 'unpaced' ? 'unpaced' : `${fmtInt(r.offered)}/s${r.kind === 'search' ? ' (search)' : ''}`;
  return (
    `  ${SYSTEM_LABEL[r.system]} K=${r.k} ${load}: sent ${fmtInt(r.sendRate)}/s, delivered ${fmtInt(r.delivered)}/${fmtInt(r.acked)} ` +
    `(${fmtInt(r.deliveredRate)}/s), p50 ${fmtMs(r.latency.p50)} p99 ${fmtMs(r.latency.p99)} ms, cpu ${r.cpuPct}%, rss ${r.rssMaxMiB} MiB` +
    `${r.sustained ? '' : ` — not sustained: ${r.why ?? ''}`}`
  );
}

// ---------------------------------------------------------------- throughput scenarios

interface Sut {
  readonly publishUrl: string;
  readonly devices: SimDevice[];
  readonly outUrl: string;
  readonly outTopic: string;
  readonly pids: Record<string, number | undefined>;
  readonly sut: string[];
  readonly setup: Record<string, number | string>;
  readonly backhaul?: Backhaul;
  readonly logTail: () => string;
  /** Resolves with the sync calls strace counted when the system ran under it (slowdisk). */
  stop(): Promise<Record<string, number> | undefined>;
}

async function startSut(system: SystemName, k: number, outBroker: Broker, nodeRed: NodeRed | undefined): Promise<Sut> {
  if (system === 'backhaul' || system === 'slowdisk') {
    const b = await startBackhaul(k, outBroker.url, system === 'slowdisk' ? { slowDiskMs: SLOW_DISK_MS } : {});
    return {
      publishUrl: b.url,
      devices: b.devices,
      outUrl: outBroker.url,
      outTopic: 'backhaul/#',
      pids: { backhaul: b.child.pid, 'output broker': outBroker.child.pid },
      sut: ['backhaul'],
      setup: b.setup,
      backhaul: b,
      logTail: () => b.out.lastLines(),
      stop: () => stopBackhaul(b),
    };
  }
  if (system === 'aedes') {
    const br = await startBroker();
    return {
      publishUrl: br.url,
      devices: devicesFor(k, false),
      outUrl: br.url,
      outTopic: '+/+/valve/#',
      pids: { aedes: br.child.pid },
      sut: ['aedes'],
      setup: {},
      logTail: () => '',
      stop: () => stopChild(br.child).then(() => undefined),
    };
  }
  if (!nodeRed) throw new Error('Node-RED is not installed');
  const input = await startBroker();
  const userDir = makeTempDir('backhaul-bench-node-red-');
  const t = nowMs();
  let nr: Awaited<ReturnType<typeof startNodeRed>>;
  try {
    nr = await startNodeRed(nodeRed, userDir, input.port, outBroker.port);
  } catch (e) {
    await stopChild(input.child);
    removeTempDir(userDir);
    throw e;
  }
  return {
    publishUrl: input.url,
    devices: devicesFor(k, false),
    outUrl: outBroker.url,
    outTopic: 'nodered/#',
    pids: { nodered: nr.child.pid, 'input broker': input.child.pid, 'output broker': outBroker.child.pid },
    sut: ['nodered', 'input broker'],
    setup: { startMs: Math.round(nowMs() - t) },
    logTail: () => nr.out.lastLines(),
    stop: async () => {
      await stopChild(nr.child, 'SIGINT', 15_000);
      await stopChild(input.child);
      removeTempDir(userDir);
      return undefined;
    },
  };
}

async function scenarioSystem(system: SystemName, k: number, outBroker: Broker, nodeRed: NodeRed | undefined, loads: readonly number[] = LOADS): Promise<SystemResult> {
  const res: SystemResult = { system, k, setup: {}, runs: [] };
  results.systems.push(res);
  log(`\n${SYSTEM_LABEL[system]}, K = ${fmtInt(k)} publishers`);
  let sut: Sut | undefined;
  let loadgen: ChildProcess | undefined;
  let sub: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  try {
    sut = await startSut(system, k, outBroker, nodeRed);
    Object.assign(res.setup, sut.setup);
    await sleep(500);
    res.setup.rssAfterStartMiB = new ProcSampler({ main: sut.pids[sut.sut[0]!] }).rssNowMiB('main') ?? '-';
    sub = forkHelper('e2e-subscriber');
    await ask(sub, { t: 'subscribe', url: sut.outUrl, topic: sut.outTopic, clientId: `bench-sub-${system}-${k}`, clean: true }, 'subscribed', 15_000);
    loadgen = forkHelper('e2e-loadgen');
    const conn = await ask<ConnectResult>(
      loadgen,
      { t: 'connect', url: sut.publishUrl, devices: sut.devices, concurrency: 50, keepalive: 60, clientPrefix: `bench-${system}-` },
      'connected',
      600_000,
    );
    res.setup.connectMs = conn.ms;
    res.setup.connectsPerSecond = round1((conn.ok / Math.max(1, conn.ms)) * 1000);
    log(`  ${fmtInt(conn.ok)} publishers connected in ${fmtInt(conn.ms)} ms${conn.failed ? `, ${conn.failed} failed: ${conn.errors.join('; ')}` : ''}`);
    if (conn.ok === 0) throw new Error(`no publisher could connect: ${conn.errors.join('; ')}`);
    sampler = new ProcSampler({ ...sut.pids, loadgen: loadgen.pid, subscriber: sub.pid }).start();
    res.setup.rssAtRestMiB = sampler.rssNowMiB(sut.sut[0]!) ?? '-';
    const rig: Rig = { system, k, loadgen, sub, sampler, sut: sut.sut, ...(sut.backhaul ? { backhaul: sut.backhaul } : {}) };

    const warm = await measure(rig, 'warm-up', 1000, WARM_MS);
    res.runs.push(warm);
    if (warm.delivered === 0) throw new Error(`nothing reached the subscriber during the warm-up; last lines of its output:\n${sut.logTail()}`);

    const paced = new Map<number, boolean>();
    for (const rate of loads) {
      const r = await measure(rig, 'paced', rate, DURATION);
      res.runs.push(r);
      paced.set(rate, r.sustained);
      log(runLine(r));
    }
    const u = await measure(rig, 'unpaced', 0, DURATION);
    res.runs.push(u);
    res.unpaced = { rate: u.deliveredRate, lossless: u.lost === 0 && u.unacked === 0 };
    log(runLine(u));

    // The highest lossless rate: the best paced load that held, refined between it and the first that did not (or
    // the unpaced rate when every load held).
    // An unpaced run that was lossless with a bounded latency (p99 ≤ 1 s) and whose historian kept up is itself a
    // lossless rate: the system's closed-loop maximum.
    let lo = Math.max(0, ...[...paced].filter(([, ok]) => ok).map(([rate]) => rate));
    let from: 'paced' | 'unpaced' = 'paced';
    if (u.sustained && u.deliveredRate > lo) {
      lo = Math.floor(u.deliveredRate);
      from = 'unpaced';
    }
    const failing = [...paced].filter(([rate, ok]) => !ok && rate > lo).map(([rate]) => rate);
    let hi = failing.length > 0 ? Math.min(...failing) : !u.sustained && u.deliveredRate > lo * 1.05 ? Math.round(u.deliveredRate) : undefined;
    for (let i = 0; i < REFINE_STEPS && hi !== undefined && hi - lo > Math.max(250, lo * 0.1); i++) {
      const mid = Math.round((lo + hi) / 2 / 250) * 250;
      if (mid <= lo || mid >= hi) break;
      const r = await measure(rig, 'search', mid, DURATION);
      res.runs.push(r);
      log(runLine(r));
      if (r.sustained) {
        lo = mid;
        from = 'paced';
      } else hi = mid;
    }
    res.maxLossless = lo;
    res.maxLosslessFrom = from;
    log(`  highest lossless rate found: ${fmtInt(lo)} msg/s (${from})${hi !== undefined ? `; ${fmtInt(hi)} did not hold` : ''}`);
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    log(`  ${SYSTEM_LABEL[system]} K=${k} failed: ${res.error}`);
  } finally {
    sampler?.stop();
    if (loadgen?.connected) await ask(loadgen, { t: 'disconnect' }, 'disconnected', 30_000).catch(() => undefined);
    if (loadgen) await stopChild(loadgen);
    if (sub) await stopChild(sub);
    const syncs = sut ? await sut.stop().catch(() => undefined) : undefined;
    if (syncs) {
      res.syncCalls = syncs;
      res.framesAcked = res.runs.reduce((n, r) => n + r.acked, 0);
    }
  }
  return res;
}

// ---------------------------------------------------------------- slow disk

/**
 * The Backhaul throughput scenario again, with every sync call of Backhaul's process delayed SLOW_DISK_MS (strace;
 * e2e-slowdisk.ts), after checking on a tiny program that strace can trace here and that the delay takes effect.
 */
async function scenarioSlowDisk(outBroker: Broker): Promise<void> {
  const dir = makeTempDir('backhaul-bench-slowdisk-');
  let probe: Awaited<ReturnType<typeof probeSlowDisk>>;
  try {
    probe = await probeSlowDisk(SLOW_DISK_MS, dir);
  } finally {
    removeTempDir(dir);
  }
  if ('error' in probe) {
    results.slowDisk = { delayMs: SLOW_DISK_MS, skipped: probe.error };
    log(`\nSlow disk: skipped — ${probe.error}`);
    return;
  }
  results.slowDisk = { delayMs: SLOW_DISK_MS, calls: SYNC_CALLS, ...probe };
  log(
    `\nSlow disk: Backhaul under ${probe.strace}, every ${SYNC_CALLS.join('/')} of its process delayed ${SLOW_DISK_MS} ms ` +
      `(probe: write + fdatasync ${probe.untraced.fdatasyncMs} → ${probe.traced.fdatasyncMs} ms, write + fsync ${probe.untraced.fsyncMs} → ${probe.traced.fsyncMs} ms)`,
  );
  for (const k of SLOW_DISK_KS) {
    const r = await scenarioSystem('slowdisk', k, outBroker, undefined, SLOW_DISK_LOADS);
    if (r.syncCalls) log(`  sync calls over Backhaul's life: ${Object.entries(r.syncCalls).map(([c, n]) => `${c} ${fmtInt(n)}`).join(', ') || 'none'} for ${fmtInt(r.framesAcked)} frames acknowledged`);
  }
}

// ---------------------------------------------------------------- idle devices

async function scenarioIdle(outBroker: Broker): Promise<void> {
  // Every device has the fast keyed hash a generated password gets. The first 50 connect on their own, so the mark
  // the first logins leave on RSS is measured apart from the rest.
  const expensive = Math.min(50, IDLE_N);
  log(`\nIdle: ${fmtInt(IDLE_N)} devices connected to Backhaul, publishing nothing`);
  let b: Backhaul | undefined;
  let loadgen: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  try {
    b = await startBackhaul(IDLE_N, outBroker.url);
    sampler = new ProcSampler({ backhaul: b.child.pid }).start();
    const settle = QUICK ? 2000 : 4000;
    const rssOver = async (ms: number) => {
      const t = nowMs();
      await sleep(ms);
      return sampler!.between(t, nowMs()).backhaul;
    };
    await sleep(settle);
    const before = await rssOver(2000);
    loadgen = forkHelper('e2e-loadgen');
    const connect = (devices: SimDevice[]) =>
      ask<ConnectResult>(loadgen!, { t: 'connect', url: b!.url, devices, concurrency: 100, keepalive: 60, clientPrefix: 'bench-idle-' }, 'connected', 900_000);
    const first = await connect(b.devices.slice(0, expensive));
    await sleep(settle);
    const afterFirst = await rssOver(2000);
    const rest = await connect(b.devices.slice(expensive));
    const connected = nowMs();
    await sleep(settle);
    const after = await rssOver(QUICK ? 3000 : 5000);
    // Idle means settled: the logins' garbage is handed back by V8's memory reducer some 20–30 s after the last one,
    // so the figure the goal is read against is the highest RSS in 5 s from 30 s after all connected.
    await sleep(Math.max(0, connected + (QUICK ? 15_000 : 30_000) - nowMs()));
    const settled = await rssOver(5000);
    const connectWindow = sampler.between(connected - rest.ms, connected).backhaul;
    const ok = first.ok + rest.ok;
    const rssBefore = before?.rssEndMiB ?? NaN;
    const rssFirst = afterFirst?.rssEndMiB ?? NaN;
    const rssAfter = after?.rssMaxMiB ?? NaN;
    results.idle = {
      devices: IDLE_N,
      connected: ok,
      failed: first.failed + rest.failed,
      errors: [...first.errors, ...rest.errors],
      defaultHashLogins: first.ok,
      defaultHashConnectMs: first.ms,
      connectMs: rest.ms,
      connectsPerSecond: round1((rest.ok / Math.max(1, rest.ms)) * 1000),
      cpuWhileConnectingPct: connectWindow?.cpuPct,
      rssBeforeMiB: rssBefore,
      rssAfterDefaultHashLoginsMiB: rssFirst,
      rssConnectedMiB: rssAfter,
      rssSettledMiB: settled?.rssMaxMiB,
      settledAfterMs: QUICK ? 15_000 : 30_000,
      rssPeakWhileConnectingMiB: connectWindow?.rssMaxMiB,
      kibPerConnection: round1(((rssAfter - rssFirst) * 1024) / Math.max(1, rest.ok)),
      cpuIdleConnectedPct: after?.cpuPct,
      setup: b.setup,
    };
    log(
      `  ${fmtInt(ok)} connected (${first.failed + rest.failed} failed); RSS ${rssBefore} MiB before, ${rssFirst} MiB after ${first.ok} logins at the ` +
        `default hash cost, ${rssAfter} MiB with all (${results.idle.kibPerConnection as number} KiB per connection), ${settled?.rssMaxMiB ?? '-'} MiB ` +
        `${QUICK ? 15 : 30} s later; CPU idle ${after?.cpuPct ?? '-'}%`,
    );
  } catch (e) {
    results.idle = { devices: IDLE_N, error: e instanceof Error ? e.message : String(e) };
    log(`  idle scenario failed: ${String(results.idle.error)}`);
  } finally {
    sampler?.stop();
    if (loadgen?.connected) await ask(loadgen, { t: 'disconnect' }, 'disconnected', 60_000).catch(() => undefined);
    if (loadgen) await stopChild(loadgen);
    if (b) await stopBackhaul(b).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- backlog

async function scenarioBacklog(outBroker: Broker): Promise<void> {
  const k = 10;
  const rate = QUICK ? 1000 : 2000;
  const beforeMs = 3000;
  const downMs = QUICK ? 6000 : 20_000;
  const afterMs = QUICK ? 12_000 : 30_000;
  log(`\nBacklog: ${fmtInt(rate)} msg/s from ${k} devices; the output broker goes down for ${downMs / 1000} s, then comes back`);
  let b: Backhaul | undefined;
  let loadgen: ChildProcess | undefined;
  let sub: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  try {
    b = await startBackhaul(k, outBroker.url);
    sub = forkHelper('e2e-subscriber');
    await ask(sub, { t: 'subscribe', url: outBroker.url, topic: 'backhaul/#', clientId: 'bench-sub-backlog', clean: false }, 'subscribed', 15_000);
    loadgen = forkHelper('e2e-loadgen');
    await ask<ConnectResult>(loadgen, { t: 'connect', url: b.url, devices: b.devices, concurrency: 10, keepalive: 60, clientPrefix: 'bench-backlog-' }, 'connected', 60_000);
    sampler = new ProcSampler({ backhaul: b.child.pid, loadgen: loadgen.pid, subscriber: sub.pid, 'output broker': outBroker.child.pid }).start();
    const rig: Rig = { system: 'backhaul', k, loadgen, sub, sampler, sut: ['backhaul'], backhaul: b };
    await measure(rig, 'warm-up', 1000, WARM_MS);

    await ask(sub, { t: 'reset', since: nowMs() }, 'count', 10_000);
    const bh = b;
    const series: Array<{ t: number; backlog: number }> = [];
    const start = nowMs();
    const running = ask<RunResult>(loadgen, { t: 'run', rate, durationMs: beforeMs + downMs + afterMs, maxInflight: rate * 4, window: 0 }, 'ran', 600_000);
    let done = false;
    void running.finally(() => (done = true)).catch(() => undefined);
    const poll = (async () => {
      while (!done) {
        const n = (await backlogs(bh)).out;
        if (n !== undefined) series.push({ t: Math.round(nowMs() - start), backlog: n });
        await sleep(250);
      }
    })();
    await sleep(beforeMs);
    await ask(outBroker.child, { t: 'down' }, 'down', 10_000);
    const downAt = nowMs() - start;
    await sleep(downMs);
    await ask(outBroker.child, { t: 'up' }, 'up', 10_000);
    const upAt = nowMs() - start;
    const r = await running;
    await poll;
    const s = await ask<SubscriberStats>(sub, { t: 'wait', expected: r.acked, quietMs: 3000, timeoutMs: 120_000 }, 'stats', 150_000);

    const atUp = series.filter((p) => p.t <= upAt + 250).pop()?.backlog ?? 0;
    const peak = Math.max(0, ...series.map((p) => p.backlog));
    // Drained: the first sample after the broker came back with the backlog down to what one second of arrivals
    // keeps in flight in the steady state (well under 1 s worth of readings).
    const steady = Math.max(200, rate * 0.25);
    const drainedAt = series.find((p) => p.t > upAt && p.backlog <= steady)?.t;
    // The subscriber's timeline (deliveries per 250 ms) gives the delivery rate while draining.
    const bucket = 250;
    const fromB = Math.ceil(upAt / bucket);
    const toB = drainedAt !== undefined ? Math.floor(drainedAt / bucket) : s.timeline.length;
    // The sink's first delivery after the broker came back (its reconnect and retry delay), then the drain proper:
    // from that delivery until the backlog is down to the steady state.
    const firstB = s.timeline.findIndex((n, i) => i >= fromB && n > 0);
    const firstAfterUp = firstB >= 0 ? firstB * bucket : undefined;
    const deliveredWhileDraining = firstB >= 0 ? s.timeline.slice(firstB, toB).reduce((a, n) => a + n, 0) : 0;
    const drainSecs = drainedAt !== undefined && firstAfterUp !== undefined ? Math.max(bucket, drainedAt - firstAfterUp) / 1000 : undefined;
    const backlogAtFirst = series.filter((p) => firstAfterUp !== undefined && p.t <= firstAfterUp + bucket).pop()?.backlog ?? atUp;
    const cpu =
      firstAfterUp !== undefined && drainSecs !== undefined
        ? sampler.between(start + firstAfterUp, start + firstAfterUp + Math.max(1000, drainSecs * 1000)).backhaul
        : undefined;
    results.backlog = {
      devices: k,
      rate,
      downForMs: downMs,
      downAtMs: Math.round(downAt),
      upAtMs: Math.round(upAt),
      backlogAtUp: atUp,
      peakBacklog: peak,
      firstDeliveryAfterUpMs: firstAfterUp !== undefined ? Math.max(0, Math.round(firstAfterUp - upAt)) : null,
      backlogAtFirstDelivery: backlogAtFirst,
      drainMs: drainSecs !== undefined ? Math.round(drainSecs * 1000) : null,
      // Delivered meanwhile, less what kept arriving: how fast the backlog itself came down.
      netDrainPerSecond: drainSecs ? round1(deliveredWhileDraining / drainSecs - rate) : null,
      deliveryRateWhileDraining: drainSecs ? round1(deliveredWhileDraining / drainSecs) : null,
      // The delivery rate while draining as a multiple of the ingest rate (issue 12 asks ≥ 3×), and the net one.
      drainVsIngest: drainSecs ? round2(deliveredWhileDraining / drainSecs / rate) : null,
      netDrainVsIngest: drainSecs ? round2((deliveredWhileDraining / drainSecs - rate) / rate) : null,
      sent: r.sent,
      acked: r.acked,
      delivered: s.unique,
      lost: Math.max(0, r.acked - s.unique),
      duplicates: s.duplicates,
      ackLatency: r.ack,
      latency: s.latency,
      cpuWhileDrainingPct: cpu?.cpuPct,
      rssMaxMiB: cpu?.rssMaxMiB,
      backlogSeries: series,
    };
    const bl = results.backlog;
    log(
      `  backlog ${fmtInt(atUp)} when the broker came back (peak ${fmtInt(peak)}); ` +
        (drainSecs !== undefined
          ? `first delivery ${((firstAfterUp! - upAt) / 1000).toFixed(2)} s after, then drained in ${drainSecs.toFixed(1)} s: ${fmtInt(bl.netDrainPerSecond as number)}/s net, ${fmtInt(bl.deliveryRateWhileDraining as number)}/s delivered`
          : `not drained within ${afterMs / 1000} s`) +
        `; lost ${fmtInt(bl.lost as number)}, duplicates ${fmtInt(s.duplicates)}; PUBACK p99 ${fmtMs(r.ack.p99)} ms throughout`,
    );
  } catch (e) {
    results.backlog = { error: e instanceof Error ? e.message : String(e) };
    log(`  backlog scenario failed: ${String(results.backlog.error)}`);
  } finally {
    sampler?.stop();
    if (loadgen?.connected) await ask(loadgen, { t: 'disconnect' }, 'disconnected', 30_000).catch(() => undefined);
    if (loadgen) await stopChild(loadgen);
    if (sub?.connected) await ask(sub, { t: 'close' }, 'closed', 10_000).catch(() => undefined);
    if (sub) await stopChild(sub);
    if (b) await stopBackhaul(b).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- reconnect storm

/**
 * Limits of the embedded broker that the simulated devices would hit only because they all connect from one address
 * (127.0.0.1): raised to fit `n` devices in every Backhaul scenario. Each is set only where the broker input has that
 * option (its schema is asked, so the config stays valid on builds without it), and never below the option's
 * default. Everything else (the connect timeout, packet sizes) keeps its default: a real storm meets those too.
 */
function addressLimits(n: number): Record<string, unknown> {
  return {
    maxConnectionsPerAddress: 2 * n,
    // A device retrying may have its old connection open a moment beside its new one.
    maxConnections: 2 * n + 100,
    loginLimit: { burst: 2 * n, perSecond: 10 * n },
  };
}

/** Option names of the broker input that look like such limits, named in a note when none of the above sets them. */
const LIMIT_LIKE = /connection|login|rate|perAddress|burst|backoff/i;

function raised(wanted: unknown, dflt: unknown): unknown {
  if (typeof wanted === 'number') return typeof dflt === 'number' ? Math.max(wanted, dflt) : wanted;
  if (typeof wanted === 'object' && wanted !== null) {
    const d = typeof dflt === 'object' && dflt !== null ? (dflt as Record<string, unknown>) : {};
    return Object.fromEntries(Object.entries(wanted as Record<string, unknown>).map(([k, v]) => [k, raised(v, d[k])]));
  }
  return wanted;
}

/** The config with the address limits raised for `n` devices, and which options were set (and which looked like limits but were not). */
function withAddressLimits(cfg: ReturnType<typeof backhaulConfig>, n: number): { config: ReturnType<typeof backhaulConfig>; set: Record<string, unknown>; unset: string[] } {
  const props = (brokerInput.options as { properties?: Record<string, { default?: unknown }> }).properties ?? {};
  const set: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(addressLimits(n))) if (props[name]) set[name] = raised(v, props[name].default);
  const unset = Object.keys(props).filter((name) => LIMIT_LIKE.test(name) && !(name in set));
  return { config: { ...cfg, inputs: { ...cfg.inputs, devices: { ...cfg.inputs.devices, ...set } } }, set, unset };
}

/** --storm-set on top: NAME is an option of the broker input; a.b.c a path from the config's root. */
function withStormSet(cfg: object): object {
  const config = { ...(cfg as Record<string, unknown>) };
  for (const [path, v] of Object.entries(STORM_SET)) {
    const keys = path.includes('.') ? path.split('.') : ['inputs', 'devices', path];
    let at: Record<string, unknown> = config;
    for (const key of keys.slice(0, -1)) {
      const next = at[key];
      at = at[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? { ...(next as Record<string, unknown>) } : {};
    }
    at[keys[keys.length - 1]!] = v;
  }
  return config;
}

async function scenarioStorm(outBroker: Broker): Promise<void> {
  const n = STORM_N;
  // A device's MQTT client waits 30 s for its CONNACK (mqtt.js's default), then tries again.
  const deadlineMs = STORM_DEADLINE_MS;
  const connectTimeoutMs = STORM_TIMEOUT_MS;
  const retryMs = 1000;
  const storm = (url: string, devices: SimDevice[], prefix: string) => ({
    t: 'storm',
    url,
    devices,
    concurrency: STORM_CONCURRENCY,
    keepalive: 60,
    clientPrefix: prefix,
    connectTimeoutMs,
    retryMs,
    deadlineMs,
  });
  const figures = (r: StormResult, w: Record<string, ProcWindow>, sut: string): StormFigures => ({
    allConnectedMs: r.allConnectedMs,
    connected: r.connected,
    stormMs: Math.round(r.endedAt - r.startedAt),
    connectsPerSecond: round1((r.connected / Math.max(1, r.allConnectedMs ?? r.endedAt - r.startedAt)) * 1000),
    attempts: r.attempts,
    failedAttempts: r.failedAttempts,
    failures: r.failures,
    retriedDevices: r.retriedDevices,
    dropped: r.dropped,
    errors: r.errors,
    connectLatency: r.connectLatency,
    cpuPct: w[sut]?.cpuPct,
    loadgenCpuPct: w.loadgen?.cpuPct,
  });
  const summary = (f: StormFigures) =>
    `${fmtInt(f.connected)} of ${fmtInt(n)} connected` +
    (f.allConnectedMs !== null ? ` in ${(f.allConnectedMs / 1000).toFixed(1)} s (${fmtInt(f.connectsPerSecond)}/s)` : ` — not all within ${deadlineMs / 1000} s`) +
    `; ${fmtInt(f.attempts)} attempts, ${fmtInt(f.failedAttempts)} failed` +
    (f.failedAttempts > 0 ? ` (${Object.entries(f.failures).map(([k, v]) => `${k}: ${v}`).join(', ')})` : '') +
    `; CPU ${f.cpuPct ?? '-'}%, load generator ${f.loadgenCpuPct ?? '-'}%`;
  log(`\nReconnect storm: ${fmtInt(n)} registered devices, each with its own password, connect at once (at most ${fmtInt(STORM_CONCURRENCY)} attempts in flight)`);
  const res: StormReport = { devices: n, concurrency: STORM_CONCURRENCY, connectTimeoutMs, retryMs, deadlineMs };
  results.storm = res;
  let loadgen: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  // The load generator's own ceiling: the same storm against a bare aedes broker (no login, no work).
  let br: Broker | undefined;
  try {
    br = await startBroker();
    loadgen = forkHelper('e2e-loadgen');
    sampler = new ProcSampler({ aedes: br.child.pid, loadgen: loadgen.pid }).start();
    const r = await ask<StormResult>(loadgen, storm(br.url, devicesFor(n, false), 'bench-storm-aedes-'), 'stormed', deadlineMs + 120_000);
    sampler.sample();
    res.bareAedes = figures(r, sampler.between(r.startedAt, r.endedAt), 'aedes');
    log(`  bare aedes (the load generator's ceiling): ${summary(res.bareAedes)}`);
  } catch (e) {
    res.bareAedes = { error: e instanceof Error ? e.message : String(e) };
    log(`  storm against bare aedes failed: ${res.bareAedes.error}`);
  } finally {
    sampler?.stop();
    if (loadgen?.connected) await ask(loadgen, { t: 'disconnect' }, 'disconnected', 60_000).catch(() => undefined);
    if (loadgen) await stopChild(loadgen);
    if (br) await stopChild(br.child);
    loadgen = undefined;
    sampler = undefined;
  }

  let b: Backhaul | undefined;
  try {
    const t = nowMs();
    b = await startBackhaul(n, outBroker.url, {
      registry: async (dataDir) => {
        const st = await stormRegistry(dataDir, n, log);
        return {
          devices: st.devices,
          setup: { passwordHash: st.scheme, hashedNow: st.hashedNow, hashMs: st.hashMs, hashedFromCache: st.fromCache, credentialsCache: st.cacheFile, registryMs: st.registryMs },
        };
      },
      config: withStormSet,
    });
    res.setup = { ...b.setup, setupMs: Math.round(nowMs() - t) };
    res.brokerOptionsSet = { ...(JSON.parse(String(b.setup.brokerLimits ?? '{}')) as Record<string, unknown>), ...STORM_SET };
    const s = b.setup;
    log(
      `  setup: ${Number(s.hashedNow) > 0 ? `${fmtInt(Number(s.hashedNow))} passwords hashed in ${(Number(s.hashMs) / 1000).toFixed(1)} s, ` : ''}` +
        `${fmtInt(Number(s.hashedFromCache))} hashes from the cache; registry written in ${(Number(s.registryMs) / 1000).toFixed(1)} s; ` +
        `Backhaul started in ${(Number(s.startMs) / 1000).toFixed(1)} s`,
    );
    loadgen = forkHelper('e2e-loadgen');
    sampler = new ProcSampler({ backhaul: b.child.pid, loadgen: loadgen.pid }).start();
    await sleep(2000);
    const before = procTimes(b.child.pid);
    const r = await ask<StormResult>(loadgen, storm(b.url, b.devices, 'bench-storm-'), 'stormed', deadlineMs + 120_000);
    const atEnd = procTimes(b.child.pid);
    sampler.sample();
    await sleep(3000);
    const after = procTimes(b.child.pid);
    const w = sampler.between(r.startedAt, r.endedAt);
    const cpuSeconds = before && atEnd ? round2(atEnd.cpuSeconds - before.cpuSeconds) : undefined;
    res.backhaul = {
      ...figures(r, w, 'backhaul'),
      cpuSeconds,
      cpuMsPerConnected: cpuSeconds !== undefined && r.connected > 0 ? round1((cpuSeconds * 1000) / r.connected) : undefined,
      rssBeforeMiB: before?.rssMiB,
      rssPeakMiB: w.backhaul?.rssMaxMiB,
      rssAfterMiB: after?.rssMiB,
      timeline: r.timeline,
      loadAverage: loadAvg(),
    };
    const f = res.backhaul;
    log(`  Backhaul: ${summary(f)}; Backhaul CPU ${f.cpuSeconds ?? '-'} s (${f.cpuMsPerConnected ?? '-'} ms per device connected); RSS ${f.rssBeforeMiB ?? '-'} → ${f.rssAfterMiB ?? '-'} MiB`);
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    log(`  storm failed: ${res.error}`);
  } finally {
    sampler?.stop();
    if (loadgen?.connected) await ask(loadgen, { t: 'disconnect' }, 'disconnected', 60_000).catch(() => undefined);
    if (loadgen) await stopChild(loadgen);
    if (b) await stopBackhaul(b).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- profile

async function scenarioProfile(outBroker: Broker): Promise<void> {
  const k = 10;
  const rate = 5000;
  const dur = QUICK ? 5000 : 10_000;
  log(`\nProfile: Backhaul under --cpu-prof, ${fmtInt(rate)} msg/s from ${k} devices for ${dur / 1000} s`);
  const profDir = makeTempDir('backhaul-bench-prof-');
  let b: Backhaul | undefined;
  let loadgen: ChildProcess | undefined;
  let sub: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  let run: Run | undefined;
  try {
    b = await startBackhaul(k, outBroker.url, { profileDir: profDir });
    sub = forkHelper('e2e-subscriber');
    await ask(sub, { t: 'subscribe', url: outBroker.url, topic: 'backhaul/#', clientId: 'bench-sub-profile', clean: true }, 'subscribed', 15_000);
    loadgen = forkHelper('e2e-loadgen');
    await ask<ConnectResult>(loadgen, { t: 'connect', url: b.url, devices: b.devices, concurrency: 10, keepalive: 60, clientPrefix: 'bench-prof-' }, 'connected', 60_000);
    sampler = new ProcSampler({ backhaul: b.child.pid, loadgen: loadgen.pid, subscriber: sub.pid, 'output broker': outBroker.child.pid }).start();
    const rig: Rig = { system: 'backhaul', k, loadgen, sub, sampler, sut: ['backhaul'], backhaul: b };
    await measure(rig, 'warm-up', 1000, WARM_MS);
    run = await measure(rig, 'paced', rate, dur);
    log(`${runLine(run)} (profiled)`);
    await ask(loadgen, { t: 'disconnect' }, 'disconnected', 30_000).catch(() => undefined);
    await stopChild(b.child, 'SIGINT', 30_000); // the profile is written as the process exits
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('Backhaul wrote no .cpuprofile (did it exit normally?)');
    const summary = summariseProfile(join(profDir, file), 25);
    const keepDir = join(ROOT, 'bench', '.cache', 'profiles');
    mkdirSync(keepDir, { recursive: true });
    const saved = join(keepDir, `backhaul-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    copyFileSync(join(profDir, file), saved);
    results.profile = { ...summary, file: saved, offered: rate, run, savedAs: saved };
  } catch (e) {
    results.profile = { error: e instanceof Error ? e.message : String(e) };
    log(`  profile failed: ${results.profile.error}`);
  } finally {
    sampler?.stop();
    if (loadgen) await stopChild(loadgen);
    if (sub) await stopChild(sub);
    if (b) await stopBackhaul(b).catch(() => undefined);
    removeTempDir(profDir);
  }
}

// ---------------------------------------------------------------- report

function systemsTable(): string {
  const rows: string[][] = [
    ['system', 'K', 'load', 'sent/s', 'delivered/s', 'lost', 'dup', 'p50 ms', 'p99 ms', 'max ms', 'PUBACK p99', 'CPU %', 'RSS MiB', 'others CPU %', 'held'],
  ];
  for (const s of results.systems) {
    for (const r of s.runs) {
      if (r.kind === 'warm-up') continue;
      rows.push([
        SYSTEM_LABEL[r.system],
        fmtInt(r.k),
        r.kind === 'unpaced' ? 'unpaced' : `${fmtInt(r.offered)}${r.kind === 'search' ? ' (search)' : ''}`,
        fmtInt(r.sendRate),
        fmtInt(r.deliveredRate),
        fmtInt(r.lost),
        fmtInt(r.duplicates),
        fmtMs(r.latency.p50),
        fmtMs(r.latency.p99),
        fmtMs(r.latency.max),
        fmtMs(r.ack.p99),
        r.cpuPct.toFixed(0),
        r.rssMaxMiB.toFixed(0),
        r.othersCpuPct.toFixed(0),
        r.sustained ? 'yes' : `no: ${r.why ?? ''}`,
      ]);
    }
    if (s.error) rows.push([SYSTEM_LABEL[s.system], fmtInt(s.k), 'failed', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', s.error.split('\n')[0]!.slice(0, 80)]);
  }
  return table(rows);
}

function find(system: SystemName, k: number): SystemResult | undefined {
  return results.systems.find((s) => s.system === system && s.k === k && !s.error);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(2)}×` : '-';
}

/** The run that gave a system its highest lossless rate (the unpaced run, or the paced or search run that held). */
function runAtMax(s: SystemResult | undefined): Run | undefined {
  if (!s || s.maxLossless === undefined) return undefined;
  if (s.maxLosslessFrom === 'unpaced') return s.runs.find((r) => r.kind === 'unpaced');
  return s.runs.find((r) => (r.kind === 'paced' || r.kind === 'search') && r.sustained && r.offered === s.maxLossless);
}

function comparisonTable(): string {
  const rows: string[][] = [['K', 'system', 'highest lossless msg/s', 'unpaced msg/s', 'p99 @5k ms', 'RSS @10k MiB', 'Backhaul / it (lossless)', 'Backhaul / it (unpaced)']];
  for (const k of [...new Set([...KS, ...SLOW_DISK_KS])].sort((a, b) => a - b)) {
    const bh = find('backhaul', k);
    for (const system of ['backhaul', 'aedes', 'nodered', 'slowdisk'] as const) {
      const s = find(system, k);
      if (!s) continue;
      const at = (rate: number) => s.runs.find((r) => r.kind === 'paced' && r.offered === rate);
      rows.push([
        fmtInt(k),
        SYSTEM_LABEL[system],
        `${fmtInt(s.maxLossless)}${s.maxLosslessFrom === 'unpaced' ? ' (unpaced)' : ''}`,
        `${fmtInt(s.unpaced?.rate)}${s.unpaced && !s.unpaced.lossless ? ' (loss)' : ''}`,
        fmtMs(at(5000)?.latency.p99),
        at(10000) ? at(10000)!.rssMaxMiB.toFixed(0) : '-',
        system === 'backhaul' || system === 'slowdisk' ? '' : ratio(bh?.maxLossless, s.maxLossless),
        system === 'backhaul' || system === 'slowdisk' ? '' : ratio(bh?.unpaced?.rate, s.unpaced?.rate),
      ]);
    }
  }
  return table(rows);
}

function slowDiskTable(): string {
  const rows: string[][] = [
    ['slow disk', 'K', 'highest lossless msg/s', 'PUBACK p99 there', 'p99 there', 'unpaced msg/s', 'same K, normal disk', 'sync calls counted', 'syncs / frame'],
  ];
  for (const k of SLOW_DISK_KS) {
    const s = results.systems.find((x) => x.system === 'slowdisk' && x.k === k);
    if (!s) continue;
    if (s.error) {
      rows.push([`${SLOW_DISK_MS} ms/sync`, fmtInt(k), 'failed', '-', '-', '-', '-', '-', s.error.split('\n')[0]!.slice(0, 80)]);
      continue;
    }
    const at = runAtMax(s);
    const calls = s.syncCalls ?? {};
    const total = Object.values(calls).reduce((a, n) => a + n, 0);
    rows.push([
      `${SLOW_DISK_MS} ms/sync`,
      fmtInt(k),
      `${fmtInt(s.maxLossless)}${s.maxLosslessFrom === 'unpaced' ? ' (unpaced)' : ''}`,
      at ? `${fmtMs(at.ack.p99)} ms` : '-',
      at ? `${fmtMs(at.latency.p99)} ms` : '-',
      `${fmtInt(s.unpaced?.rate)}${s.unpaced && !s.unpaced.lossless ? ' (loss)' : ''}`,
      fmtInt(find('backhaul', k)?.maxLossless),
      s.syncCalls ? Object.entries(calls).map(([c, n]) => `${c} ${fmtInt(n)}`).join(', ') || 'none' : 'not read',
      s.framesAcked ? (total / s.framesAcked).toFixed(3) : '-',
    ]);
  }
  return table(rows);
}

function stormTable(st: StormReport): string {
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const row = (label: string, f: StormFigures, extra: string[]) => [
    label,
    fmtInt(st.devices),
    f.allConnectedMs === null ? `not all: ${fmtInt(f.connected)} in ${secs(f.stormMs)}` : secs(f.allConnectedMs),
    fmtInt(f.connectsPerSecond),
    fmtInt(f.attempts),
    `${fmtInt(f.failedAttempts)}${f.failedAttempts > 0 ? ` (${Object.entries(f.failures).map(([k, v]) => `${k}: ${fmtInt(v)}`).join(', ')})` : ''}`,
    fmtInt(f.retriedDevices),
    fmtInt(f.dropped),
    `${fmtMs(f.connectLatency.p50)} / ${fmtMs(f.connectLatency.p99)} ms`,
    ...extra,
    f.cpuPct !== undefined ? String(f.cpuPct) : '-',
    f.loadgenCpuPct !== undefined ? String(f.loadgenCpuPct) : '-',
  ];
  const rows = [
    ['storm', 'devices', 'all connected in', 'connects/s', 'attempts', 'failed attempts', 'retried devices', 'dropped', 'CONNACK p50 / p99', 'CPU', 'CPU / connected', 'RSS before → peak → after', 'CPU %', 'load gen CPU %'],
  ];
  const f = st.backhaul;
  if (f) {
    rows.push(
      row('Backhaul', f, [
        f.cpuSeconds !== undefined ? `${f.cpuSeconds} s` : '-',
        f.cpuMsPerConnected !== undefined ? `${f.cpuMsPerConnected} ms` : '-',
        `${f.rssBeforeMiB ?? '-'} → ${f.rssPeakMiB ?? '-'} → ${f.rssAfterMiB ?? '-'} MiB`,
      ]),
    );
  }
  const ae = st.bareAedes;
  if (ae && !('error' in ae)) rows.push(row('bare aedes (no login)', ae, ['-', '-', '-']));
  return table(rows);
}

function goals(): void {
  const g = results.goals;
  for (const k of KS) {
    const bh = find('backhaul', k);
    const nr = find('nodered', k);
    const ae = find('aedes', k);
    const at = (s: SystemResult | undefined, rate: number) => s?.runs.find((r) => r.kind === 'paced' && r.offered === rate);
    const r1 = bh?.maxLossless !== undefined && nr?.maxLossless ? bh.maxLossless / nr.maxLossless : undefined;
    g.push({
      goal: `K=${k}: lossless durable QoS 1 rate vs Node-RED's lossless rate`,
      target: '≥ 2.5×',
      measured: r1 !== undefined ? `${fmtInt(bh!.maxLossless)} / ${fmtInt(nr!.maxLossless)} = ${r1.toFixed(2)}×` : 'not measured',
      met: r1 !== undefined ? r1 >= 2.5 : null,
    });
    const r2 = bh?.maxLossless !== undefined && ae?.maxLossless ? bh.maxLossless / ae.maxLossless : undefined;
    g.push({
      goal: `K=${k}: lossless durable QoS 1 rate vs bare aedes' QoS 1 rate`,
      target: '≥ 0.8×',
      measured: r2 !== undefined ? `${fmtInt(bh!.maxLossless)} / ${fmtInt(ae!.maxLossless)} = ${r2.toFixed(2)}×` : 'not measured',
      met: r2 !== undefined ? r2 >= 0.8 : null,
    });
    const p = at(bh, 5000);
    g.push({
      goal: `K=${k}: p99 latency at 5k msg/s offered`,
      target: '≤ 15 ms',
      measured: p ? `${fmtMs(p.latency.p99)} ms${p.sustained ? '' : ' (load not sustained)'}` : 'not measured',
      met: p ? p.latency.p99 <= 15 && p.sustained : null,
    });
    const m = at(bh, 10000);
    g.push({
      goal: `K=${k}: RSS at 10k msg/s`,
      target: '≤ 150 MB',
      measured: m ? `${m.rssMaxMiB.toFixed(0)} MiB peak${m.sustained ? '' : ' (load not sustained)'}` : 'not measured',
      met: m ? m.rssMaxMiB <= 150 : null,
    });
  }
  const idle = results.idle as { devices?: number; connected?: number; rssConnectedMiB?: number; rssSettledMiB?: number } | undefined;
  const full = idle?.devices === 10_000 && idle.connected === 10_000;
  const idleRss = idle?.rssSettledMiB ?? idle?.rssConnectedMiB;
  g.push({
    goal: '10,000 idle connected devices: RSS',
    target: '≤ 250 MB',
    measured:
      idleRss !== undefined && idle
        ? `${idleRss.toFixed(0)} MiB${idle.rssSettledMiB !== undefined ? ' settled' : ''} with ${fmtInt(idle.connected)} of ${fmtInt(idle.devices)}${full ? '' : ' (not the full 10,000)'}`
        : 'not measured',
    met: idleRss !== undefined && full ? idleRss <= 250 : null,
  });
  // Issue 12's figures for the slow disk, the storm and the outage.
  const sd = results.systems.find((s) => s.system === 'slowdisk' && s.k === 10 && !s.error);
  const sdAsked = SLOW_DISK_MS === 10;
  g.push({
    goal: 'slow disk (10 ms per sync), K=10: lossless rate',
    target: '≥ 2,000 msg/s',
    measured: sd ? `${fmtInt(sd.maxLossless)} msg/s at ${SLOW_DISK_MS} ms per sync${sdAsked ? '' : ' (not 10 ms)'}` : 'not measured',
    met: sd?.maxLossless !== undefined && sdAsked ? sd.maxLossless >= 2000 : null,
  });
  const sf = results.storm?.backhaul;
  const stFull = results.storm?.devices === 10_000 && sf !== undefined;
  g.push({
    goal: '10,000 registered devices reconnecting at once: all connected',
    target: '≤ 20 s',
    measured: sf
      ? `${sf.allConnectedMs !== null ? `${(sf.allConnectedMs / 1000).toFixed(1)} s` : `not all: ${fmtInt(sf.connected)} in ${(sf.stormMs / 1000).toFixed(0)} s`} for ${fmtInt(results.storm?.devices)}${stFull ? '' : ' (not the full 10,000)'}`
      : 'not measured',
    met: stFull ? sf.allConnectedMs !== null && sf.allConnectedMs <= 20_000 : null,
  });
  const bl = results.backlog as { rate?: number; downForMs?: number; drainVsIngest?: number | null; lost?: number; error?: string } | undefined;
  const blFull = bl?.rate === 2000 && bl.downForMs === 20_000;
  g.push({
    goal: 'a 20 s sink outage at 2,000 msg/s: drain rate vs ingest, loss',
    target: '≥ 3×, 0 lost',
    measured:
      bl && bl.error === undefined && bl.lost !== undefined
        ? `${bl.drainVsIngest != null ? `${bl.drainVsIngest.toFixed(2)}×` : 'not drained'}, ${fmtInt(bl.lost)} lost${blFull ? '' : ` (${fmtInt(bl.rate)} msg/s, ${(bl.downForMs ?? 0) / 1000} s)`}`
        : 'not measured',
    met: blFull && bl.drainVsIngest !== undefined && bl.lost !== undefined ? bl.drainVsIngest !== null && bl.drainVsIngest >= 3 && bl.lost === 0 : null,
  });
}

function report(): string {
  const out: string[] = [];
  const m = results.machine;
  const git = results.git;
  out.push(`End-to-end benchmark (${results.mode}) — ${results.date} — ${git.sha}${git.dirty ? ' (uncommitted changes)' : ''}`);
  out.push(`${m.cpu}, ${m.cores} cores, ${m.platform}, Node ${m.node}, temp files on ${m.tempFileSystem}, load ${m.loadAverageAtStart} at start, ${loadAvg()} at the end`);
  out.push(
    `Every process runs on these ${m.cores} cores: the system under test competes with the load generator, the subscriber and the output broker ` +
      '("others CPU %"). CPU % is of one core. Latency: frame sent → received by the subscriber; PUBACK p99: frame sent → acknowledged.',
  );
  out.push(`Frame (${results.frameExample.length} B): ${results.frameExample}`);
  if (args['backhaul-bin']) out.push(`Backhaul: ${BIN}`);
  if (Object.keys(BACKHAUL_ENV).length > 0) out.push(`Backhaul ran with ${Object.entries(BACKHAUL_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const nr = results.nodeRed;
  if (nr && 'skipped' in nr) out.push(`Node-RED: skipped — ${nr.skipped}`);
  else if (nr) out.push(`Node-RED ${nr.version} on Node ${nr.node} (${nr.dir}); Backhaul and the others on Node ${m.node}`);
  out.push('');
  if (results.systems.length > 0) {
    out.push(systemsTable());
    out.push('');
    out.push(comparisonTable());
    out.push('');
    const setupRows = [['system', 'K', 'publishers connected in', 'logins/s', 'devices import', 'system start', 'RSS started', 'RSS publishers in']];
    for (const s of results.systems) {
      setupRows.push([
        SYSTEM_LABEL[s.system],
        fmtInt(s.k),
        s.setup.connectMs !== undefined ? `${fmtInt(Number(s.setup.connectMs))} ms` : '-',
        s.setup.connectsPerSecond !== undefined ? fmtInt(Number(s.setup.connectsPerSecond)) : '-',
        s.setup.importMs !== undefined ? `${fmtInt(Number(s.setup.importMs))} ms` : '-',
        s.setup.startMs !== undefined ? `${fmtInt(Number(s.setup.startMs))} ms` : '-',
        s.setup.rssAfterStartMiB !== undefined ? `${String(s.setup.rssAfterStartMiB)} MiB` : '-',
        s.setup.rssAtRestMiB !== undefined ? `${String(s.setup.rssAtRestMiB)} MiB` : '-',
      ]);
    }
    out.push(table(setupRows));
    out.push('');
  }
  const sd = results.slowDisk;
  if (sd && 'skipped' in sd) {
    out.push(`Slow disk: skipped — ${sd.skipped}`);
    out.push('');
  } else if (sd) {
    out.push(
      `Slow disk: Backhaul under ${sd.strace} (strace -D -f --seccomp-bpf), every ${sd.calls.join('/')} of its process delayed ${sd.delayMs} ms; ` +
        `probe: write + fdatasync ${sd.untraced.fdatasyncMs} → ${sd.traced.fdatasyncMs} ms, write + fsync ${sd.untraced.fsyncMs} → ${sd.traced.fsyncMs} ms`,
    );
    out.push(slowDiskTable());
    out.push('');
  }
  const idle = results.idle as Record<string, number | string | undefined> | undefined;
  if (idle) {
    if (idle.error !== undefined) out.push(`Idle devices: failed — ${String(idle.error)}`);
    else {
      out.push(
        table([
          [
            'idle devices',
            'connected',
            'RSS before',
            `after the first ${String(idle.defaultHashLogins)} logins`,
            'RSS all connected',
            `${String(idle.settledAfterMs !== undefined ? Number(idle.settledAfterMs) / 1000 : '-')} s later (settled)`,
            'KiB / connection',
            'logins/s',
            'CPU idle',
          ],
          [
            fmtInt(Number(idle.devices)),
            fmtInt(Number(idle.connected)),
            `${String(idle.rssBeforeMiB)} MiB`,
            `${String(idle.rssAfterDefaultHashLoginsMiB)} MiB`,
            `${String(idle.rssConnectedMiB)} MiB`,
            `${String(idle.rssSettledMiB ?? '-')} MiB`,
            String(idle.kibPerConnection),
            fmtInt(Number(idle.connectsPerSecond)),
            `${String(idle.cpuIdleConnectedPct ?? '-')} %`,
          ],
        ]),
      );
    }
    out.push('');
  }
  const bl = results.backlog as Record<string, number | string | null | undefined> | undefined;
  if (bl) {
    if (bl.error !== undefined) out.push(`Backlog: failed — ${String(bl.error)}`);
    else {
      out.push(
        table([
          ['backlog', 'broker down', 'backlog at return', 'first delivery after', 'then drained in', 'net drain/s', 'delivered/s while draining', '× ingest', 'lost', 'dup', 'PUBACK p99', 'CPU % draining'],
          [
            `${fmtInt(Number(bl.rate))} msg/s, K=${String(bl.devices)}`,
            `${Number(bl.downForMs) / 1000} s`,
            fmtInt(Number(bl.backlogAtUp)),
            bl.firstDeliveryAfterUpMs === null ? '-' : `${(Number(bl.firstDeliveryAfterUpMs) / 1000).toFixed(2)} s`,
            bl.drainMs === null ? 'not drained' : `${(Number(bl.drainMs) / 1000).toFixed(1)} s`,
            fmtInt(bl.netDrainPerSecond === null ? undefined : Number(bl.netDrainPerSecond)),
            fmtInt(bl.deliveryRateWhileDraining === null ? undefined : Number(bl.deliveryRateWhileDraining)),
            bl.drainVsIngest === null || bl.drainVsIngest === undefined ? '-' : `${Number(bl.drainVsIngest).toFixed(2)}×`,
            fmtInt(Number(bl.lost)),
            fmtInt(Number(bl.duplicates)),
            `${fmtMs((results.backlog as { ackLatency: Percentiles }).ackLatency.p99)} ms`,
            String(bl.cpuWhileDrainingPct ?? '-'),
          ],
        ]),
      );
    }
    out.push('');
  }
  const st = results.storm;
  if (st) {
    const su = st.setup ?? {};
    const set = Object.entries(st.brokerOptionsSet ?? {});
    if (st.setup) {
      out.push(
        `Reconnect storm: ${fmtInt(st.devices)} registered devices, each its own password (${String(su.passwordHash)}), connect at once; ` +
          `at most ${fmtInt(st.concurrency)} attempts in flight, ${st.connectTimeoutMs / 1000} s to CONNACK, retry after ${st.retryMs / 1000}–${(2 * st.retryMs) / 1000} s. ` +
          `Setup (not in the figures): ${Number(su.hashedNow) > 0 ? `${fmtInt(Number(su.hashedNow))} passwords hashed in ${(Number(su.hashMs) / 1000).toFixed(1)} s, ` : ''}` +
          `${fmtInt(Number(su.hashedFromCache))} hashes from bench/.cache/storm, registry written in ${(Number(su.registryMs) / 1000).toFixed(1)} s, ` +
          `Backhaul started in ${(Number(su.startMs) / 1000).toFixed(1)} s. Broker limits raised: ${set.length > 0 ? set.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') : 'none (this build has none of them)'}.`,
      );
    }
    out.push(stormTable(st));
    if (st.error !== undefined) out.push(`Reconnect storm: failed — ${st.error}`);
    if (st.bareAedes && 'error' in st.bareAedes) out.push(`Reconnect storm against bare aedes: failed — ${st.bareAedes.error}`);
    out.push('');
  }
  goals();
  out.push('Team goals (figures to report against, not pass/fail tests):');
  out.push(
    table([
      ['goal', 'target', 'measured', 'where Backhaul stands'],
      ...results.goals.map((g) => [g.goal, g.target, g.measured, g.met === null ? 'not measured' : g.met ? 'meets it' : 'short of it']),
    ]),
  );
  const p = results.profile;
  if (p) {
    out.push('');
    if ('error' in p) out.push(`Profile: failed — ${p.error}`);
    else out.push(`Profile of Backhaul at ${fmtInt(p.offered)} msg/s (whole process life: start, warm-up, the run, stop):\n${formatProfile(p)}`);
  }
  for (const n of results.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function prepareNodeRed(): Promise<NodeRed | undefined> {
  if (!SCENARIOS.has('nodered')) return undefined;
  if (args['no-node-red']) {
    results.nodeRed = { skipped: '--no-node-red' };
    return undefined;
  }
  const found = findNodeRed(NODE_RED_DIR);
  if (found) {
    results.nodeRed = { version: found.version, node: found.nodeVersion, dir: found.dir };
    return found;
  }
  if (QUICK) {
    results.nodeRed = { skipped: `quick mode, and Node-RED is not installed in ${NODE_RED_DIR} (a full run installs it there)` };
    log(`Node-RED: ${results.nodeRed.skipped}`);
    return undefined;
  }
  log(`Installing Node-RED 5 and Node 22 into ${NODE_RED_DIR} (npm install --prefix; not a dependency of Backhaul)…`);
  const t = nowMs();
  const got = await installNodeRed(NODE_RED_DIR);
  if ('error' in got) {
    results.nodeRed = { skipped: got.error };
    log(`Node-RED: skipped — ${got.error}`);
    return undefined;
  }
  results.nodeRed = { version: got.version, node: got.nodeVersion, dir: got.dir, installedMs: Math.round(nowMs() - t) };
  log(`  Node-RED ${got.version} with Node ${got.nodeVersion} installed in ${Math.round((nowMs() - t) / 1000)} s`);
  return got;
}

async function main(): Promise<void> {
  installCleanup();
  const started = nowMs();
  log(
    `End-to-end benchmark, ${QUICK ? 'quick' : 'full'} run: scenarios ${[...SCENARIOS].join(', ')}; K ${KS.join(', ')}; ` +
      `loads ${LOADS.join(', ')} msg/s + unpaced; ${DURATION / 1000} s per run` +
      (SCENARIOS.has('slowdisk') ? `; slow disk ${SLOW_DISK_MS} ms/sync, K ${SLOW_DISK_KS.join(', ')}, loads ${SLOW_DISK_LOADS.join(', ')}` : '') +
      (SCENARIOS.has('storm') ? `; storm ${fmtInt(STORM_N)} devices` : '') +
      `; load average ${loadAvg()}`,
  );
  const nodeRed = await prepareNodeRed();
  const outBroker = await startBroker();
  try {
    for (const k of KS) {
      for (const system of ['backhaul', 'aedes', 'nodered'] as const) {
        if (!SCENARIOS.has(system) || (system === 'nodered' && !nodeRed)) continue;
        await scenarioSystem(system, k, outBroker, nodeRed);
      }
    }
    if (SCENARIOS.has('slowdisk')) await scenarioSlowDisk(outBroker);
    if (SCENARIOS.has('idle')) await scenarioIdle(outBroker);
    if (SCENARIOS.has('backlog')) await scenarioBacklog(outBroker);
    if (SCENARIOS.has('storm')) await scenarioStorm(outBroker);
    if (SCENARIOS.has('profile')) await scenarioProfile(outBroker);
  } finally {
    await stopChild(outBroker.child);
  }
  results.notes.push(`benchmark took ${Math.round((nowMs() - started) / 1000)} s`);
  const text = report();
  process.stdout.write(`\n${text}\n`);
  const file = args.out ?? join(ROOT, 'bench', 'results', `${results.date.slice(0, 10)}-${results.git.sha}${QUICK ? '-quick' : ''}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nraw results: ${file}\n`);

  const after = (what: string, file: string, argv: string[] = []) => {
    process.stdout.write(`\n${what}, as part of the ${QUICK ? 'quick' : 'full'} run:\n\n`);
    const c = spawnTracked(process.execPath, [join(ROOT, 'dist', 'bench', file), ...argv], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    return new Promise<void>((resolve) => c.once('exit', () => resolve()));
  };
  if (!QUICK && !args['no-outbox'] && args.only === undefined) await after('The outbox benchmark (npm run bench:outbox)', 'outbox.js');
  if (!args['no-lorawan'] && args.only === undefined) {
    await after('The codec benchmark (npm run bench:codecs)', 'codecs.js');
    await after('The LoRaWAN whole-path benchmark (npm run bench:lorawan)', 'lorawan.js', QUICK ? ['--quick'] : []);
  }
}

await main();

// LoRaWAN whole-path benchmark (issue 15): what a ChirpStack uplink whose bytes a payload codec decodes costs
// Backhaul, end to end, beside a plain JSON reading of the same values. A real Backhaul (`bin/backhaul.js start`)
// reads an `mqtt` input on a bare aedes broker the benchmark starts, routes every reading to one durable sink (an
// mqtt sink to the same broker, outbox `sync` at its default) and the benchmark counts what comes out there.
//
//   run A (plain JSON)  sensors/<devEui>/up  {"device":"…","seq":17,"temperature":21.5,"humidity":45,"battery":3.012}
//                       through the `json` decoder (device, seq and the three values mapped)
//   run B (LoRaWAN)     application/<appId>/device/<devEui>/event/up, a ChirpStack v4 uplink (JSON marshaler) with
//                       `data` (5 raw bytes, base64) and no `object`: the `chirpstack` decoder hands the bytes on, the
//                       device gate admits the uplink (fCnt checked), and the device's codec (env-sensor.js in its
//                       QuickJS sandbox, named after the device type `lorawan-sensor`) turns them into the same values
//
//   run C (--object)    as B, but with `object` (the values the network server's codec decoded) beside `data`: the
//                       uplink needs no codec in Backhaul, so B against C is the codec's share
//
// Both runs: the same devices (unknown at first, registered on first sight: `devices.unknown` at its default,
// `register`), the same count, the same paced rate from one publisher (as a network server's integration publishes),
// a warm-up first (devices registered, code warm), then CPU time of Backhaul's process (user + system, all threads,
// /proc/<pid>/stat) from the first measured publish until the last reading has arrived at the sink's subscriber.
// The runs alternate A, B, A, B, … (--repeat), each in a fresh Backhaul; the table gives the medians. Not a test:
// nothing here asserts a figure. The goal (issue 15): B costs at most 2× A.
//
//   npm run bench:lorawan                (builds first; also part of npm run bench)
//   node dist/bench/lorawan.js --uplinks 20000 --rate 500 --repeat 3
//   node dist/bench/lorawan.js --quick
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type MqttClient } from 'mqtt';
import type { ChildProcess } from 'node:child_process';
import {
  expect,
  fmtInt,
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
  percentiles,
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
  type Percentiles,
} from './e2e-lib.js';
import { fetchStatus } from '../src/runtime/control.js';

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    uplinks: { type: 'string' },
    rate: { type: 'string' },
    devices: { type: 'string' },
    warmup: { type: 'string' },
    repeat: { type: 'string' },
    radio: { type: 'boolean', default: false },
    object: { type: 'boolean', default: false },
    historian: { type: 'boolean', default: false },
    'idle-ms': { type: 'string' },
    'backhaul-bin': { type: 'string' },
    'cpu-prof': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const HELP = `node dist/bench/lorawan.js [options]      (npm run bench:lorawan -- [options] builds first)
  --quick          4,000 uplinks per run, 1,000 warm-up, one pair of runs (about half a minute)
  --uplinks N      measured readings per run (default 20000; quick 4000)
  --rate R         paced rate, msg/s, the same for both runs (default 500: below what the mqtt input takes,
                   one message made durable at a time, about 1,000/s on the 2-core machine)
  --devices D      devices the readings are spread over, in turn (default 50)
  --warmup W       readings published (and waited for) before each measured run (default 2000; quick 1000)
  --repeat R       pairs of runs, A then B, each in a fresh Backhaul; the table shows medians (default 3; quick 1)
  --object         also a run C per pair: ChirpStack uplinks the network server decoded (\`object\` with the same
                   values beside \`data\`, as ChirpStack sends them when its device profile has a codec), so
                   Backhaul's codec does not run: B / C is the codec's share, C / A the format's and device type's
  --radio          run B's (and C's) decoder with radio: true (rssi, snr, gateways, sf, fCnt, fPort kept as values)
  --historian      also route to the sqlite historian (both runs); the run ends once its outbox is empty too
  --idle-ms MS     Backhaul's idle CPU is sampled this long before each measured run (default 2000)
  --backhaul-bin F the bin/backhaul.js to run (default this checkout's)
  --cpu-prof DIR   run each Backhaul under node --cpu-prof, profiles written to DIR (summarise one with
                   node dist/bench/e2e-profile.js FILE.cpuprofile); the profiler's own cost is in the figures
  --out FILE       results file (default bench/results/lorawan-<date>-<git sha>[-quick].json)
`;
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function num(v: string | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x <= 0) {
    process.stderr.write(`--${what} wants a positive integer, not ${v}\n`);
    process.exit(2);
  }
  return x;
}

const QUICK = args.quick ?? false;
const N = num(args.uplinks, QUICK ? 4000 : 20_000, 'uplinks');
const RATE = num(args.rate, 500, 'rate');
const DEVICES = num(args.devices, 50, 'devices');
const WARMUP = num(args.warmup, QUICK ? 1000 : 2000, 'warmup');
const REPEAT = num(args.repeat, QUICK ? 1 : 3, 'repeat');
const IDLE_MS = num(args['idle-ms'], 2000, 'idle-ms');
const RADIO = args.radio ?? false;
const HISTORIAN = args.historian ?? false;
const CPU_PROF = args['cpu-prof'] !== undefined ? resolve(args['cpu-prof']) : undefined;
const BIN = args['backhaul-bin'] ? resolve(args['backhaul-bin']) : join(ROOT, 'bin', 'backhaul.js');
const CODEC = join(ROOT, 'test', 'fixtures', 'codecs', 'env-sensor.js');
/** The ChirpStack application the uplinks come from (topic and deviceInfo). */
const APP_ID = '17c82e96-be03-4f38-aef3-f83d48582d97';
/** After the last publish, how long the sink may go without a new reading before the run gives up on the rest. */
const STALL_MS = 15_000;

const log = (s: string) => process.stderr.write(`${s}\n`);

/** `object`: with --object, a ChirpStack uplink the network server decoded (`object`, no codec): B's cost less the codec. */
type RunKind = 'json' | 'lorawan' | 'object';
const LABEL: Record<RunKind, string> = { json: 'A: plain JSON (json decoder)', lorawan: 'B: ChirpStack uplink + codec', object: 'C: ChirpStack uplink, NS-decoded' };
const SHORT: Record<RunKind, string> = { json: 'A json', lorawan: 'B lorawan', object: 'C object' };
const KINDS: readonly RunKind[] = args.object ? ['json', 'lorawan', 'object'] : ['json', 'lorawan'];

// ---------------------------------------------------------------- devices and payloads

/** DevEUIs: 16 lower-case hex digits, the id kind LoRaWAN devices have. Run A uses the same ids. */
const EUIS = Array.from({ length: DEVICES }, (_, i) => `70b3d57ed0${(0x1000000 + i).toString(16).slice(1)}`);

/** The i-th reading's values, as the codec decodes them from its bytes and as run A sends them. */
function sample(i: number): { t: number; h: number; mv: number } {
  return { t: 1800 + ((i * 7) % 700) - (i % 13 === 0 ? 2500 : 0), h: 60 + (i % 120), mv: 2900 + (i % 300) };
}

/** env-sensor.js's uplink: temperature int16 (0.01 °C), humidity uint8 (0.5 %RH), battery uint16 (mV), fPort 1. */
function bytesOf(s: { t: number; h: number; mv: number }): Buffer {
  const b = Buffer.alloc(5);
  b.writeInt16BE(s.t, 0);
  b.writeUInt8(s.h, 2);
  b.writeUInt16BE(s.mv, 3);
  return b;
}

function valuesOf(s: { t: number; h: number; mv: number }): { temperature: number; humidity: number; battery: number } {
  return { temperature: s.t / 100, humidity: s.h / 2, battery: s.mv / 1000 };
}

/** A ChirpStack v4 `up` event as its JSON marshaler writes it (test/fixtures/lorawan/chirpstack-v4-up.json), no `object`. */
function chirpstackUp(eui: string, fCnt: number, i: number, decoded = false): string {
  return JSON.stringify({
    deduplicationId: randomUUID(),
    time: new Date().toISOString(),
    deviceInfo: {
      tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242',
      tenantName: 'ChirpStack',
      applicationId: APP_ID,
      applicationName: 'Bench application',
      deviceProfileId: '14855bf7-d10d-4aee-b618-ebfcb64dc7ad',
      deviceProfileName: 'env-sensor',
      deviceName: `env ${eui.slice(-4)}`,
      devEui: eui,
      tags: { building: 'b1' },
    },
    devAddr: `0018${eui.slice(-4)}`,
    dr: 5,
    fPort: 1,
    fCnt,
    ...(decoded ? { data: bytesOf(sample(i)).toString('base64'), object: valuesOf(sample(i)) } : { data: bytesOf(sample(i)).toString('base64') }),
    rxInfo: [
      {
        gatewayId: '0016c001f153a14c',
        uplinkId: (i * 2654435761) >>> 0,
        rssi: -60 - (i % 50),
        snr: 10.5 - (i % 20) / 2,
        context: 'E3OWOQ==',
        metadata: { region_name: 'eu868', region_common_name: 'EU868' },
      },
    ],
    txInfo: { frequency: 867_100_000, modulation: { lora: { bandwidth: 125_000, spreadingFactor: 7, codeRate: 'CR_4_5' } } },
  });
}

function jsonReading(eui: string, seq: number, i: number): string {
  return JSON.stringify({ device: eui, seq, ...valuesOf(sample(i)) });
}

// ---------------------------------------------------------------- Backhaul

function backhaulConfig(kind: RunKind, brokerUrl: string): object {
  const input =
    kind === 'json'
      ? {
          type: 'mqtt',
          url: brokerUrl,
          topics: ['sensors/+/up'],
          decoder: { type: 'json', device: 'device', seq: 'seq', values: { temperature: 'temperature', humidity: 'humidity', battery: 'battery' } },
        }
      : {
          type: 'mqtt',
          url: brokerUrl,
          topics: ['application/+/device/+/event/up'],
          decoder: RADIO ? { type: 'chirpstack', radio: true } : { type: 'chirpstack' },
        };
  return {
    data: './data',
    log: { level: 'info' },
    // The default, written out: devices seen for the first time are registered (INIT) and their readings admitted.
    devices: { unknown: 'register' },
    // Both runs load the codec (so both pay for the sandbox at start); only run B's devices are lorawan-sensors.
    codecs: { 'lorawan-sensor': CODEC },
    inputs: { uplinks: input },
    sinks: {
      out: { type: 'mqtt', url: brokerUrl, topic: 'backhaul/{device}', qos: 1 },
      ...(HISTORIAN ? { history: { type: 'sqlite' } } : {}),
    },
    routes: [{ name: 'all', to: HISTORIAN ? ['out', 'history'] : ['out'] }],
  };
}

interface Backhaul {
  readonly child: ChildProcess;
  readonly out: LineWatcher;
  readonly dir: string;
  readonly dataDir: string;
  readonly startMs: number;
}

async function startBackhaul(kind: RunKind, brokerUrl: string): Promise<Backhaul> {
  const dir = makeTempDir('backhaul-bench-lorawan-');
  const cfg = join(dir, 'backhaul.json');
  writeFileSync(cfg, JSON.stringify(backhaulConfig(kind, brokerUrl), null, 2));
  const t = nowMs();
  const child = spawnTracked(process.execPath, [...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []), BIN, 'start', '-c', cfg], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const out = new LineWatcher(child);
  try {
    await out.waitFor(/backhaul running/, 60_000);
  } catch (e) {
    await stopChild(child, 'SIGKILL', 1000);
    removeTempDir(dir);
    throw e;
  }
  return { child, out, dir, dataDir: join(dir, 'data'), startMs: Math.round(nowMs() - t) };
}

async function stopBackhaul(b: Backhaul): Promise<void> {
  await stopChild(b.child, 'SIGINT', 30_000);
  removeTempDir(b.dir);
}

async function backlogs(b: Backhaul): Promise<Record<string, number>> {
  const s = await fetchStatus(b.dataDir, 5000).catch(() => undefined);
  const out: Record<string, number> = {};
  for (const sink of s?.sinks ?? []) out[sink.id] = sink.backlog;
  return out;
}

// ---------------------------------------------------------------- broker, publisher, subscriber

async function startBroker(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = forkHelper('e2e-broker', ['--port', String(port)]);
  await expect<Extract<BrokerReply, { t: 'ready' }>>(child, 'ready', 15_000);
  return { child, url: `mqtt://127.0.0.1:${port}` };
}

function mqttClient(url: string, clientId: string): Promise<MqttClient> {
  return new Promise<MqttClient>((res, rej) => {
    const c = connect(url, { clientId, clean: true, reconnectPeriod: 0, protocolVersion: 4, keepalive: 60 });
    c.once('connect', () => res(c));
    c.once('error', rej);
  });
}

/** Counts the distinct readings (device + seq) arriving at the sink's topics, and how late each is. */
class Sink {
  private seen = new Set<string>();
  private sentAt = new Map<string, number>();
  private latencies: number[] = [];
  duplicates = 0;
  foreign = 0;
  lastAt = 0;
  example: unknown;

  constructor(readonly client: MqttClient) {
    client.on('message', (_topic, payload) => this.onMessage(payload));
  }

  /** A new run: forget what came before, expect these keys. */
  reset(): void {
    this.seen = new Set();
    this.sentAt = new Map();
    this.latencies = [];
    this.duplicates = 0;
    this.foreign = 0;
    this.lastAt = 0;
    this.example = undefined;
  }

  sent(key: string, at: number): void {
    this.sentAt.set(key, at);
  }

  get count(): number {
    return this.seen.size;
  }

  latency(): Percentiles {
    return percentiles(this.latencies);
  }

  private onMessage(payload: Buffer): void {
    const now = nowMs();
    let o: { device?: unknown; seq?: unknown };
    try {
      o = JSON.parse(payload.toString('utf8')) as { device?: unknown; seq?: unknown };
    } catch {
      this.foreign++;
      return;
    }
    if (typeof o.device !== 'string' || typeof o.seq !== 'number') {
      this.foreign++; // an event (device.unknown), not a reading
      return;
    }
    const key = `${o.device}:${o.seq}`;
    const at = this.sentAt.get(key);
    if (at === undefined) {
      this.foreign++;
      return;
    }
    if (this.seen.has(key)) {
      this.duplicates++;
      return;
    }
    this.seen.add(key);
    this.latencies.push(now - at);
    this.lastAt = now;
    this.example ??= o;
  }
}

interface Published {
  sent: number;
  failed: number;
  startedAt: number;
  endedAt: number;
  sendRate: number;
}

/**
 * Publish `count` messages at `rate` per second (checked every millisecond), QoS 1, from one client, the devices in
 * turn; `fcnt` holds each device's next frame counter (run A uses it as `seq`).
 */
async function publish(pub: MqttClient, sink: Sink, kind: RunKind, count: number, rate: number, fcnt: number[], from: number): Promise<Published> {
  let sent = 0;
  let failed = 0;
  let acked = 0;
  const startedAt = nowMs();
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((nowMs() - startedAt) / 1000) * rate) + 1);
      while (sent < due) {
        const i = from + sent;
        const d = i % DEVICES;
        const eui = EUIS[d]!;
        const seq = fcnt[d]!++;
        const topic = kind === 'json' ? `sensors/${eui}/up` : `application/${APP_ID}/device/${eui}/event/up`;
        const body = kind === 'json' ? jsonReading(eui, seq, i) : chirpstackUp(eui, seq, i, kind === 'object');
        sink.sent(`${eui}:${seq}`, nowMs());
        sent++;
        pub.publish(topic, body, { qos: 1 }, (err) => {
          if (err) failed++;
          if (++acked === count) done();
        });
      }
      if (sent < count) setTimeout(tick, 1);
    };
    tick();
  });
  const endedAt = nowMs();
  return { sent, failed, startedAt, endedAt, sendRate: round1((sent / Math.max(1, endedAt - startedAt)) * 1000) };
}

/** Wait until `expected` distinct readings arrived (and, with the historian, every outbox is empty), or a stall. */
async function arrival(sink: Sink, b: Backhaul, expected: number): Promise<{ arrived: number; stalled: boolean }> {
  let last = sink.count;
  let progressAt = nowMs();
  while (sink.count < expected) {
    if (sink.count !== last) {
      last = sink.count;
      progressAt = nowMs();
    } else if (nowMs() - progressAt > STALL_MS) {
      return { arrived: sink.count, stalled: true };
    }
    await sleep(2);
  }
  if (HISTORIAN) {
    const t = nowMs();
    for (;;) {
      const bl = await backlogs(b);
      if (Object.values(bl).every((n) => n === 0) || nowMs() - t > 120_000) break;
      await sleep(20);
    }
  }
  return { arrived: sink.count, stalled: false };
}

// ---------------------------------------------------------------- one run

interface Run {
  kind: RunKind;
  pair: number;
  offered: number;
  sendRate: number;
  uplinks: number;
  published: number;
  publishFailed: number;
  arrived: number;
  allArrived: boolean;
  duplicates: number;
  /** First measured publish → last reading seen at the sink (with the historian: → its outbox empty), ms. */
  windowMs: number;
  /** Last publish → last reading at the sink, ms: near 0 when Backhaul keeps up. */
  tailMs: number;
  deliveredRate: number;
  latency: Percentiles;
  cpuSeconds: number;
  cpuPct: number;
  /** Backhaul's CPU per reading over the window, µs (user + system, all threads). */
  cpuUsPerReading: number;
  /** The same less what Backhaul spends idle (sampled before the run) over as long a time. */
  cpuUsPerReadingNetOfIdle: number;
  idleCpuPct: number;
  rssStartMiB: number | undefined;
  rssEndMiB: number | undefined;
  startMs: number;
  warmup: { published: number; arrived: number; ms: number };
  backlogAtEnd: Record<string, number>;
  /** A reading as the sink published it (run B: the codec's values, not `payload`). */
  example: unknown;
  loadAverage: string;
  error?: string;
  logTail?: string;
}

async function oneRun(kind: RunKind, pair: number, brokerUrl: string, pub: MqttClient, sink: Sink): Promise<Run> {
  log(`\n${LABEL[kind]} (pair ${pair + 1} of ${REPEAT}): ${fmtInt(WARMUP)} warm-up + ${fmtInt(N)} readings at ${fmtInt(RATE)}/s from ${DEVICES} devices`);
  const b = await startBackhaul(kind, brokerUrl);
  const fcnt = EUIS.map(() => 1);
  try {
    // Warm-up: every device seen (registered on first sight), the code paths hot, then a quiet moment.
    sink.reset();
    const w0 = nowMs();
    await publish(pub, sink, kind, WARMUP, RATE, fcnt, 0);
    const w = await arrival(sink, b, WARMUP);
    const warmup = { published: WARMUP, arrived: w.arrived, ms: Math.round(nowMs() - w0) };
    if (w.stalled) throw new Error(`warm-up: only ${w.arrived} of ${WARMUP} readings arrived`);
    await sleep(500);
    const i0 = procTimes(b.child.pid);
    const ti0 = nowMs();
    await sleep(IDLE_MS);
    const i1 = procTimes(b.child.pid);
    const idleCpuPct = i0 && i1 ? ((i1.cpuSeconds - i0.cpuSeconds) / ((nowMs() - ti0) / 1000)) * 100 : 0;

    sink.reset();
    const c0 = procTimes(b.child.pid);
    const t0 = nowMs();
    const p = await publish(pub, sink, kind, N, RATE, fcnt, WARMUP);
    const a = await arrival(sink, b, N);
    const c1 = procTimes(b.child.pid);
    const windowMs = nowMs() - t0;
    const backlogAtEnd = await backlogs(b);
    const cpuSeconds = c0 && c1 ? c1.cpuSeconds - c0.cpuSeconds : NaN;
    const idleSeconds = (idleCpuPct / 100) * (windowMs / 1000);
    const run: Run = {
      kind,
      pair,
      offered: RATE,
      sendRate: p.sendRate,
      uplinks: N,
      published: p.sent,
      publishFailed: p.failed,
      arrived: a.arrived,
      allArrived: a.arrived === N,
      duplicates: sink.duplicates,
      windowMs: Math.round(windowMs),
      tailMs: Math.round(Math.max(0, sink.lastAt - p.endedAt)),
      deliveredRate: round1((a.arrived / Math.max(1, sink.lastAt - p.startedAt)) * 1000),
      latency: sink.latency(),
      cpuSeconds: round2(cpuSeconds),
      cpuPct: round1((cpuSeconds / (windowMs / 1000)) * 100),
      cpuUsPerReading: round1((cpuSeconds * 1e6) / Math.max(1, a.arrived)),
      cpuUsPerReadingNetOfIdle: round1(((cpuSeconds - idleSeconds) * 1e6) / Math.max(1, a.arrived)),
      idleCpuPct: round1(idleCpuPct),
      rssStartMiB: c0?.rssMiB,
      rssEndMiB: c1?.rssMiB,
      startMs: b.startMs,
      warmup,
      backlogAtEnd,
      example: sink.example,
      loadAverage: loadAvg(),
    };
    if (!run.allArrived) {
      run.error = `${fmtInt(N - a.arrived)} of ${fmtInt(N)} readings never arrived (no new one for ${STALL_MS / 1000} s)`;
      run.logTail = b.out.lastLines(20);
    }
    log(
      `  sent ${fmtInt(p.sendRate)}/s, arrived ${fmtInt(a.arrived)}/${fmtInt(N)}${sink.duplicates ? ` (+${sink.duplicates} dup)` : ''}, ` +
        `latency p50 ${fmtMs(run.latency.p50)} p99 ${fmtMs(run.latency.p99)} ms, tail ${fmtInt(run.tailMs)} ms, ` +
        `CPU ${run.cpuPct} % → ${run.cpuUsPerReading} µs/reading (idle ${run.idleCpuPct} %)`,
    );
    if (run.error) log(`  ${run.error}; Backhaul's last lines:\n${run.logTail ?? ''}`);
    return run;
  } finally {
    await stopBackhaul(b);
  }
}

// ---------------------------------------------------------------- report

const median = (xs: number[]): number => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const results = {
  bench: 'lorawan',
  mode: QUICK ? 'quick' : 'full',
  date: new Date().toISOString(),
  git: gitInfo(),
  machine: machineInfo(),
  options: { uplinks: N, rate: RATE, devices: DEVICES, warmup: WARMUP, repeat: REPEAT, radio: RADIO, historian: HISTORIAN, idleMs: IDLE_MS, backhaulBin: BIN, cpuProf: CPU_PROF ?? null, codec: CODEC },
  examples: {
    json: { topic: `sensors/${EUIS[0]!}/up`, payload: jsonReading(EUIS[0]!, 1, 0) },
    lorawan: { topic: `application/${APP_ID}/device/${EUIS[0]!}/event/up`, payload: chirpstackUp(EUIS[0]!, 1, 0) },
  },
  runs: [] as Run[],
  summary: undefined as undefined | Partial<Record<RunKind, { cpuUsPerReading: number; cpuUsPerReadingNetOfIdle: number; cpuPct: number; latencyP99: number; allArrived: boolean; arrived: string }>>,
  ratio: undefined as undefined | { raw: number; netOfIdle: number; perPair: number[]; objectVsJson?: number; lorawanVsObject?: number },
  goal: { goal: 'an uplink through the whole path (ChirpStack + codec) costs at most twice a plain JSON reading', target: '≤ 2×', measured: '', met: null as boolean | null },
  notes: [] as string[],
};

function report(): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(`LoRaWAN whole-path benchmark (${results.mode}) — ${results.date} — ${results.git.sha}${results.git.dirty ? ' (uncommitted changes)' : ''}`);
  out.push(`${String(m.cpu)}, ${String(m.cores)} cores, ${String(m.platform)}, Node ${String(m.node)}, temp files on ${String(m.tempFileSystem)}, load ${String(m.loadAverageAtStart)} at start, ${loadAvg()} at the end`);
  out.push(
    `mqtt input on a bare aedes broker → decoder → device gate → route → mqtt sink${HISTORIAN ? ' + sqlite historian' : ''} (durable outbox, sync: full); ` +
      `${fmtInt(N)} readings per run at ${fmtInt(RATE)}/s from ${DEVICES} devices after ${fmtInt(WARMUP)} warm-up; CPU: Backhaul's process, user + system, all threads, ` +
      'first measured publish → last reading at the sink.',
  );
  out.push(`B: ChirpStack v4 uplink (${results.examples.lorawan.payload.length} B, data base64, no object${RADIO ? ', radio: true' : ''}) decoded by the codec env-sensor.js in its sandbox; A: ${results.examples.json.payload}`);
  out.push('');
  const rows = [['run', 'pair', 'offered msg/s', 'sent/s', 'arrived', 'p50 ms', 'p99 ms', 'tail ms', 'CPU %', 'idle CPU %', 'CPU µs/reading', 'net of idle']];
  for (const r of results.runs) {
    rows.push([
      SHORT[r.kind],
      String(r.pair + 1),
      fmtInt(r.offered),
      fmtInt(r.sendRate),
      `${fmtInt(r.arrived)}/${fmtInt(r.uplinks)}${r.allArrived ? '' : ' (missing)'}`,
      fmtMs(r.latency.p50),
      fmtMs(r.latency.p99),
      fmtInt(r.tailMs),
      r.cpuPct.toFixed(1),
      r.idleCpuPct.toFixed(1),
      r.cpuUsPerReading.toFixed(1),
      r.cpuUsPerReadingNetOfIdle.toFixed(1),
    ]);
  }
  out.push(table(rows));
  out.push('');
  const s = results.summary;
  if (s) {
    out.push(
      table([
        ['median of the runs', 'offered msg/s', 'every reading arrived', 'CPU %', 'p99 ms', 'CPU µs/reading', 'net of idle'],
        ...KINDS.flatMap((k) => {
          const x = s[k];
          return x ? [[LABEL[k], fmtInt(RATE), `${x.allArrived ? 'yes' : 'NO'} (${x.arrived})`, x.cpuPct.toFixed(1), fmtMs(x.latencyP99), x.cpuUsPerReading.toFixed(1), x.cpuUsPerReadingNetOfIdle.toFixed(1)]] : [];
        }),
      ]),
    );
    out.push('');
  }
  if (results.ratio) {
    out.push(
      `B / A, CPU per reading: ${results.ratio.raw.toFixed(2)}× (net of idle ${results.ratio.netOfIdle.toFixed(2)}×; per pair ${results.ratio.perPair.map((x) => `${x.toFixed(2)}×`).join(', ')})` +
        `   goal ≤ 2×: ${results.goal.met === null ? 'not measured' : results.goal.met ? 'meets it' : 'short of it'}`,
    );
    const r = results.ratio;
    if (r.objectVsJson !== undefined && r.lorawanVsObject !== undefined) {
      out.push(`C / A (the ChirpStack format and a lorawan-sensor, no codec): ${r.objectVsJson.toFixed(2)}×; B / C (the codec): ${r.lorawanVsObject.toFixed(2)}×`);
    }
  }
  for (const n of results.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  installCleanup();
  const started = nowMs();
  log(`LoRaWAN whole-path benchmark (${QUICK ? 'quick' : 'full'}): ${REPEAT} pair(s) of runs, ${fmtInt(N)} readings each at ${fmtInt(RATE)}/s; load average ${loadAvg()}`);
  const broker = await startBroker();
  const pub = await mqttClient(broker.url, `bench-lorawan-pub-${process.pid}`);
  const subClient = await mqttClient(broker.url, `bench-lorawan-sub-${process.pid}`);
  const sink = new Sink(subClient);
  await subClient.subscribeAsync('backhaul/#', { qos: 1 });
  try {
    for (let pair = 0; pair < REPEAT; pair++) {
      for (const kind of KINDS) {
        try {
          results.runs.push(await oneRun(kind, pair, broker.url, pub, sink));
        } catch (e) {
          const message = e instanceof Error ? e.message : String(e);
          log(`  ${LABEL[kind]} failed: ${message}`);
          results.notes.push(`${LABEL[kind]}, pair ${pair + 1}: failed — ${message}`);
        }
      }
    }
  } finally {
    await pub.endAsync().catch(() => undefined);
    await subClient.endAsync().catch(() => undefined);
    await stopChild(broker.child);
  }
  const of = (k: RunKind) => results.runs.filter((r) => r.kind === k);
  const sum = (rs: Run[]) => ({
    cpuUsPerReading: round1(median(rs.map((r) => r.cpuUsPerReading))),
    cpuUsPerReadingNetOfIdle: round1(median(rs.map((r) => r.cpuUsPerReadingNetOfIdle))),
    cpuPct: round1(median(rs.map((r) => r.cpuPct))),
    latencyP99: round2(median(rs.map((r) => r.latency.p99))),
    allArrived: rs.every((r) => r.allArrived),
    arrived: `${fmtInt(rs.reduce((n, r) => n + r.arrived, 0))} of ${fmtInt(rs.reduce((n, r) => n + r.uplinks, 0))}`,
  });
  const summary: NonNullable<typeof results.summary> = {};
  for (const k of KINDS) if (of(k).length > 0) summary[k] = sum(of(k));
  results.summary = summary;
  const sa = summary.json;
  const sb = summary.lorawan;
  if (sa && sb) {
    const perPair = of('json').flatMap((ra) => {
      const rb = of('lorawan').find((r) => r.pair === ra.pair);
      return rb ? [round2(rb.cpuUsPerReading / ra.cpuUsPerReading)] : [];
    });
    const raw = sb.cpuUsPerReading / sa.cpuUsPerReading;
    const net = sb.cpuUsPerReadingNetOfIdle / sa.cpuUsPerReadingNetOfIdle;
    results.ratio = { raw: round2(raw), netOfIdle: round2(net), perPair };
    const sc = summary.object;
    if (sc) {
      results.ratio.objectVsJson = round2(sc.cpuUsPerReading / sa.cpuUsPerReading);
      results.ratio.lorawanVsObject = round2(sb.cpuUsPerReading / sc.cpuUsPerReading);
    }
    const complete = sa.allArrived && sb.allArrived;
    results.goal.measured = `${sb.cpuUsPerReading} / ${sa.cpuUsPerReading} µs = ${raw.toFixed(2)}×${complete ? '' : ' (some readings missing)'}`;
    results.goal.met = complete ? raw <= 2 : null;
  } else {
    results.goal.measured = 'not measured';
  }
  const slow = results.runs.filter((r) => r.sendRate < RATE * 0.95 || r.deliveredRate < RATE * 0.95);
  if (slow.length > 0) results.notes.push(`${slow.length} run(s) did not keep the offered rate (saturated): their CPU per reading is at saturation, not at ${fmtInt(RATE)}/s`);
  results.notes.push(`benchmark took ${Math.round((nowMs() - started) / 1000)} s`);
  process.stdout.write(`\n${report()}\n`);
  const file = args.out ?? join(ROOT, 'bench', 'results', `lorawan-${results.date.slice(0, 10)}-${results.git.sha}${QUICK ? '-quick' : ''}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nraw results: ${file}\n`);
}

await main();

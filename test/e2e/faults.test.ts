// Fault tests (issue 3): the real `backhaul` program, started as a user would, under a sink that goes away, a
// SIGKILL, full outboxes and config changes, with a real Mosquitto and real HTTP servers around it. Assertions are on
// what arrives. Every wait is bounded, and every process a test starts is stopped in t.after even when it fails.
import { describe, it, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import type { SinkStatus } from '../../src/outbox/runner.js';
import { findOrphanOutboxes } from '../../src/outbox/files.js';
import type { StatusReport } from '../../src/runtime/control.js';
import type { ReadingJson } from '../../src/sinks/format.js';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd, type Running } from '../helpers/process.js';
import { freePort, httpRecorder } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { requireServices, tcpReachable } from '../helpers/services.js';

// ---------------------------------------------------------------- helpers

/** Mosquitto's binary; BACKHAUL_MOSQUITTO names another one (e.g. /opt/homebrew/sbin/mosquitto). */
const MOSQUITTO_BIN = process.env['BACKHAUL_MOSQUITTO'] ?? '/usr/sbin/mosquitto';

/** Every process the tests start. t.after stops each; this is the last resort if the test process itself exits. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** `false` when Mosquitto can run; else why the test skips. Throws when services are required (CI). */
function mosquittoSkip(): string | false {
  if (existsSync(MOSQUITTO_BIN)) return false;
  if (requireServices) throw new Error(`Mosquitto (${MOSQUITTO_BIN}) is required (BACKHAUL_REQUIRE_SERVICES=1) but is not installed`);
  return `needs Mosquitto (${MOSQUITTO_BIN}, e.g. apt-get install mosquitto); set BACKHAUL_REQUIRE_SERVICES=1 in CI to make this a failure`;
}

interface Mosquitto {
  readonly url: string;
  stop(): Promise<void>;
}

/** A Mosquitto of the test's own, as a child process (not -d), with persistence in `dir`. */
async function startMosquitto(dir: string, port: number): Promise<Mosquitto> {
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      // Run as root, Mosquitto would switch to the `mosquitto` user, which cannot write to the test's temp folder.
      `user ${userInfo().username}`,
      // The default queue of 1,000 messages per client would make Mosquitto itself drop what Backhaul replays while
      // the test's subscriber reconnects; the test is about Backhaul, so the broker's queue is unbounded.
      'max_queued_messages 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let log = '';
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => (log += c));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const stop = async (): Promise<void> => {
    if (gone) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  try {
    await until(
      async () => {
        if (gone) throw new Error(`mosquitto exited at start: ${log}`);
        return tcpReachable('127.0.0.1', port, 200);
      },
      { what: `mosquitto on port ${port}`, timeoutMs: 10_000 },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `mqtt://127.0.0.1:${port}`, stop };
}

/** An HTTP sink target: answers 503 while `down`, else records the readings of each batch and answers 200. */
interface SinkServer {
  readonly url: string;
  /** Readings of every batch answered 200, in arrival order. */
  readonly accepted: ReadingJson[];
  /** Distinct (device, seq) accepted. */
  readonly keys: Set<string>;
  /** When the last batch was accepted (ms since the epoch). */
  lastAt: number;
  /** Requests answered 503. */
  refused: number;
  down: boolean;
  /** Wait this long before answering (a slow-ish server keeps a backlog in the outbox). */
  delayMs: number;
  close(): Promise<void>;
}

async function sinkServer(t: TestContext, down = false): Promise<SinkServer> {
  const s: SinkServer = { url: '', accepted: [], keys: new Set(), lastAt: Date.now(), refused: 0, down, delayMs: 0, close: () => Promise.resolve() };
  const rec = await httpRecorder(async (req, res) => {
    if (s.delayMs > 0) await sleep(s.delayMs);
    if (s.down) {
      s.refused++;
      res.statusCode = 503;
      res.end('down for the test');
      return;
    }
    for (const m of JSON.parse(req.body) as ReadingJson[]) {
      s.accepted.push(m);
      s.keys.add(keyOf(m));
    }
    s.lastAt = Date.now();
    res.statusCode = 200;
    res.end('ok');
  });
  Object.assign(s, { url: rec.url, close: () => rec.close() });
  t.after(() => rec.close());
  return s;
}

function writeConfig(dir: string, name: string, cfg: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

const brokerInput = (port: number) => ({ type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: { type: 'json', seq: 'seq' } });

/** Start Backhaul; it is SIGKILLed after the test if still running (a test that wants a clean stop does it itself). */
async function startBackhaul(t: TestContext, args: string[]): Promise<Running> {
  const app = runBackhaul(args);
  children.add(app.proc);
  t.after(() => app.stop('SIGKILL'));
  await app.waitFor((l) => l.msg === 'backhaul running', 20_000);
  return app;
}

async function status(cfg: string): Promise<StatusReport> {
  const r = await runToEnd(['status', '-c', cfg, '--json']);
  assert.equal(r.code, 0, `backhaul status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusReport;
}

async function sinkStatus(cfg: string, sink: string): Promise<SinkStatus> {
  const s = (await status(cfg)).sinks.find((x) => x.id === sink);
  assert.ok(s, `status has no sink ${sink}`);
  return s;
}

/**
 * Wait until `done()`, or until nothing has arrived for `quietMs` (`lastAt()`), or `maxMs`. Returns whether it is
 * done; the assertions that follow then say what is missing instead of a bare timeout.
 */
async function arrivals(done: () => boolean, lastAt: () => number, quietMs: number, maxMs: number): Promise<boolean> {
  const end = Date.now() + maxMs;
  while (!done()) {
    if (Date.now() > end || Date.now() - lastAt() > quietMs) return false;
    await sleep(50);
  }
  return true;
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A device's MQTT client (QoS 1) on Backhaul's embedded broker. */
async function device(t: TestContext, url: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  c.on('error', () => undefined); // a killed broker is part of some tests
  // end(true), not endAsync: on a connection that already died, endAsync never resolves.
  t.after(() => void c.end(true));
  return c;
}

interface Sample {
  readonly device: string;
  readonly seq: number;
}

/** Reading number i of a run: devices take turns, each with its own increasing seq. */
const sample = (i: number, devices: number): Sample => ({ device: `dev${i % devices}`, seq: Math.floor(i / devices) });
const keyOf = (m: { device: string; seq?: number | undefined }) => `${m.device}#${m.seq ?? '-'}`;
const body = (s: Sample, extra: Record<string, number> = {}) => JSON.stringify({ device: s.device, seq: s.seq, temperature: 20 + (s.seq % 50) / 10, ...extra });

interface Tally {
  readonly keys: Set<string>;
  readonly duplicates: number;
  /** Places where a device's seq did not increase (duplicates removed first). */
  readonly outOfOrder: string[];
}

function tally(items: ReadonlyArray<{ device: string; seq?: number | undefined }>): Tally {
  const keys = new Set<string>();
  const last = new Map<string, number>();
  const outOfOrder: string[] = [];
  let duplicates = 0;
  for (const m of items) {
    const k = keyOf(m);
    if (keys.has(k)) {
      duplicates++;
      continue;
    }
    keys.add(k);
    const seq = m.seq ?? -1;
    const prev = last.get(m.device);
    if (prev !== undefined && seq <= prev) outOfOrder.push(`${m.device}: seq ${seq} after ${prev}`);
    last.set(m.device, seq);
  }
  return { keys, duplicates, outOfOrder };
}

/**
 * Publish `total` readings from `devices` devices at a steady rate over `durationMs` (`progress.sent` says how many so
 * far); resolves with the PUBACK count.
 */
async function publishSteadily(
  c: MqttClient,
  total: number,
  devices: number,
  durationMs: number,
  progress: { sent: number },
): Promise<{ acked: number; failed: number }> {
  const start = Date.now();
  let sent = 0;
  let acked = 0;
  let failed = 0;
  const pending: Array<Promise<void>> = [];
  while (sent < total) {
    const due = Math.min(total, Math.ceil(((Date.now() - start) / durationMs) * total));
    for (; sent < due; sent++, progress.sent++) {
      const s = sample(sent, devices);
      pending.push(
        c.publishAsync(`devices/${s.device}`, body(s), { qos: 1 }).then(
          () => void acked++,
          () => void failed++,
        ),
      );
    }
    await sleep(10);
  }
  await within(Promise.all(pending), 30_000, 'the last PUBACKs');
  return { acked, failed };
}

/**
 * Publish with up to `window` QoS 1 publishes outstanding; `onAck` gets the index of each one acknowledged. Stops
 * issuing when `stop()` says so. Resolves with how many were issued and a promise of the outstanding ones settling.
 */
async function publishWindowed(
  c: MqttClient,
  indices: readonly number[],
  window: number,
  message: (i: number) => { topic: string; payload: string },
  onAck: (i: number) => void,
  stop: () => boolean = () => false,
): Promise<{ issued: number; settled: () => Promise<void> }> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  let issued = 0;
  for (const i of indices) {
    while (outstanding >= window && !stop()) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100); // never wait on a connection that died
      });
    }
    if (stop()) break;
    const m = message(i);
    outstanding++;
    issued++;
    c.publishAsync(m.topic, m.payload, { qos: 1 })
      .then(
        () => onAck(i),
        () => undefined,
      )
      .finally(() => {
        outstanding--;
        wake?.();
      })
      .catch(() => undefined);
  }
  return {
    issued,
    settled: () => until(() => outstanding === 0, { what: 'every windowed publish settled', timeoutMs: 120_000 }),
  };
}

// ---------------------------------------------------------------- 1, 2: a sink down for 30 s

const STEADY = { total: 20_000, devices: 10, durationMs: 40_000, downAt: 5_000, upAt: 35_000, catchUpMs: 60_000 };

/** How long, from now, until `keys` holds the first `n` readings (everything sent while the sink was away); -1: never. */
async function drained(keys: ReadonlySet<string>, n: number): Promise<number> {
  const from = Date.now();
  return (await arrivals(() => keys.size >= n, () => from, STEADY.catchUpMs, STEADY.catchUpMs)) ? Date.now() - from : -1;
}

describe('sink down for 30 s while 20,000 readings flow in at a steady rate', { concurrency: 2 }, () => {
  it('mqtt sink: Mosquitto stopped at 5 s, back at 35 s; all 20,000 arrive, in order per device', { timeout: 150_000 }, async (t) => {
    const skip = mosquittoSkip();
    if (skip) return t.skip(skip);
    const dir = tempDir();
    t.after(() => dir.cleanup());
    const mosqPort = await freePort();
    let mosq = await startMosquitto(dir.path, mosqPort);
    let over = false; // the test ended (maybe failed) while the outage script still runs: start nothing more
    t.after(() => {
      over = true;
      return mosq.stop();
    });

    // A consumer with a persistent session: it also gets what was published while it was reconnecting.
    const received: Array<{ device: string; seq: number }> = [];
    const keys = new Set<string>();
    let lastAt = Date.now();
    const sub = await mqtt.connectAsync(mosq.url, { clientId: `faults-sub-${mosqPort}`, clean: false, reconnectPeriod: 250 });
    sub.on('error', () => undefined);
    t.after(() => void sub.end(true));
    sub.on('message', (_topic, payload) => {
      const m = JSON.parse(payload.toString('utf8')) as ReadingJson;
      received.push({ device: m.device, seq: m.seq ?? -1 });
      keys.add(keyOf(m));
      lastAt = Date.now();
    });
    await sub.subscribeAsync('t/#', { qos: 1 });

    const port = await freePort();
    const cfg = writeConfig(dir.path, 'backhaul.json', {
      data: 'data',
      inputs: { devices: brokerInput(port) },
      // retryMaxMs keeps the backoff short enough that the backlog starts moving soon after the broker is back.
      sinks: { up: { type: 'mqtt', url: mosq.url, topic: 't/{device}', qos: 1, outbox: { retryMinMs: 200, retryMaxMs: 2000 } } },
      routes: [{ to: ['up'] }],
    });
    const app = await startBackhaul(t, ['start', '-c', cfg]);
    const pub = await device(t, `mqtt://127.0.0.1:${port}`);

    const t0 = Date.now();
    const progress = { sent: 0 };
    let during: SinkStatus | undefined;
    const outage = (async () => {
      await sleep(STEADY.downAt - (Date.now() - t0));
      await mosq.stop();
      await sleep(STEADY.upAt - 5_000 - (Date.now() - t0));
      during = await sinkStatus(cfg, 'up'); // ~30 s: the broker has been away for ~25 s
      await sleep(STEADY.upAt - (Date.now() - t0));
      if (over) return -1;
      mosq = await startMosquitto(dir.path, mosqPort);
      if (over) await mosq.stop();
      return drained(keys, progress.sent);
    })();
    const [pubs, drainMs] = await Promise.all([publishSteadily(pub, STEADY.total, STEADY.devices, STEADY.durationMs, progress), outage]);
    assert.deepEqual(pubs, { acked: STEADY.total, failed: 0 }, 'Backhaul acknowledged every reading while its sink was down');
    assert.ok(during, 'status asked during the outage');
    assert.equal(during.state, 'retrying');
    assert.ok(during.backlog > 1000, `a backlog built up while the broker was away (${during.backlog})`);

    await arrivals(() => keys.size === STEADY.total, () => lastAt, 10_000, STEADY.catchUpMs);
    const got = tally(received);
    assert.equal(got.keys.size, STEADY.total, `none lost (${STEADY.total - got.keys.size} missing)`);
    assert.ok(drainMs >= 0, 'the backlog was delivered after the broker came back');
    assert.deepEqual(got.outOfOrder.slice(0, 10), [], 'in order per device once duplicates are removed');
    const after = await sinkStatus(cfg, 'up');
    assert.equal(after.dropped, 0);
    t.diagnostic(
      `mqtt sink down ${(STEADY.upAt - STEADY.downAt) / 1000} s: backlog ${during.backlog} (${during.backlogBytes} B, oldest ${during.oldestAgeMs} ms) at ~30 s, ` +
        `${during.retries} retries by then; backlog delivered ${drainMs} ms after the broker was back; ` +
        `${received.length} messages received, ${got.duplicates} duplicates; delivered ${after.delivered}, retries ${after.retries}`,
    );
    assert.equal(await app.stop(), 0);
  });

  it('http sink: 503 from 5 s to 35 s, then 200; all 20,000 arrive, in order per device', { timeout: 150_000 }, async (t) => {
    const dir = tempDir();
    t.after(() => dir.cleanup());
    const server = await sinkServer(t);
    const port = await freePort();
    const cfg = writeConfig(dir.path, 'backhaul.json', {
      data: 'data',
      inputs: { devices: brokerInput(port) },
      sinks: { hook: { type: 'http', url: `${server.url}/in`, outbox: { retryMinMs: 200, retryMaxMs: 2000 } } },
      routes: [{ to: ['hook'] }],
    });
    const app = await startBackhaul(t, ['start', '-c', cfg]);
    const pub = await device(t, `mqtt://127.0.0.1:${port}`);

    const t0 = Date.now();
    const progress = { sent: 0 };
    let during: SinkStatus | undefined;
    const outage = (async () => {
      await sleep(STEADY.downAt - (Date.now() - t0));
      server.down = true;
      await sleep(STEADY.upAt - 5_000 - (Date.now() - t0));
      during = await sinkStatus(cfg, 'hook');
      await sleep(STEADY.upAt - (Date.now() - t0));
      server.down = false;
      return drained(server.keys, progress.sent);
    })();
    const [pubs, drainMs] = await Promise.all([publishSteadily(pub, STEADY.total, STEADY.devices, STEADY.durationMs, progress), outage]);
    assert.deepEqual(pubs, { acked: STEADY.total, failed: 0 });
    assert.ok(during);
    assert.equal(during.state, 'retrying');
    assert.match(during.lastError?.message ?? '', /503/);
    assert.ok(during.backlog > 1000, `a backlog built up while the server answered 503 (${during.backlog})`);

    await arrivals(() => server.keys.size === STEADY.total, () => server.lastAt, 10_000, STEADY.catchUpMs);
    const got = tally(server.accepted);
    assert.equal(got.keys.size, STEADY.total, `none lost (${STEADY.total - got.keys.size} missing)`);
    assert.ok(drainMs >= 0, 'the backlog was delivered after the server came back');
    assert.deepEqual(got.outOfOrder.slice(0, 10), [], 'in order per device once duplicates are removed');
    const after = await sinkStatus(cfg, 'hook');
    assert.equal(after.dropped, 0);
    t.diagnostic(
      `http sink 503 for ${(STEADY.upAt - STEADY.downAt) / 1000} s: backlog ${during.backlog} (${during.backlogBytes} B) at ~30 s; ` +
        `${server.refused} requests answered 503; backlog delivered ${drainMs} ms after the server was back; ` +
        `${server.accepted.length} readings accepted, ${got.duplicates} duplicates; delivered ${after.delivered}, retries ${after.retries}`,
    );
    assert.equal(await app.stop(), 0);
  });
});

// ---------------------------------------------------------------- 3: SIGKILL

test('crash: SIGKILL in the middle of 50,000 QoS 1 readings; every PUBACKed reading reaches the sink', { timeout: 180_000 }, async (t) => {
  const N = 50_000;
  const DEVICES = 10;
  const KILL_AFTER = 20_000;
  const WINDOW = 200;
  const BATCH = 100;
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const server = await sinkServer(t);
  server.delayMs = 25; // slow-ish before the crash: the outbox holds a backlog when the process dies
  const port = await freePort();
  const cfg = writeConfig(dir.path, 'backhaul.json', {
    data: 'data',
    inputs: { devices: brokerInput(port) },
    sinks: { hook: { type: 'http', url: `${server.url}/in`, outbox: { batchSize: BATCH, retryMinMs: 100, retryMaxMs: 1000 } } },
    routes: [{ to: ['hook'] }],
  });
  const url = `mqtt://127.0.0.1:${port}`;
  const message = (phase: number) => (i: number) => {
    const s = sample(i, DEVICES);
    return { topic: `devices/${s.device}`, payload: body(s, { phase }) };
  };

  // Phase 1: as fast as possible until ~20,000 PUBACKs, then SIGKILL.
  const first = await startBackhaul(t, ['start', '-c', cfg]);
  const pub1 = await device(t, url);
  const acked1 = new Set<number>();
  let kill: { acked: number; delivered: number; ms: number } | undefined;
  const t0 = Date.now();
  const all = Array.from({ length: N }, (_, i) => i);
  const run1 = await within(
    publishWindowed(pub1, all, WINDOW, message(1), (i) => {
      acked1.add(i);
      if (!kill && acked1.size >= KILL_AFTER) {
        first.proc.kill('SIGKILL');
        kill = { acked: acked1.size, delivered: server.keys.size, ms: Date.now() - t0 };
      }
    }, () => kill !== undefined),
    120_000,
    `${KILL_AFTER} PUBACKs`,
  );
  await first.stop('SIGKILL');
  pub1.end(true); // fails what is still outstanding: never acknowledged
  await within(run1.settled(), 10_000, 'outstanding publishes to fail');
  assert.ok(kill);
  const ackedBeforeRestart = acked1.size;

  // Phase 2: same config and data folder; the device resends everything not acknowledged, then the rest.
  server.delayMs = 0;
  const restartAt = Date.now();
  const second = await startBackhaul(t, ['start', '-c', cfg]);
  const deliveredAtRestart = server.accepted.length;
  const pub2 = await device(t, url);
  const rest = all.filter((i) => !acked1.has(i));
  let acked2 = 0;
  const run2 = await publishWindowed(pub2, rest, WINDOW, message(2), () => void acked2++);
  await within(run2.settled(), 60_000, 'phase 2 PUBACKs');
  assert.equal(acked2, rest.length, 'the restarted Backhaul acknowledged every resent reading');
  await arrivals(() => server.keys.size === N, () => server.lastAt, 10_000, 60_000);
  const doneMs = Date.now() - restartAt;

  const got = tally(server.accepted);
  const missing = [...acked1].filter((i) => !got.keys.has(keyOf(sample(i, DEVICES))));
  assert.equal(missing.length, 0, `every PUBACKed reading reached the server: ${missing.length} of ${acked1.size} missing`);
  assert.equal(got.keys.size, N, 'and so did every reading resent or sent after the restart');

  const phaseOf = (m: ReadingJson) => m.values['phase'];
  const p1 = server.accepted.filter((m) => phaseOf(m) === 1);
  const p2 = server.accepted.filter((m) => phaseOf(m) === 2);
  const t1 = tally(p1);
  const t2 = tally(p2);
  assert.deepEqual(t1.outOfOrder.slice(0, 10), [], 'readings from before the crash are in order per device');
  assert.deepEqual(t2.outOfOrder.slice(0, 10), [], 'readings from after the restart are in order per device');
  // After the restart the outbox delivers what it held before anything new.
  const lastOld = server.accepted.findLastIndex((m) => phaseOf(m) === 1);
  const firstNew = server.accepted.findIndex((m) => phaseOf(m) === 2);
  assert.ok(lastOld < firstNew, `the backlog from before the crash came first (last old at ${lastOld}, first new at ${firstNew})`);
  // Redelivered by Backhaul (same copy twice): only the batch in flight at the crash.
  const redelivered = t1.duplicates + t2.duplicates;
  assert.ok(redelivered <= BATCH, `duplicates only from the batch in flight at the crash (${redelivered})`);
  // Committed but never acknowledged, so the device sent them again: at most what was outstanding at the crash.
  const resent = [...t2.keys].filter((k) => t1.keys.has(k)).length;
  assert.ok(resent <= WINDOW, `readings committed but not acknowledged at the crash (${resent})`);
  const st = await sinkStatus(cfg, 'hook');
  assert.equal(st.backlog, 0);
  t.diagnostic(
    `crash: SIGKILL after ${kill.acked} PUBACKs in ${kill.ms} ms (${Math.round((kill.acked / kill.ms) * 1000)} readings/s acknowledged); ` +
      `the server had ${kill.delivered} then, so ~${kill.acked - kill.delivered} were waiting in the outbox; ` +
      `${ackedBeforeRestart} PUBACKed in all before the restart, ${rest.length} resent or sent after it; ` +
      `server had ${deliveredAtRestart} readings at restart; all ${N} there ${doneMs} ms after the restart began; ` +
      `duplicates: ${redelivered} redelivered by Backhaul (batch in flight), ${resent} resent by the device (committed, PUBACK lost)`,
  );
  assert.equal(await second.stop(), 0);
});

// ---------------------------------------------------------------- 4: overflow

describe('overflow: a sink capped at 1,000 rows is down while 5,000 readings arrive', () => {
  const TOTAL = 5_000;
  const CAP = 1_000;

  async function setup(t: TestContext, overflow: 'drop-oldest' | 'drop-newest' | 'block') {
    const dir = tempDir();
    t.after(() => dir.cleanup());
    const server = await sinkServer(t, true);
    const port = await freePort();
    const cfg = writeConfig(dir.path, 'backhaul.json', {
      data: 'data',
      inputs: { devices: brokerInput(port) },
      sinks: { capped: { type: 'http', url: `${server.url}/in`, outbox: { maxItems: CAP, overflow, retryMinMs: 50, retryMaxMs: 200 } } },
      routes: [{ to: ['capped'] }],
    });
    const app = await startBackhaul(t, ['start', '-c', cfg]);
    const pub = await device(t, `mqtt://127.0.0.1:${port}`);
    const all = Array.from({ length: TOTAL }, (_, i) => i);
    const message = (i: number) => ({ topic: 'devices/meter', payload: body({ device: 'meter', seq: i }) });
    return { server, cfg, app, pub, all, message };
  }

  /** Let the sink retry twice after the last put, so no batch read before the drops is still on its way. */
  async function settleRetries(server: SinkServer): Promise<void> {
    const seen = server.refused;
    await until(() => server.refused >= seen + 2, { what: 'two more refused attempts', timeoutMs: 10_000 });
  }

  for (const policy of ['drop-oldest', 'drop-newest'] as const) {
    it(`${policy}: exactly 4,000 dropped and counted; after recovery exactly the ${policy === 'drop-oldest' ? 'newest' : 'first'} 1,000 arrive`, { timeout: 90_000 }, async (t) => {
      const { server, cfg, app, pub, all, message } = await setup(t, policy);
      let acked = 0;
      const run = await publishWindowed(pub, all, 100, message, () => void acked++);
      await within(run.settled(), 60_000, 'PUBACKs');
      assert.equal(acked, TOTAL, 'a dropping policy never holds a publisher back');
      await settleRetries(server);
      const full = await sinkStatus(cfg, 'capped');
      assert.equal(full.backlog, CAP);
      assert.equal(full.dropped, TOTAL - CAP, 'status counts every drop');
      server.down = false;
      await until(() => server.accepted.length >= CAP, { what: '1,000 readings at the server', timeoutMs: 20_000 });
      // Positive control: one more reading, published now, arrives after the backlog; anything else before it (a
      // dropped reading, a duplicate) would be a bug.
      const marker = message(TOTAL);
      await pub.publishAsync(marker.topic, marker.payload, { qos: 1 });
      await until(() => server.accepted.some((m) => m.seq === TOTAL), { what: 'the reading published after recovery', timeoutMs: 20_000 });
      const seqs = server.accepted.map((m) => m.seq);
      const first = policy === 'drop-oldest' ? TOTAL - CAP : 0;
      assert.deepEqual(seqs, [...Array.from({ length: CAP }, (_, i) => first + i), TOTAL]);
      await until(async () => (await sinkStatus(cfg, 'capped')).backlog === 0, { what: 'the backlog acknowledged' });
      const after = await sinkStatus(cfg, 'capped');
      assert.equal(after.dropped, TOTAL - CAP);
      assert.equal(after.backlog, 0);
      const logged = app.logs.filter((l) => l['code'] === 'BH_OUTBOX_OVERFLOW' && l['sink'] === 'capped');
      assert.equal(logged.length, 1, 'drops are logged once a minute, not once per drop');
      t.diagnostic(`${policy}: dropped ${after.dropped}, delivered ${after.delivered} (seq ${seqs[0]}..${seqs.at(-2)}, then the reading published after recovery); ${server.refused} attempts refused`);
      assert.equal(await app.stop(), 0);
    });
  }

  it('block: PUBACKs stall at 1,000 while the sink is down, nothing is dropped, all 5,000 arrive after recovery', { timeout: 120_000 }, async (t) => {
    const { server, cfg, app, pub, all, message } = await setup(t, 'block');
    let acked = 0;
    const started = Date.now();
    const run = publishWindowed(pub, all, 100, message, () => void acked++);
    await until(() => acked >= CAP, { what: `${CAP} PUBACKs`, timeoutMs: 20_000 });
    const reachedMs = Date.now() - started;
    const at = acked;
    // The sink keeps trying (four more refused attempts) while no PUBACK comes: the stall is not just a quiet moment.
    await settleRetries(server);
    await settleRetries(server);
    assert.equal(acked, at, 'no PUBACK while the outbox is full');
    assert.equal(acked, CAP, 'exactly the outbox capacity was acknowledged');
    const full = await sinkStatus(cfg, 'capped');
    assert.equal(full.backlog, CAP);
    assert.equal(full.dropped, 0);
    assert.equal(full.state, 'retrying');
    server.down = false;
    const recovered = Date.now();
    await within(
      (async () => {
        await (await run).settled();
      })(),
      60_000,
      'every publish to be acknowledged',
    );
    assert.equal(acked, TOTAL);
    await until(() => server.accepted.length >= TOTAL, { what: `${TOTAL} readings at the server`, timeoutMs: 30_000 });
    const caughtUpMs = Date.now() - recovered;
    assert.deepEqual(
      server.accepted.map((m) => m.seq),
      all,
    );
    const after = await sinkStatus(cfg, 'capped');
    assert.equal(after.dropped, 0);
    assert.equal(after.backlog, 0);
    t.diagnostic(`block: ${at} PUBACKs after ${reachedMs} ms, then none over four more refused attempts while the sink was down; after recovery all ${TOTAL} acknowledged and delivered in ${caughtUpMs} ms, none dropped`);
    assert.equal(await app.stop(), 0);
  });
});

// ---------------------------------------------------------------- 5: config changes

test('config change: a removed sink keeps its outbox (and says so), resumes when put back, is deleted only on request', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const server = await sinkServer(t, true);
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const local = { type: 'file', path: 'out/local.jsonl' };
  const withHook = writeConfig(dir.path, 'with-hook.json', {
    data: 'data',
    inputs: { devices: brokerInput(port) },
    sinks: { hook: { type: 'http', url: `${server.url}/in`, outbox: { retryMinMs: 50, retryMaxMs: 500 } }, local },
    routes: [{ to: ['hook', 'local'] }],
  });
  const withoutHook = writeConfig(dir.path, 'without-hook.json', {
    data: 'data',
    inputs: { devices: brokerInput(port) },
    sinks: { local },
    routes: [{ to: ['local'] }],
  });
  // The sink's queue is its lane of the shared journal; what the lane holds is read from the file itself.
  const hookQueued = () => findOrphanOutboxes(join(dir.path, 'data'), new Set(['local'])).find((o) => o.sink === 'hook')?.items ?? 0;
  const send = async (from: number, n: number) => {
    const pub = await device(t, url);
    for (let i = from; i < from + n; i++) await pub.publishAsync('devices/meter', body({ device: 'meter', seq: i }), { qos: 1 });
    await pub.endAsync();
  };

  // 1. The sink is down; 50 readings wait in its outbox when Backhaul stops.
  let app = await startBackhaul(t, ['start', '-c', withHook]);
  await send(0, 50);
  assert.equal((await sinkStatus(withHook, 'hook')).backlog, 50);
  assert.equal(await app.stop(), 0);
  assert.ok(app.logs.some((l) => l['sink'] === 'hook' && /50 message\(s\) not delivered yet; they are kept in its outbox and sent after the next start/.test(l.msg)), 'the stop says what stays queued, and that it is kept');
  assert.equal(hookQueued(), 50);

  // 2. `check` on the config without the sink warns first; a restart keeps its outbox, and the log says so.
  const checked = await runToEnd(['check', '-c', withoutHook]);
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, /outbox of removed sink "hook": 50 message\(s\) wait in .*journal\.sqlite; .*--discard-orphan-outboxes/);
  app = await startBackhaul(t, ['start', '-c', withoutHook]);
  const kept = await app.waitFor((l) => l['sink'] === 'hook' && l.level === 40);
  assert.equal(kept['items'], 50);
  assert.match(kept.msg, /sink "hook" is no longer in the config but its outbox keeps 50 message\(s\).*--discard-orphan-outboxes/);
  await send(1000, 5); // goes to the local sink only
  assert.equal(await app.stop(), 0);
  assert.equal(hookQueued(), 50, 'the orphan outbox still holds them');

  // 3. Restart with the original config: the backlog is delivered, in order, before anything new.
  server.down = false;
  app = await startBackhaul(t, ['start', '-c', withHook]);
  await until(() => server.accepted.length >= 50, { what: 'the kept backlog at the server', timeoutMs: 15_000 });
  await send(50, 5);
  await until(() => server.accepted.length >= 55, { what: 'the new readings', timeoutMs: 15_000 });
  assert.deepEqual(
    server.accepted.map((m) => m.seq),
    Array.from({ length: 55 }, (_, i) => i),
  );

  // 4. A new backlog, then a start without the sink and with --discard-orphan-outboxes: the file is gone.
  server.down = true;
  await send(100, 20);
  assert.equal((await sinkStatus(withHook, 'hook')).backlog, 20);
  assert.equal(await app.stop(), 0);
  assert.equal(hookQueued(), 20);
  app = await startBackhaul(t, ['start', '-c', withoutHook, '--discard-orphan-outboxes']);
  const discarded = await app.waitFor((l) => l['sink'] === 'hook' && l.level === 40);
  assert.match(discarded.msg, /discarded the outbox/);
  assert.equal(discarded['items'], 20);
  assert.equal(await app.stop(), 0);
  assert.equal(hookQueued(), 0, 'the discarded queue is gone from the journal');
  t.diagnostic(`kept 50 across a start without the sink, delivered them on return; discarded 20 on request`);
});

// ---------------------------------------------------------------- 6: backhaul status

test('status: state, backlog and last error of each sink of a running instance; BH_NOT_RUNNING when none runs', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const server = await sinkServer(t, true);
  const port = await freePort();
  const cfg = writeConfig(dir.path, 'backhaul.json', {
    data: 'data',
    inputs: { devices: brokerInput(port) },
    sinks: {
      hook: { type: 'http', url: `${server.url}/in`, outbox: { retryMinMs: 50, retryMaxMs: 500 } },
      local: { type: 'file', path: 'out/local.jsonl' },
    },
    routes: [{ to: ['hook', 'local'] }],
  });
  const app = await startBackhaul(t, ['start', '-c', cfg]);
  const pub = await device(t, `mqtt://127.0.0.1:${port}`);
  for (let i = 0; i < 7; i++) await pub.publishAsync('devices/meter', body({ device: 'meter', seq: i }), { qos: 1 });
  await until(() => server.refused > 0, { what: 'a refused attempt', timeoutMs: 10_000 });
  await until(async () => (await sinkStatus(cfg, 'local')).delivered === 7, { what: 'the file sink to deliver', timeoutMs: 10_000 });

  const r = await runToEnd(['status', '-c', cfg]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^Backhaul \\S+, pid ${app.proc.pid}, up `, 'm'));
  assert.match(r.stdout, new RegExp(`^\\s+devices\\s+broker\\s+url=mqtt://127\\.0\\.0\\.1:${port}`, 'm'));
  const hook = r.stdout.split('\n').find((l) => /^\s+hook\s/.test(l));
  assert.ok(hook, r.stdout);
  assert.match(hook, /^\s+hook\s+http\s+retrying\s+7\s+[\d.]+ (?:B|KiB)\s+\d+ (?:s|min)\s+0\s+\d+\s+0\s+\S+Z BH_SINK_WRITE .*answered 503/);
  assert.match(r.stdout, /^\s+local\s+file\s+up\s+0\s+0 B\s+-\s+7\s+0\s+0\s*$/m);
  for (const line of r.stdout.trimEnd().split('\n')) t.diagnostic(line);

  server.down = false;
  await until(() => server.accepted.length === 7, { what: 'the backlog at the server', timeoutMs: 10_000 });
  assert.equal(await app.stop(), 0);
  const none = await runToEnd(['status', '-c', cfg]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^BH_NOT_RUNNING no Backhaul is running with the data folder /);
  assert.equal(none.stdout, '');
});

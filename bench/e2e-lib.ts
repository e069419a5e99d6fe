// Shared parts of the end-to-end benchmark (bench/e2e.ts): the messages its child processes exchange over IPC,
// process bookkeeping (every child killed and every temp folder removed on exit, Ctrl-C or a crash), free ports,
// CPU and RSS sampling from /proc, percentiles and tables. Not a test: nothing here asserts anything.
import { execFileSync, fork, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/bench/e2e-lib.js once built). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the compiled helper scripts are (dist/bench). */
export const HERE = fileURLToPath(new URL('./', import.meta.url));

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- IPC messages

/** A simulated device as the load generator sees it. */
export interface SimDevice {
  readonly id: string;
  readonly topic: string;
  readonly username?: string;
  readonly password?: string;
}

const FRAME_BYTES = 200;
const PAD = 'x'.repeat(FRAME_BYTES);

/**
 * A simulated device's frame, ~200 bytes: {"id":"1a2b","seq":17,"sent":1763800000123.456,"T|C16":301,"B|cV":287,"pad":"…"}
 * (temperature in 1/16 °C and battery in centivolts under their OpenTRV JSON names; `sent` is the send time, ms).
 */
export function frame(id: string, seq: number, sent: number): string {
  const head = `{"id":"${id}","seq":${seq},"sent":${sent.toFixed(3)},"T|C16":${256 + (seq % 160)},"B|cV":${250 + (seq % 80)},"pad":"`;
  return `${head}${PAD.slice(0, Math.max(1, FRAME_BYTES - head.length - 2))}"}`;
}

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export type LoadgenRequest =
  | { t: 'connect'; url: string; devices: SimDevice[]; concurrency: number; keepalive: number; clientPrefix: string }
  /** rate 0: unpaced (closed loop, `window` messages in flight in all). */
  | { t: 'run'; rate: number; durationMs: number; maxInflight: number; window: number }
  /**
   * A reconnect storm: every device connects at once, at most `concurrency` attempts in flight; an attempt with no
   * CONNACK after `connectTimeoutMs` is abandoned, and a failed one retried after `retryMs` to 2 × `retryMs`, until
   * all are connected or `deadlineMs` has passed. The clients stay connected (until `disconnect`).
   */
  | { t: 'storm'; url: string; devices: SimDevice[]; concurrency: number; keepalive: number; clientPrefix: string; connectTimeoutMs: number; retryMs: number; deadlineMs: number }
  | { t: 'disconnect' };

export interface ConnectResult {
  t: 'connected';
  ok: number;
  failed: number;
  ms: number;
  errors: string[];
}

export interface StormResult {
  t: 'stormed';
  devices: number;
  /** Connected at the end (all of them, unless the deadline passed). */
  connected: number;
  /** From the first attempt until every device had its CONNACK 0 at once; null when that never happened. */
  allConnectedMs: number | null;
  /** Epoch ms of the first attempt and of the end (all connected, or the deadline). */
  startedAt: number;
  endedAt: number;
  attempts: number;
  /** Attempts that did not end in CONNACK 0, by reason ('timeout', 'connack 4', 'closed', 'error ECONNRESET', …). */
  failedAttempts: number;
  failures: Record<string, number>;
  /** Devices that got a second (or later) attempt. */
  retriedDevices: number;
  /** Connections that closed after their CONNACK while the storm went on (those devices connect again). */
  dropped: number;
  /** Attempt → CONNACK 0, ms, over the successful attempts. */
  connectLatency: Percentiles;
  /** Devices connected at the end of each second from the start. */
  timeline: number[];
  errors: string[];
}

export interface RunResult {
  t: 'ran';
  /** Publishes started. */
  sent: number;
  /** Publishes the broker acknowledged (PUBACK). */
  acked: number;
  /** Publishes that failed (connection lost before the PUBACK). */
  failed: number;
  /** Wall time of the publishing phase, ms. */
  durationMs: number;
  /** Epoch ms when publishing started and when the last PUBACK came. */
  startedAt: number;
  lastAckAt: number;
  /** sent / duration, per second. */
  sendRate: number;
  /** Send → PUBACK, ms. */
  ack: Percentiles;
  /** Connections that closed during the run. */
  disconnects: number;
}

export type LoadgenReply = ConnectResult | RunResult | StormResult | { t: 'disconnected' } | { t: 'error'; message: string };

export type SubscriberRequest =
  /** clean: false keeps the session (and the messages queued for it) while the connection is cut. */
  | { t: 'subscribe'; url: string; topic: string; clientId: string; clean: boolean }
  /** Start counting afresh: messages sent before `since` (epoch ms) are leftovers of an earlier run. */
  | { t: 'reset'; since: number }
  /** Answer once `expected` distinct messages arrived, or nothing came for `quietMs`, or after `timeoutMs`. */
  | { t: 'wait'; expected: number; quietMs: number; timeoutMs: number }
  | { t: 'count' }
  /** Unsubscribe (so a persistent session stops collecting messages) and disconnect. */
  | { t: 'close' };

export interface SubscriberStats {
  t: 'stats';
  /** Distinct messages (device + seq) of this run. */
  unique: number;
  duplicates: number;
  /** Messages sent before the run started (leftovers), and messages that were not ours. */
  stale: number;
  foreign: number;
  firstAt: number;
  lastAt: number;
  /** Send → receive, ms, over the distinct messages. */
  latency: Percentiles;
  /** Distinct messages received per 250 ms from `since`. */
  timeline: number[];
  /**
   * Median latency of the frames sent in the first and in the last quarter of the sending time: a system keeping up
   * has them alike; one falling behind has the second grow with the length of the run.
   */
  trend: { firstP50: number; lastP50: number };
}

export type SubscriberReply = { t: 'subscribed' } | { t: 'closed' } | SubscriberStats | { t: 'count'; unique: number; lastAt: number } | { t: 'error'; message: string };

export type BrokerRequest = { t: 'down' } | { t: 'up' };
export type BrokerReply = { t: 'ready'; port: number } | { t: 'down' } | { t: 'up' } | { t: 'error'; message: string };

/** Send `msg` to a forked child and wait for its first reply of type `want` (or an error). */
export function ask<R extends { t: string }>(child: ChildProcess, msg: object, want: R['t'], timeoutMs: number): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no "${want}" reply from child ${child.pid} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      const r = m as { t?: string; message?: string };
      if (r.t === want) {
        done();
        resolve(m as R);
      } else if (r.t === 'error') {
        done();
        reject(new Error(r.message ?? 'child error'));
      }
    };
    const onExit = (code: number | null, sig: string | null) => {
      done();
      reject(new Error(`child ${child.pid} exited (${sig ?? code}) while waiting for "${want}"`));
    };
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.send(msg);
  });
}

/** Wait for a forked child's first message of type `want`, without sending anything. */
export function expect<R extends { t: string }>(child: ChildProcess, want: R['t'], timeoutMs: number): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no "${want}" from child ${child.pid} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      const r = m as { t?: string; message?: string };
      if (r.t === want) {
        done();
        resolve(m as R);
      } else if (r.t === 'error') {
        done();
        reject(new Error(r.message ?? 'child error'));
      }
    };
    const onExit = (code: number | null, sig: string | null) => {
      done();
      reject(new Error(`child ${child.pid} exited (${sig ?? code}) before "${want}"`));
    };
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** In a child: exit when the parent goes away (the IPC channel closes), so no helper outlives the benchmark. */
export function dieWithParent(): void {
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group; the parent decides when children go.
  process.on('SIGINT', () => undefined);
}

// ---------------------------------------------------------------- children and temp folders

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let reaper: ChildProcess | undefined;

/**
 * The reaper: a small child that kills every process we started and removes our temp folders if this process dies
 * without cleaning up (SIGKILL, a crash in native code). It is told each pid and folder as they are made.
 */
function tellReaper(m: { pid?: number; dir?: string; forgetPid?: number; forgetDir?: string }): void {
  if (!reaper) {
    reaper = fork(join(HERE, 'e2e-reaper.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    reaper.unref();
    (reaper as unknown as { channel?: { unref(): void } }).channel?.unref();
  }
  if (reaper.connected) reaper.send(m);
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  if (c.pid !== undefined) tellReaper({ pid: c.pid });
  c.once('exit', () => {
    children.delete(c);
    if (c.pid !== undefined) tellReaper({ forgetPid: c.pid });
  });
  return c;
}

/** Fork a compiled helper of this folder (dist/bench/<name>.js) with an IPC channel. */
export function forkHelper(name: string, args: string[] = [], opts: { execPath?: string; execArgv?: string[] } = {}): ChildProcess {
  return track(
    fork(join(HERE, `${name}.js`), args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      ...(opts.execPath ? { execPath: opts.execPath } : {}),
      execArgv: opts.execArgv ?? [],
    }),
  );
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return track(spawn(cmd, args, opts));
}

export function makeTempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  tellReaper({ dir: d });
  return d;
}

export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
  tellReaper({ forgetDir: d });
}

/** Stop a child: `signal` first, SIGKILL after `graceMs`. Resolves when it has exited. */
export function stopChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill(signal);
  });
}

/** Kill everything still running and remove the temp folders (synchronous: also runs from process 'exit'). */
export function cleanupNow(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
  if (reaper?.connected) reaper.disconnect();
}

/** Clean up on every way out: normal exit, Ctrl-C, SIGTERM, an uncaught error. */
export function installCleanup(): void {
  process.on('exit', cleanupNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping every process the benchmark started and removing its temp folders\n`);
      cleanupNow();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`benchmark failed: ${e.stack ?? e.message}\n`);
    cleanupNow();
    process.exit(1);
  });
}

/** A TCP port free on 127.0.0.1 right now (asked of the kernel; never 1883). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        const p = typeof a === 'object' && a ? a.port : 0;
        s.close(() => resolve(p));
      });
    });
    if (port !== 1883 && port > 0) return port;
  }
}

// ---------------------------------------------------------------- /proc sampling

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface ProcSample {
  readonly t: number;
  /** utime + stime in clock ticks; undefined when the process is gone. */
  readonly ticks: number | undefined;
  readonly rssKiB: number | undefined;
}

function readProc(pid: number): { ticks: number; rssKiB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]); // fields 14 (utime) and 15 (stime)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return { ticks, rssKiB: m ? Number(m[1]) : 0 };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, all threads) a process has used so far, seconds, and its RSS, MiB; undefined when gone. */
export function procTimes(pid: number | undefined): { cpuSeconds: number; rssMiB: number } | undefined {
  const p = pid === undefined ? undefined : readProc(pid);
  return p ? { cpuSeconds: p.ticks / ticksPerSecond(), rssMiB: round1(p.rssKiB / 1024) } : undefined;
}

export interface ProcWindow {
  /** Average CPU over the window, % of one core (200 % = both cores of a 2-core machine). */
  readonly cpuPct: number;
  readonly rssMaxMiB: number;
  readonly rssEndMiB: number;
}

/** Samples CPU time and RSS of named processes every `everyMs` (default 500 ms) from /proc/<pid>/stat and status. */
export class ProcSampler {
  private readonly samples = new Map<string, ProcSample[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly everyMs = 500,
  ) {
    for (const name of Object.keys(pids)) this.samples.set(name, []);
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample now (also taken at the edges of measured windows, so short windows are covered). */
  sample(): void {
    const t = nowMs();
    for (const [name, pid] of Object.entries(this.pids)) {
      if (pid === undefined) continue;
      const p = readProc(pid);
      this.samples.get(name)!.push({ t, ticks: p?.ticks, rssKiB: p?.rssKiB });
    }
  }

  /** Every process's CPU and RSS between two instants (epoch ms). */
  between(from: number, to: number): Record<string, ProcWindow> {
    const out: Record<string, ProcWindow> = {};
    for (const [name, list] of this.samples) {
      const inside = list.filter((s) => s.t >= from - 1 && s.t <= to + 1 && s.ticks !== undefined);
      if (inside.length === 0) continue;
      const a = inside[0]!;
      const b = inside[inside.length - 1]!;
      const secs = (b.t - a.t) / 1000;
      const cpuPct = secs > 0 ? ((b.ticks! - a.ticks!) / ticksPerSecond() / secs) * 100 : 0;
      out[name] = {
        cpuPct: round1(cpuPct),
        rssMaxMiB: round1(Math.max(...inside.map((s) => s.rssKiB ?? 0)) / 1024),
        rssEndMiB: round1((b.rssKiB ?? 0) / 1024),
      };
    }
    return out;
  }

  /** The latest RSS of one process, MiB. */
  rssNowMiB(name: string): number | undefined {
    const pid = this.pids[name];
    if (pid === undefined) return undefined;
    const p = readProc(pid);
    return p ? round1(p.rssKiB / 1024) : undefined;
  }
}

// ---------------------------------------------------------------- numbers and tables

/** Percentiles of a list of numbers (nearest rank), rounded to 0.01 ms. */
export function percentiles(xs: Float64Array | number[]): Percentiles {
  const n = xs.length;
  if (n === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => round2(s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
  return { n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round2(s[n - 1]!) };
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** A column-aligned table; numeric cells are right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const numeric = (s: string) => /^[-+]?[\d.,]+( ?[%×a-zA-Z/]+)?$/.test(s);
  return rows
    .map((r, i) =>
      r
        .map((cell, c) => (i > 0 && numeric(cell) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function fmtInt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US');
}

export function fmtMs(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  return x >= 100 ? String(Math.round(x)) : x.toFixed(1);
}

// ---------------------------------------------------------------- machine and commit

export function gitInfo(): { sha: string; dirty: boolean } {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { sha, dirty };
  } catch {
    return { sha: 'nogit', dirty: false };
  }
}

export function loadAvg(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

/** The file system a folder is on (fsync costs depend on it). */
export function fsType(dir: string): string {
  for (const [cmd, argv] of [
    ['findmnt', ['-n', '-o', 'FSTYPE', '-T', dir]],
    ['stat', ['-f', '-c', '%T', dir]],
  ] as const) {
    try {
      const out = execFileSync(cmd, [...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (out) return out;
    } catch {
      // try the next way
    }
  }
  return 'unknown';
}

export function machineInfo(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    tempFileSystem: fsType(tmpdir()),
    loadAverageAtStart: loadAvg(),
  };
}

// ---------------------------------------------------------------- child output

/** Keeps the last lines a child wrote (for error reports) and lets us wait for a line matching a pattern. */
export class LineWatcher {
  private readonly tail: string[] = [];
  private readonly waits = new Set<{ re: RegExp; left: number; resolve: () => void }>();
  private partial = '';

  constructor(
    child: ChildProcess,
    private readonly keep = 40,
  ) {
    const onData = (chunk: Buffer) => {
      const text = this.partial + chunk.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.line(line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  private line(line: string): void {
    this.tail.push(line);
    if (this.tail.length > this.keep) this.tail.shift();
    for (const w of this.waits) {
      if (w.re.test(line) && --w.left <= 0) {
        this.waits.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves once `count` lines matched `re` (from now on), rejects after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs: number, count = 1): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w = {
        re,
        left: count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waits.delete(w);
        reject(new Error(`no line matching ${String(re)} within ${timeoutMs} ms; last lines:\n${this.lastLines()}`));
      }, timeoutMs);
      this.waits.add(w);
    });
  }

  lastLines(n = 15): string {
    return this.tail
      .slice(-n)
      .map((l) => `    ${l.slice(0, 300)}`)
      .join('\n');
  }
}

// Outbox benchmark: how fast a sink's durable outbox (a lane of the journal, src/outbox/journal.ts) takes readings in and gives them back on
// this machine, and how much disk a waiting reading takes; the in-memory outbox alongside for comparison.
// Not a test: nothing here asserts a time. See bench/README.md for what each figure means.
//
//   npm run bench:outbox                       (builds first)
//   node dist/bench/outbox.js --items 50000 --repeat 5 --dir /mnt/sd
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { systemClock } from '../src/core/clock.js';
import type { Reading } from '../src/core/types.js';
import { memoryOutbox, soloDurableOutbox } from '../src/outbox/journal.js';
import type { Outbox, OutboxLimits } from '../src/outbox/outbox.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/outbox.js → repository root

const { values: args } = parseArgs({
  options: {
    items: { type: 'string', default: '50000' },
    'single-items': { type: 'string', default: '1000' },
    repeat: { type: 'string', default: '3' },
    dir: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(
    [
      'node dist/bench/outbox.js [--items N] [--single-items N] [--repeat R] [--dir DIR] [--out FILE]',
      '  --items         readings per throughput run (default 50000)',
      '  --single-items  readings for the one-put-at-a-time run, one commit each (default 1000)',
      '  --repeat        runs of each case; the median is shown (default 3)',
      '  --dir           where the outbox files go (default: the temp folder); put it on the disk you care about',
      '  --out           results file (default bench/results/outbox-<date>-<git sha>.json)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const ITEMS = positiveInt(args.items, 'items');
const SINGLE = positiveInt(args['single-items'], 'single-items');
const REPEAT = positiveInt(args.repeat, 'repeat');

function positiveInt(v: string | undefined, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive whole number\n`);
    process.exit(2);
  }
  return n;
}

// ---------------------------------------------------------------- workload

/** A realistic reading: a radiator valve's frame, ~230 bytes as CBOR, ~280 as JSON. */
function reading(i: number): Reading {
  return {
    kind: 'reading',
    device: `valve-${(0x0a1b00 + (i % 64)).toString(16)}`,
    ts: 1_760_000_000_000 + i * 1000,
    seq: i,
    values: { temperature: 18 + (i % 700) / 100, humidity: 40 + (i % 300) / 10, battery: 3.01, valve: i % 101 },
    units: { temperature: 'Cel', humidity: '%RH', battery: 'V' },
    authenticated: false,
    source: { input: 'radio', decoder: 'opentrv' },
  };
}

const LIMITS: OutboxLimits = { maxItems: 10_000_000, maxBytes: 4 * 1024 ** 3, overflow: 'drop-oldest' };

type Kind = 'sqlite' | 'memory';
type Sync = 'full' | 'normal' | '-';

interface Made {
  readonly outbox: Outbox;
  readonly path?: string;
}

async function make(kind: Kind, sync: Sync, dir: string, name: string): Promise<Made> {
  if (kind === 'memory') return { outbox: memoryOutbox(LIMITS, systemClock) };
  const path = join(dir, `${name}.sqlite`);
  const outbox = await soloDurableOutbox(path, LIMITS, sync === 'normal' ? 'normal' : 'full', systemClock);
  return { outbox, path };
}

/** `workers` producers, each putting `perPut` readings and awaiting the put before the next (as inputs do). */
async function enqueue(o: Outbox, msgs: readonly Reading[], workers: number, perPut: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < msgs.length) {
      const from = next;
      next += perPut;
      await o.put(msgs.slice(from, from + perPut));
    }
  };
  const t = performance.now();
  await Promise.all(Array.from({ length: workers }, worker));
  return performance.now() - t;
}

/** The sink runner's loop without a sink: take a batch, acknowledge it (on disk), until empty. */
async function dequeue(o: Outbox, batch: number): Promise<{ ms: number; items: number }> {
  let items = 0;
  const t = performance.now();
  // As the runner does: acknowledgements are not awaited one by one (they reach the disk with the next commit).
  let last: Promise<void> = Promise.resolve();
  for (;;) {
    const b = await o.take(batch);
    if (b.length === 0) break;
    items += b.length;
    last = o.ack(b.length);
  }
  await last;
  return { ms: performance.now() - t, items };
}

/** Pages in the database file (with the page size, what it takes on disk apart from the WAL), by a second connection. */
function pageBytes(p: string): number {
  const db = new Database(p, { readonly: true });
  try {
    return (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  } finally {
    db.close();
  }
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------- cases

interface Throughput {
  readonly outbox: Kind;
  readonly sync: Sync;
  readonly case: string;
  readonly items: number;
  /** Every run, ms. */
  readonly runsMs: number[];
  readonly medianMs: number;
  readonly perSecond: number;
}

interface Footprint {
  readonly outbox: Kind;
  readonly sync: Sync;
  readonly items: number;
  /** The outbox's own count of message bytes (CBOR bodies for SQLite, a JSON estimate for memory) per item. */
  readonly payloadBytesPerItem: number;
  /** SQLite pages in use (page_count × page_size) per item. */
  readonly pageBytesPerItem?: number;
  /** The .sqlite file on disk per item (after a checkpoint). */
  readonly fileBytesPerItem?: number;
  /** .sqlite + -wal per item as they stood right after the puts, before any checkpoint. */
  readonly fileAndWalBytesPerItem?: number;
  /** .sqlite + -wal after every item was removed (space handed back). */
  readonly drainedFileBytes?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const ENQUEUE_CASES: ReadonlyArray<{ name: string; workers: number; perPut: number; single?: boolean }> = [
  { name: '1 reading per put, 1 put in flight', workers: 1, perPut: 1, single: true },
  { name: '1 reading per put, 16 puts in flight', workers: 16, perPut: 1 },
  { name: '1 reading per put, 256 puts in flight', workers: 256, perPut: 1 },
  { name: '100 readings per put, 1 put in flight', workers: 1, perPut: 100 },
];
const DEQUEUE_BATCH = 100;
const VARIANTS: ReadonlyArray<{ kind: Kind; sync: Sync }> = [
  { kind: 'sqlite', sync: 'full' },
  { kind: 'sqlite', sync: 'normal' },
  { kind: 'memory', sync: '-' },
];

async function main(): Promise<void> {
  const base = args.dir ?? tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'backhaul-bench-outbox-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const msgs = Array.from({ length: ITEMS }, (_, i) => reading(i));
  // Average sizes of the workload: as stored (CBOR, counted by the outbox itself) and as JSON.
  const probe = await make('sqlite', 'normal', dir, 'probe');
  await probe.outbox.put(msgs);
  const cborBytes = round1(probe.outbox.stats().bytes / msgs.length);
  await probe.outbox.close();
  const jsonBytes = round1(msgs.reduce((n, m) => n + JSON.stringify(m).length, 0) / msgs.length);

  const throughput: Throughput[] = [];
  const footprint: Footprint[] = [];
  let n = 0;
  const record = (kind: Kind, sync: Sync, name: string, items: number, runsMs: number[]) => {
    const med = median(runsMs);
    throughput.push({ outbox: kind, sync, case: name, items, runsMs: runsMs.map((x) => Math.round(x * 10) / 10), medianMs: Math.round(med * 10) / 10, perSecond: Math.round((items / med) * 1000) });
  };
  process.stderr.write(`outbox bench: ${ITEMS} readings (${cborBytes} B CBOR, ${jsonBytes} B JSON on average), ${REPEAT} runs each, files in ${dir}\n`);

  for (const v of VARIANTS) {
    for (const c of ENQUEUE_CASES) {
      const items = c.single ? Math.min(SINGLE, ITEMS) : ITEMS;
      const runs: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        const m = await make(v.kind, v.sync, dir, `e${n++}`);
        runs.push(await enqueue(m.outbox, msgs.slice(0, items), c.workers, c.perPut));
        await m.outbox.close();
        if (m.path) for (const s of ['', '-wal', '-shm']) rmSync(`${m.path}${s}`, { force: true });
      }
      record(v.kind, v.sync, `enqueue: ${c.name}`, items, runs);
      process.stderr.write('.');
    }
    // Dequeue from a full outbox; the same runs give the footprint.
    const runs: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const m = await make(v.kind, v.sync, dir, `d${n++}`);
      await enqueue(m.outbox, msgs, 256, 1);
      if (r === 0) {
        const st = m.outbox.stats();
        if (m.path) {
          const withWal = fileSize(m.path) + fileSize(`${m.path}-wal`);
          const pages = pageBytes(m.path);
          // A separate connection to checkpoint, so the main file holds everything (what a restart would find).
          const db = new Database(m.path);
          db.pragma('wal_checkpoint(TRUNCATE)');
          db.close();
          const file = fileSize(m.path);
          const d = await dequeue(m.outbox, DEQUEUE_BATCH);
          runs.push(d.ms);
          footprint.push({
            outbox: v.kind,
            sync: v.sync,
            items: st.items,
            payloadBytesPerItem: round1(st.bytes / st.items),
            pageBytesPerItem: round1(pages / st.items),
            fileBytesPerItem: round1(file / st.items),
            fileAndWalBytesPerItem: round1(withWal / st.items),
            drainedFileBytes: fileSize(m.path) + fileSize(`${m.path}-wal`),
          });
        } else {
          runs.push((await dequeue(m.outbox, DEQUEUE_BATCH)).ms);
          footprint.push({ outbox: v.kind, sync: v.sync, items: st.items, payloadBytesPerItem: round1(st.bytes / st.items) });
        }
      } else {
        runs.push((await dequeue(m.outbox, DEQUEUE_BATCH)).ms);
      }
      await m.outbox.close();
      if (m.path) for (const s of ['', '-wal', '-shm']) rmSync(`${m.path}${s}`, { force: true });
    }
    record(v.kind, v.sync, `dequeue: take ${DEQUEUE_BATCH} + ack, until empty (acks not awaited one by one)`, ITEMS, runs);
    process.stderr.write('.');
  }
  process.stderr.write('\n');

  // ---------------------------------------------------------------- report
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    fileSystem: fsType(dir),
    loadAverage: loadAvg(),
  };
  const git = gitInfo();
  const when = new Date();
  const result = {
    bench: 'outbox',
    date: when.toISOString(),
    git,
    machine,
    options: { items: ITEMS, singleItems: SINGLE, repeat: REPEAT, dir: base, dequeueBatch: DEQUEUE_BATCH },
    reading: { averageCborBytes: cborBytes, averageJsonBytes: jsonBytes, example: msgs[0] },
    throughput,
    footprint,
  };

  const out: string[] = [];
  out.push(`Outbox benchmark — ${when.toISOString()} — ${git.sha}${git.dirty ? ' (uncommitted changes)' : ''}`);
  out.push(`${machine.cpu}, ${machine.cores} cores, ${machine.platform}, Node ${machine.node}, files on ${machine.fileSystem}, load ${machine.loadAverage}`);
  out.push(`readings: ${cborBytes} B as CBOR (as stored), ${jsonBytes} B as JSON, on average; median of ${REPEAT} runs`);
  out.push('');
  out.push(
    table([
      ['outbox', 'sync', 'case', 'items', 'ms', 'items/s'],
      ...throughput.map((r) => [r.outbox, r.sync, r.case, String(r.items), r.medianMs.toFixed(1), r.perSecond.toLocaleString('en-US')]),
    ]),
  );
  out.push('');
  out.push(
    table([
      ['outbox', 'sync', 'items', 'payload B/item', 'pages B/item', 'file B/item', 'file+WAL B/item', 'drained file+WAL'],
      ...footprint.map((f) => [
        f.outbox,
        f.sync,
        String(f.items),
        String(f.payloadBytesPerItem),
        f.pageBytesPerItem === undefined ? '-' : String(f.pageBytesPerItem),
        f.fileBytesPerItem === undefined ? '-' : String(f.fileBytesPerItem),
        f.fileAndWalBytesPerItem === undefined ? '-' : String(f.fileAndWalBytesPerItem),
        f.drainedFileBytes === undefined ? '-' : `${f.drainedFileBytes} B`,
      ]),
    ]),
  );
  process.stdout.write(`${out.join('\n')}\n`);

  const file = args.out ?? join(ROOT, 'bench', 'results', `outbox-${when.toISOString().slice(0, 10)}-${git.sha}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nraw results: ${file}\n`);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const numeric = (s: string) => /^[\d.,]+( B)?$/.test(s);
  return rows
    .map((r, i) =>
      r
        .map((cell, c) => (i > 0 && numeric(cell) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function gitInfo(): { sha: string; dirty: boolean } {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { sha, dirty };
  } catch {
    return { sha: 'nogit', dirty: false };
  }
}

/** The file system the outbox files are on (Linux: findmnt, else stat -f); fsync costs depend on it. */
function fsType(dir: string): string {
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

function loadAvg(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

await main();

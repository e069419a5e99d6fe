// The slow disk of the end-to-end benchmark (bench/e2e.ts): Backhaul runs under strace, which delays every
// sync-family system call of its process (all threads) by a fixed time after the call returns, as a slow SD card
// would make each fsync wait. Everything else runs at full speed: with --seccomp-bpf the kernel stops the process
// only on the traced calls.
//
// `strace -D` runs the tracer as a detached grandchild, so the process the benchmark spawns *is* Backhaul (strace
// execs it in place): signals (SIGINT to stop it) reach Backhaul itself, its exit is the child's exit, and the CPU
// and RSS read from /proc/<child pid> are Backhaul's, not strace's. `-c -o FILE` counts the calls, written when
// Backhaul exits. Not a test: nothing here asserts anything.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './e2e-lib.js';

/**
 * The calls delayed and counted. SQLite syncs with fdatasync (the WAL on each commit with synchronous=FULL, the
 * database at checkpoints) and fsync (a directory after creating a file); the others are slowed too, in case
 * anything in the process uses them, and their counts show whether anything does.
 */
export const SYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range', 'msync', 'sync', 'syncfs'] as const;

/** strace's arguments before the traced command (`strace ...these -- node bin/backhaul.js start ...`). */
export function straceArgs(delayMs: number, statsFile: string): string[] {
  const calls = SYNC_CALLS.join(',');
  return [
    '-D',
    '-f',
    '--seccomp-bpf',
    '-c',
    '-U',
    'name,calls,errors',
    '-o',
    statsFile,
    '-e',
    `trace=${calls}`,
    '-e',
    `inject=${calls}:delay_exit=${Math.round(delayMs * 1000)}`,
    '--',
  ];
}

export interface SlowDiskProbe {
  readonly strace: string;
  /** Mean time of one write + fdatasync / + fsync of a small file, ms, without strace and under it. */
  readonly untraced: { fdatasyncMs: number; fsyncMs: number };
  readonly traced: { fdatasyncMs: number; fsyncMs: number };
  /** The calls strace counted in the probe. */
  readonly counted: Record<string, number>;
}

/** Syncs of each kind the probe makes. */
const PROBE_CALLS = 10;

const PROBE = `
const fs = require('node:fs');
const f = process.argv[2];
const fd = fs.openSync(f, 'w');
const time = (sync) => {
  const n = ${PROBE_CALLS};
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) { fs.writeSync(fd, 'x'); sync(fd); }
  return Number(process.hrtime.bigint() - t) / 1e6 / n;
};
const fdatasyncMs = time(fs.fdatasyncSync);
const fsyncMs = time(fs.fsyncSync);
fs.closeSync(fd);
fs.unlinkSync(f);
process.stdout.write(JSON.stringify({ pid: process.pid, fdatasyncMs, fsyncMs }));
`;

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; pid: number | undefined; stdout: string; stderr: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    c.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, pid: c.pid, stdout, stderr, error }));
    c.once('close', (code) => resolve({ code, pid: c.pid, stdout, stderr }));
  });
}

/** The counts of a `strace -c -U name,calls,errors` summary file ({} when there is none yet). */
export function parseStraceCounts(file: string): Record<string, number> {
  if (!existsSync(file)) return {};
  const out: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\w+)\s+(\d+)\b/.exec(line.trim());
    if (m && m[1] !== 'total' && m[1] !== 'syscall') out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Waits (up to `timeoutMs`) for strace, which outlives the tracee by a moment, to write its summary. */
export async function readStraceCounts(file: string, timeoutMs = 5000): Promise<Record<string, number> | undefined> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(file) && /^total\b/m.test(readFileSync(file, 'utf8'))) return parseStraceCounts(file);
    await sleep(50);
  }
  return existsSync(file) ? parseStraceCounts(file) : undefined;
}

/**
 * Can this machine run the slow disk, and does the delay take effect? Runs a tiny program that times write + sync
 * of a file in `dir`, once as it is and once under the same strace command Backhaul will run under; the delay must
 * show in the traced times and the traced process must be the one spawned. An error message says why not (strace
 * missing, ptrace refused, the delay not seen).
 */
export async function probeSlowDisk(delayMs: number, dir: string): Promise<SlowDiskProbe | { error: string }> {
  const version = await run('strace', ['-V'], 10_000);
  if (version.error?.code === 'ENOENT') return { error: 'strace is not installed (apt-get install strace); the slow-disk scenario needs it' };
  if (version.code !== 0) return { error: `strace -V failed: ${(version.stderr || version.error?.message || '').trim()}` };
  const strace = version.stdout.split('\n')[0]!.trim();
  const script = join(dir, 'slowdisk-probe.cjs');
  writeFileSync(script, PROBE);
  const file = join(dir, 'slowdisk-probe.dat');
  const plain = await run(process.execPath, [script, file], 30_000);
  if (plain.code !== 0) return { error: `the fsync probe failed: ${plain.stderr.trim()}` };
  const stats = join(dir, 'slowdisk-probe.strace');
  const traced = await run('strace', [...straceArgs(delayMs, stats), process.execPath, script, file], 60_000);
  if (traced.code !== 0) {
    const lines = traced.stderr.trim().split('\n');
    const fromStrace = lines.filter((l) => l.startsWith('strace:'));
    if (fromStrace.length > 0 || traced.error) {
      const why = (fromStrace.length > 0 ? fromStrace : [traced.error?.message ?? '']).slice(-2).join(' ');
      return { error: `strace cannot trace here (${why}): ptrace may be refused (a container without CAP_SYS_PTRACE, kernel.yama.ptrace_scope)` };
    }
    return { error: `the fsync probe failed under strace (exit ${String(traced.code)}): ${lines.slice(-3).join(' ')}` };
  }
  const u = JSON.parse(plain.stdout) as { fdatasyncMs: number; fsyncMs: number };
  const t = JSON.parse(traced.stdout) as { pid: number; fdatasyncMs: number; fsyncMs: number };
  const counted = (await readStraceCounts(stats)) ?? {};
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const probe = { strace, untraced: { fdatasyncMs: r2(u.fdatasyncMs), fsyncMs: r2(u.fsyncMs) }, traced: { fdatasyncMs: r2(t.fdatasyncMs), fsyncMs: r2(t.fsyncMs) }, counted };
  if (t.pid !== traced.pid) return { error: `under strace -D the traced program's pid (${t.pid}) is not the spawned one (${String(traced.pid)})` };
  // The delay comes on top of the disk's own sync time, which varies a lot on a busy machine: so the check is that a
  // traced sync takes at least (nearly) the delay, and that strace saw every call, not a difference of two noisy means.
  const seen = (counted.fdatasync ?? 0) >= PROBE_CALLS && (counted.fsync ?? 0) >= PROBE_CALLS;
  if (!seen || Math.min(t.fdatasyncMs, t.fsyncMs) < delayMs * 0.9) {
    return {
      error:
        `strace ran but the delay did not take effect: write + fdatasync ${probe.traced.fdatasyncMs} ms traced (${probe.untraced.fdatasyncMs} ms without), ` +
        `write + fsync ${probe.traced.fsyncMs} ms (${probe.untraced.fsyncMs} ms); strace counted ${JSON.stringify(counted)}`,
    };
  }
  return probe;
}

/** The pid tracing `pid` (0: none), from /proc/<pid>/status. */
export function tracerPid(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^TracerPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The command line of a process, for the record (that the traced child is Backhaul). */
export function cmdline(pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return undefined;
  }
}


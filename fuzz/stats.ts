// What a fuzz target reports: inputs run, mean time per input, the slowest input, and whether time grows linearly
// with size (time per byte of the slowest large input against the mean of the large inputs).

/** Inputs at least this long count as large for the linearity check. */
export const LARGE_BYTES = 16 * 1024;

export interface Slowest {
  readonly bytes: number;
  readonly ns: number;
  /** What kind of input it was (the generator's name). */
  readonly family: string;
}

export class TargetStats {
  runs = 0;
  totalNs = 0;
  totalBytes = 0;
  slowest: Slowest = { bytes: 0, ns: 0, family: '' };
  largeRuns = 0;
  largeNsPerByteSum = 0;
  /** The large input with the highest time per byte. */
  worstLarge: Slowest = { bytes: 0, ns: 0, family: '' };
  /** Outcomes by name (decoded, skipped, an error code, closed, ...). */
  readonly outcomes = new Map<string, number>();

  /** `clock`: what the times are (`CPU time` for a decoder, `wall time` for a broker session). */
  constructor(
    readonly name: string,
    readonly clock: string,
  ) {}

  record(bytes: number, ns: number, family: string, outcome: string): void {
    this.runs++;
    this.totalNs += ns;
    this.totalBytes += bytes;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    if (ns > this.slowest.ns) this.slowest = { bytes, ns, family };
    if (bytes >= LARGE_BYTES) {
      this.largeRuns++;
      this.largeNsPerByteSum += ns / bytes;
      if (ns / bytes > this.worstLarge.ns / Math.max(1, this.worstLarge.bytes)) this.worstLarge = { bytes, ns, family };
    }
  }

  /** Worst large input's ns/byte over the large inputs' mean ns/byte: near 1 when time is linear in size. */
  linearityRatio(): number | undefined {
    if (this.largeRuns === 0) return undefined;
    const mean = this.largeNsPerByteSum / this.largeRuns;
    return this.worstLarge.ns / this.worstLarge.bytes / mean;
  }
}

/** Growth of time with size, from a family measured at doubling sizes: the log-log slope (1 linear, 2 quadratic). */
export interface Scaling {
  readonly family: string;
  readonly points: ReadonlyArray<{ readonly bytes: number; readonly ns: number }>;
  readonly slope: number;
  /** The slope of parsing the same inputs alone (JSON.parse, cbor-x): the platform's own growth, for comparison. */
  readonly parseSlope: number;
}

export function slope(points: ReadonlyArray<{ readonly bytes: number; readonly ns: number }>): number {
  const first = points[0];
  const last = points[points.length - 1];
  if (!first || !last || last.bytes === first.bytes) return Number.NaN;
  return Math.log(last.ns / first.ns) / Math.log(last.bytes / first.bytes);
}

/**
 * The least CPU time (this process's, in ns) of `repeat` calls of `fn`: CPU time rather than wall time, and the
 * fastest run, so that other work on a shared machine and the odd collection do not pass for growth. With
 * `node --expose-gc`, each run starts after a full collection.
 */
/** CPU time of this process so far, in ns (µs resolution on Linux). */
export function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

export function fastestCpuNs(fn: () => void, repeat = 7): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeat; i++) {
    gc?.();
    const t0 = process.cpuUsage();
    fn();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) * 1000);
  }
  return best;
}

const us = (ns: number) => `${(ns / 1000).toFixed(1)} µs`;
const ms = (ns: number) => `${(ns / 1e6).toFixed(2)} ms`;
const size = (b: number) => (b >= 1024 * 1024 ? `${(b / 1024 / 1024).toFixed(2)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`);

/**
 * Linear enough: the log-log slope of the scaling probe. Garbage collection alone takes a linear decoder (and
 * JSON.parse itself) to 1.2-1.5 at these sizes; the quadratic name search of issue 11 measured 2.0.
 */
export const LINEAR_SLOPE = 1.6;

export function formatReport(s: TargetStats, scaling: readonly Scaling[]): string {
  const lines = [`${s.name} (times are ${s.clock})`];
  lines.push(`  inputs run        ${s.runs} (${size(s.totalBytes)} in all)`);
  lines.push(`  mean per input    ${us(s.runs ? s.totalNs / s.runs : 0)}`);
  lines.push(`  slowest input     ${ms(s.slowest.ns)} for ${size(s.slowest.bytes)} (${s.slowest.family})`);
  const ratio = s.linearityRatio();
  if (ratio !== undefined) {
    const mean = s.largeNsPerByteSum / s.largeRuns;
    lines.push(
      `  large inputs      ${s.largeRuns} of ≥ ${size(LARGE_BYTES)}: mean ${(mean).toFixed(1)} ns/byte; worst ${(s.worstLarge.ns / s.worstLarge.bytes).toFixed(1)} ns/byte ` +
        `(${size(s.worstLarge.bytes)}, ${s.worstLarge.family}), ${ratio.toFixed(1)}× the mean`,
    );
  }
  if (scaling.length > 0) lines.push('  (scaling: least CPU time of 7 runs at 1,250 to 10,000 records, readings or members; slope 1 is linear, 2 quadratic)');
  for (const sc of scaling) {
    const pts = sc.points.map((p) => `${size(p.bytes)} ${ms(p.ns)}`).join(', ');
    const verdict = sc.slope <= LINEAR_SLOPE ? 'linear' : 'NOT LINEAR';
    lines.push(`  scaling           ${sc.family}: ${pts} → slope ${sc.slope.toFixed(2)} (${verdict}; parsing alone ${sc.parseSlope.toFixed(2)})`);
  }
  const outcomes = [...s.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
  lines.push(`  outcomes          ${outcomes.join(', ')}`);
  return lines.join('\n');
}

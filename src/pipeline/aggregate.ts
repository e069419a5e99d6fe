// Aggregates of the numeric values of one series in one time bucket, shared by `window` and `privacy`.
// Everything but the median is kept as running sums; the median keeps the samples (only when asked for).

export const AGG_OPS = ['mean', 'median', 'min', 'max', 'count', 'sum', 'last'] as const;
export type AggOp = (typeof AGG_OPS)[number];

export class Accumulator {
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  last = NaN;
  private lastTs = -Infinity;
  private readonly samples: number[] | undefined;

  constructor(keepSamples: boolean) {
    this.samples = keepSamples ? [] : undefined;
  }

  add(v: number, ts: number): void {
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    // `last` is the value with the latest time, not the last to arrive: a late reading does not become `last`.
    if (ts >= this.lastTs) {
      this.last = v;
      this.lastTs = ts;
    }
    this.samples?.push(v);
  }

  result(op: AggOp): number {
    switch (op) {
      case 'mean':
        return this.sum / this.count;
      case 'median':
        return median(this.samples ?? []);
      case 'min':
        return this.min;
      case 'max':
        return this.max;
      case 'count':
        return this.count;
      case 'sum':
        return this.sum;
      case 'last':
        return this.last;
    }
  }
}

/** The middle value; with an even count, the mean of the two middle values. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The unit of an aggregate: a count has the SenML unit `count`; the others keep the values' unit. */
export function aggregateUnit(op: AggOp, unit: string | undefined): string | undefined {
  return op === 'count' ? 'count' : unit;
}

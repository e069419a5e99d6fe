// Tumbling windows in event time, per device: the engine behind `window` and `privacy` (aggregate).
//
// Each device has a watermark: the latest event time known for it, advanced by the clock since it was last set
// (so a live device that goes silent still gets its windows closed on time) and by every reading newer than it (so a
// replay of historic data closes its windows from the readings' own timestamps, however fast it runs). A window
// [start, end) of that device closes when the watermark reaches end + grace; a reading whose window already closed is
// late. One clock timer serves every device: it fires at the earliest closing time.
import type { ClockTimer } from '../core/clock.js';
import type { StageContext } from '../core/driver.js';
import type { Reading, ReadingSource, Value } from '../core/types.js';
import { Accumulator, aggregateUnit, type AggOp } from './aggregate.js';

export interface WindowEngineOptions {
  readonly everyMs: number;
  readonly graceMs: number;
  /** Start of the window holding `ts`. */
  readonly align: (ts: number) => number;
  readonly ops: readonly AggOp[];
  /** `same`: the aggregate keeps the measurement's name (one op); `suffix`: `<name>_<op>`. */
  readonly naming: 'same' | 'suffix';
  readonly late: 'drop' | 'correct';
  /** With `late: correct`: how long (event time) after it closed a window still takes corrections. */
  readonly correctForMs: number;
  /** Most (device, measurement, window) aggregates held at once. */
  readonly maxKeys: number;
  readonly stamp: 'start' | 'end';
  /** Aggregates of fewer samples are withheld (counted `min_count`). */
  readonly minCount: number;
}

/** `a mod n`, never negative. */
export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/** Readings stamped further than this ahead of the clock are refused: one bad device clock must not close every window. */
export const FUTURE_LIMIT_MS = 3_600_000;
/** Timer ticks are at least this far apart, however many devices close at slightly different times. */
const MIN_TICK_MS = 1000;

interface Series {
  readonly acc: Accumulator;
  unit: string | undefined;
}

interface Win {
  readonly start: number;
  readonly end: number;
  readonly series: Map<string, Series>;
  /** 0 until emitted; each correction adds one. */
  revision: number;
  authenticated: boolean;
  source: ReadingSource;
}

interface Dev {
  readonly device: string;
  /** Watermark (event time) as of clock time `at`. */
  wm: number;
  at: number;
  readonly open: Map<number, Win>;
  /** Emitted windows kept for corrections. */
  readonly kept: Map<number, Win>;
}

export class WindowEngine {
  /** Devices holding windows. */
  private readonly active = new Map<string, Dev>();
  /** Devices whose windows all closed: only their watermark is kept (least recently seen first). */
  private readonly idle = new Map<string, Dev>();
  private keys = 0;
  private timer: ClockTimer | undefined;
  private timerAt = Infinity;
  private lastTick = -Infinity;
  private stopped = false;
  private readonly keepSamples: boolean;

  constructor(
    private readonly o: WindowEngineOptions,
    private readonly ctx: StageContext,
  ) {
    this.keepSamples = o.ops.includes('median');
  }

  /** Aggregates (and device watermarks) held now; for tests and status. */
  size(): { keys: number; devices: number } {
    return { keys: this.keys, devices: this.active.size + this.idle.size };
  }

  /**
   * Take one reading's numeric values (possibly none: the reading still advances its device's watermark). Returns
   * the windows this reading closed, and a correction when it was late and `late` is `correct`.
   */
  add(r: Reading, values: ReadonlyArray<readonly [string, number]>): Reading[] {
    if (this.stopped) return [];
    const now = this.ctx.clock.now();
    if (r.ts > now + FUTURE_LIMIT_MS) {
      if (values.length > 0) this.ctx.dropped('future');
      return [];
    }
    const dev = this.device(r.device, now);
    if (!dev) {
      if (values.length > 0) this.ctx.dropped('max_keys', values.length);
      return [];
    }
    const wm = Math.max(this.watermark(dev, now), r.ts);
    dev.wm = wm;
    dev.at = now;
    const out: Reading[] = [];
    if (values.length > 0) {
      const start = this.o.align(r.ts);
      const end = start + this.o.everyMs;
      if (end + this.o.graceMs > wm) {
        this.addTo(dev.open, start, r, values);
      } else if (this.o.late === 'drop') {
        this.ctx.dropped('late');
      } else if (end + this.o.graceMs + this.o.correctForMs <= wm) {
        this.ctx.dropped('too_late');
      } else {
        const w = this.addTo(dev.kept, start, r, values);
        if (w) {
          w.revision++;
          const c = this.output(dev.device, w);
          if (c) out.push(c);
        }
      }
    }
    out.push(...this.closeDue(dev, wm));
    this.file(dev);
    this.schedule(dev);
    return out;
  }

  /** Stop the timer; with `flush`, emit every open window as it is now (through `ctx.emit`). */
  stop(flush: boolean): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.ctx.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (flush) {
      for (const dev of this.active.values()) {
        for (const w of [...dev.open.values()].sort((a, b) => a.start - b.start)) {
          const m = this.output(dev.device, w);
          if (m) this.ctx.emit(m);
        }
      }
    }
    this.active.clear();
    this.idle.clear();
    this.keys = 0;
  }

  private watermark(dev: Dev, now: number): number {
    return dev.wm + Math.max(0, now - dev.at);
  }

  /** The device's state, created if there is room; undefined past `maxKeys` devices with no idle one to forget. */
  private device(id: string, now: number): Dev | undefined {
    const a = this.active.get(id);
    if (a) return a;
    const i = this.idle.get(id);
    if (i) {
      this.idle.delete(id);
      return i;
    }
    if (this.active.size + this.idle.size >= this.o.maxKeys) {
      const oldest = this.idle.keys().next();
      if (oldest.done) return undefined;
      // Forgetting an idle device's watermark costs only its late-reading detection.
      this.idle.delete(oldest.value);
      this.ctx.dropped('key_evicted');
    }
    return { device: id, wm: -Infinity, at: now, open: new Map(), kept: new Map() };
  }

  /** Put the device back in `active` or (at the end of) `idle`. */
  private file(dev: Dev): void {
    if (dev.open.size > 0 || dev.kept.size > 0) {
      if (!this.active.has(dev.device)) this.active.set(dev.device, dev);
    } else {
      this.active.delete(dev.device);
      this.idle.set(dev.device, dev);
    }
  }

  private addTo(wins: Map<number, Win>, start: number, r: Reading, values: ReadonlyArray<readonly [string, number]>): Win | undefined {
    let w = wins.get(start);
    const fresh = !w;
    w ??= { start, end: start + this.o.everyMs, series: new Map(), revision: 0, authenticated: r.authenticated, source: r.source };
    let refused = 0;
    for (const [name, v] of values) {
      let s = w.series.get(name);
      if (!s) {
        if (this.keys >= this.o.maxKeys) {
          refused++;
          continue;
        }
        s = { acc: new Accumulator(this.keepSamples), unit: undefined };
        w.series.set(name, s);
        this.keys++;
      }
      s.acc.add(v, r.ts);
      const u = r.units?.[name];
      if (u !== undefined) s.unit = u;
    }
    if (refused > 0) this.ctx.dropped('max_keys', refused);
    if (w.series.size === 0) return undefined;
    if (fresh) wins.set(start, w);
    w.authenticated &&= r.authenticated;
    w.source = r.source;
    return w;
  }

  private release(w: Win): void {
    this.keys -= w.series.size;
  }

  /** Close the device's windows that the watermark passed; forget kept ones past the correction period. */
  private closeDue(dev: Dev, wm: number): Reading[] {
    const g = this.o.graceMs;
    const out: Reading[] = [];
    if (dev.open.size > 0) {
      const due = [...dev.open.values()].filter((w) => w.end + g <= wm).sort((a, b) => a.start - b.start);
      for (const w of due) {
        dev.open.delete(w.start);
        const m = this.output(dev.device, w);
        if (m) out.push(m);
        if (this.o.late === 'correct') dev.kept.set(w.start, w);
        else this.release(w);
      }
    }
    for (const w of dev.kept.values()) {
      if (w.end + g + this.o.correctForMs <= wm) {
        dev.kept.delete(w.start);
        this.release(w);
      }
    }
    return out;
  }

  private output(device: string, w: Win): Reading | undefined {
    const values: Record<string, Value> = {};
    const units: Record<string, string> = {};
    let withheld = 0;
    for (const [name, s] of w.series) {
      if (s.acc.count < this.o.minCount) {
        withheld++;
        continue;
      }
      for (const op of this.o.ops) {
        const n = this.o.naming === 'same' ? name : `${name}_${op}`;
        values[n] = s.acc.result(op);
        const u = aggregateUnit(op, s.unit);
        if (u !== undefined) units[n] = u;
      }
    }
    if (withheld > 0) this.ctx.dropped('min_count', withheld);
    if (Object.keys(values).length === 0) return undefined;
    if (w.revision > 0) values['revision'] = w.revision;
    return {
      kind: 'reading',
      device,
      ts: this.o.stamp === 'start' ? w.start : w.end,
      values,
      ...(Object.keys(units).length > 0 ? { units } : {}),
      authenticated: w.authenticated,
      source: w.source,
    };
  }

  // ------------------------------------------------------------ clock

  /** Clock time at which the device's next window closes (or a kept one expires). */
  private dueAt(dev: Dev): number {
    let edge = Infinity;
    for (const w of dev.open.values()) edge = Math.min(edge, w.end + this.o.graceMs);
    for (const w of dev.kept.values()) edge = Math.min(edge, w.end + this.o.graceMs + this.o.correctForMs);
    return edge === Infinity ? Infinity : dev.at + (edge - dev.wm);
  }

  private schedule(dev: Dev): void {
    const t = this.dueAt(dev);
    if (t < this.timerAt) this.arm(t);
  }

  private arm(t: number): void {
    if (this.stopped) return;
    if (this.timer) this.ctx.clock.clearTimeout(this.timer);
    const at = Math.max(t, this.lastTick + MIN_TICK_MS);
    this.timerAt = at;
    this.timer = this.ctx.clock.setTimeout(() => this.tick(), Math.max(0, at - this.ctx.clock.now()));
  }

  private tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const now = this.ctx.clock.now();
    this.lastTick = now;
    let next = Infinity;
    for (const dev of [...this.active.values()]) {
      const wm = this.watermark(dev, now);
      dev.wm = wm;
      dev.at = now;
      for (const m of this.closeDue(dev, wm)) this.ctx.emit(m);
      this.file(dev);
      next = Math.min(next, this.dueAt(dev));
    }
    if (next < Infinity) this.arm(next);
  }
}

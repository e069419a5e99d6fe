// What the device gate learns of devices from the rhythm of their messages, kept in memory: the silence threshold
// of a device without one of its own (factor × the median gap between its reports, within bounds; `devices.learn`),
// and, for LoRaWAN devices, their frame counters (a repeat is a duplicate, a gap lost uplinks, a fall a reset).

/** How a device's silence threshold is learned from the gaps between its messages. */
export interface LearnOptions {
  /** The threshold is this many times the median gap. */
  readonly factor: number;
  /** Gaps needed before a threshold is learned (the last 2 × samples are kept). */
  readonly samples: number;
  readonly minMs: number;
  readonly maxMs: number;
}

/** Gaps shorter than this are a burst (several frames of one report), not a report interval. */
const BURST_MS = 1000;

/** The median of a non-empty list. */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The per-device state of learning: its last message and the gaps before it. */
interface Cadence {
  last: number;
  readonly gaps: number[];
  learned: number | undefined;
}

/** Silence thresholds learned per device. One entry per device that has no threshold of its own. */
export class CadenceLearner {
  private readonly devices = new Map<string, Cadence>();

  constructor(private readonly o: LearnOptions) {}

  /**
   * One more message of a device at `at`: the new threshold when it is learned or moved by more than a fifth (so a
   * steady device learns it once), else undefined. `known`: what was learned before (kept in the registry).
   */
  observe(id: string, at: number, known: number | undefined): number | undefined {
    const c = this.devices.get(id);
    if (!c) {
      this.devices.set(id, { last: at, gaps: [], learned: known });
      return undefined;
    }
    const gap = at - c.last;
    if (gap < BURST_MS) return undefined;
    c.last = at;
    c.gaps.push(gap);
    if (c.gaps.length > 2 * this.o.samples) c.gaps.shift();
    if (c.gaps.length < this.o.samples) return undefined;
    const ms = Math.round(Math.min(this.o.maxMs, Math.max(this.o.minMs, this.o.factor * median(c.gaps))));
    if (c.learned !== undefined && Math.abs(ms - c.learned) <= c.learned / 5) return undefined;
    c.learned = ms;
    return ms;
  }

  /** What was learned for a device since the start, if anything. */
  learned(id: string): number | undefined {
    return this.devices.get(id)?.learned;
  }

  /** An operator set the device's own threshold: nothing more is learned for it. */
  forget(id: string): void {
    this.devices.delete(id);
  }
}

/** A frame counter this far below the last one is a reset (a rejoin, a reboot), not a late duplicate. */
const FCNT_RESET_BELOW = 16;

/** What the gate knows of a LoRaWAN device's uplinks since it started: in memory only. */
export interface UplinkCounts {
  readonly lastFCnt: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly resets: number;
}

/** LoRaWAN frame counters by device, bounded like the gate's other per-device maps. */
export class FrameCounters {
  private readonly devices = new Map<string, { lastFCnt: number; lost: number; duplicates: number; resets: number }>();

  /**
   * One more uplink: `duplicate` when it repeats the last frame counter (the NS, or a second network path, delivered
   * it twice) or comes a little below it (late); else how many uplinks between were lost. One well below the last is
   * a reset (a rejoin without a join message seen, a reboot), not a loss.
   */
  observe(id: string, fCnt: number): 'duplicate' | { readonly lost: number } {
    const u = this.devices.get(id);
    if (!u) {
      if (this.devices.size >= 100_000) this.devices.clear();
      this.devices.set(id, { lastFCnt: fCnt, lost: 0, duplicates: 0, resets: 0 });
      return { lost: 0 };
    }
    if (fCnt === u.lastFCnt || (fCnt < u.lastFCnt && u.lastFCnt - fCnt < FCNT_RESET_BELOW && fCnt >= FCNT_RESET_BELOW)) {
      u.duplicates++;
      return 'duplicate';
    }
    let lost = 0;
    if (fCnt > u.lastFCnt) lost = fCnt - u.lastFCnt - 1;
    else u.resets++;
    u.lost += lost;
    u.lastFCnt = fCnt;
    return { lost };
  }

  /** The last frame counter a previous run kept: the next uplink repeating it is a duplicate. */
  seed(id: string, fCnt: number): void {
    if (!this.devices.has(id)) this.devices.set(id, { lastFCnt: fCnt, lost: 0, duplicates: 0, resets: 0 });
  }

  /** A (re)join: the device's counter starts again. */
  joined(id: string): void {
    const u = this.devices.get(id);
    if (u) u.lastFCnt = -1;
  }

  counts(id: string): UplinkCounts | undefined {
    const u = this.devices.get(id);
    return u && { ...u, lastFCnt: Math.max(0, u.lastFCnt) };
  }
}

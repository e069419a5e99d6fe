import type { Clock } from './clock.js';

/**
 * Lets a message through once per key per interval and counts what it held back, so a flood of bad frames
 * produces one log line a minute per reason ("... and 4211 more like it") instead of filling the disk.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly clock: Clock,
    private readonly intervalMs = 60_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** Returns null when the caller should stay quiet, else how many were suppressed since the last one let through. */
  take(key: string): number | null {
    const now = this.clock.now();
    const e = this.last.get(key);
    if (e && now - e.at < this.intervalMs) {
      e.suppressed++;
      return null;
    }
    if (!e && this.last.size >= this.maxKeys) this.last.clear(); // bounded memory beats perfect throttling
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}

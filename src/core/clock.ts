// Time is injected so stages, liveness and log throttling can be tested with a fake clock.

export interface Clock {
  /** ms since the Unix epoch */
  now(): number;
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(t: ClockTimer): void;
}

export interface ClockTimer {
  readonly id: unknown;
}

// Timers are ordinary (ref'd) timers: a pending retry or drain wait must keep the process alive. Every owner clears
// its timers in stop(), so a stopped hub leaves nothing behind.
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => ({ id: setTimeout(fn, ms) }),
  clearTimeout: (t) => clearTimeout(t.id as NodeJS.Timeout),
};

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; fn: () => void; handle: ClockTimer }> = [];
  constructor(start = 0) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): ClockTimer {
    const handle: ClockTimer = { id: Symbol('timer') };
    this.timers.push({ at: this.t + ms, fn, handle });
    return handle;
  }
  clearTimeout(t: ClockTimer): void {
    this.timers = this.timers.filter((x) => x.handle !== t);
  }
  /** How many timers are set and not yet fired or cleared. */
  pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = until;
  }
}

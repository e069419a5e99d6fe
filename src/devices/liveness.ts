// Liveness and battery health: watches when each device was last heard from and what its battery says, and raises
// hub Events (routed like readings) when that changes:
//
//   device.offline      warning  silent longer than its max silent interval; once, until it is heard from again
//   device.online       info     its next message after device.offline
//   device.battery_low  warning  battery under its floor; once, until it recovers above floor + hysteresis
//   device.battery_ok   info     that recovery; once
//   liveness.overflow   warning  the monitor is full (maxDevices): new devices are not watched
//
// Timers: ONE clock timer, for the earliest deadline of an indexed min-heap of devices keyed by the time they would
// count as silent. 100,000 devices cost one timer; a message moves its device down the heap in O(log n) and does not
// touch the timer (the timer may wake up for a deadline that moved later; it then re-arms for the new earliest one).
//
// Nothing is persisted here: after a restart `start()` is given each device's last-seen time and whether it was
// offline already (the hub passes the devices whose offline alarm is open, src/devices/alarms.ts), so the same
// silence raises device.offline once, not once per run; battery state is learnt again from the next reading.
import { humanDuration } from '../core/duration.js';
import type { Clock, ClockTimer } from '../core/clock.js';
import { makeEvent } from '../core/events.js';
import type { HubEvent, Reading, Value } from '../core/types.js';

export interface LivenessThresholds {
  /** Silent longer than this (ms) is offline. */
  readonly maxSilentMs?: number;
  /** Battery below this (volts) is low. */
  readonly batteryFloor?: number;
}

export interface LivenessOptions {
  readonly clock: Clock;
  /** Where events go (the router). Called after the monitor's state is updated; it must not throw. */
  readonly emit: (event: HubEvent) => void;
  /** A device's effective thresholds (`effectiveThresholds`), or undefined for none. Read on every message. */
  readonly thresholdsOf: (deviceId: string) => LivenessThresholds | undefined;
  /** Name of the reading value holding the battery voltage. Default `battery`. */
  readonly batteryMeasurement?: string;
  /** Volts above the floor the battery must reach to count as recovered. Default 0.1. */
  readonly hysteresis?: number;
  /** Most devices watched at once (bounded memory). Default 100,000; see `stats().refused`. */
  readonly maxDevices?: number;
  /** How a device is named in messages, e.g. `valve 819c`. Default `device <id>`. */
  readonly describe?: (deviceId: string) => string;
}

export interface LivenessState {
  /** true: heard from within its threshold; false: offline (device.offline raised); undefined: cannot tell. */
  readonly online: boolean | undefined;
  /** When it was last heard from (ms, the hub's clock), if ever. */
  readonly lastSeen: number | undefined;
  readonly batteryLow: boolean;
  /** The last battery voltage read, if any. */
  readonly battery: number | undefined;
}

export interface LivenessCounts {
  /** Heard from within their threshold. */
  readonly active: number;
  /** Offline: silent longer than their threshold. */
  readonly outdated: number;
  /** Watched but without a max silent interval, or never heard from. */
  readonly unknown: number;
}

export interface LivenessStats {
  /** Devices watched (at most maxDevices). */
  readonly tracked: number;
  /** Messages and start entries of devices turned away because the monitor was full. */
  readonly refused: number;
  /** Battery values ignored: not a finite number, or a unit other than `V`. */
  readonly batteryIgnored: number;
}

export const DEFAULT_HYSTERESIS_V = 0.1;
export const DEFAULT_MAX_DEVICES = 100_000;
/** Node clamps longer setTimeout delays to 1 ms; longer waits are done in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

interface Entry {
  readonly id: string;
  lastSeen: number | undefined;
  online: boolean | undefined;
  batteryLow: boolean;
  battery: number | undefined;
  /** First instant (ms) at which it has been silent longer than its threshold; meaningful while in the heap. */
  deadline: number;
  /** Position in the heap, -1 when not in it. */
  heapIdx: number;
}


/** Volts for messages: `2.31 V`. */
function volts(v: number): string {
  return `${Math.round(v * 1000) / 1000} V`;
}

export class LivenessMonitor {
  private readonly entries = new Map<string, Entry>();
  /** Min-heap on `deadline` of the devices with a max silent interval that are not offline. */
  private readonly heap: Entry[] = [];
  private timer: ClockTimer | undefined;
  /** The instant the timer is set for. */
  private armedAt: number | undefined;
  private running = false;
  private full = false;
  private refused = 0;
  private batteryIgnored = 0;
  private readonly measurement: string;
  private readonly hysteresis: number;
  private readonly maxDevices: number;

  constructor(private readonly o: LivenessOptions) {
    this.measurement = o.batteryMeasurement ?? 'battery';
    this.hysteresis = o.hysteresis ?? DEFAULT_HYSTERESIS_V;
    this.maxDevices = o.maxDevices ?? DEFAULT_MAX_DEVICES;
    if (!Number.isFinite(this.hysteresis) || this.hysteresis < 0) throw new RangeError('hysteresis must be a finite number of volts >= 0');
    if (!Number.isInteger(this.maxDevices) || this.maxDevices < 1) throw new RangeError('maxDevices must be a positive integer');
  }

  /**
   * Watch these devices (the registry's list with their last-seen times) and arm the timer. A device already silent
   * longer than its threshold raises device.offline on the first timer turn after start (a 0 ms timer, not inside
   * this call); others at their threshold counted from `lastSeen`. A device never seen is watched from its first
   * message: freshly provisioned devices do not all go offline 30 minutes after start. Devices observed before
   * start keep the later of the two times; a device already offline (start after stop) stays so until a message.
   */
  start(initial: Iterable<{ readonly id: string; readonly lastSeen?: number | undefined; readonly offline?: boolean }> = []): void {
    const now = this.o.clock.now();
    for (const d of initial) {
      const known = this.entries.get(d.id);
      const e = known ?? this.add(d.id);
      if (!e) continue;
      if (d.offline === true && !known) {
        // Offline already in the last run (its alarm is open): the same silence raises no second device.offline;
        // its next message raises device.online.
        e.online = false;
        if (d.lastSeen !== undefined && Number.isFinite(d.lastSeen)) e.lastSeen = Math.min(d.lastSeen, now);
        continue;
      }
      if (d.lastSeen === undefined || !Number.isFinite(d.lastSeen)) continue;
      const at = Math.min(d.lastSeen, now); // a last-seen in the future (clock skew) counts as now
      if (e.online === false || (e.lastSeen !== undefined && e.lastSeen >= at)) continue; // offline until a message
      e.lastSeen = at;
      this.schedule(e, this.maxSilentOf(e.id));
    }
    this.running = true;
    this.arm();
  }

  /**
   * A message from a device: records when (`at`, default the clock's now: the hub's receive time, not the
   * reading's own timestamp, so a device with a wrong clock or a replayed backlog does not fool it), raises
   * device.online after device.offline, re-arms its silence deadline, and checks its battery.
   */
  observe(reading: Pick<Reading, 'device'> & Partial<Pick<Reading, 'values' | 'units'>>, at: number = this.o.clock.now()): void {
    const e = this.entries.get(reading.device) ?? this.add(reading.device);
    if (!e) return;
    const t = this.o.thresholdsOf(e.id);
    const events: HubEvent[] = [];
    const prev = e.lastSeen;
    if (prev === undefined || at > prev) e.lastSeen = at;
    if (e.online === false) {
      const silentMs = prev === undefined ? 0 : Math.max(0, at - prev);
      events.push(
        makeEvent(
          'device.online',
          { ...(prev !== undefined ? { lastSeen: prev } : {}), silentMs, ...(t?.maxSilentMs !== undefined ? { threshold: t.maxSilentMs } : {}) },
          { ts: at, device: e.id, message: `${this.name(e.id)} back after ${humanDuration(silentMs)} of silence` },
        ),
      );
    }
    e.online = undefined;
    this.schedule(e, t?.maxSilentMs);
    const b = this.battery(e, reading, t?.batteryFloor, at);
    if (b) events.push(b);
    this.arm();
    for (const ev of events) this.o.emit(ev);
  }

  /**
   * A sign of life seen elsewhere (another instance of a cluster heard the device, or would have before this one
   * judged it silent): records `at` and re-arms its deadline, and raises nothing — the device.offline this instance
   * was about to raise was never published, so no device.online answers it.
   */
  heard(id: string, at: number): void {
    const e = this.entries.get(id) ?? this.add(id);
    if (!e) return;
    if (e.lastSeen === undefined || at > e.lastSeen) e.lastSeen = at;
    e.online = undefined;
    this.schedule(e, this.o.thresholdsOf(e.id)?.maxSilentMs);
    this.arm();
  }

  /**
   * Read a device's thresholds again (or every device's) and move its deadline: for an operator's change of
   * `maxSilentMs`. (Every message reads them anyway; a larger or removed threshold is also noticed when the old
   * deadline comes.)
   */
  refresh(id?: string): void {
    const list = id === undefined ? [...this.entries.values()] : [this.entries.get(id)].filter((e): e is Entry => e !== undefined);
    for (const e of list) {
      if (e.online === false) continue; // offline until heard from
      this.schedule(e, this.maxSilentOf(e.id));
    }
    this.arm();
  }

  /** Stop watching a device (removed from the registry); frees its place. */
  forget(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.heapRemove(e);
    this.entries.delete(id);
    if (this.entries.size < this.maxDevices) this.full = false;
    this.arm();
    return true;
  }

  /** Clear the timer. State is kept and messages are still recorded; `start()` arms it again. */
  stop(): void {
    this.running = false;
    this.disarm();
  }

  state(id: string): LivenessState | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    return { online: e.online, lastSeen: e.lastSeen, batteryLow: e.batteryLow, battery: e.battery };
  }

  /** For metrics and the dashboard; walks every device (about 2 ms per 100,000). */
  counts(): LivenessCounts {
    let active = 0;
    let outdated = 0;
    let unknown = 0;
    for (const e of this.entries.values()) {
      if (e.online === true) active++;
      else if (e.online === false) outdated++;
      else unknown++;
    }
    return { active, outdated, unknown };
  }

  stats(): LivenessStats {
    return { tracked: this.entries.size, refused: this.refused, batteryIgnored: this.batteryIgnored };
  }

  // ---------------------------------------------------------------- internals

  private name(id: string): string {
    return this.o.describe ? this.o.describe(id) : `device ${id}`;
  }

  private maxSilentOf(id: string): number | undefined {
    return this.o.thresholdsOf(id)?.maxSilentMs;
  }

  /** A new entry, or undefined (counted) when the monitor is full; the first refusal raises liveness.overflow. */
  private add(id: string): Entry | undefined {
    if (this.entries.size >= this.maxDevices) {
      this.refused++;
      if (!this.full) {
        this.full = true;
        this.o.emit(
          makeEvent(
            'liveness.overflow',
            { maxDevices: this.maxDevices, firstRefused: id },
            {
              ts: this.o.clock.now(),
              message: `liveness monitor full: ${this.maxDevices} devices watched; new devices (first ${id}) are not watched for silence or battery`,
            },
          ),
        );
      }
      return undefined;
    }
    const e: Entry = { id, lastSeen: undefined, online: undefined, batteryLow: false, battery: undefined, deadline: 0, heapIdx: -1 };
    this.entries.set(id, e);
    return e;
  }

  /** Put the device in the heap at lastSeen + threshold (+1 ms: silent *longer* than), or take it out. */
  private schedule(e: Entry, maxSilentMs: number | undefined): void {
    if (maxSilentMs === undefined || !(maxSilentMs > 0) || e.lastSeen === undefined) {
      this.heapRemove(e);
      if (e.online === true) e.online = undefined;
      return;
    }
    if (e.online === undefined) e.online = true;
    const deadline = e.lastSeen + maxSilentMs + 1;
    if (e.heapIdx < 0) {
      e.deadline = deadline;
      e.heapIdx = this.heap.length;
      this.heap.push(e);
      this.siftUp(e.heapIdx);
    } else {
      const old = e.deadline;
      e.deadline = deadline;
      if (deadline < old) this.siftUp(e.heapIdx);
      else this.siftDown(e.heapIdx);
    }
  }

  private battery(e: Entry, r: Partial<Pick<Reading, 'values' | 'units'>>, floor: number | undefined, at: number): HubEvent | undefined {
    const raw: Value | undefined = r.values?.[this.measurement];
    if (raw === undefined) return undefined;
    const unit = r.units?.[this.measurement];
    if (typeof raw !== 'number' || !Number.isFinite(raw) || (unit !== undefined && unit !== 'V')) {
      this.batteryIgnored++;
      return undefined;
    }
    e.battery = raw;
    if (floor === undefined) return undefined;
    // Rounded so that 2.2 + 0.1 is 2.3, not 2.3000000000000003.
    const recoverAbove = Math.round((floor + this.hysteresis) * 1e9) / 1e9;
    const data = { value: raw, floor, recoverAbove };
    if (!e.batteryLow && raw < floor) {
      e.batteryLow = true;
      return makeEvent('device.battery_low', data, { ts: at, device: e.id, message: `${this.name(e.id)} battery low: ${volts(raw)} (floor ${volts(floor)})` });
    }
    if (e.batteryLow && raw > recoverAbove) {
      e.batteryLow = false;
      return makeEvent('device.battery_ok', data, { ts: at, device: e.id, message: `${this.name(e.id)} battery back to ${volts(raw)} (floor ${volts(floor)})` });
    }
    return undefined;
  }

  /** Set the one timer for the earliest deadline, unless it is already set for that time or earlier. */
  private arm(): void {
    if (!this.running) return;
    const top = this.heap[0];
    if (!top) {
      this.disarm();
      return;
    }
    if (this.armedAt !== undefined && this.armedAt <= top.deadline) return;
    this.disarm();
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, top.deadline - this.o.clock.now()));
    this.armedAt = this.o.clock.now() + delay;
    this.timer = this.o.clock.setTimeout(() => this.fire(), delay);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = undefined;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = undefined;
    if (!this.running) return;
    const now = this.o.clock.now();
    const events: HubEvent[] = [];
    for (let top = this.heap[0]; top !== undefined && top.deadline <= now; top = this.heap[0]) {
      this.heapRemove(top);
      const t = this.maxSilentOf(top.id);
      const lastSeen = top.lastSeen;
      if (t === undefined || !(t > 0) || lastSeen === undefined) {
        if (top.online === true) top.online = undefined;
        continue;
      }
      const silentMs = now - lastSeen;
      if (silentMs <= t) {
        this.schedule(top, t); // its threshold was raised since it was scheduled
        continue;
      }
      top.online = false;
      events.push(
        makeEvent(
          'device.offline',
          { lastSeen, silentMs, threshold: t },
          { ts: now, device: top.id, message: `${this.name(top.id)} silent for ${humanDuration(silentMs)} (threshold ${humanDuration(t)})` },
        ),
      );
    }
    this.arm();
    for (const ev of events) this.o.emit(ev);
  }

  // ---------------------------------------------------------------- indexed min-heap

  private heapRemove(e: Entry): void {
    const i = e.heapIdx;
    if (i < 0) return;
    const last = this.heap.pop()!;
    e.heapIdx = -1;
    if (last === e) return;
    this.heap[i] = last;
    last.heapIdx = i;
    this.siftUp(i);
    this.siftDown(last.heapIdx);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.deadline <= e.deadline) break;
      h[i] = parent;
      parent.heapIdx = i;
      i = p;
    }
    h[i] = e;
    e.heapIdx = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.deadline < h[l]!.deadline ? r : l;
      const child = h[c]!;
      if (child.deadline >= e.deadline) break;
      h[i] = child;
      child.heapIdx = i;
      i = c;
    }
    h[i] = e;
    e.heapIdx = i;
  }
}

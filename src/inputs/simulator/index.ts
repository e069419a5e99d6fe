// N fake OpenTRV radiator valves / room sensors, for the demo and tests. Everything is drawn from a seeded PRNG, so
// a seed gives the same device ids and the same sequence of values per device; scheduling uses ctx.clock, so tests
// drive it with a ManualClock. Each device waits for its frame's emit before scheduling its next one.
import { errorText } from '../../core/errors.js';
import { Type, type Static } from '@sinclair/typebox';
import type { ClockTimer } from '../../core/clock.js';
import { defineInput, type InputContext } from '../../core/driver.js';
import type { FiniteInput } from '../finite.js';
import { LogThrottle } from '../../core/throttle.js';
import { InFlight } from '../../core/inflight.js';
import { deferred } from '../util.js';

const options = Type.Object(
  {
    devices: Type.Integer({ description: 'How many simulated devices.', minimum: 1, maximum: 10000, default: 5 }),
    intervalMs: Type.Integer({ description: 'Time between two frames of one device, jittered by ±10 %.', minimum: 1, default: 5000 }),
    seed: Type.Integer({ description: 'PRNG seed: the same seed gives the same device ids and values.', default: 1 }),
    badFrameRate: Type.Number({
      description: 'Share of frames sent damaged (a truncated JSON line, or a non-hex node id), to exercise error paths.',
      minimum: 0,
      maximum: 1,
      default: 0.02,
    }),
    count: Type.Optional(Type.Integer({ description: 'Stop each device after this many frames (then `done()` resolves). Default: run until stopped.', minimum: 0 })),
    idPrefix: Type.Optional(Type.String({ description: 'Hex prefix for every device id (e.g. `ff`), to tell simulated devices apart.', pattern: '^[0-9a-fA-F]{0,14}$' })),
  },
  { additionalProperties: false },
);

/** mulberry32: a tiny, fast, seedable 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Device ids for a seed: distinct lower-case hex, `idPrefix` + random digits, at least 4 digits in all. */
export function simulatedIds(seed: number, devices: number, idPrefix = ''): string[] {
  const rnd = mulberry32(seed ^ 0x5eed1d);
  const prefix = idPrefix.toLowerCase();
  let digits = Math.max(4 - prefix.length, 2);
  while (16 ** digits < devices * 4) digits++;
  if ((prefix.length + digits) % 2 === 1) digits++; // OpenTRV ids are whole bytes
  const ids = new Set<string>();
  while (ids.size < devices) {
    let s = '';
    for (let i = 0; i < digits; i++) s += Math.floor(rnd() * 16).toString(16);
    ids.add(prefix + s);
  }
  return [...ids];
}

interface Device {
  readonly id: string;
  readonly rnd: () => number;
  readonly base: number; // the room's set point, °C
  temp: number; // °C
  humidity: number; // %
  battery: number; // centivolts
  seq: number; // 0..15
  occupancy: number;
  sent: number;
  timer?: ClockTimer;
}

/** The simulator input. `done()` resolves when every device sent `count` frames and their emits resolved, or after `stop()`. */
export interface SimulatorInput extends FiniteInput {
  /** The simulated device ids (stable for a seed). */
  readonly ids: readonly string[];
}

function gauss(rnd: () => number): number {
  return (rnd() + rnd() + rnd() + rnd() - 2) * 1.2247; // Irwin-Hall, unit variance
}

/** Daylight 0..1 from the time of day (UTC, a site on the Greenwich meridian): 0 from 18:00 to 06:00. */
export function daylight(ts: number): number {
  const h = (((ts / 3_600_000) % 24) + 24) % 24;
  return Math.max(0, Math.sin((Math.PI * (h - 6)) / 12));
}

function create(opts: Static<typeof options>, ctx: InputContext): SimulatorInput {
  const n = opts.devices;
  const { intervalMs, seed } = opts;
  const badRate = opts.badFrameRate;
  const count = opts.count;
  const ids = simulatedIds(seed, n, opts.idPrefix ?? '');
  const log = ctx.logger;
  const throttle = new LogThrottle(ctx.clock);
  const inflight = new InFlight();
  const finished = deferred();
  let running = false;
  let active = 0;

  const devices: Device[] = ids.map((id, i) => {
    const rnd = mulberry32((seed * 7919 + i * 104729) ^ 0x0b5e55ed);
    const base = 18.5 + rnd() * 2;
    return {
      id,
      rnd,
      base,
      temp: base + gauss(rnd) * 0.5,
      humidity: 45 + rnd() * 10,
      battery: 300 - Math.floor(rnd() * 8),
      seq: Math.floor(rnd() * 16),
      occupancy: 1 + Math.floor(rnd() * 3),
      sent: 0,
    };
  });

  /** One stats line; advances the device's state. */
  const line = (d: Device, now: number): string => {
    const r = d.rnd;
    d.temp += 0.1 * (d.base - d.temp) + gauss(r) * 0.08; // random walk with mean reversion
    d.humidity = Math.min(60, Math.max(40, d.humidity + 0.05 * (50 - d.humidity) + gauss(r) * 0.6));
    if (r() < 0.02 && d.battery > 200) d.battery -= 1; // slowly flattening cells
    if (r() < 0.1) d.occupancy = 1 + Math.floor(r() * 3);
    const light = Math.max(0, Math.min(255, Math.round(daylight(now) * 200 + 5 + gauss(r) * 3)));
    const seq = d.seq;
    d.seq = (d.seq + 1) % 16;
    let id = d.id;
    const bad = r() < badRate;
    const nonHex = bad && r() < 0.5;
    if (nonHex) id = `z${d.id.slice(1)}`; // a corrupted radio frame: the id is no longer hex
    const text = JSON.stringify({
      '@': id,
      '+': seq,
      'T|C16': Math.round(d.temp * 16),
      'H|%': Math.round(d.humidity),
      'B|cV': d.battery,
      L: light,
      O: d.occupancy,
    });
    if (bad && !nonHex) return text.slice(0, 1 + Math.floor(r() * (text.length - 2))); // truncated: never valid JSON
    return text;
  };

  const jittered = (d: Device) => Math.max(1, Math.round(intervalMs * (0.9 + 0.2 * d.rnd())));

  const finishDevice = () => {
    active--;
    if (active === 0) finished.resolve();
  };

  const schedule = (d: Device, ms: number) => {
    d.timer = ctx.clock.setTimeout(() => {
      d.timer = undefined;
      void tick(d);
    }, ms);
  };

  const tick = async (d: Device): Promise<void> => {
    if (!running) return;
    const now = ctx.clock.now();
    const payload = line(d, now);
    d.sent++;
    try {
      await inflight.track(ctx.emit({ input: ctx.id, payload, receivedAt: now, topic: `sim/${d.id}` }));
    } catch (err) {
      ctx.metrics.inputErrors.inc({ input: ctx.id });
      const suppressed = throttle.take('emit');
      if (suppressed !== null) log.warn({ err: errorText(err), ...(suppressed > 0 ? { suppressed } : {}) }, 'could not hand a simulated frame to the data path');
    }
    if (!running) return;
    if (count !== undefined && d.sent >= count) {
      finishDevice();
      return;
    }
    schedule(d, jittered(d));
  };

  return {
    ids,
    start() {
      if (running) return Promise.resolve();
      running = true;
      active = devices.length;
      for (const d of devices) {
        if (count === 0) {
          finishDevice();
          continue;
        }
        // Spread the first frames over one interval so the devices do not all talk at once.
        schedule(d, Math.floor(d.rnd() * intervalMs));
      }
      log.info({ devices: ids.length, intervalMs }, 'simulator started');
      return Promise.resolve();
    },
    async stop() {
      running = false;
      for (const d of devices) {
        if (d.timer) ctx.clock.clearTimeout(d.timer);
        d.timer = undefined;
      }
      await inflight.settle();
      finished.resolve();
    },
    done() {
      return finished.promise;
    },
    info() {
      return { devices: ids.length, ids: ids.join(','), intervalMs };
    },
  };
}

/** `create` returns a {@link SimulatorInput}, so `simulatorInput.create(...).done()` type-checks. */
export const simulatorInput = {
  ...defineInput({
    kind: 'input',
    type: 'simulator',
    description: 'Simulated OpenTRV devices sending JSON stats lines (temperature, humidity, battery, light), for demos and tests.',
    options,
    defaultDecoder: 'opentrv',
    knownDevices: (o) => simulatedIds(o.seed, o.devices, o.idPrefix ?? ''),
    create,
  }),
  create,
};

// N fake OpenTRV radiator valves / room sensors, for the demo and tests. Everything is drawn from a seeded PRNG, so
// a seed gives the same device ids and the same sequence of values per device; scheduling uses ctx.clock, so tests
// drive it with a ManualClock. Each device waits for its frame's emit before scheduling its next one.
import { BackhaulError, errorText } from '../../core/errors.js';
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
    scenes: Type.Optional(
      Type.Array(
        Type.Object(
          {
            device: Type.Integer({ minimum: 0, description: 'Index of the device in `ids` (0: the first).' }),
            afterMs: Type.Integer({ minimum: 0, description: 'Starts this long after the simulator starts.' }),
            forMs: Type.Integer({ minimum: 1, description: 'Lasts this long.' }),
            everyMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Starts again with this period (at least `forMs`); once when absent.' })),
            silent: Type.Optional(Type.Boolean({ description: 'The device sends nothing.' })),
            battery: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10, description: 'The device reports this battery voltage (V) instead of its own.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Scripted trouble, for the demo: a device falling silent or its battery running low for a while, optionally repeating.' },
      ),
    ),
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

type Scene = NonNullable<Static<typeof options>['scenes']>[number];

/** Whether a scene holds `elapsed` ms after the start. */
export function sceneActive(sc: Pick<Scene, 'afterMs' | 'forMs' | 'everyMs'>, elapsed: number): boolean {
  if (elapsed < sc.afterMs) return false;
  const into = sc.everyMs === undefined ? elapsed - sc.afterMs : (elapsed - sc.afterMs) % sc.everyMs;
  return into < sc.forMs;
}

interface Device {
  readonly id: string;
  readonly scenes: readonly Scene[];
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
  const scenes = opts.scenes ?? [];
  for (const [i, sc] of scenes.entries()) {
    const path = `inputs.${ctx.id}.scenes[${i}]`;
    if (sc.device >= n) throw new BackhaulError('BH_CONFIG_SCHEMA', `device ${sc.device} is not one of the ${n} simulated devices (0 to ${n - 1})`, { path: `${path}.device` });
    if (sc.everyMs !== undefined && sc.everyMs < sc.forMs) throw new BackhaulError('BH_CONFIG_SCHEMA', 'everyMs must be at least forMs (a scene cannot overlap its next run)', { path: `${path}.everyMs` });
    if (!sc.silent && sc.battery === undefined) throw new BackhaulError('BH_CONFIG_SCHEMA', 'a scene needs `silent` or `battery`', { path });
  }
  let startedAt = 0;
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
      scenes: scenes.filter((sc) => sc.device === i),
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
  const line = (d: Device, now: number, batteryV: number | undefined): string => {
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
      'B|cV': batteryV !== undefined ? Math.round(batteryV * 100) : d.battery,
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
    const holding = d.scenes.filter((sc) => sceneActive(sc, now - startedAt));
    if (holding.some((sc) => sc.silent)) {
      // A scripted silence: nothing is sent (and nothing counted), the device just waits for its next frame.
      schedule(d, jittered(d));
      return;
    }
    const payload = line(d, now, holding.find((sc) => sc.battery !== undefined)?.battery);
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
      startedAt = ctx.clock.now();
      active = devices.length;
      for (const d of devices) {
        if (count === 0) {
          finishDevice();
          continue;
        }
        // Spread the first frames over one interval so the devices do not all talk at once.
        schedule(d, Math.floor(d.rnd() * intervalMs));
      }
      log.info({ devices: ids.length, intervalMs, ...(scenes.length ? { scenes: scenes.length } : {}) }, 'simulator started');
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

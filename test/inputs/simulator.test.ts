import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { simulatorInput, simulatedIds, mulberry32, daylight } from '../../src/inputs/simulator/index.js';
import { ManualClock } from '../../src/core/clock.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext } from '../helpers/context.js';

const OPTS = { devices: 5, intervalMs: 5000, seed: 1, badFrameRate: 0.02 };
const NOON = Date.UTC(2024, 5, 21, 12, 0, 0);

/** Advances a ManualClock in steps, letting each emit's promise settle so devices schedule their next frame. */
async function run(clock: ManualClock, ms: number, step = 500): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await tick();
  }
}

type Stats = Record<string, unknown>;
function parse(f: Frame): Stats | undefined {
  try {
    return JSON.parse(String(f.payload)) as Stats;
  } catch {
    return undefined;
  }
}
const isGood = (s: Stats | undefined): s is Stats => s !== undefined && typeof s['@'] === 'string' && /^[0-9a-f]+$/.test(s['@']);

test('simulator: mulberry32 and ids are deterministic', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  for (let i = 0; i < 5; i++) assert.equal(a(), b());
  const ids = simulatedIds(1, 5);
  assert.deepEqual(ids, simulatedIds(1, 5));
  assert.notDeepEqual(ids, simulatedIds(2, 5));
  assert.equal(new Set(ids).size, 5);
  for (const id of ids) assert.match(id, /^[0-9a-f]{4}$/);
  for (const id of simulatedIds(3, 300, 'FF')) assert.match(id, /^ff[0-9a-f]{2,}$/);
  assert.equal(new Set(simulatedIds(3, 300, 'ff')).size, 300);
  assert.equal(daylight(Date.UTC(2024, 0, 1, 0, 0)), 0);
  assert.ok(daylight(NOON) > 0.99);
});

test('simulator: N devices emit OpenTRV JSON stats lines on schedule, with plausible values', async () => {
  const clock = new ManualClock(NOON);
  const ctx = inputContext({ id: 'sim', clock });
  const input = simulatorInput.create({ ...OPTS, badFrameRate: 0 }, ctx);
  await input.start();
  assert.equal(ctx.frames.length, 0);
  await run(clock, 5000); // first frames are spread over one interval
  assert.equal(ctx.frames.length, 5);
  await run(clock, 60_000);
  const n: number = ctx.frames.length;
  assert.ok(n >= 5 + 5 * 11 && n <= 5 + 5 * 14, `about 12 frames per device per minute, got ${n}`);
  await input.stop();
  await run(clock, 60_000);
  assert.equal(ctx.frames.length, n, 'no frames after stop');

  const ids = new Set(input.ids);
  const seqs = new Map<string, number[]>();
  for (const f of ctx.frames) {
    const s = parse(f);
    assert.ok(isGood(s), `valid stats line: ${String(f.payload)}`);
    const id = s['@'] as string;
    assert.ok(ids.has(id));
    assert.equal(f.topic, `sim/${id}`);
    assert.equal(f.input, 'sim');
    assert.equal(typeof f.payload, 'string');
    const t = (s['T|C16'] as number) / 16;
    assert.ok(t > 15 && t < 23, `temperature ${t}`);
    const h = s['H|%'] as number;
    assert.ok(h >= 40 && h <= 60, `humidity ${h}`);
    const b = s['B|cV'] as number;
    assert.ok(b > 280 && b <= 300, `battery ${b}`);
    const l = s['L'] as number;
    assert.ok(l > 150 && l <= 255, `light at noon ${l}`);
    assert.ok([1, 2, 3].includes(s['O'] as number));
    const seq = s['+'] as number;
    assert.ok(Number.isInteger(seq) && seq >= 0 && seq <= 15);
    seqs.set(id, [...(seqs.get(id) ?? []), seq]);
  }
  for (const list of seqs.values()) {
    for (let i = 1; i < list.length; i++) assert.equal(list[i], ((list[i - 1] ?? 0) + 1) % 16, 'sequence numbers wrap 0..15');
  }
});

test('simulator: same seed, same frames; light follows the day', async () => {
  const frames = async (seed: number, start: number) => {
    const clock = new ManualClock(start);
    const ctx = inputContext({ clock });
    const input = simulatorInput.create({ ...OPTS, seed, count: 4 }, ctx);
    await input.start();
    await run(clock, 30_000);
    await input.done();
    return ctx.frames.map((f) => String(f.payload));
  };
  assert.deepEqual(await frames(7, NOON), await frames(7, NOON));
  assert.notDeepEqual(await frames(7, NOON), await frames(8, NOON));
  const night = (await frames(7, Date.UTC(2024, 5, 21, 2, 0, 0))).map((p) => JSON.parse(p) as Stats).filter(isGood);
  assert.ok(night.every((s) => (s['L'] as number) < 20));
});

test('simulator: bad frames come at roughly the configured rate', async () => {
  const clock = new ManualClock(NOON);
  const ctx = inputContext({ clock });
  const input = simulatorInput.create({ ...OPTS, devices: 20, intervalMs: 1000, badFrameRate: 0.1, count: 200 }, ctx);
  await input.start();
  await run(clock, 250_000, 250);
  await input.done();
  assert.equal(ctx.frames.length, 4000);
  const bad = ctx.frames.filter((f) => !isGood(parse(f)));
  const rate = bad.length / ctx.frames.length;
  assert.ok(rate > 0.07 && rate < 0.13, `bad frame rate ${rate}`);
  const truncated = bad.filter((f) => parse(f) === undefined).length;
  assert.ok(truncated > 0 && truncated < bad.length, 'both kinds of damage occur');
  await input.stop();
});

test('simulator: count stops each device and resolves done(); emits are awaited before the next frame', async () => {
  const clock = new ManualClock(NOON);
  const base = inputContext({ clock });
  let pending: Array<() => void> = [];
  const ctx = {
    ...base,
    emit: (f: Frame) =>
      new Promise<void>((resolve) => {
        base.frames.push(f);
        pending.push(resolve);
      }),
  };
  const input = simulatorInput.create({ ...OPTS, devices: 3, intervalMs: 1000, badFrameRate: 0, count: 3, idPrefix: 'abc' }, ctx);
  let finished = false;
  void input.done().then(() => (finished = true));
  await input.start();
  await run(clock, 10_000, 100);
  assert.equal(base.frames.length, 3, 'each device waits for its emit');
  for (let i = 0; i < 5; i++) {
    const p = pending;
    pending = [];
    for (const r of p) r();
    await run(clock, 2000, 100);
  }
  assert.equal(base.frames.length, 9);
  await tick();
  assert.equal(finished, true);
  for (const id of input.ids) assert.match(id, /^abc[0-9a-f]{3}$/);
  assert.deepEqual(input.info?.(), { devices: 3, ids: input.ids.join(','), intervalMs: 1000 });
  await input.stop();
});

test('simulator: the opentrv decoder reads the good frames and rejects the damaged ones', async () => {
  const { opentrvDecoder } = await import('../../src/decoders/opentrv/index.js');
  const decode = opentrvDecoder.create({ unknownKeys: 'keep' });
  const clock = new ManualClock(NOON);
  const ctx = inputContext({ clock });
  const input = simulatorInput.create({ ...OPTS, devices: 4, intervalMs: 1000, badFrameRate: 0.2, count: 25 }, ctx);
  await input.start();
  await run(clock, 40_000, 200);
  await input.done();
  let good = 0;
  for (const f of ctx.frames) {
    if (isGood(parse(f))) {
      const r = decode(f);
      assert.ok('readings' in r && r.readings[0]?.values['temperature'] !== undefined);
      good++;
    } else {
      assert.throws(() => decode(f), /./);
    }
  }
  assert.ok(good > 50 && good < 100);
});

test('simulator: scenes script a device falling silent and a low battery for a while, repeating', async () => {
  const clock = new ManualClock(NOON);
  const ctx = inputContext({ id: 'sim', clock });
  const scenes = [
    { device: 1, afterMs: 20_000, forMs: 30_000, everyMs: 100_000, silent: true },
    { device: 2, afterMs: 10_000, forMs: 20_000, battery: 2.2 },
  ];
  const input = simulatorInput.create({ ...OPTS, badFrameRate: 0, scenes }, ctx);
  await input.start();
  await run(clock, 160_000);
  await input.stop();
  const [, silentId, lowId] = input.ids;
  const times = (id: string | undefined) => ctx.frames.filter((f) => parse(f)?.['@'] === id).map((f) => f.receivedAt - NOON);
  const silentTimes = times(silentId);
  const inGap = (t: number) => (t >= 20_000 && t < 50_000) || (t >= 120_000 && t < 150_000);
  assert.ok(silentTimes.length > 10, 'the silent device talks outside its scene');
  assert.deepEqual(silentTimes.filter(inGap), [], 'and says nothing during it, each time it repeats');
  assert.ok(silentTimes.some((t) => t >= 50_000 && t < 120_000), 'it comes back after the first silence');
  const battery = ctx.frames.filter((f) => parse(f)?.['@'] === lowId).map((f) => [f.receivedAt - NOON, parse(f)?.['B|cV']] as const);
  for (const [t, b] of battery) {
    if (t >= 10_000 && t < 30_000) assert.equal(b, 220, `battery low at ${t}`);
    else assert.ok(typeof b === 'number' && b > 280, `own battery at ${t}: ${String(b)}`);
  }
  assert.ok(battery.some(([t]) => t >= 10_000 && t < 30_000) && battery.some(([t]) => t >= 30_000), 'frames during and after the low battery');
  assert.throws(() => simulatorInput.create({ ...OPTS, scenes: [{ device: 5, afterMs: 0, forMs: 1, silent: true }] }, inputContext({ id: 'sim', clock })), /BH_CONFIG_SCHEMA|not one of the 5/);
  assert.throws(() => simulatorInput.create({ ...OPTS, scenes: [{ device: 0, afterMs: 0, forMs: 1 }] }, inputContext({ id: 'sim', clock })), /silent. or .battery/);
});

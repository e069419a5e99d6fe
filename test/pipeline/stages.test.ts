import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEvent } from '../../src/core/events.js';
import type { Message, Reading } from '../../src/core/types.js';
import type { TSchema } from '@sinclair/typebox';
import type { StageDefinition } from '../../src/core/driver.js';
import { filterStage } from '../../src/pipeline/stages/filter/index.js';
import { mapStage } from '../../src/pipeline/stages/map/index.js';
import { scaleStage } from '../../src/pipeline/stages/scale/index.js';
import { rangeStage } from '../../src/pipeline/stages/range/index.js';
import { SchemaValidator } from '../../src/core/config/validate.js';
import { stageContext } from '../helpers/context.js';

const validator = new SchemaValidator();

/** Create a stage the way the hub does: options validated (defaults filled) first. */
function make<S extends TSchema>(def: StageDefinition<S>, options: Record<string, unknown>) {
  const errs = validator.validate(def.options, options, 'stage');
  assert.deepEqual(errs, []);
  const ctx = stageContext();
  return { stage: def.create(options, ctx), ctx };
}

const reading = (device: string, values: Record<string, number | string | boolean>, units?: Record<string, string>): Reading => ({
  kind: 'reading',
  device,
  ts: 1_700_000_000_000,
  values,
  ...(units ? { units } : {}),
  authenticated: false,
  source: { input: 'in', decoder: 'json' },
});

const values = (out: readonly Message[]) => out.map((m) => (m.kind === 'reading' ? m.values : m.type));

test('filter keeps only matching devices (globs) and counts the rest', () => {
  const { stage, ctx } = make(filterStage, { devices: ['81*', 'b39a'] });
  assert.equal(stage.process(reading('819c', { t: 1 })).length, 1);
  assert.equal(stage.process(reading('b39a', { t: 1 })).length, 1);
  assert.equal(stage.process(reading('0d49', { t: 1 })).length, 0);
  assert.equal(ctx.drops.get('filtered'), 1);
});

test('filter drop with a value condition', () => {
  const { stage } = make(filterStage, { action: 'drop', when: [{ measurement: 'temperature', op: '>', value: 30 }] });
  assert.deepEqual(values(stage.process(reading('a', { temperature: 31 }))), []);
  assert.deepEqual(values(stage.process(reading('a', { temperature: 30 }))), [{ temperature: 30 }]);
  assert.deepEqual(values(stage.process(reading('a', { light: 3 }))), [{ light: 3 }]);
});

test('filter keeps or removes measurements', () => {
  const keep = make(filterStage, { measurements: ['temperature'] }).stage;
  assert.deepEqual(values(keep.process(reading('a', { temperature: 20, light: 3 }, { temperature: 'Cel' }))), [{ temperature: 20 }]);
  assert.deepEqual(values(keep.process(reading('a', { light: 3 }))), []);
  const drop = make(filterStage, { action: 'drop', measurements: ['light'] }).stage;
  assert.deepEqual(values(drop.process(reading('a', { temperature: 20, light: 3 }))), [{ temperature: 20 }]);
});

test('filter passes events through value-only criteria but applies device criteria to them', () => {
  const { stage } = make(filterStage, { devices: ['a'] });
  const ev: Message = makeEvent('device.offline', { lastSeen: 0, silentMs: 2, threshold: 1 }, { ts: 2, device: 'b', message: 'b went silent' });
  assert.equal(stage.process(ev).length, 0);
  assert.equal(stage.process({ ...ev, device: 'a' }).length, 1);
});

test('map renames, drops, adds and sets units without touching the input reading', () => {
  const { stage } = make(mapStage, { rename: { T: 'temperature' }, drop: ['err'], add: { site: 'home' }, units: { temperature: 'Cel' } });
  const r = reading('a', { T: 20.5, err: 0 });
  const [out] = stage.process(r);
  assert.ok(out && out.kind === 'reading');
  assert.deepEqual(out.values, { temperature: 20.5, site: 'home' });
  assert.deepEqual(out.units, { temperature: 'Cel' });
  assert.deepEqual(r.values, { T: 20.5, err: 0 });
});

test('scale converts °C to °F with a new unit and name', () => {
  const { stage } = make(scaleStage, { measurement: 'temperature', factor: 1.8, offset: 32, unit: 'degF', as: 'temperature_f', decimals: 2 });
  const [out] = stage.process(reading('a', { temperature: 16.625, light: 2 }, { temperature: 'Cel' }));
  assert.ok(out && out.kind === 'reading');
  assert.deepEqual(out.values, { light: 2, temperature_f: 61.93 });
  assert.deepEqual(out.units, { temperature_f: 'degF' });
});

test('scale rounds as the decimal form does, for any value (the fast path agrees with the exact one)', () => {
  // Reference: round the shortest decimal form, as a person would (61.925 → 61.93, not binary's 61.92).
  const exact = (x: number, d: number) => Number(`${Math.round(Number(`${x}e${d}`))}e-${d}`);
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  for (const d of [0, 1, 2, 3, 6]) {
    const { stage } = make(scaleStage, { measurement: 'x', factor: 1, decimals: d });
    const samples = [61.925, 1.005, 2.345, -2.5, 0.5, -0.125, 1e15 + 0.5, 123.4565];
    for (let i = 0; i < 5000; i++) samples.push(rand() * 10 ** (1 + (i % 6)), Math.round(rand() * 1e5) / 10 ** (d + 1));
    for (const x of samples) {
      const [out] = stage.process(reading('a', { x }));
      assert.ok(out && out.kind === 'reading');
      const got = out.values['x'] as number;
      if (String(x).includes('e')) {
        // printed with an exponent (1e-7, 1e21): no decimal form to round, only the nearest step
        assert.ok(Number.isFinite(got) && Math.abs(got - x) <= 0.5 / 10 ** d + Math.abs(x) * 1e-15, `${x} at ${d} decimals: ${got}`);
      } else {
        assert.equal(got, exact(x, d) + 0, `${x} at ${d} decimals`);
      }
    }
  }
});

test('scale leaves readings without the measurement alone', () => {
  const { stage } = make(scaleStage, { measurement: 'power', factor: 0.001 });
  const r = reading('a', { temperature: 1 });
  assert.deepEqual(stage.process(r), [r]);
});

test('range drops out-of-bounds values and counts them', () => {
  const { stage, ctx } = make(rangeStage, { limits: { temperature: { min: -40, max: 85 }, humidity: { min: 0, max: 100 } } });
  assert.deepEqual(values(stage.process(reading('a', { temperature: 400, humidity: 50 }))), [{ humidity: 50 }]);
  assert.deepEqual(values(stage.process(reading('a', { temperature: 400 }))), []);
  assert.deepEqual(values(stage.process(reading('a', { temperature: -40, humidity: 100 }))), [{ temperature: -40, humidity: 100 }]);
  assert.equal(ctx.drops.get('out_of_range'), 2);
});

test('range drop-reading removes the whole reading', () => {
  const { stage } = make(rangeStage, { limits: { temperature: { max: 85 } }, action: 'drop-reading' });
  assert.deepEqual(values(stage.process(reading('a', { temperature: 90, humidity: 50 }))), []);
});

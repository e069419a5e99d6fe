// Conformance: what every built-in stage must do, checked against each one with the example configs of its own
// README: the examples are valid (schema and `check`); inputs are never changed; all time comes from ctx.clock and
// every timer is gone after stop(); events pass value stages unchanged; keyed stages bound their state (maxKeys).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseJsonc, type ParseError } from 'jsonc-parser';
import { ManualClock, type ClockTimer } from '../../src/core/clock.js';
import type { StageDefinition } from '../../src/core/driver.js';
import type { Message } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { stageContext } from '../helpers/context.js';
import { MIN, T0, event, problems, reading } from './harness.js';
import { SchemaValidator } from '../../src/core/config/validate.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const stages = [...builtinRegistry().stages.values()];
const validator = new SchemaValidator();


/** The stages of this type in the README's jsonc blocks: each block is one JSONC value, the examples whole configs. */
function readmeExamples(type: string): Array<Record<string, unknown>> {
  const text = readFileSync(join(root, 'src/pipeline/stages', type, 'README.md'), 'utf8');
  const out: Array<Record<string, unknown>> = [];
  for (const [, block = ''] of text.matchAll(/```jsonc\n([\s\S]*?)```/g)) {
    const errors: ParseError[] = [];
    const doc = parseJsonc(block, errors, { allowTrailingComma: true }) as { routes?: Array<{ stages?: Array<Record<string, unknown>> }> } | undefined;
    assert.deepEqual(errors, [], `${type} README: ${block}`);
    for (const route of doc?.routes ?? []) for (const stage of route.stages ?? []) if (stage['type'] === type) out.push(stage);
  }
  return out;
}

function deepFreeze<T>(x: T): T {
  if (typeof x === 'object' && x !== null) {
    for (const v of Object.values(x)) deepFreeze(v);
    Object.freeze(x);
  }
  return x;
}

/** A ManualClock that knows which timers are still pending. */
class CountingClock extends ManualClock {
  readonly live = new Set<ClockTimer>();
  override setTimeout(fn: () => void, ms: number): ClockTimer {
    const h: ClockTimer = super.setTimeout(() => {
      this.live.delete(h);
      fn();
    }, ms);
    this.live.add(h);
    return h;
  }
  override clearTimeout(t: ClockTimer): void {
    this.live.delete(t);
    super.clearTimeout(t);
  }
}

/** Run `fn` with the global clock and timers unusable: stages must use ctx.clock. */
function withoutGlobalTime<T>(fn: () => T): T {
  const saved = { now: Date.now, setTimeout: globalThis.setTimeout, setInterval: globalThis.setInterval, setImmediate: globalThis.setImmediate };
  const forbidden = (what: string) => () => {
    throw new Error(`a stage used ${what}; use ctx.clock`);
  };
  Date.now = forbidden('Date.now');
  globalThis.setTimeout = forbidden('setTimeout') as unknown as typeof setTimeout;
  globalThis.setInterval = forbidden('setInterval');
  globalThis.setImmediate = forbidden('setImmediate') as unknown as typeof setImmediate;
  try {
    return fn();
  } finally {
    Date.now = saved.now;
    globalThis.setTimeout = saved.setTimeout;
    globalThis.setInterval = saved.setInterval;
    globalThis.setImmediate = saved.setImmediate;
  }
}

/** A little of everything: the values the README examples name, a duplicate, a late and an out-of-hours reading, events. */
function samples(): Message[] {
  const values = { temperature: 20.5, humidity: 50, light: 85, people: 2, co2: 600, p: 100, occupancy: 1, mode: 'eco' };
  const units = { temperature: 'Cel', humidity: '%RH' };
  return [
    reading('819c', T0 + MIN, values, { seq: 1, units }),
    reading('819c', T0 + MIN, values, { seq: 1, units }),
    reading('819c', T0 + 3 * MIN, { ...values, temperature: 36, co2: 1600 }, { seq: 2, units }),
    reading('2d1a', T0 + 2 * MIN, { temperature: 4, light: 0 }, { source: { input: 'radio', decoder: 'opentrv', topic: 'home/2d1a' } }),
    event({ device: '819c' }),
    reading('819c', T0 + 20 * MIN, { ...values, temperature: 19 }, { seq: 3, units }),
    reading('819c', T0 + 2 * MIN, { temperature: 21 }, { seq: 4 }),
    event({ type: 'severity.changed', device: '2d1a', data: { level: 'DANGER', value: 4, unit: 'Cel' } }),
  ].map(deepFreeze);
}

function run(def: StageDefinition, options: Record<string, unknown>) {
  const o = structuredClone(options);
  validator.validate(def.options, o, 'stage');
  const clock = new CountingClock(T0);
  const ctx = stageContext({ clock });
  const input = samples();
  const before = structuredClone(input);
  const stage = withoutGlobalTime(() => def.create(o, ctx));
  const out: Message[] = [];
  withoutGlobalTime(() => {
    for (const m of input) {
      clock.advance(Math.max(0, m.ts - clock.now()));
      out.push(...stage.process(m));
    }
    clock.advance(2 * 3_600_000);
    stage.stop?.();
  });
  assert.deepEqual(input, before, 'input messages are unchanged');
  assert.equal(clock.live.size, 0, 'no timer is left after stop()');
  const emitted = ctx.emitted.length;
  clock.advance(7 * 24 * 3_600_000);
  assert.equal(ctx.emitted.length, emitted, 'nothing is emitted after stop()');
  return { out, ctx };
}

for (const def of stages) {
  test(`conformance: ${def.type}`, () => {
    const schema = def.options as { additionalProperties?: boolean; properties?: Record<string, { default?: unknown }> };
    assert.equal(schema.additionalProperties, false, 'unknown options are refused');
    assert.ok(def.description.length > 10);
    const examples = readmeExamples(def.type);
    assert.ok(examples.length > 0, 'the README has an example config');
    for (const ex of examples) {
      const { type: _type, ...options } = ex;
      assert.deepEqual(problems(def, options), [], `README example ${JSON.stringify(ex)}`);
      run(def, options);
      if (def.handlesEvents !== true) {
        const clock = new ManualClock(T0);
        const o = structuredClone(options);
        validator.validate(def.options, o, 'stage');
        const stage = def.create(o, stageContext({ clock }));
        const ev = deepFreeze(event());
        assert.deepEqual(stage.process(ev), [ev], 'events pass unchanged');
        stage.stop?.();
      }
    }
    // A stage with a maxKeys option keeps state per key, and says so (`keyed`); every keyed stage bounds it.
    assert.equal(def.keyed === true, schema.properties?.['maxKeys'] !== undefined, 'keyed exactly when it has maxKeys');
    if (def.keyed === true) {
      const d = schema.properties?.['maxKeys']?.default;
      assert.ok(typeof d === 'number' && d >= 1000, 'a keyed stage has maxKeys with a default');
      assert.match(readFileSync(join(root, 'src/pipeline/stages', def.type, 'README.md'), 'utf8'), /maxKeys/);
    }
  });
}

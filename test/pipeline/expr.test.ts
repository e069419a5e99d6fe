import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../src/runtime/config.js';
import { ConfigErrors } from '../../src/core/errors.js';
import { compileExpression } from '../../src/pipeline/expression.js';
import { exprStage } from '../../src/pipeline/stages/expr/index.js';
import { filterStage } from '../../src/pipeline/stages/filter/index.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { T0, event, make, problems, reading, readings } from './harness.js';

const r = reading('2d1a', T0, { temperature: 31.5, 'T|C16': 504, occupied: true, mode: 'eco', device: 'shadowed' }, {
  seq: 5,
  units: { temperature: 'Cel' },
  source: { input: 'radio', decoder: 'opentrv', topic: 'home/u4/2d1a' },
});

test('expressions see values by name and the reading\'s fields; reserved names win over values', () => {
  const v = (src: string) => compileExpression(src, 'value').value(r);
  assert.equal(v('temperature > 30 && device == "2d1a"'), true);
  assert.equal(v('values.device'), 'shadowed');
  assert.equal(v('values["T|C16"] / 16'), 31.5);
  assert.equal(v('temperature * 1.8 + 32'), 88.7);
  assert.equal(v('seq % 2 == 1 && input == "radio" && topic.startsWith("home/u4/")'), true);
  assert.equal(v('occupied && mode == "eco" ? "away" : "home"'), 'away');
  assert.equal(v('units.temperature'), 'Cel');
  assert.equal(v('ts == ' + String(T0)), true);
  assert.equal(v('kind'), 'reading');
  assert.equal(v('1 + 2'), 3); // CEL ints come back as numbers
  assert.equal(v('temperature / 0'), undefined); // not finite
  assert.equal(v('humidity > 3'), undefined); // absent value: an error, not a guess
  assert.equal(compileExpression('humidity > 3 || temperature > 30', 'condition').test(r), true); // CEL's || absorbs the error
  assert.equal(compileExpression('has(values.humidity) && humidity > 3', 'condition').test(r), false);
  // Not filled until the device registry exists: never true.
  assert.equal(compileExpression('location.building == "u4"', 'condition').test(r), false);
  // Nothing inherited from JavaScript objects is reachable.
  assert.equal(v('values.constructor'), undefined);
  assert.equal(v('toString'), undefined);
});

test('events have their own variables', () => {
  const e = event({ type: 'severity.changed', severity: 'critical', data: { level: 'DANGER' } });
  const t = (src: string) => compileExpression(src, 'condition').test(e);
  assert.equal(t('kind == "event" && event == "severity.changed" && severity == "critical" && data.level == "DANGER"'), true);
  assert.equal(t('device == "a" && message.contains("silent")'), true);
  assert.equal(t('temperature > 3'), false);
  assert.equal(compileExpression('values.type == "valve"', 'condition').test(reading('a', T0, { type: 'valve' })), true);
});

test('expr stage: a condition drops (counted) what it does not hold for; set computes values with units', () => {
  const { stage, ctx } = make(exprStage, {
    condition: 'temperature > 20',
    set: { temperature_f: 'temperature * 1.8 + 32', hot: 'temperature > 30', label: 'device + "/" + mode', bad: 'humidity * 2' },
    units: { temperature_f: 'degF' },
  });
  const [out] = readings(stage.process(r));
  assert.deepEqual(out?.values, { ...r.values, temperature_f: 88.7, hot: true, label: '2d1a/eco' });
  assert.deepEqual(out?.units, { temperature: 'Cel', temperature_f: 'degF' });
  assert.equal(ctx.drops.get('expr_error'), 1);
  assert.deepEqual(stage.process(reading('x', T0, { temperature: 10 })), []);
  assert.deepEqual(stage.process(reading('x', T0, { light: 10 })), []);
  assert.equal(ctx.drops.get('filtered'), 2);
  const e = event();
  assert.deepEqual(stage.process(e), [e]);
  assert.deepEqual(r.values['temperature_f'], undefined); // the input is not changed
});

test('filter accepts an expression, with the other criteria', () => {
  const keep = make(filterStage, { expr: 'temperature > 30 && mode == "eco"', devices: ['2d*'] }).stage;
  assert.equal(keep.process(r).length, 1);
  assert.equal(keep.process({ ...r, device: '0d49' }).length, 0);
  assert.equal(keep.process(reading('2d1a', T0, { temperature: 29, mode: 'eco' })).length, 0);
  assert.equal(keep.process(reading('2d1a', T0, { light: 1 })).length, 0);
  const drop = make(filterStage, { action: 'drop', expr: 'kind == "event" && severity == "info"' }).stage;
  assert.equal(drop.process(event({ severity: 'info' })).length, 0);
  assert.equal(drop.process(event({ severity: 'critical' })).length, 1);
  assert.equal(drop.process(r).length, 1);
});

test('expression problems are config errors with their path, found at load (so `backhaul check` reports them)', () => {
  assert.deepEqual(problems(exprStage, { condition: '1 + 2', set: { a: 'temperature >', b: '[1, 2]' }, units: { c: 'W' } }), [
    'condition: a condition must give true or false; "1 + 2" gives int',
    'set.a: invalid expression: Unexpected token: EOF at character 14 in "temperature >"',
    'set.b: a value must be a number, string or boolean; "[1, 2]" gives list<int>',
    'units.c: c is not one of the values in set',
  ]);
  assert.deepEqual(problems(exprStage, {}), [': give a condition, values to set, or both']);
  assert.deepEqual(problems(filterStage, { expr: 'nosuch(temperature)' }), [
    "expr: invalid expression: found no matching overload for 'nosuch(dyn)' at character 1 in \"nosuch(temperature)\"",
  ]);
  let caught: unknown;
  try {
    buildConfig(
      {
        inputs: { radio: { type: 'simulator' } },
        sinks: { screen: { type: 'console' } },
        routes: [{ to: ['screen'], stages: [{ type: 'range', limits: { t: { max: 85 } } }, { type: 'filter', expr: 'temperature >> 30' }] }],
      },
      { source: 'test', dir: '/tmp' },
      { registry: builtinRegistry(), env: {} },
    );
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigErrors);
  assert.deepEqual(
    caught.errors.map((e) => [e.code, e.path]),
    [['BH_CONFIG_SCHEMA', 'routes[0].stages[1].expr']],
  );
  assert.match(caught.errors[0]!.message, /^routes\[0\]\.stages\[1\]\.expr: invalid expression: .* at character \d+ in "temperature >> 30"$/);
});

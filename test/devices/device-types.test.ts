// Device types: built-ins with defaults, config validated against each type's schema (compiled once), extensible.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { DeviceTypes, effectiveThresholds } from '../../src/devices/device-types.js';
import { throwsCode } from '../helpers/assert.js';

test('the built-in types and their defaults', () => {
  const types = new DeviceTypes();
  assert.deepEqual(types.names(), ['generic', 'lorawan-sensor', 'opentrv-valve', 'room-sensor', 'senml-device', 'shutter']);
  assert.deepEqual(types.get('opentrv-valve')?.defaults, { maxSilentMs: 30 * 60_000, batteryFloor: 2.4 });
  assert.equal(types.get('shutter')?.topicName, 'shutter');
});

test('a device config is checked against its type; errors name the path and the type', () => {
  const types = new DeviceTypes();
  assert.deepEqual(types.validateConfig('opentrv-valve', { targetC: 21 }), { targetC: 21 });
  assert.deepEqual(types.validateConfig('opentrv-valve', undefined), {});
  const e = throwsCode(() => types.validateConfig('opentrv-valve', { targetC: 'warm' }), 'BH_DEVICE_CONFIG', 'config.targetC');
  assert.match(e.message, /opentrv-valve/);
  throwsCode(() => types.validateConfig('opentrv-valve', { tagretC: 21 }), 'BH_DEVICE_CONFIG', 'config.tagretC');
  throwsCode(() => types.validateConfig('room-sensor', { measurements: ['co2', 'smell'] }), 'BH_DEVICE_CONFIG', 'config.measurements[1]');
  throwsCode(() => types.validateConfig('generic', [1, 2]), 'BH_DEVICE_CONFIG', 'config');
  assert.deepEqual(types.validateConfig('generic', { anything: { goes: [1] } }), { anything: { goes: [1] } });
  const unknown = throwsCode(() => types.validateConfig('shuter', {}), 'BH_DEVICE_TYPE', 'type');
  assert.match(unknown.message, /did you mean "shutter"/);
});

test('validation does not change the caller\'s object', () => {
  const types = new DeviceTypes();
  const input = { targetC: 20 };
  const out = types.validateConfig('opentrv-valve', input);
  assert.notEqual(out, input);
});

test('types can be added; names are checked and unique; thresholds fall back to the type', () => {
  const types = new DeviceTypes();
  types.register({
    name: 'footfall-counter',
    topicName: 'footfall',
    description: 'Bus-shelter footfall counter.',
    defaults: { maxSilentMs: 3_600_000, batteryFloor: 3.3 },
    config: Type.Object({ zone: Type.String({ default: 'main' }) }, { additionalProperties: false }),
  });
  assert.deepEqual(types.validateConfig('footfall-counter', {}), { zone: 'main' }); // schema defaults filled in
  assert.throws(() => types.register({ name: 'footfall-counter', topicName: 'x', description: '', defaults: {}, config: Type.Object({}) }), /two device types/);
  assert.throws(() => types.register({ name: 'Bad Name', topicName: 'x', description: '', defaults: {}, config: Type.Object({}) }), /must match/);
  assert.throws(() => types.register({ name: 'ok', topicName: 'a/b', description: '', defaults: {}, config: Type.Object({}) }), /topic name/);
  assert.deepEqual(effectiveThresholds({ type: 'footfall-counter', thresholds: { batteryFloor: 3.0 } }, types), { maxSilentMs: 3_600_000, batteryFloor: 3.0 });
  assert.deepEqual(effectiveThresholds({ type: 'gone', thresholds: {} }, types), {});
});

import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { getPath, jsonDecoder, parsePath } from '../../src/decoders/json/index.js';
import type { DecodeResult } from '../../src/core/driver.js';
import type { Frame, Reading } from '../../src/core/types.js';
import { throwsCode } from '../helpers/assert.js';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const frame = (payload: unknown, extra: Partial<Frame> = {}): Frame => ({
  input: 'devices',
  payload: typeof payload === 'string' || payload instanceof Uint8Array ? payload : JSON.stringify(payload),
  receivedAt: NOW,
  ...extra,
});
type Options = Parameters<typeof jsonDecoder.create>[0];
const decodeWith = (o: Partial<Options>, payload: unknown, extra: Partial<Frame> = {}): DecodeResult => createWithDefaults(jsonDecoder, o)(frame(payload, extra));

function readings(r: DecodeResult): readonly Reading[] {
  assert.ok('readings' in r, `expected readings, got ${JSON.stringify(r)}`);
  return r.readings;
}
function only(r: DecodeResult): Reading {
  const rs = readings(r);
  assert.equal(rs.length, 1);
  const first = rs[0];
  assert.ok(first);
  return first;
}


test('paths: dots, indexes (negative from the end), quoted keys, an optional `$`', () => {
  assert.deepEqual(parsePath('sensor.id'), ['sensor', 'id']);
  assert.deepEqual(parsePath('$.readings[0].dev'), ['readings', 0, 'dev']);
  assert.deepEqual(parsePath('[2]["odd key.x"].v'), [2, 'odd key.x', 'v']);
  assert.deepEqual(parsePath('$'), []);
  assert.throws(() => parsePath('a..b'));
  assert.throws(() => parsePath('a[x]'));
  const body = { a: { b: [10, 20, { c: 'x' }] }, 'odd key': 1 };
  assert.equal(getPath(body, parsePath('a.b[1]')), 20);
  assert.equal(getPath(body, parsePath('a.b[-1].c')), 'x');
  assert.equal(getPath(body, parsePath('["odd key"]')), 1);
  assert.equal(getPath(body, parsePath('a.b.c')), undefined);
  assert.equal(getPath(body, parsePath('a.toString')), undefined, 'own properties only');
});

test('default mapping: device from `device`, every top-level scalar is a value, time is now', () => {
  const r = only(
    decodeWith({}, { device: 'room-12', temperature: 21.5, open: false, state: 'ok', nested: { a: 1 }, list: [1], nil: null }, { topic: 'b/room-12' }),
  );
  assert.deepEqual(r, {
    kind: 'reading',
    device: 'room-12',
    ts: NOW,
    values: { temperature: 21.5, open: false, state: 'ok' },
    authenticated: false,
    source: { input: 'devices', decoder: 'json', topic: 'b/room-12' },
  });
});

test('device, time and seq fields are left out of the default values; `units` names their units', () => {
  const r = only(
    decodeWith({ device: 'id', time: 'ts', seq: 'n', units: { t: 'Cel', rh: '%RH', absent: 'V' } }, { id: 7, ts: 1700000000, n: 12, t: 20.5, rh: 40 }),
  );
  assert.equal(r.device, '7');
  assert.equal(r.ts, 1700000000000);
  assert.equal(r.seq, 12);
  assert.deepEqual(r.values, { t: 20.5, rh: 40 });
  assert.deepEqual(r.units, { t: 'Cel', rh: '%RH' });
});

test('device from a body path, from `$.`-paths and from array elements', () => {
  assert.equal(only(decodeWith({ device: 'sensor.id' }, { sensor: { id: 'abc' }, v: 1 })).device, 'abc');
  assert.equal(only(decodeWith({ device: '$.sensor.id' }, { sensor: { id: 'abc' }, v: 1 })).device, 'abc');
  assert.equal(only(decodeWith({ device: 'readings[0].dev' }, { readings: [{ dev: 'd1' }], v: 1 })).device, 'd1');
});

test('device from a topic level: 0-based, negative from the end', () => {
  const body = { v: 1 };
  const topic = { topic: 'site/dev42/up' };
  assert.equal(only(decodeWith({ device: 'topic:1' }, body, topic)).device, 'dev42');
  assert.equal(only(decodeWith({ device: 'topic:0' }, body, topic)).device, 'site');
  assert.equal(only(decodeWith({ device: 'topic:-1' }, body, topic)).device, 'up');
  assert.equal(only(decodeWith({ device: 'topic:-2' }, body, topic)).device, 'dev42');
  // with the device in the topic, a body field called `device` is just a value
  assert.deepEqual(only(decodeWith({ device: 'topic:1' }, { device: 'x', v: 1 }, topic)).values, { device: 'x', v: 1 });
  throwsCode(() => decodeWith({ device: 'topic:1' }, body), 'BH_DECODE_NO_DEVICE', 'topic:1');
  throwsCode(() => decodeWith({ device: 'topic:3' }, body, topic), 'BH_DECODE_NO_DEVICE', 'topic:3');
  throwsCode(() => decodeWith({ device: 'topic:-4' }, body, topic), 'BH_DECODE_NO_DEVICE', 'topic:-4');
  throwsCode(() => decodeWith({ device: 'topic:1' }, body, { topic: 'a//b' }), 'BH_DECODE_NO_DEVICE', 'topic:1');
});

test('time formats', () => {
  const t = (timeFormat: Options['timeFormat'] | undefined, ts: unknown): number =>
    only(decodeWith({ time: 'at', ...(timeFormat ? { timeFormat } : {}) }, { device: 'd', at: ts, v: 1 })).ts;
  assert.equal(t(undefined, 1700000000), 1700000000000); // auto: seconds
  assert.equal(t('auto', 1700000000.5), 1700000000500);
  assert.equal(t('auto', 1700000000123), 1700000000123); // auto: above 1e12 is ms
  assert.equal(t('auto', '2024-05-01T12:00:00Z'), Date.UTC(2024, 4, 1, 12));
  assert.equal(t('iso', '2024-05-01T14:00:00.250+02:00'), Date.UTC(2024, 4, 1, 12, 0, 0, 250));
  assert.equal(t('ms', 1700000000), 1700000000);
  assert.equal(t('s', 1700000000123), 1700000000123000);
  throwsCode(() => t('iso', 1700000000), 'BH_DECODE_TIME', '$.at');
  throwsCode(() => t('ms', '1700000000'), 'BH_DECODE_TIME', '$.at');
  throwsCode(() => t('auto', 'yesterday'), 'BH_DECODE_TIME', '$.at');
  throwsCode(() => t('auto', '2024-05-01T12:00:00'), 'BH_DECODE_TIME', '$.at'); // no zone
  throwsCode(() => t('auto', '2024-02-31T12:00:00Z'), 'BH_DECODE_TIME', '$.at'); // no such day
  throwsCode(() => t('auto', -5), 'BH_DECODE_TIME', '$.at');
  throwsCode(() => t('auto', true), 'BH_DECODE_TIME', '$.at');
  throwsCode(() => decodeWith({ time: 'meta.at' }, { device: 'd', v: 1 }), 'BH_DECODE_TIME', '$.meta.at');
});

test('a values map: paths, unit, scale and offset; missing values are left out', () => {
  const o: Partial<Options> = {
    device: 'dev',
    values: {
      temperature: { path: 'data.t', unit: 'Cel', scale: 0.1 },
      tempF: { path: 'data.t', scale: 0.18, offset: 32 },
      humidity: 'data.rh',
      battery: 'bat',
      label: 'data.label',
    },
    units: { humidity: '%RH', temperature: 'K' },
  };
  const r = only(decodeWith(o, { dev: 'x', data: { t: 215, rh: 40, label: 'hall' }, other: 5 }));
  assert.deepEqual(r.values, { temperature: 21.5, tempF: 70.7, humidity: 40, label: 'hall' });
  assert.deepEqual(r.units, { temperature: 'Cel', humidity: '%RH' }); // the unit in `values` wins
  assert.equal(only(decodeWith({ values: { x: { path: 'x', scale: 0.1 } } }, { device: 'd', x: 3 })).values.x, 0.3);
  throwsCode(() => decodeWith(o, { dev: 'x', data: {} }), 'BH_DECODE_NO_VALUES', '$');
  throwsCode(() => decodeWith(o, { dev: 'x', data: { t: '215' } }), 'BH_DECODE_SHAPE', '$.data.t');
  throwsCode(() => decodeWith(o, { dev: 'x', data: { rh: [40] } }), 'BH_DECODE_SHAPE', '$.data.rh');
});

test('arrays: each element is a reading (auto), `array: true` insists, `array: false` takes the array whole', () => {
  const rs = readings(decodeWith({ time: 't' }, [{ device: 'a', t: 1700000000, v: 1 }, { device: 'b', t: 1700000060, v: 2 }]));
  assert.deepEqual(
    rs.map((r) => [r.device, r.ts, r.values]),
    [
      ['a', 1700000000000, { v: 1 }],
      ['b', 1700000060000, { v: 2 }],
    ],
  );
  assert.equal(readings(decodeWith({ array: true }, [{ device: 'a', v: 1 }])).length, 1);
  throwsCode(() => decodeWith({ array: true }, { device: 'a', v: 1 }), 'BH_DECODE_SHAPE', '$');
  const whole = only(decodeWith({ array: false, device: '[0]', values: { v: '[1]' } }, ['dev9', 4.5]));
  assert.deepEqual([whole.device, whole.values], ['dev9', { v: 4.5 }]);
  throwsCode(() => decodeWith({}, [{ device: 'a', v: 1 }, { v: 2 }]), 'BH_DECODE_NO_DEVICE', '$[1].device');
  throwsCode(() => decodeWith({}, [{ device: 'a', v: 1 }, 3]), 'BH_DECODE_SHAPE', '$[1]');
  throwsCode(() => decodeWith({}, []), 'BH_DECODE_NO_VALUES', '$');
});

test('errors: code and path', () => {
  throwsCode(() => decodeWith({ device: 'sensor.id' }, { sensor: {}, v: 1 }), 'BH_DECODE_NO_DEVICE', '$.sensor.id');
  throwsCode(() => decodeWith({ device: 'sensor.id' }, { sensor: { id: true }, v: 1 }), 'BH_DECODE_NO_DEVICE', '$.sensor.id');
  throwsCode(() => decodeWith({ device: 'sensor.id' }, { sensor: { id: { x: 1 } }, v: 1 }), 'BH_DECODE_NO_DEVICE', '$.sensor.id');
  throwsCode(() => decodeWith({}, { device: '', v: 1 }), 'BH_DECODE_NO_DEVICE', '$.device');
  throwsCode(() => decodeWith({}, { device: 'd' }), 'BH_DECODE_NO_VALUES', '$');
  throwsCode(() => decodeWith({}, { device: 'd', nested: { v: 1 } }), 'BH_DECODE_NO_VALUES', '$');
  throwsCode(() => decodeWith({ seq: 'meta.seq' }, { device: 'd', v: 1, meta: { seq: 'x' } }), 'BH_DECODE_SHAPE', '$.meta.seq');
  throwsCode(() => decodeWith({ seq: 's' }, { device: 'd', v: 1, s: 1.5 }), 'BH_DECODE_SHAPE', '$.s');
  throwsCode(() => decodeWith({ values: { odd: 'a["b c"]' } }, { device: 'd', a: { 'b c': {} } }), 'BH_DECODE_SHAPE', '$.a["b c"]');
  throwsCode(() => decodeWith({}, 42), 'BH_DECODE_SHAPE', '$');
  throwsCode(() => decodeWith({}, null), 'BH_DECODE_SHAPE', '$');
  const syntax = throwsCode(() => decodeWith({}, `{"device": "d", ${'"v": 1, '.repeat(40)}`), 'BH_DECODE_SYNTAX');
  assert.ok(syntax.message.length < 120, syntax.message);
  throwsCode(() => decodeWith({}, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), 'BH_DECODE_SYNTAX');
});

test('bytes are UTF-8 JSON; seq is kept when present and absent keys stay absent', () => {
  const r = only(decodeWith({ seq: 'n' }, new TextEncoder().encode('{"device":"d","n":0,"name":"Küche"}')));
  assert.equal(r.seq, 0);
  assert.deepEqual(r.values, { name: 'Küche' });
  const noSeq = only(decodeWith({ seq: 'n' }, { device: 'd', v: 1 }));
  assert.ok(!('seq' in noSeq) && !('units' in noSeq) && !('topic' in noSeq.source));
});

test('bad paths in the options fail when the decoder is created, naming the option', () => {
  throwsCode(() => createWithDefaults(jsonDecoder, { device: 'a..b' }), 'BH_CONFIG_SCHEMA', 'device');
  throwsCode(() => createWithDefaults(jsonDecoder, { time: 'x[' }), 'BH_CONFIG_SCHEMA', 'time');
  throwsCode(() => createWithDefaults(jsonDecoder, { values: { t: { path: 'a[x]' } } }), 'BH_CONFIG_SCHEMA', 'values.t.path');
  throwsCode(() => createWithDefaults(jsonDecoder, { values: { 'odd name': '.' } }), 'BH_CONFIG_SCHEMA', 'values["odd name"]');
});

test('the options schema: every property is described', () => {
  const props = jsonDecoder.options.properties;
  for (const [name, prop] of Object.entries(props)) assert.equal(typeof prop.description, 'string', name);
  assert.equal(props.device.default, 'device');
  assert.equal(props.timeFormat.default, 'auto');
  assert.equal(jsonDecoder.options.additionalProperties, false);
});

// ---------------------------------------------------------------- bounds (issue 11, items 1 and 9)

test('maxReadings: an array body at the cap decodes, one element more is refused whole with BH_DECODE_TOO_MANY', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => ({ device: `d${i}`, v: i }));
  assert.equal(readings(decodeWith({ maxReadings: 3 }, body(3))).length, 3);
  const e = throwsCode(() => decodeWith({ maxReadings: 3 }, body(4)), 'BH_DECODE_TOO_MANY', '$');
  assert.match(e.message, /4 readings, more than maxReadings \(3\)/);
  assert.equal(readings(decodeWith({}, body(10_000))).length, 10_000);
  throwsCode(() => decodeWith({}, body(10_001)), 'BH_DECODE_TOO_MANY', '$');
});

test('a device from the topic serves every element; one longer than 256 characters is refused', () => {
  const rs = readings(decodeWith({ device: 'topic:1' }, [{ v: 1 }, { v: 2 }], { topic: 'home/kitchen/env' }));
  assert.deepEqual(rs.map((r) => r.device), ['kitchen', 'kitchen']);
  throwsCode(() => decodeWith({ device: 'topic:1' }, [{ v: 1 }], { topic: `home/${'k'.repeat(257)}` }), 'BH_DECODE_NO_DEVICE', 'topic:1');
  throwsCode(() => decodeWith({}, { device: 'd'.repeat(257), v: 1 }), 'BH_DECODE_NO_DEVICE', '$.device');
  // No topic at all is still reported once, as before.
  throwsCode(() => decodeWith({ device: 'topic:0' }, [{ v: 1 }]), 'BH_DECODE_NO_DEVICE', 'topic:0');
});

test('a body nested deeper than 64 levels is BH_DECODE_DEPTH; an object of more than 10,000 members BH_DECODE_TOO_MANY', () => {
  throwsCode(() => decodeWith({}, `{"device":"x","v":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), 'BH_DECODE_DEPTH', '$');
  const wide: Record<string, unknown> = Object.fromEntries([['device', 'x'] as [string, unknown], ...Array.from({ length: 10_000 }, (_, i): [string, unknown] => [`k${i}`, i])]);
  throwsCode(() => decodeWith({}, wide), 'BH_DECODE_TOO_MANY', '$');
});

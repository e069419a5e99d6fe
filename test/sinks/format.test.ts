import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageToJson, messageToSenml, renderTopic, escapeTopicLevel, topicTemplateError } from '../../src/sinks/format.js';
import { offline, reading, T0, valve } from './messages.js';

test('messageToJson: a reading carries device, ts, time, seq, values, units, authenticated, input', () => {
  assert.deepEqual(messageToJson(valve), {
    device: '819c',
    ts: T0,
    time: '2026-01-01T00:00:00.000Z',
    seq: 12,
    values: { temperature: 16.625, battery: 2.55, occupancy: 2, boiler: true, status: 'ok' },
    units: { temperature: 'Cel', battery: 'V' },
    authenticated: true,
    input: 'radio',
  });
  // no seq, no units: the keys are absent, not undefined
  const bare = messageToJson(reading('b39a', T0 + 1, { light: 31 }));
  assert.deepEqual(Object.keys(bare), ['device', 'ts', 'time', 'values', 'authenticated', 'input']);
});

test('messageToJson: an event', () => {
  assert.deepEqual(messageToJson(offline), {
    event: 'device.offline',
    ts: T0 + 60_000,
    time: '2026-01-01T00:01:00.000Z',
    severity: 'warning',
    device: '819c',
    message: 'silent for 2h',
    data: { lastSeen: T0 - 7_140_000, silentMs: 7_200_000, threshold: 3_600_000 },
  });
});

test('messageToSenml: bn/bt on the first record, v/vb/vs with units', () => {
  assert.deepEqual(messageToSenml(valve), [
    { bn: '819c:', bt: T0 / 1000, n: 'temperature', u: 'Cel', v: 16.625 },
    { n: 'battery', u: 'V', v: 2.55 },
    { n: 'occupancy', v: 2 },
    { n: 'boiler', vb: true },
    { n: 'status', vs: 'ok' },
  ]);
  assert.deepEqual(messageToSenml(reading('x', 1500, {})), [{ bn: 'x:', bt: 1.5 }]);
});

test('renderTopic: placeholders filled, wildcards and separators in values neutralised', () => {
  assert.equal(renderTopic('backhaul/{device}/{measurement}', { device: '819c', measurement: 'temperature' }), 'backhaul/819c/temperature');
  assert.equal(renderTopic('a/{device}/{measurement}', { device: 'x/#/+', measurement: '' }), 'a/x____/_');
  assert.equal(renderTopic('ev/{type}/{device}', { type: 'device.offline' }), 'ev/device.offline/_');
  assert.equal(renderTopic('in/{input}', { input: 'radio' }), 'in/radio');
  assert.equal(escapeTopicLevel('a\u0000b'), 'a_b');
  assert.equal(topicTemplateError('ok/{device}'), null);
  assert.match(topicTemplateError('x/+/{device}') ?? '', /wildcards/);
  assert.match(topicTemplateError('x/{devcie}') ?? '', /unknown placeholder \{devcie\}/);
});

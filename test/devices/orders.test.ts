// Where an order can go (orderReach) and where a LoRaWAN device's downlinks go (lorawanLink): pure functions of a
// device record, its type and the topic scheme.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { downlinkBytes, lorawanLink, orderReach } from '../../src/devices/commands.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { TopicScheme } from '../../src/devices/topics.js';
import type { Device } from '../../src/devices/types.js';
import { throwsCode } from '../helpers/assert.js';

const types = new DeviceTypes();
types.register({ name: 'siren-rx', topicName: 'siren', description: 'receive-only', defaults: {}, config: Type.Object({}), ordersVia: 'none' });
const scheme = new TopicScheme(types);
const device = (patch: Partial<Device>): Device => ({
  id: '70b3d57ed0001234',
  kind: 'deveui',
  type: 'lorawan-sensor',
  location: {},
  description: '',
  tags: [],
  enabled: true,
  state: 'INIT',
  thresholds: {},
  config: {},
  createdAt: 0,
  updatedAt: 0,
  source: 'registry',
  ...patch,
});
const heard = { ns: 'chirpstack', input: 'cs', applicationId: 'app-1', at: 1 };

test('orderReach: a type that takes no orders, a LoRaWAN device before and after an uplink, disabled and BLOCKED first', () => {
  assert.deepEqual(orderReach(device({ type: 'siren-rx' }), types, scheme), { accepted: false, reason: 'a siren-rx takes no orders: nothing reaches it back' });
  assert.match(orderReach(device({}), types, scheme).reason ?? '', /none of its uplinks was heard yet/);
  assert.equal(orderReach(device({}), types, scheme).forceable, undefined, 'force does not help: no connection is missing');
  assert.deepEqual(orderReach(device({ lorawan: heard }), types, scheme), { accepted: true, via: 'lorawan' });
  // No location, no broker login: neither matters for a downlink.
  assert.deepEqual(orderReach(device({ config: { network: { input: 'cs', ns: 'chirpstack', applicationId: 'given' } } }), types, scheme), { accepted: true, via: 'lorawan' });
  assert.deepEqual(orderReach(device({ lorawan: heard, enabled: false }), types, scheme), { accepted: false, reason: 'it is disabled' });
  assert.deepEqual(orderReach(device({ lorawan: heard, state: 'BLOCKED' }), types, scheme), { accepted: false, reason: 'it is BLOCKED' });
});

test('lorawanLink: the device config\'s network before what its uplinks taught; incomplete is none', () => {
  assert.equal(lorawanLink(device({})), undefined);
  assert.deepEqual(lorawanLink(device({ lorawan: { ...heard, tenant: 'ttn', deviceId: 'dev-1' } })), { ns: 'chirpstack', input: 'cs', applicationId: 'app-1', tenant: 'ttn', deviceId: 'dev-1' });
  assert.deepEqual(lorawanLink(device({ lorawan: heard, config: { network: { applicationId: 'override' } } })), { ns: 'chirpstack', input: 'cs', applicationId: 'override' });
  assert.equal(lorawanLink(device({ config: { network: { applicationId: 'only-this' } } })), undefined, 'no input and no NS: nowhere to send it');
});

test('downlinkBytes: hex (spaces and colons allowed) or base64, once; anything else names the field', () => {
  assert.deepEqual([...downlinkBytes({ hex: '01 0f:ff', fPort: 1 })], [1, 15, 255]);
  assert.deepEqual([...downlinkBytes({ base64: 'AQ8=', fPort: 1 })], [1, 15]);
  throwsCode(() => downlinkBytes({ hex: 'f', fPort: 1 }), 'BH_COMMAND_ORDER', 'downlink.hex');
  throwsCode(() => downlinkBytes({ base64: 'A$==', fPort: 1 }), 'BH_COMMAND_ORDER', 'downlink.base64');
  throwsCode(() => downlinkBytes({ hex: '01', base64: 'AQ==', fPort: 1 }), 'BH_COMMAND_ORDER', 'downlink');
  throwsCode(() => downlinkBytes({ fPort: 1 }), 'BH_COMMAND_ORDER', 'downlink');
});

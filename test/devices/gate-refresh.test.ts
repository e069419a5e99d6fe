// The gate's periodic re-read of the registry: skipped while the registry is unchanged (listing every device each
// interval kept tens of MB of heap resident with 10,000 devices), and still seeing every change, made by another
// process or through the gate's own store, including for a device login already connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { Metrics } from '../../src/core/metrics.js';
import type { Frame, Reading } from '../../src/core/types.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { DeviceGate } from '../../src/devices/gate.js';
import { registryPath, SqliteDeviceStore, type DeviceStore } from '../../src/devices/store/index.js';
import { TopicScheme } from '../../src/devices/topics.js';
import { teardown, tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

test('gate: an unchanged registry is not listed again; changes from another process and from its own store still are', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(registryPath(d.path), { types });
  const other = SqliteDeviceStore.open(registryPath(d.path), { types }); // as `backhaul devices` in another process
  t.after(async () => {
    await other.close();
    await store.close();
  });
  const password = 'a-long-enough-device-password';
  await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' } });
  await store.setCredentials('0d49', { username: '0d49', hash: store.logins.hash(password), passwordIssued: true });
  let lists = 0;
  const counting: DeviceStore = Object.create(store) as DeviceStore;
  counting.list = (f) => {
    lists++;
    return store.list(f);
  };
  const gate = new DeviceGate({
    store: counting,
    scheme: new TopicScheme(types),
    policy: 'drop',
    logger: silentLogger(),
    metrics: new Metrics(),
    clock: systemClock,
    publish: () => undefined,
    refreshMs: 50,
    touchMs: 50,
  });
  await gate.start();
  t.after(() => gate.stop());
  assert.equal(lists, 1);
  const login = await gate.verify('0d49', password);
  assert.ok(login);
  const here = 'u4/302/valve/frame';
  assert.equal(login.mayPublish(here), true);

  // Readings make last-seen writes (through the gate's own store): not a change of what the device is.
  const frame: Frame = { input: 'devices', payload: new Uint8Array(), receivedAt: Date.now(), identity: { username: '0d49' } };
  const reading: Reading = { kind: 'reading', device: '0d49', ts: Date.now(), values: { t: 1 }, authenticated: false, source: { input: 'devices', decoder: 'json' } };
  assert.equal(gate.admit(reading, frame)?.authenticated, true);
  await until(async () => (await store.get('0d49'))?.lastSeen !== undefined, { what: 'last-seen written' });
  await new Promise((r) => setTimeout(r, 300)); // several refresh intervals
  assert.equal(lists, 1, 'nothing changed: not listed again');

  await other.setEnabled('0d49', false);
  await until(() => !login.mayPublish(here), { what: 'the open login loses its rights when another process disables the device' });
  assert.equal(gate.admit(reading, frame), undefined);
  assert.equal(lists, 2);

  await store.setEnabled('0d49', true); // the gate's own store, no explicit refresh
  await until(() => login.mayPublish(here), { what: 'enabled again through the same store' });
  await other.update('0d49', { location: { building: 'u4', room: '303' } });
  await until(() => login.mayPublish('u4/303/valve/frame') && !login.mayPublish(here), { what: 'moved by another process' });
  await other.resetCredentials('0d49');
  await until(() => !login.mayPublish('u4/303/valve/frame'), { what: 'a password reset ends the rights of the old login' });
});

test('gate: on a topic-proving input (Mosquitto kept in step by brokerSync) a reading on its device\'s own base topic is authenticated, not one on a shared, another\'s or the command topic', async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(registryPath(d.path), { types });
  later(() => store.close());
  const login = (id: string) => store.setCredentials(id, { username: id, hash: store.logins.hash(`a-long-enough-password-of-${id.replace(/:/g, '')}`), passwordIssued: true });
  // A alone in room 601; B and C share room 602 (one base topic, so one role's rights each); D in 603 has no login.
  for (const [id, room] of [['aa:bb:cc:dd:17:01', '601'], ['aa:bb:cc:dd:17:02', '602'], ['aa:bb:cc:dd:17:03', '602'], ['aa:bb:cc:dd:17:04', '603']] as const) {
    await store.create({ id, type: 'shutter', location: { building: 'u4', room } });
    if (!id.endsWith('04')) await login(id);
  }
  const gate = new DeviceGate({ store, scheme: new TopicScheme(types), policy: 'drop', logger: silentLogger(), metrics: new Metrics(), clock: systemClock, publish: () => undefined, refreshMs: 50, topicInputs: new Set(['mosq']) });
  await gate.start();
  later(() => gate.stop());
  const admit = (device: string, topic: string, input = 'mosq') =>
    gate.admit(
      { kind: 'reading', device, ts: Date.now(), values: { position: 1 }, authenticated: false, source: { input, decoder: 'json' } },
      { input, payload: new Uint8Array(), receivedAt: Date.now(), topic },
    )?.authenticated;
  assert.equal(admit('aa:bb:cc:dd:17:01', 'u4/601/shutter/data'), true, 'its own base topic, no one else may publish there');
  assert.equal(admit('aa:bb:cc:dd:17:01', 'u4/601/shutter'), true);
  assert.equal(admit('aa:bb:cc:dd:17:01', 'u4/601/shutter/data', 'other-input'), false, 'an input that does not trust its topics');
  assert.equal(admit('aa:bb:cc:dd:17:01', 'u4/602/shutter/data'), false, 'not its base topic');
  assert.equal(admit('aa:bb:cc:dd:17:01', 'u4/601/shutter/command'), false, 'the command topic is Backhaul\'s');
  assert.equal(admit('aa:bb:cc:dd:17:02', 'u4/602/shutter/data'), false, 'B shares its base topic with C: either may have sent it');
  assert.equal(admit('aa:bb:cc:dd:17:02', 'u4/601/shutter/data'), false, 'A\'s topic naming B: A cannot prove B');
  assert.equal(admit('aa:bb:cc:dd:17:04', 'u4/603/shutter/data'), false, 'no login, no client at the broker: whoever may publish there is not the device');
  // C moves out: B is alone in 602 from the next refresh on.
  await store.update('aa:bb:cc:dd:17:03', { location: { building: 'u4', room: '609' } });
  await until(() => admit('aa:bb:cc:dd:17:02', 'u4/602/shutter/data') === true, { what: 'B proven once alone in its room' });
});

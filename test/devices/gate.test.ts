// The device gate inside the real hub: unknown-device policies, disabled and BLOCKED devices, authentication from
// the MQTT username, canonical ids, last-seen recorded; devices publish to the embedded broker with mqtt.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { ManualClock } from '../../src/core/clock.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

async function setup(t: import('node:test').TestContext, unknown: 'register' | 'quarantine' | 'drop') {
  const d = tempDir();
  t.after(() => d.cleanup());
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown, refreshMs: 100 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: 'json' } },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') }, events: { type: 'file', path: join(d.path, 'events.jsonl') } },
      routes: [{ to: ['out'] }, { match: { kind: 'event', events: ['device.*'] }, to: ['events'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const lines = (f: string) =>
    existsSync(join(d.path, f)) ? readFileSync(join(d.path, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  const publish = async (body: object, username?: string) => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...(username ? { username, password: 'x' } : {}) });
    await c.publishAsync('devices/x', JSON.stringify(body), { qos: 1 });
    await c.endAsync();
  };
  const store = () => SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  return { hub, lines, publish, store, dir: d.path };
}

test('register: an unknown device is registered as INIT, its readings pass, one device.unknown event', async (t) => {
  const { hub, lines, publish, store } = await setup(t, 'register');
  await publish({ device: 'AA-BB-CC-DD-EE-01', temperature: 20 });
  await publish({ device: 'aa:bb:cc:dd:ee:01', temperature: 21 });
  await until(() => lines('out.jsonl').length === 2 && lines('events.jsonl').length === 1, { what: 'readings and the event' });
  // the id is made canonical for its kind (a MAC address), so both spellings are one device
  assert.deepEqual(lines('out.jsonl').map((r) => r['device']), ['aa:bb:cc:dd:ee:01', 'aa:bb:cc:dd:ee:01']);
  assert.equal(lines('events.jsonl')[0]!['event'], 'device.unknown');
  await hub.stop();
  const s = store();
  try {
    const dev = await s.get('aa:bb:cc:dd:ee:01');
    assert.equal(dev?.state, 'INIT');
    assert.equal(dev?.kind, 'mac');
    assert.ok(dev?.lastSeen, 'last seen recorded');
  } finally {
    await s.close();
  }
});

test('drop: readings of unknown devices are dropped and counted', async (t) => {
  const { hub, lines, publish } = await setup(t, 'drop');
  await publish({ device: 'stranger', temperature: 20 });
  await publish({ device: 'stranger', temperature: 20 });
  await until(async () => (await hub.metrics.value('backhaul_gate_dropped_total', { reason: 'unknown' })) === 2, { what: 'drops counted' });
  assert.equal(await hub.metrics.value('backhaul_unknown_device_readings_total', { policy: 'drop' }), 2);
  await until(() => lines('events.jsonl').length === 1, { what: 'one event' });
  assert.equal(lines('out.jsonl').length, 0);
});

test('quarantine: registered disabled, readings dropped until an operator enables it', async (t) => {
  const { hub, lines, publish, store } = await setup(t, 'quarantine');
  await publish({ device: 'newcomer', temperature: 20 });
  await until(async () => (await hub.metrics.value('backhaul_gate_dropped_total', { reason: 'disabled' })) === 1, { what: 'dropped' });
  const s = store();
  t.after(() => s.close());
  await until(async () => (await s.get('newcomer'))?.enabled === false, { what: 'registered disabled' });
  await s.setEnabled('newcomer', true); // as `backhaul devices enable newcomer` would, from another process
  await new Promise((r) => setTimeout(r, 400)); // the gate re-reads the registry every refreshMs (100 ms here)
  await publish({ device: 'newcomer', temperature: 22 });
  await until(() => lines('out.jsonl').length === 1, { what: 'admitted after enabling' });
});

test('disabled and BLOCKED devices are dropped; a verified MQTT login of the device marks readings authenticated', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  // Devices are in the registry before the hub starts.
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: 'valve-1', kind: 'other', type: 'generic', location: { building: 'u4', room: '301' } });
  await s.setCredentials('valve-1', { username: 'valve-1', hash: await hashPassword('long-enough-password'), passwordIssued: true });
  await s.create({ id: 'valve-2', kind: 'other', type: 'generic', enabled: false });
  await s.create({ id: 'valve-3', kind: 'other', type: 'generic' });
  await s.setState('valve-3', 'BLOCKED', 'self-description invalid');
  await s.close();
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop' },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: 'json' } },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const pub = async (device: string, username?: string, password = 'long-enough-password') => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...(username ? { username, password } : {}) });
    // A logged-in device publishes under its own base topic (the broker's ACL), others anywhere (anonymous: true).
    await c.publishAsync(username ? 'u4/301/generic/data' : 'devices/x', JSON.stringify({ device, temperature: 1 }), { qos: 1 });
    await c.endAsync();
  };
  await pub('valve-1', 'valve-1');
  // a login the registry does not know, or with the wrong password, is refused by the broker
  await assert.rejects(pub('valve-1', 'someone-else'), /Bad username or password/i);
  await assert.rejects(pub('valve-1', 'valve-1', 'wrong-password'), /Bad username or password/i);
  await pub('valve-1');
  await pub('valve-2');
  await pub('valve-3');
  const out = () => readFileSync(join(d.path, 'out.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { device: string; authenticated: boolean });
  await until(() => existsSync(join(d.path, 'out.jsonl')) && out().length === 2, { what: 'valve-1 readings' });
  assert.deepEqual(out().map((r) => r.authenticated), [true, false]); // logged in as valve-1; anonymous
  assert.equal(await hub.metrics.value('backhaul_gate_dropped_total', { reason: 'disabled' }), 1);
  assert.equal(await hub.metrics.value('backhaul_gate_dropped_total', { reason: 'blocked' }), 1);
});

test('liveness through the hub: device.offline once after the threshold, device.online on return, battery_low once', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: 'valve-9', kind: 'other', type: 'generic', thresholds: { maxSilentMs: 60_000, batteryFloor: 2.4 } });
  await s.close();
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: 'json' } },
      sinks: { events: { type: 'file', path: join(d.path, 'events.jsonl') } },
      routes: [{ match: { kind: 'event', events: ['device.*'] }, to: ['events'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), clock });
  await hub.start();
  t.after(() => hub.stop());
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  t.after(() => c.endAsync());
  const send = (battery: number) => c.publishAsync('devices/x', JSON.stringify({ device: 'valve-9', battery }), { qos: 1 });
  const events = () =>
    existsSync(join(d.path, 'events.jsonl'))
      ? readFileSync(join(d.path, 'events.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { event: string }).event)
      : [];
  await send(2.39); // under the floor
  await send(2.35);
  await until(() => events().length === 1, { what: 'battery_low' });
  clock.advance(60_000); // exactly the threshold: still online
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(events(), ['device.battery_low']);
  clock.advance(1);
  await until(() => events().length === 2, { what: 'offline' });
  clock.advance(10 * 60_000);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(events(), ['device.battery_low', 'device.offline'], 'offline is raised once');
  assert.match(await hub.metrics.registry.metrics(), /backhaul_devices\{state="outdated"\} 1/);
  await send(2.8); // back, battery recovered
  await until(() => events().length === 4, { what: 'online and battery ok' });
  assert.deepEqual(events().slice(2).sort(), ['device.battery_ok', 'device.online']);
  assert.match(await hub.metrics.registry.metrics(), /backhaul_devices\{state="active"\} 1/);
});

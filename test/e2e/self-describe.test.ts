// Devices that describe themselves, learn their cadence and take orders only where orders can go, through the real
// hub (embedded broker, http input, API): a valid self-description makes a device ACTIVE, an invalid one BLOCKED with
// the reason (its readings dropped, a blocked alarm raised, unblocked through the API); a reported DANGER mode raises
// an alarm and NORMAL clears it; a SenML device first seen over HTTP is registered as `senml-device`, learns its
// silence threshold from its own cadence and goes offline without any setup; orders are refused, with the reason,
// to a radio-only valve, a LoRaWAN device and a device never heard from (unless forced).
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import type { HubEvent } from '../../src/core/types.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { tryPublish } from '../helpers/mqtt-client.js';

const GOOD = 'aa:bb:cc:dd:ee:10';
const BAD = 'aa:bb:cc:dd:ee:11';
const NEVER = 'aa:bb:cc:dd:ee:12';
const RADIO = '0d49';
const LORA = '70:b3:d5:7e:d0:00:00:01';
const PASSWORD = 'device-password-1';

async function setup(t: TestContext) {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  for (const [id, room] of [[GOOD, '301'], [BAD, '303'], [NEVER, '305']] as const) {
    await s.create({ id, type: 'room-sensor', location: { building: 'u4', room }, description: `sensor ${room}` });
    await s.setCredentials(id, { username: id, hash: await hashPassword(PASSWORD), passwordIssued: true });
  }
  await s.create({ id: RADIO, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' } });
  await s.create({ id: LORA, kind: 'deveui', type: 'lorawan-sensor', location: { building: 'outside', room: 'parking' } });
  await s.close();
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', refreshMs: 200, learn: { minMs: 1000, samples: 3 } },
      api: { host: '127.0.0.1', port: 0 },
      inputs: {
        devices: { type: 'broker', host: '127.0.0.1', port: mqttPort, decoder: 'json' },
        web: { type: 'http', host: '127.0.0.1', port: httpPort, decoder: 'senml' },
      },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }, { match: { kind: 'event' }, to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  const events: HubEvent[] = [];
  await hub.start();
  t.after(() => hub.stop());
  hub.onEvent((e) => events.push(e));
  const base = hub.apiUrl()!;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const connect = async (id: string) => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { reconnectPeriod: 0, username: id, password: PASSWORD });
    t.after(() => c.endAsync(true));
    return c;
  };
  return { hub, call, connect, events, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, httpUrl: `http://127.0.0.1:${httpPort}/ingest` };
}

test('a valid self-description makes a device ACTIVE; an invalid one BLOCKS it with the reason, raises an alarm, drops its readings; unblocked through the API', { timeout: 60_000 }, async (t) => {
  const { hub, call, connect, events, mqttUrl } = await setup(t);
  const good = await connect(GOOD);
  await good.publishAsync('u4/301/sensors/device', JSON.stringify({ hardware: 'Acme RS-2', firmware: '1.4.2', sensors: ['temperature', 'humidity'] }), { qos: 1 });
  await until(async () => (await call('GET', `/api/v1/devices/${GOOD}`)).body.state === 'ACTIVE', { what: 'the described device ACTIVE' });
  assert.ok(events.some((e) => e.type === 'device.active' && e.device === GOOD));
  // Kept as its last status (written with the next batch of last-seen times).
  await until(async () => (await call('GET', `/api/v1/devices/${GOOD}`)).body.lastStatus?.hardware === 'Acme RS-2', { what: 'the self-description kept' });

  const bad = await connect(BAD);
  await bad.publishAsync('u4/303/sensors/device', JSON.stringify({ hardware: 'Acme RS-2', sensors: 'temperature' }), { qos: 1 });
  await until(async () => (await call('GET', `/api/v1/devices/${BAD}`)).body.state === 'BLOCKED', { what: 'the badly described device BLOCKED' });
  const blocked = (await call('GET', `/api/v1/devices/${BAD}`)).body;
  assert.match(blocked.blockedReason, /description\.sensors/, blocked.blockedReason);
  assert.equal(blocked.orders.accepted, false);
  assert.match(blocked.orders.reason, /BLOCKED/);
  assert.equal(await hub.metrics.value('backhaul_decode_errors_total', { input: 'devices', reason: 'BH_DEVICE_DESCRIPTION' }), 1);
  await until(async () => (await call('GET', `/api/v1/alarms?state=open&kind=blocked`)).body.items.length === 1, { what: 'a blocked alarm' });
  const alarm = (await call('GET', `/api/v1/alarms?state=open&kind=blocked`)).body.items[0];
  assert.equal(alarm.subject, BAD);
  assert.equal(alarm.severity, 'critical');
  // Its alarm.raised names it the way people call it: its description and where it is.
  await until(() => events.some((e) => e.type === 'alarm.raised' && e.data?.['subject'] === BAD), { what: 'alarm.raised for the blocked device' });
  assert.equal(events.find((e) => e.type === 'alarm.raised' && e.data?.['subject'] === BAD)?.data?.['name'], 'sensor 303, u4/303');
  // Its readings no longer pass: the broker refuses what a BLOCKED device publishes, and a new login is refused.
  assert.equal(await tryPublish(bad, 'u4/303/sensors/data', JSON.stringify({ device: BAD, temperature: 20 })), false);
  await assert.rejects(mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0, username: BAD, password: PASSWORD }));

  const unblocked = await call('POST', `/api/v1/devices/${BAD}/unblock`, {});
  assert.equal(unblocked.status, 200, JSON.stringify(unblocked.body));
  assert.equal(unblocked.body.state, 'INIT');
  await until(async () => (await call('GET', `/api/v1/alarms?state=open&kind=blocked`)).body.items.length === 0, { what: 'the blocked alarm cleared' });
  assert.equal((await call('POST', `/api/v1/devices/${BAD}/unblock`, {})).body.error.code, 'BH_DEVICE_STATE');
  // An operator's block: BLOCKED with their reason, an alarm again.
  const byHand = await call('POST', `/api/v1/devices/${GOOD}/block`, { reason: 'stolen from room 301' });
  assert.equal(byHand.body.state, 'BLOCKED');
  assert.equal(byHand.body.blockedReason, 'stolen from room 301');
  await until(() => events.some((e) => e.type === 'device.blocked' && e.device === GOOD), { what: 'device.blocked for the operator\'s block' });
});

test('a device\'s reported mode is kept; DANGER raises an alarm, NORMAL clears it', { timeout: 60_000 }, async (t) => {
  const { call, connect, events } = await setup(t);
  const dev = await connect(GOOD);
  await dev.publishAsync('u4/301/sensors/device', JSON.stringify({ mode: 'DANGER' }), { qos: 1 });
  await until(async () => (await call('GET', `/api/v1/alarms?state=open&kind=mode`)).body.items.length === 1, { what: 'a mode alarm' });
  assert.equal((await call('GET', `/api/v1/alarms?state=open&kind=mode`)).body.items[0].severity, 'critical');
  await until(async () => (await call('GET', `/api/v1/devices/${GOOD}`)).body.mode === 'DANGER', { what: 'the mode kept on the device' });
  await dev.publishAsync('u4/301/sensors/device', JSON.stringify({ mode: 'NORMAL' }), { qos: 1 });
  await until(async () => (await call('GET', `/api/v1/alarms?state=open&kind=mode`)).body.items.length === 0, { what: 'the mode alarm cleared' });
  const modes = events.filter((e) => e.type === 'device.mode').map((e) => [e.data?.['mode'], e.severity]);
  assert.deepEqual(modes, [['DANGER', 'critical'], ['NORMAL', 'info']]);
  assert.equal((await call('GET', `/api/v1/devices/${GOOD}`)).body.state, 'INIT', 'a mode alone is no self-description');
});

test('a SenML device first seen over HTTP is a senml-device, learns its silence threshold from its cadence and goes offline without setup', { timeout: 60_000 }, async (t) => {
  const { call, events, httpUrl } = await setup(t);
  const id = 'urn:dev:mac:0024befffe804ff1';
  for (let i = 0; i < 5; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1100));
    const res = await fetch(httpUrl, { method: 'POST', headers: { 'content-type': 'application/senml+json' }, body: JSON.stringify([{ bn: id, n: 'temperature', u: 'Cel', v: 20 + i }]) });
    assert.equal(res.status, 202);
  }
  const listed = (await call('GET', '/api/v1/devices?type=senml-device')).body.items;
  assert.equal(listed.length, 1, JSON.stringify(listed));
  const dev = listed[0];
  assert.equal(dev.type, 'senml-device');
  await until(async () => (await call('GET', `/api/v1/devices/${encodeURIComponent(dev.id)}`)).body.learnedSilentMs !== undefined, { what: 'the learned threshold written to the registry' });
  const learned = (await call('GET', `/api/v1/devices/${encodeURIComponent(dev.id)}`)).body;
  assert.ok(learned.learnedSilentMs >= 3000 && learned.learnedSilentMs < 5000, `3 × a ~1.1 s cadence: ${learned.learnedSilentMs as number}`);
  assert.equal(learned.thresholds.maxSilentMs, learned.learnedSilentMs);
  await until(() => events.some((e) => e.type === 'device.offline' && e.device === dev.id), { what: 'device.offline by the learned threshold' });
  assert.equal((await call('GET', `/api/v1/devices/${encodeURIComponent(dev.id)}`)).body.liveness, 'outdated');
  const offline = (await call('GET', `/api/v1/alarms?state=open&kind=offline`)).body.items;
  assert.deepEqual(offline.map((a: any) => a.subject), [dev.id]);
  // An operator's own threshold ends the learning: theirs is the one shown.
  const set = await call('PATCH', `/api/v1/devices/${encodeURIComponent(dev.id)}`, { thresholds: { maxSilentMs: 3_600_000 } });
  assert.equal(set.body.thresholds.maxSilentMs, 3_600_000);
});

test('orders only where they can go: a radio-only valve, a LoRaWAN device not heard yet and a device never heard from are refused with the reason', { timeout: 60_000 }, async (t) => {
  const { call, connect } = await setup(t);
  const radio = (await call('GET', `/api/v1/devices/${RADIO}`)).body;
  assert.equal(radio.orders.accepted, false);
  assert.match(radio.orders.reason, /no broker login/);
  const r1 = await call('POST', `/api/v1/devices/${RADIO}/commands`, { order: 'reboot' });
  assert.equal(r1.status, 409);
  assert.equal(r1.body.error.code, 'BH_COMMAND_REFUSED');

  const lora = (await call('GET', `/api/v1/devices/${encodeURIComponent(LORA)}`)).body;
  // Its orders are downlinks, and no uplink told yet where they go (force does not help: it is not about connecting).
  assert.deepEqual(lora.orders, { accepted: false, reason: 'none of its uplinks was heard yet, so the network server ids a downlink needs are unknown (give them in its config: network)' });
  assert.equal((await call('POST', `/api/v1/devices/${encodeURIComponent(LORA)}/commands`, { order: 'reboot', force: true })).body.error.code, 'BH_COMMAND_REFUSED');

  const never = (await call('GET', `/api/v1/devices/${NEVER}`)).body;
  assert.deepEqual(never.orders, { accepted: false, forceable: true, reason: 'it has never connected' });
  const refused = await call('POST', `/api/v1/devices/${NEVER}/commands`, { order: 'reboot' });
  assert.equal(refused.body.error.code, 'BH_COMMAND_REFUSED');
  assert.match(refused.body.error.message, /never connected.*force/);
  assert.equal((await call('POST', `/api/v1/devices/${NEVER}/commands`, { order: 'reboot', force: true })).status, 201);

  // A device that logged in is heard from: orders are offered at once.
  await connect(GOOD);
  await until(async () => (await call('GET', `/api/v1/devices/${GOOD}`)).body.orders.accepted === true, { what: 'orders offered to a connected device' });
  assert.deepEqual((await call('GET', `/api/v1/devices/${GOOD}`)).body.orders, { accepted: true, via: 'mqtt' });
  assert.equal((await call('POST', `/api/v1/devices/${GOOD}/commands`, { order: 'reboot' })).status, 201);
});

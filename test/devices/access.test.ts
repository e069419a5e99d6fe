// Devices against the real hub and its embedded broker, with real MQTT clients (mqtt.js) and real HTTP (fetch):
// the broker's topic ACL from the registry, status messages kept as last status, bootstrap over HTTP, orders with
// acknowledgements, reinstall resetting credentials, and devices declared in the config file.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { tryPublish } from '../helpers/mqtt-client.js';

const PASSWORD = 'shutter-301-password';
const SHUTTER = 'aa:bb:cc:00:03:01';

interface Setup {
  hub: Hub;
  url: string;
  api: string;
  dir: string;
  lines: (file: string) => Array<Record<string, unknown>>;
  store: () => SqliteDeviceStore;
}

async function setup(t: TestContext, extra: { devices?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): Promise<Setup> {
  const d = tempDir();
  t.after(() => d.cleanup());
  // Two shutters in two rooms, one disabled valve, all with logins; made before the hub starts, as the CLI would.
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: SHUTTER, type: 'shutter', location: { building: 'U4', room: '301' } });
  await s.setCredentials(SHUTTER, { username: SHUTTER, hash: await hashPassword(PASSWORD), passwordIssued: true });
  await s.create({ id: 'aa:bb:cc:00:03:02', type: 'shutter', location: { building: 'u4', room: '302' } });
  await s.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '301' }, enabled: false });
  await s.setCredentials('0d49', { username: '0d49', hash: await hashPassword('valve-password'), passwordIssued: true });
  await s.close();
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop', refreshMs: 100, commandTimeoutMs: 1000, ...extra.devices },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') }, events: { type: 'file', path: join(d.path, 'events.jsonl') } },
      routes: [{ to: ['out'] }, { match: { kind: 'event' }, to: ['events'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry(), ...(extra.env ? { env: extra.env } : {}) },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const lines = (f: string) =>
    existsSync(join(d.path, f))
      ? readFileSync(join(d.path, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  const store = () => {
    const st = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
    t.after(() => st.close());
    return st;
  };
  return { hub, url: `mqtt://127.0.0.1:${port}`, api: hub.apiUrl()!, dir: d.path, lines, store };
}

async function connect(t: TestContext, url: string, username?: string, password?: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...(username !== undefined ? { username, password } : {}) });
  t.after(() => c.endAsync(true));
  return c;
}


test('broker ACL: a device publishes under its own base topic only, subscribes only to its command topic; wrong or disabled logins and anonymous clients are refused', async (t) => {
  const { url, lines, hub } = await setup(t);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0 }), /Not authorized/i);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, username: SHUTTER, password: 'wrong' }), /Bad username or password/i);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, username: '0d49', password: 'valve-password' }), /Bad username or password/i);

  const dev = await connect(t, url, SHUTTER, PASSWORD);
  // Location U4 / 301 → base topic u4/301/shutter, whatever the case it was written in.
  assert.equal(await tryPublish(dev, 'u4/301/shutter/data', JSON.stringify({ device: SHUTTER, position: 40 })), true);
  await until(() => lines('out.jsonl').length === 1, { what: 'the reading' });
  assert.equal(lines('out.jsonl')[0]!['authenticated'], true);
  assert.equal(lines('out.jsonl')[0]!['device'], SHUTTER);

  const granted = await dev.subscribeAsync('u4/301/shutter/command', { qos: 1 });
  assert.equal(granted[0]?.qos, 1);
  await assert.rejects(dev.subscribeAsync('u4/302/shutter/command', { qos: 1 }), /Unspecified error/);
  await assert.rejects(dev.subscribeAsync('u4/#', { qos: 1 }), /Unspecified error/);

  // Another room's topic, and orders to its own room-mates: the broker closes the connection, nothing is ingested.
  assert.equal(await tryPublish(dev, 'u4/302/shutter/data', JSON.stringify({ device: SHUTTER, position: 1 })), false);
  const again = await connect(t, url, SHUTTER, PASSWORD);
  assert.equal(await tryPublish(again, 'u4/301/shutter/command', JSON.stringify({ dest: 'all', order: 'up' })), false);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(lines('out.jsonl').length, 1);
  assert.ok((await hub.metrics.value('backhaul_input_errors_total', { input: 'devices' })) >= 5, 'every refusal is counted');
});

test('a device disabled, or whose password is reset, while connected loses its rights at the next registry refresh', async (t) => {
  const { url, lines, store } = await setup(t);
  const dev = await connect(t, url, SHUTTER, PASSWORD);
  const other = await connect(t, url, SHUTTER, PASSWORD);
  assert.equal(await tryPublish(dev, 'u4/301/shutter/data', JSON.stringify({ device: SHUTTER, position: 1 })), true);
  await store().setEnabled(SHUTTER, false);
  await new Promise((r) => setTimeout(r, 400)); // refreshMs is 100 here
  assert.equal(await tryPublish(dev, 'u4/301/shutter/data', JSON.stringify({ device: SHUTTER, position: 2 })), false);
  assert.equal(lines('out.jsonl').length, 1);

  // Enabled again, but a new password set (`backhaul devices reset-credentials`): the session opened with the old one
  // stays refused; the new password logs in.
  await store().setEnabled(SHUTTER, true);
  await store().setCredentials(SHUTTER, { username: SHUTTER, hash: await hashPassword('the-new-password'), passwordIssued: true });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await tryPublish(other, 'u4/301/shutter/data', JSON.stringify({ device: SHUTTER, position: 3 })), false);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, username: SHUTTER, password: PASSWORD }), /Bad username or password/i);
  const renewed = await connect(t, url, SHUTTER, 'the-new-password');
  assert.equal(await tryPublish(renewed, 'u4/301/shutter/data', JSON.stringify({ device: SHUTTER, position: 4 })), true);
  await until(() => lines('out.jsonl').length === 2, { what: 'the reading of the renewed login' });
});

test('status on <base>/device is kept as the device\'s last status (as sent), not decoded as readings', async (t) => {
  const { url, lines, store, hub } = await setup(t);
  const dev = await connect(t, url, SHUTTER, PASSWORD);
  const status = { uptime: 3600, firmware: '1.4.2', rssi: -71, position: 40 };
  assert.equal(await tryPublish(dev, 'u4/301/shutter/device', JSON.stringify(status)), true);
  await until(async () => (await store().get(SHUTTER))?.lastStatus !== undefined, { what: 'the status recorded', timeoutMs: 10_000 });
  const d = await store().get(SHUTTER);
  assert.deepEqual(d?.lastStatus, status);
  assert.ok(d?.lastSeen !== undefined);
  assert.equal(lines('out.jsonl').length, 0);
  assert.equal(await hub.metrics.value('backhaul_frames_skipped_total', { input: 'devices', reason: 'device_status' }), 1);
});

test('orders: published with dest on the command topic, audited, acknowledged by the device\'s status; unanswered ones expire', async (t) => {
  const { url, hub, lines, store } = await setup(t);
  const dev = await connect(t, url, SHUTTER, PASSWORD);
  await dev.subscribeAsync('u4/301/shutter/command', { qos: 1 });
  const received: Array<{ topic: string; body: Record<string, unknown> }> = [];
  dev.on('message', (topic, payload) => received.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));

  const sent = await hub.sendCommand({ device: SHUTTER, order: 'down', params: { position: 0 }, actor: 'cli:alice' });
  assert.equal(sent.status, 'sent');
  assert.equal(sent.topic, 'u4/301/shutter/command');
  await until(() => received.length === 1, { what: 'the order reaches the device' });
  assert.equal(received[0]!.topic, 'u4/301/shutter/command');
  assert.deepEqual(
    { dest: received[0]!.body['dest'], order: received[0]!.body['order'], params: received[0]!.body['params'], id: received[0]!.body['id'] },
    { dest: SHUTTER, order: 'down', params: { position: 0 }, id: sent.id },
  );
  // The device answers on its status topic, naming the order.
  await dev.publishAsync('u4/301/shutter/device', JSON.stringify({ ack: sent.id, result: 'ok', position: 0 }), { qos: 1 });
  await until(async () => (await store().getCommand(sent.id))?.status === 'acknowledged', { what: 'the acknowledgement matched' });
  const done = await store().getCommand(sent.id);
  assert.deepEqual(done?.result, { ack: sent.id, result: 'ok', position: 0 });
  const audit = await store().listAudit({ device: SHUTTER, action: 'command.down' });
  assert.deepEqual(audit.map((a) => [a.actor, a.result]), [
    [`device:${SHUTTER}`, 'acknowledged'],
    ['cli:alice', 'sent'],
  ]);
  await until(() => lines('events.jsonl').some((e) => e['event'] === 'command.acknowledged'), { what: 'the command.acknowledged event' });

  // An order nobody answers expires after commandTimeoutMs (1 s here), once.
  const lost = await hub.sendCommand({ device: SHUTTER, order: 'reboot', actor: 'cli:alice' });
  await until(async () => (await store().getCommand(lost.id))?.status === 'expired', { what: 'expiry', timeoutMs: 5000 });
  assert.equal((await store().listAudit({ action: 'command.reboot' })).filter((a) => a.result === 'expired').length, 1);

  // Refused orders say why, with the field at fault, and are audited.
  await assert.rejects(hub.sendCommand({ device: '0d49', order: 'reboot', actor: 'cli:alice' }), (e: Error & { code?: string }) => e.code === 'BH_COMMAND_REFUSED' && /disabled/.test(e.message));
  await assert.rejects(hub.sendCommand({ device: SHUTTER, order: 'rm -rf', actor: 'cli:alice' }), (e: Error & { code?: string; path?: string }) => e.code === 'BH_COMMAND_ORDER' && e.path === 'order');
  await assert.rejects(hub.sendCommand({ device: 'nope', order: 'reboot', actor: 'cli:alice' }), (e: Error & { code?: string }) => e.code === 'BH_DEVICE_NOT_FOUND');
  assert.equal((await store().listAudit({ device: '0d49', action: 'command.reboot' }))[0]?.result, 'refused');
});

test('bootstrap, then reinstall: the password comes on the first call in the claim window only; reinstall resets it and opens a window, the old one stops working, the next call brings a new one', async (t) => {
  const { url, api, hub, store, lines } = await setup(t);
  const room = 'aa:bb:cc:00:03:02'; // registered without a login
  const refused = await fetch(`${api}/bootstrap/v1/credentials?mac=AA-BB-CC-00-03-02`);
  assert.equal(refused.status, 403, 'no password before an operator opens the claim window');
  await store().openClaimWindows([room], Date.now() + 60_000);
  const first = await fetch(`${api}/bootstrap/v1/credentials?mac=AA-BB-CC-00-03-02`);
  assert.equal(first.status, 200);
  const creds = (await first.json()) as { login: string; password?: string; broker: { host: string; port: number }; baseTopic: string };
  assert.ok(creds.password, 'a password on the first call');
  assert.equal(creds.baseTopic, 'u4/302/shutter');
  assert.deepEqual(creds.broker, { host: '127.0.0.1', port: Number(new URL(url).port) });
  const second = await fetch(`${api}/bootstrap/v1/credentials?mac=${room}`);
  assert.equal(second.status, 403, 'the password is handed out once');

  // Straight away, without waiting for the gate's next look at the registry: the login itself brings the news.
  const dev = await connect(t, `mqtt://${creds.broker.host}:${creds.broker.port}`, creds.login, creds.password);
  assert.equal(await tryPublish(dev, `${creds.baseTopic}/device`, JSON.stringify({ booted: true })), true);
  assert.equal(await tryPublish(dev, `${creds.baseTopic}/data`, JSON.stringify({ device: room, position: 10 })), true);
  await until(() => lines('out.jsonl').length === 1, { what: 'its reading' });
  assert.equal(lines('out.jsonl')[0]!['authenticated'], true);
  await dev.subscribeAsync(`${creds.baseTopic}/command`, { qos: 1 });
  const orders: string[] = [];
  dev.on('message', (_topic, payload) => orders.push(String((JSON.parse(payload.toString()) as { order: string }).order)));
  const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));

  await hub.sendCommand({ device: room, order: 'reinstall', actor: 'cli:alice' });
  await until(() => orders.includes('reinstall'), { what: 'the reinstall order reaches the device' });
  await closed; // its session is closed after the grace period
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, username: creds.login, password: creds.password }), /Bad username or password/i);
  assert.ok((await store().listAudit({ device: room, action: 'credentials.reset' })).length === 1);
  const opened = await store().listAudit({ device: room, action: 'claim.open' });
  assert.deepEqual(opened.map((a) => [a.actor, a.detail?.['via']]), [['cli:alice', 'reinstall']], 'the reinstall opened the claim window');

  const third = (await (await fetch(`${api}/bootstrap/v1/credentials?mac=${room}`)).json()) as { password?: string };
  assert.ok(third.password && third.password !== creds.password, 'a new password after the reset');
  const back = await connect(t, url, creds.login, third.password);
  assert.ok(back.connected);
});

test('devices declared in the config: read-only registry entries whose login comes from a secret, unchanged by a restart', async (t) => {
  const declared = {
    declared: [
      { id: 'AA-BB-CC-00-09-01', type: 'room-sensor', building: 'u4', room: '309', maxSilent: '10m', password: { secret: 'sensor_309' } },
    ],
  };
  const env = { BACKHAUL_SECRET_SENSOR_309: 'declared-sensor-password' };
  const { url, lines, store, hub, dir } = await setup(t, { devices: declared, env });
  const d = await store().get('aa:bb:cc:00:09:01');
  assert.equal(d?.source, 'config');
  assert.equal(d?.thresholds.maxSilentMs, 600_000);
  assert.equal(d?.credentials?.username, 'aa:bb:cc:00:09:01');
  assert.ok(d?.credentials?.hash?.startsWith('$scrypt$'));
  const dev = await connect(t, url, 'aa:bb:cc:00:09:01', 'declared-sensor-password');
  assert.equal(await tryPublish(dev, 'u4/309/sensors/data', JSON.stringify({ device: 'aa:bb:cc:00:09:01', temperature: 21 })), true);
  await until(() => lines('out.jsonl').length === 1, { what: 'its reading' });
  assert.equal(lines('out.jsonl')[0]!['authenticated'], true);
  await dev.endAsync();
  await hub.stop();

  // Same config again: the stored hash still matches, so it is kept.
  const restarted = new Hub({
    config: buildConfig(
      {
        data: dir,
        devices: declared,
        inputs: {},
        sinks: { out: { type: 'file', path: 'x.jsonl' } },
        routes: [{ to: ['out'] }],
      },
      { source: 'test', dir },
      { registry: builtinRegistry(), env },
    ),
    logger: silentLogger(),
  });
  await restarted.start();
  await restarted.stop();
  assert.equal((await store().get('aa:bb:cc:00:09:01'))?.credentials?.hash, d?.credentials?.hash);
});

// Whose readings a login carries, through the real hub: devices log in to the embedded broker with their registry
// credentials (mqtt.js), readings go to the SQLite historian, and the REST API answers over real HTTP. A device may
// only send its own readings; a declared gateway also its nodes' (not authenticated); frames without a device login
// keep today's behaviour. And a flood of made-up ids is held to a bounded number of device.unknown events.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { ManualClock } from '../../src/core/clock.js';
import { buildConfig } from '../../src/runtime/config.js';
import { createLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

const A = 'aa:bb:cc:00:04:01';
const B = 'aa:bb:cc:00:04:02';
const THIRD = 'aa:bb:cc:00:04:03'; // in no registry
const HUB = 'hub-u4'; // an OpenTRV hub relaying its valves' frames
const VALVE = '0d49';
const NEW_VALVE = '0d4a'; // a valve the registry does not know yet
const BRIDGE = { username: 'bridge', password: 'bridge-password' }; // a broker service account

interface Setup {
  hub: Hub;
  url: string;
  call: (path: string) => Promise<{ status: number; body: Record<string, unknown> }>;
  logs: () => Array<Record<string, unknown>>;
  events: () => Array<Record<string, unknown>>;
  store: () => SqliteDeviceStore;
}

async function setup(t: TestContext): Promise<Setup> {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: A, type: 'shutter', location: { building: 'u4', room: '401' } });
  await s.setCredentials(A, { username: A, hash: await hashPassword('password-of-a'), passwordIssued: true });
  await s.create({ id: B, type: 'shutter', location: { building: 'u4', room: '402' } });
  await s.setCredentials(B, { username: B, hash: await hashPassword('password-of-b'), passwordIssued: true });
  await s.create({ id: HUB, kind: 'other', type: 'generic', location: { building: 'u4', room: '400' } });
  await s.setCredentials(HUB, { username: HUB, hash: await hashPassword('password-of-hub'), passwordIssued: true });
  await s.create({ id: VALVE, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '400' } });
  await s.close();
  let logged = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', refreshMs: 100, gateways: [{ login: HUB, devices: ['0d*'] }] },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json', users: [BRIDGE] } },
      sinks: { history: { type: 'sqlite' }, events: { type: 'file', path: join(d.path, 'events.jsonl') } },
      routes: [{ to: ['history'] }, { match: { kind: 'event' }, to: ['events'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  let admin = '';
  const hub = new Hub({ config, logger: createLogger({ pretty: false, destination: stream, level: 'info' }), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  const base = hub.apiUrl()!;
  const call = async (path: string) => {
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${admin}` } });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  // The sqlite sink creates its file in its own thread, a moment after the start: until then the API answers 503.
  await until(async () => (await call('/api/v1/events')).status !== 503, { what: 'the historian file made by its sink' });
  const jsonLines = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const events = () => (existsSync(join(d.path, 'events.jsonl')) ? jsonLines(readFileSync(join(d.path, 'events.jsonl'), 'utf8')) : []);
  const store = () => {
    const st = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
    t.after(() => st.close());
    return st;
  };
  return { hub, url: `mqtt://127.0.0.1:${port}`, call, logs: () => jsonLines(logged), events, store };
}

async function login(t: TestContext, url: string, username: string, password: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username, password });
  t.after(() => c.endAsync(true));
  return c;
}

type Value = { measurement: string; value: unknown; authenticated: boolean };

async function latest(s: Setup, id: string): Promise<Value[]> {
  const r = await s.call(`/api/v1/devices/${encodeURIComponent(id)}/latest`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body['values'] as Value[];
}

test('a device login carries only its own readings: spoofed single and array readings for other devices are refused and counted, its own pass', async (t) => {
  const s = await setup(t);
  const a = await login(t, s.url, A, 'password-of-a');
  // A single reading naming B, on A's own topic (the broker's ACL lets A publish there).
  await a.publishAsync('u4/401/shutter/data', JSON.stringify({ device: B, temperature: 77.7 }), { qos: 1 });
  // An array: A's own reading, one for B, one for a device in no registry.
  await a.publishAsync(
    'u4/401/shutter/data',
    JSON.stringify([
      { device: A, position: 40 },
      { device: B, position: 99 },
      { device: THIRD, temperature: 66.6 },
    ]),
    { qos: 1 },
  );
  await until(async () => (await latest(s, A)).length === 1, { what: "A's own reading stored" });
  assert.deepEqual((await latest(s, A)).map((v) => [v.measurement, v.value, v.authenticated]), [['position', 40, true]]);
  assert.equal(await s.hub.metrics.value('backhaul_gate_dropped_total', { input: 'devices', reason: 'foreign_device' }), 3);
  assert.deepEqual(await latest(s, B), [], "nothing stored as B's");
  const readings = await s.call(`/api/v1/readings?device=${encodeURIComponent(B)}`);
  assert.deepEqual(readings.body['items'], []);

  // Logged with the code, once for the minute (three refusals, one line).
  const lines = s.logs().filter((l) => l['code'] === 'BH_DEVICE_FOREIGN');
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.equal(lines[0]!['login'], A);
  assert.equal(lines[0]!['device'], B);

  await s.hub.stop(); // writes the last-seen times
  const st = s.store();
  assert.equal((await st.get(B))?.lastSeen, undefined, "B's last seen did not move");
  assert.ok((await st.get(A))?.lastSeen !== undefined, "A's did");
  // `register` policy: yet the made-up third id was neither registered nor announced.
  assert.equal(await st.get(THIRD), undefined);
  assert.deepEqual(s.events().filter((e) => e['event'] === 'device.unknown'), []);
});

test('a declared gateway carries its nodes\' readings (not authenticated) and its own (authenticated), nothing outside its globs; a service account keeps today\'s behaviour', async (t) => {
  const s = await setup(t);
  const gw = await login(t, s.url, HUB, 'password-of-hub');
  await gw.publishAsync(
    'u4/400/generic/data',
    JSON.stringify([
      { device: VALVE, temperature: 19.5 },
      { device: NEW_VALVE, temperature: 18 },
      { device: HUB, uptime: 3600 },
      { device: B, position: 1 },
    ]),
    { qos: 1 },
  );
  await until(async () => (await latest(s, HUB)).length === 1, { what: "the hub's own reading stored" });
  await until(async () => (await s.store().get(NEW_VALVE)) !== undefined, { what: 'the new valve registered by the policy' });
  await until(async () => (await latest(s, NEW_VALVE)).length === 1, { what: "the new valve's reading stored" });
  assert.deepEqual((await latest(s, VALVE)).map((v) => [v.measurement, v.value, v.authenticated]), [['temperature', 19.5, false]]);
  assert.deepEqual((await latest(s, NEW_VALVE)).map((v) => [v.measurement, v.value, v.authenticated]), [['temperature', 18, false]]);
  assert.deepEqual((await latest(s, HUB)).map((v) => [v.measurement, v.value, v.authenticated]), [['uptime', 3600, true]]);
  assert.deepEqual(await latest(s, B), [], 'B is not one of its nodes');
  assert.equal(await s.hub.metrics.value('backhaul_gate_dropped_total', { input: 'devices', reason: 'foreign_device' }), 1);
  const raw = await s.call(`/api/v1/readings?device=${VALVE}`);
  assert.deepEqual((raw.body['items'] as Value[]).map((p) => p.authenticated), [false]);

  // The broker's service account (a bridge) is no device login: its readings for any device pass, unauthenticated.
  const bridge = await login(t, s.url, BRIDGE.username, BRIDGE.password);
  await bridge.publishAsync('anything/goes', JSON.stringify({ device: B, position: 7 }), { qos: 1 });
  await until(async () => (await latest(s, B)).length === 1, { what: 'the bridge reading for B' });
  assert.deepEqual((await latest(s, B)).map((v) => [v.measurement, v.value, v.authenticated]), [['position', 7, false]]);
  // And B's own login marks its readings authenticated.
  const b = await login(t, s.url, B, 'password-of-b');
  await b.publishAsync('u4/402/shutter/data', JSON.stringify({ device: B, position: 8 }), { qos: 1 });
  await until(async () => (await latest(s, B))[0]?.value === 8, { what: "B's own reading" });
  assert.equal((await latest(s, B))[0]!.authenticated, true);
});

test('a flood of made-up device ids: a bounded number of device.unknown events and log lines, the rest counted and summed up a minute later', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  let logged = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', unknownEvents: { burst: 5, perMinute: 1 } },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json', users: [BRIDGE] } },
      sinks: { events: { type: 'file', path: join(d.path, 'events.jsonl') } },
      routes: [{ match: { kind: 'event', events: ['device.*'] }, to: ['events'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: createLogger({ pretty: false, destination: stream, level: 'info' }), clock });
  await hub.start();
  t.after(() => hub.stop());
  const events = () =>
    existsSync(join(d.path, 'events.jsonl'))
      ? readFileSync(join(d.path, 'events.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  const logs = () =>
    logged
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; suppressed?: number });
  const fuzzer = await login(t, `mqtt://127.0.0.1:${port}`, BRIDGE.username, BRIDGE.password);
  const N = 300;
  for (let i = 0; i < N; i++) await fuzzer.publishAsync('fuzz/x', JSON.stringify({ device: `fuzz-${i}`, t: i }), { qos: 1 });
  await until(async () => (await hub.metrics.value('backhaul_unknown_device_readings_total', { policy: 'register' })) === N, { what: 'every frame through the gate' });
  await until(() => events().length === 5, { what: 'the burst of device.unknown events' });
  assert.equal(await hub.metrics.value('backhaul_unknown_device_events_suppressed_total'), N - 5);
  assert.equal(logs().filter((l) => l.msg.startsWith('unknown device ')).length, 5);

  // A minute later: one summary, as an event and a log line.
  clock.advance(60_000);
  await until(() => events().length === 6, { what: 'the summary event' });
  const summary = events()[5]!;
  assert.equal(summary['event'], 'device.unknown_suppressed');
  assert.deepEqual(summary['data'], { suppressed: N - 5, first: 'fuzz-5', since: Date.parse('2026-03-01T12:00:00Z'), policy: 'register' });
  assert.equal(logs().filter((l) => l.suppressed === N - 5).length, 1);
  // The bucket has regained one event in that minute: the next new id is announced again, the one after is held.
  await fuzzer.publishAsync('fuzz/x', JSON.stringify({ device: 'late-1', t: 1 }), { qos: 1 });
  await fuzzer.publishAsync('fuzz/x', JSON.stringify({ device: 'late-2', t: 1 }), { qos: 1 });
  await until(() => events().length === 7, { what: 'one more device.unknown' });
  assert.equal(events()[6]!['device'], 'late-1');
  assert.equal(await hub.metrics.value('backhaul_unknown_device_events_suppressed_total'), N - 5 + 1);

  // The policy still applied to every id; the count still pending at stop goes to the log.
  await hub.stop();
  assert.equal(logs().filter((l) => l.suppressed === 1).length, 1);
  const st = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  t.after(() => st.close());
  assert.equal(await st.count({}), N + 2);
});

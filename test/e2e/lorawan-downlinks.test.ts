// LoRaWAN orders as downlinks, black-box: a real `backhaul start` reads ChirpStack's integration (Mosquitto plays its
// broker); `backhaul devices command` sends orders, encoded by the device's codec (test/fixtures/codecs/env-sensor.js)
// or given as bytes, which arrive on ChirpStack's command topic; ChirpStack's ack / txack events (shaped like the
// fixture test/fixtures/lorawan/chirpstack-v4-ack.json) settle them. The NS ids, signal and last frame counter
// outlive a restart. The Things Stack's down/push and down/* answers through the hub's REST API.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { fixture } from '../helpers/fixtures.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { MOSQUITTO, serviceSkip } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const skip = await serviceSkip(MOSQUITTO);
const DEV = '0a0b0c0d0e0f0102';
const up = JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-up.json'), 'utf8')) as Record<string, any>;
const ack = JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-ack.json'), 'utf8')) as Record<string, any>;

test('ChirpStack downlinks: devices command encodes with the codec (or takes --hex), publishes command/down, and ack / txack settle it', { skip, timeout: 90_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  // This run's own application id, so its topics on the shared Mosquitto are its own.
  const app = `bh-${process.pid}-${Date.now()}`;
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      devices: { unknown: 'register', refreshMs: 200, commandTimeoutMs: 60_000 },
      codecs: { 'lorawan-sensor': fileURLToPath(fixture('codecs/env-sensor.js')) },
      inputs: { ns: { type: 'mqtt', url: MOSQUITTO.url, topics: [`application/${app}/device/+/event/+`], decoder: 'chirpstack' } },
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
    }),
  );
  const ns = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => ns.endAsync());
  const downlinks: Array<Record<string, any>> = [];
  await ns.subscribeAsync(`application/${app}/device/+/command/down`, { qos: 1 });
  ns.on('message', (topic, payload) => {
    if (topic.endsWith('/command/down')) downlinks.push({ topic, ...(JSON.parse(payload.toString()) as object) });
  });
  const event = (kind: string, body: object) => ns.publishAsync(`application/${app}/device/${DEV}/event/${kind}`, JSON.stringify(body), { qos: 1 });
  const info = { ...up['deviceInfo'], applicationId: app, devEui: DEV };
  const uplink = (fCnt: number) => event('up', { ...up, deviceInfo: info, fCnt, time: new Date(Date.UTC(2026, 11, 3, 9, 0, fCnt)).toISOString(), data: Buffer.from([0x08, 0x66, 0x5a, 0x0b, 0xc4]).toString('base64') });

  let bh = runBackhaul(['start', '-c', cfg]);
  t.after(() => bh.stop());
  await bh.waitFor((l) => l.msg === 'backhaul running');

  // Never heard: the NS ids a downlink needs are unknown, and the CLI says so.
  await runToEnd(['devices', 'add', DEV, '--kind', 'deveui', '--type', 'lorawan-sensor', '-c', cfg]);
  const early = await runToEnd(['devices', 'command', DEV, 'interval', '--param', 'intervalMinutes=15', '-c', cfg]);
  assert.equal(early.code, 1);
  assert.match(early.stderr, /BH_COMMAND_REFUSED .*network server ids a downlink needs are unknown/);

  await uplink(1);
  // The uplink taught the application id: now the order goes out, encoded by the codec's encodeDownlink.
  let sent: Awaited<ReturnType<typeof runToEnd>> | undefined;
  await until(async () => {
    sent = await runToEnd(['devices', 'command', DEV, 'interval', '--param', 'intervalMinutes=15', '--json', '-c', cfg]);
    return sent.code === 0;
  }, { what: 'the order accepted once an uplink was heard', timeoutMs: 10_000 });
  const order = JSON.parse(sent!.stdout) as { id: string; topic: string; status: string };
  assert.equal(order.topic, `application/${app}/device/${DEV}/command/down`);
  await until(() => downlinks.length === 1, { what: 'the downlink on ChirpStack\'s command topic' });
  assert.deepEqual(downlinks[0], { topic: order.topic, id: order.id, devEui: DEV, confirmed: true, fPort: 10, data: Buffer.from([0x01, 0x0f]).toString('base64') });

  // ChirpStack transmitted it (txack): a confirmed downlink still waits for the device; its ack settles it.
  const answer: Record<string, unknown> = { ...ack, deviceInfo: info, queueItemId: order.id };
  const { acknowledged: _a, ...txack } = answer;
  await event('txack', { ...txack, downlinkId: 7, gatewayId: '0016c001f153a14c' });
  await event('ack', answer);
  const list = async () => JSON.parse((await runToEnd(['devices', 'commands', DEV, '--json', '-c', cfg])).stdout) as Array<{ id: string; status: string; result?: unknown; params: unknown }>;
  await until(async () => (await list()).find((c) => c.id === order.id)?.status === 'acknowledged', { what: 'the order acknowledged by ChirpStack\'s ack event' });

  // Bytes given by hand, waited for: the device does not acknowledge (acknowledged left out), so the order failed.
  const raw = runToEnd(['devices', 'command', DEV, 'raw', '--hex', 'ff00', '--fport', '3', '--wait', '20s', '-c', cfg]);
  await until(() => downlinks.length === 2, { what: 'the hand-made downlink' });
  assert.equal(downlinks[1]!['fPort'], 3);
  assert.equal(downlinks[1]!['data'], Buffer.from([0xff, 0x00]).toString('base64'));
  await event('ack', { ...txack, queueItemId: downlinks[1]!['id'] });
  const r = await raw;
  assert.equal(r.code, 1, 'a failed order exits 1 with --wait');
  assert.match(r.stdout, /^failed: .*did not acknowledge/m);
  const bad = await runToEnd(['devices', 'command', DEV, 'raw', '--hex', 'f', '--fport', '3', '-c', cfg]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BH_COMMAND_ORDER .*downlink\.hex/);
  const noPort = await runToEnd(['devices', 'command', DEV, 'raw', '--hex', 'ff', '-c', cfg]);
  assert.notEqual(noPort.code, 0);
  assert.match(noPort.stderr, /--fport/);

  // The registry keeps the NS side: a restart still knows where downlinks go and drops the NS's repeat of fCnt 1.
  await bh.stop();
  const store = SqliteDeviceStore.open(registryPath(join(dir.path, 'data')), { types: new DeviceTypes() });
  const kept = (await store.get(DEV))?.lorawan;
  await store.close();
  assert.equal(kept?.applicationId, app);
  assert.equal(kept?.input, 'ns');
  assert.equal(kept?.fCnt, 1);
  assert.equal(kept?.rssi, -36);
  const shown = await runToEnd(['devices', 'show', DEV, '-c', cfg]);
  assert.match(shown.stdout, new RegExp(`network server\\s+chirpstack via input ns, application ${app}`));
  assert.match(shown.stdout, /signal\s+-36 dBm, SNR 10\.5 dB, SF11, 1 gateway\(s\)/);
  bh = runBackhaul(['start', '-c', cfg]);
  await bh.waitFor((l) => l.msg === 'backhaul running');
  await uplink(1);
  await uplink(2);
  const lines = () => readFileSync(join(dir.path, 'out.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { device?: string; seq?: number });
  await until(() => lines().filter((l) => l.device === DEV).length === 2, { what: 'the uplink after the restart' });
  assert.deepEqual(lines().filter((l) => l.device === DEV).map((l) => l.seq), [1, 2], 'the repeat of fCnt 1 after the restart was dropped');
  const again = await runToEnd(['devices', 'command', DEV, 'interval', '--param', 'intervalMinutes=30', '--json', '-c', cfg]);
  assert.equal(again.code, 0, again.stderr);
  await until(() => downlinks.length === 3, { what: 'a downlink after the restart' });
});

test('The Things Stack downlinks through the REST API: down/push with a correlation id; down/sent settles an unconfirmed one, down/failed fails one', { skip, timeout: 60_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const appId = `bh-${process.pid}-${Date.now()}-tts`;
  const eui = '3036363266398f0d';
  const s = SqliteDeviceStore.open(registryPath(join(d.path, 'data')), { types: new DeviceTypes() });
  await s.create({ id: eui, kind: 'deveui', type: 'lorawan-sensor', config: { confirmed: false } });
  await s.close();
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      devices: { unknown: 'register', refreshMs: 200 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { tts: { type: 'mqtt', url: MOSQUITTO.url, topics: [`v3/${appId}@ttn/devices/+/up`, `v3/${appId}@ttn/devices/+/down/+`], decoder: 'tts' } },
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  let admin = '';
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  await hub.start();
  t.after(() => hub.stop());
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${hub.apiUrl()!}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const ns = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => ns.endAsync());
  const pushes: Array<{ topic: string; body: any }> = [];
  await ns.subscribeAsync(`v3/${appId}@ttn/devices/+/down/push`, { qos: 1 });
  ns.on('message', (topic, payload) => pushes.push({ topic, body: JSON.parse(payload.toString()) }));

  const m = JSON.parse(readFileSync(fixture('lorawan/tts-v3-uplink.json'), 'utf8')) as { payload: Record<string, any> };
  const devTopic = `v3/${appId}@ttn/devices/portenta-h7-icicle-00`;
  await ns.publishAsync(`${devTopic}/up`, JSON.stringify(m.payload), { qos: 1 });
  await until(async () => (await api('GET', `/api/v1/devices/${eui}`)).body.orders?.accepted === true, { what: 'orders offered once an uplink was heard' });
  const view = (await api('GET', `/api/v1/devices/${eui}`)).body;
  assert.equal(view.orders.via, 'lorawan');
  assert.deepEqual({ ns: view.lorawan.ns, applicationId: view.lorawan.applicationId, tenant: view.lorawan.tenant, deviceId: view.lorawan.deviceId, rssi: view.lorawan.rssi, fCnt: view.lorawan.fCnt }, {
    ns: 'tts',
    applicationId: appId,
    tenant: 'ttn',
    deviceId: 'portenta-h7-icicle-00',
    rssi: -51,
    fCnt: 9,
  });

  // No codec: an order without bytes is refused, saying what to give.
  const refused = await api('POST', `/api/v1/devices/${eui}/commands`, { order: 'reset' });
  assert.equal(refused.body.error.code, 'BH_COMMAND_REFUSED', JSON.stringify(refused.body));
  assert.match(String(refused.body.error.message), /encodeDownlink/);

  const sent: { status: number; body: { id: string } } = await api('POST', `/api/v1/devices/${eui}/commands`, { order: 'reset', downlink: { base64: 'AQI=', fPort: 2 } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  await until(() => pushes.length === 1, { what: 'the down/push' });
  assert.equal(pushes[0]!.topic, `${devTopic}/down/push`);
  assert.deepEqual(pushes[0]!.body, { downlinks: [{ f_port: 2, frm_payload: 'AQI=', confirmed: false, priority: 'NORMAL', correlation_ids: [`backhaul:order:${sent.body.id}`] }] });
  const first = pushes[0]!.body.downlinks[0] as { correlation_ids: string[] };
  const dl = { ...first, correlation_ids: ['as:downlink:01HSX', ...first.correlation_ids] };
  const answer = (type: string, body: object) => ns.publishAsync(`${devTopic}/${type}`, JSON.stringify({ end_device_ids: m.payload['end_device_ids'] as unknown, received_at: '2026-12-03T10:00:00Z', ...body }), { qos: 1 });
  await answer('down/sent', { downlink_sent: dl });
  const status = async (id: string): Promise<{ status: string; result?: unknown } | undefined> => ((await api('GET', `/api/v1/commands?device=${eui}`)).body as Array<{ id: string; status: string }>).find((c) => c.id === id);
  await until(async () => (await status(sent.body.id))?.status === 'acknowledged', { what: 'an unconfirmed downlink settled once sent' });

  const second: { body: { id: string } } = await api('POST', `/api/v1/devices/${eui}/commands`, { order: 'reset', downlink: { hex: '0303', fPort: 2 } });
  await until(() => pushes.length === 2, { what: 'the second down/push' });
  const dl2 = pushes[1]!.body.downlinks[0];
  await answer('down/failed', { downlink_failed: { downlink: dl2, error: { namespace: 'pkg/networkserver', name: 'application_downlink_too_long', message_format: 'application downlink too long' } } });
  await until(async () => (await status(second.body.id))?.status === 'failed', { what: 'down/failed fails the order' });
  assert.match(JSON.stringify((await status(second.body.id))?.result), /downlink too long/);
});

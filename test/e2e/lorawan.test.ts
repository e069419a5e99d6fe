// LoRaWAN through the real hub: Mosquitto plays ChirpStack's integration broker and an `mqtt` input reads it with the
// `chirpstack` decoder; The Things Stack's webhook posts to the `http` input with the `tts` decoder. Payloads are the
// fixtures of test/fixtures/lorawan (copied from the team's shared test data), with only fCnt, time and object varied.
// Shown: readings of the DevEUI in the historian with radio metadata, battery from status, a join as device.joined,
// a repeated uplink dropped as a duplicate, a gap in the frame counter counted as lost uplinks, a rejoin not counted.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return */
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
import type { HubEvent } from '../../src/core/types.js';
import { tempDir } from '../helpers/context.js';
import { fixture } from '../helpers/fixtures.js';
import { freePort } from '../helpers/servers.js';
import { MOSQUITTO, serviceSkip } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const skip = await serviceSkip(MOSQUITTO);
const APP = '17c82e96-be03-4f38-aef3-f83d48582d97';
const DEV = '0101010101010101';
const up = JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-up.json'), 'utf8')) as Record<string, unknown>;

test('ChirpStack over MQTT (Mosquitto as its integration broker) and The Things Stack over a webhook, through the hub', { skip, timeout: 60_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const run = `bh-${process.pid}-${Date.now()}`; // this run's own topics on the shared Mosquitto
  const httpPort = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', refreshMs: 200 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: {
        chirpstack: { type: 'mqtt', url: MOSQUITTO.url, topics: [`${run}/application/+/device/+/event/+`], decoder: { type: 'chirpstack', radio: true } },
        tts: { type: 'http', host: '127.0.0.1', port: httpPort, path: '/tts', decoder: 'tts' },
      },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  let admin = '';
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  const events: HubEvent[] = [];
  hub.onEvent((e) => events.push(e));
  await hub.start();
  t.after(() => hub.stop());
  const api = async (path: string) => (await (await fetch(`${hub.apiUrl()!}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json()) as any;

  const ns = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => ns.endAsync());
  const topic = (kind: string) => `${run}/application/${APP}/device/${DEV}/event/${kind}`;
  const uplink = (fCnt: number, temperature: number) =>
    JSON.stringify({ ...up, fCnt, time: new Date(Date.UTC(2026, 11, 3, 10, 0, fCnt)).toISOString(), object: { temperature } });
  const stored = async () => ((await api(`/api/v1/readings?device=${DEV}&measurement=temperature`)).items ?? []) as any[];

  await ns.publishAsync(topic('join'), readFileSync(fixture('lorawan/chirpstack-v4-join.json'), 'utf8'), { qos: 1 });
  await until(() => events.some((e) => e.type === 'device.joined' && e.device === DEV), { what: 'device.joined' });
  for (const [fCnt, temp] of [[0, 20], [1, 21], [1, 21], [4, 24]] as const) await ns.publishAsync(topic('up'), uplink(fCnt, temp), { qos: 1 });
  await until(async () => (await stored()).length === 3, { what: 'three uplinks stored (the repeat dropped)' });
  assert.deepEqual((await stored()).map((r) => r.value).sort(), [20, 21, 24]);
  assert.equal(await hub.metrics.value('backhaul_gate_dropped_total', { input: 'chirpstack', reason: 'duplicate' }), 1);
  assert.equal(await hub.metrics.value('backhaul_lorawan_uplinks_lost_total', { input: 'chirpstack' }), 2, 'fCnt 2 and 3 never came');
  // A rejoin: the counter starts again, and that is no loss.
  await ns.publishAsync(topic('join'), readFileSync(fixture('lorawan/chirpstack-v4-join.json'), 'utf8'), { qos: 1 });
  await ns.publishAsync(topic('up'), uplink(0, 19), { qos: 1 });
  await until(async () => (await stored()).length === 4, { what: 'the uplink after the rejoin' });
  assert.equal(await hub.metrics.value('backhaul_lorawan_uplinks_lost_total', { input: 'chirpstack' }), 2);

  await ns.publishAsync(topic('status'), readFileSync(fixture('lorawan/chirpstack-v4-status.json'), 'utf8'), { qos: 1 });
  await until(async () => ((await api(`/api/v1/readings?device=${DEV}&measurement=battery`)).items ?? []).length === 1, { what: 'battery from status' });
  const device = await api(`/api/v1/devices/${DEV}`);
  assert.equal(device.type, 'lorawan-sensor', 'registered on first sight with the type its decoder implies');
  assert.equal(device.kind, 'deveui');
  assert.deepEqual(device.uplinks, { lastFCnt: 0, lost: 2, duplicates: 1, resets: 0 });
  const rssi = (await api(`/api/v1/readings?device=${DEV}&measurement=rssi`)).items;
  assert.equal(rssi[0].value, -36);
  assert.equal(rssi[0].unit, 'dBm');

  // A protobuf message: refused with the code that says what to change, counted; the input carries on.
  await ns.publishAsync(topic('up'), Buffer.from([0x0a, 0x24, 0x33, 0x61]), { qos: 1 });
  await until(async () => (await hub.metrics.value('backhaul_decode_errors_total', { input: 'chirpstack', reason: 'BH_LORAWAN_PROTOBUF' })) === 1, { what: 'the protobuf message counted' });

  // The Things Stack's webhook: the same body its MQTT integration publishes.
  const tts = (JSON.parse(readFileSync(fixture('lorawan/tts-v3-uplink.json'), 'utf8')) as { payload: unknown }).payload;
  const res = await fetch(`http://127.0.0.1:${httpPort}/tts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tts) });
  assert.equal(res.status, 202);
  await until(async () => ((await api('/api/v1/readings?device=3036363266398f0d&measurement=detected')).items ?? []).length === 1, { what: 'the TTS uplink stored' });
});

test('uplinks the network server did not decode go through the device\'s codec in its sandbox; a hostile codec costs only its uplink', { skip, timeout: 60_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  writeFileSync(join(d.path, 'loop.js'), 'function decodeUplink(i) { for (;;) {} }');
  const s = SqliteDeviceStore.open(registryPath(join(d.path, 'data')), { types: new DeviceTypes() });
  await s.create({ id: '0202020202020202', kind: 'deveui', type: 'lorawan-sensor', config: { codec: 'env-sensor' } });
  await s.create({ id: '0303030303030303', kind: 'deveui', type: 'lorawan-sensor', config: { codec: 'loop' } });
  await s.close();
  const run = `bh-${process.pid}-${Date.now()}-codec`;
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      devices: { unknown: 'register', refreshMs: 200 },
      api: { host: '127.0.0.1', port: 0 },
      codecs: { 'env-sensor': fileURLToPath(fixture('codecs/env-sensor.js')), loop: 'loop.js' },
      inputs: { chirpstack: { type: 'mqtt', url: MOSQUITTO.url, topics: [`${run}/application/+/device/+/event/+`], decoder: 'chirpstack' } },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  let admin = '';
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  await hub.start();
  t.after(() => hub.stop());
  const api = async (path: string) => (await (await fetch(`${hub.apiUrl()!}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json()) as any;
  const ns = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => ns.endAsync());
  const raw = (eui: string, fCnt: number, bytes: number[]) =>
    ns.publishAsync(`${run}/application/${APP}/device/${eui}/event/up`, JSON.stringify({ ...up, deviceInfo: { devEui: eui }, fCnt, data: Buffer.from(bytes).toString('base64') }), { qos: 1 });
  await raw('0303030303030303', 1, [1, 2, 3]); // the endless loop: stopped at its deadline, that uplink dropped
  await raw('0202020202020202', 1, [0x08, 0x66, 0x5a, 0x0b, 0xc4]);
  await raw('0101010101010101', 1, [0xaa]); // no codec: kept raw
  await until(async () => (await hub.metrics.value('backhaul_decode_errors_total', { input: 'chirpstack', reason: 'BH_CODEC_TIMEOUT' })) === 1, { what: 'the hostile codec\'s uplink counted' });
  await until(async () => ((await api('/api/v1/readings?device=0202020202020202&measurement=temperature')).items ?? []).length === 1, { what: 'the codec\'s values stored' });
  const latest = (await api('/api/v1/devices/0202020202020202/latest')).values as Array<{ measurement: string; value: unknown }>;
  assert.deepEqual(Object.fromEntries(latest.map((v) => [v.measurement, v.value])), { temperature: 21.5, humidity: 45, battery: 3.012 });
  await until(async () => ((await api('/api/v1/readings?device=0101010101010101&measurement=payload')).items ?? []).length === 1, { what: 'the raw payload kept' });
  assert.equal((await api('/api/v1/readings?device=0101010101010101&measurement=payload')).items[0].value, 'aa');
  // The hostile codec's sandbox was made anew: its device's next uplink is tried again (and stopped again), the hub unharmed.
  await raw('0303030303030303', 2, [4]);
  await until(async () => (await hub.metrics.value('backhaul_decode_errors_total', { input: 'chirpstack', reason: 'BH_CODEC_TIMEOUT' })) === 2, { what: 'the second hostile uplink counted' });
  await raw('0202020202020202', 2, [0x09, 0x00, 0x5a, 0x0b, 0xc4]);
  await until(async () => ((await api('/api/v1/readings?device=0202020202020202&measurement=temperature')).items ?? []).length === 2, { what: 'the next good uplink stored' });
});

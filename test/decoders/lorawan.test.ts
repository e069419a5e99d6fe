// The LoRaWAN network servers' decoders (chirpstack, tts) on the real integration messages of test/fixtures/lorawan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chirpstackDecoder } from '../../src/decoders/chirpstack/index.js';
import { ttsDecoder } from '../../src/decoders/tts/index.js';
import type { Frame, Reading } from '../../src/core/types.js';
import { fixture } from '../helpers/fixtures.js';
import { throwsCode } from '../helpers/assert.js';

const APP = '17c82e96-be03-4f38-aef3-f83d48582d97';
const cs = (kind: string, payload: string | Uint8Array = readFileSync(fixture(`lorawan/chirpstack-v4-${kind}.json`), 'utf8'), topic = `application/${APP}/device/0101010101010101/event/${kind}`): Frame => ({
  input: 'ns',
  payload,
  receivedAt: 1_800_000_000_000,
  topic,
});
const csUp = (patch: Record<string, unknown>): string => JSON.stringify({ ...(JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-up.json'), 'utf8')) as object), ...patch });
const readingsOf = (r: ReturnType<ReturnType<typeof chirpstackDecoder.create>>): readonly Reading[] => {
  assert.ok('readings' in r, JSON.stringify(r));
  return r.readings;
};

test('chirpstack up: the DevEUI, the NS time, the decoded object flattened to dotted names, fCnt as seq; radio metadata when asked', () => {
  const decode = chirpstackDecoder.create({ radio: false, statusValues: true });
  // The docs' example has no `object` (no NS codec): its bytes are kept raw, for the device's codec (docs/lorawan.md).
  const [rawUp] = readingsOf(decode(cs('up')));
  assert.deepEqual(rawUp!.values, { payload: 'aa', fPort: 1 });
  assert.deepEqual(decode(cs('up', csUp({ data: undefined }))), { skipped: 'no_decoded_payload' });
  throwsCode(() => decode(cs('up', csUp({ data: 'not base64!' }))), 'BH_DECODE_SHAPE', 'data');
  const [r] = readingsOf(decode(cs('up', csUp({ fCnt: 7, object: { temperature: 21.5, env: { humidity: 40, ok: true }, levels: [1, 2], none: null } }))));
  assert.equal(r!.device, '0101010101010101');
  assert.equal(r!.ts, Date.parse('2022-07-18T09:34:15.775Z'));
  assert.equal(r!.seq, 7);
  assert.deepEqual(r!.values, { temperature: 21.5, 'env.humidity': 40, 'env.ok': true, 'levels.0': 1, 'levels.1': 2 });
  const radio = chirpstackDecoder.create({ radio: true, statusValues: true });
  const [withRadio] = readingsOf(radio(cs('up')));
  // fCnt left out of the JSON mapping means 0.
  assert.deepEqual(withRadio!.values, { payload: 'aa', rssi: -36, snr: 10.5, gateways: 1, sf: 11, fCnt: 0, fPort: 1 });
  assert.deepEqual(withRadio!.units, { rssi: 'dBm', snr: 'dB' });
  assert.equal(withRadio!.seq, 0);
});

test('chirpstack status: battery % and margin; external power gives no battery', () => {
  const decode = chirpstackDecoder.create({ radio: false, statusValues: true });
  const [r] = readingsOf(decode(cs('status')));
  assert.deepEqual(r!.values, { battery: 88.3, margin: 10 });
  assert.deepEqual(r!.units, { battery: '%', margin: 'dB' });
  const mains = JSON.stringify({ ...(JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-status.json'), 'utf8')) as object), externalPowerSource: true });
  assert.deepEqual(readingsOf(decode(cs('status', mains)))[0]!.values, { margin: 10 });
});

test('chirpstack: join, ack and other events are skipped by type; an HTTP post without a topic is told apart by its body', () => {
  const decode = chirpstackDecoder.create({ radio: false, statusValues: true });
  const joined = { kind: 'joined', device: '0101010101010101', ts: Date.parse('2022-07-18T09:33:28.823Z'), devAddr: '00189440' };
  assert.deepEqual(decode(cs('join')), { skipped: 'chirpstack_join', notice: joined });
  const { topic: _t, ...http } = cs('status');
  assert.equal(readingsOf(decode({ ...http, topic: '/ingest' }))[0]!.values['battery'], 88.3);
  assert.deepEqual(decode({ ...cs('join'), topic: '/ingest' }), { skipped: 'chirpstack_join', notice: joined });
});

test('chirpstack ack, txack and log: what became of a downlink (its queue item id is the order id); other log errors are notices', () => {
  const decode = chirpstackDecoder.create({ radio: false, statusValues: true });
  const item = '1bbcab1d-6ec6-4136-b3f5-d63be1dc08de';
  const ts = Date.parse('2022-07-18T09:38:49.235Z');
  const base = { kind: 'downlink', device: '0101010101010101', ts, command: item } as const;
  assert.deepEqual(decode(cs('ack')), { skipped: 'chirpstack_ack', notice: { ...base, outcome: 'acknowledged' } });
  const ackBody = JSON.parse(readFileSync(fixture('lorawan/chirpstack-v4-ack.json'), 'utf8')) as Record<string, unknown>;
  // `acknowledged: false` is left out of the JSON mapping.
  const { acknowledged: _a, ...nack } = ackBody;
  assert.deepEqual(decode(cs('ack', JSON.stringify(nack))), { skipped: 'chirpstack_ack', notice: { ...base, outcome: 'failed', reason: 'the device did not acknowledge the downlink' } });
  const tx = JSON.stringify({ ...nack, downlinkId: 4242, gatewayId: '0016c001f153a14c' });
  assert.deepEqual(decode(cs('txack', tx, `application/${APP}/device/0101010101010101/event/txack`)), { skipped: 'chirpstack_txack', notice: { ...base, outcome: 'sent' } });
  // An acknowledgement of a downlink someone else queued (no queue item id) is only skipped.
  const { queueItemId: _q, ...foreign } = ackBody;
  assert.deepEqual(decode(cs('ack', JSON.stringify(foreign))), { skipped: 'chirpstack_ack' });
  const log = (patch: Record<string, unknown>) =>
    decode(cs('log', JSON.stringify({ time: ackBody['time'], deviceInfo: ackBody['deviceInfo'], ...patch }), `application/${APP}/device/0101010101010101/event/log`));
  assert.deepEqual(log({ level: 'ERROR', code: 'DOWNLINK_PAYLOAD_SIZE', description: 'too big', context: { queue_item_id: item } }), {
    skipped: 'chirpstack_log',
    notice: { ...base, outcome: 'failed', reason: 'DOWNLINK_PAYLOAD_SIZE: too big' },
  });
  assert.deepEqual(log({ level: 'ERROR', code: 'UPLINK_CODEC', description: 'codec threw' }), {
    skipped: 'chirpstack_log',
    notice: { kind: 'network_error', device: '0101010101010101', ts, level: 'ERROR', code: 'UPLINK_CODEC', description: 'codec threw' },
  });
  assert.deepEqual(log({ code: 'UPLINK_F_CNT_RESET', description: 'reset' }), { skipped: 'chirpstack_log' }, 'INFO (left out as the zero value) is no problem');
});

test('chirpstack: an uplink carries the NS side for the registry (application id, signal), and a downlink is the command/down message', () => {
  const [r] = readingsOf(chirpstackDecoder.create({ radio: false, statusValues: true })(cs('up')));
  assert.deepEqual(r!.lorawan, { ns: 'chirpstack', applicationId: APP, fPort: 1, rssi: -36, snr: 10.5, gateways: 1, sf: 11 });
  const msg = chirpstackDecoder.downlink!({ id: 'order-1', devEui: '0101010101010101', applicationId: APP, fPort: 10, bytes: Uint8Array.from([1, 15]), confirmed: true });
  assert.equal(msg.topic, `application/${APP}/device/0101010101010101/command/down`);
  assert.deepEqual(JSON.parse(msg.payload), { id: 'order-1', devEui: '0101010101010101', confirmed: true, fPort: 10, data: 'AQ8=' });
});

test('chirpstack: a protobuf message is a coded error saying to switch to JSON; bad fields name their path', () => {
  const decode = chirpstackDecoder.create({ radio: false, statusValues: true });
  // A protobuf uplink starts with field 1's tag (0x0a), not "{".
  const e = throwsCode(() => decode(cs('up', Uint8Array.from([0x0a, 0x24, 0x33, 0x61, 0x63]))), 'BH_LORAWAN_PROTOBUF', '$');
  assert.match(e.message, /json=true/);
  throwsCode(() => decode(cs('up', csUp({ deviceInfo: { devEui: 'nope' } }))), 'BH_DECODE_NO_DEVICE', 'deviceInfo.devEui');
  throwsCode(() => decode(cs('up', csUp({ time: 'yesterday' }))), 'BH_DECODE_TIME', 'time');
  throwsCode(() => decode(cs('up', csUp({ fCnt: -1 }))), 'BH_DECODE_SHAPE', 'fCnt');
  throwsCode(() => decode(cs('up', csUp({ object: [1] }))), 'BH_DECODE_SHAPE', 'object');
  throwsCode(() => decode(cs('up', 'not json', `application/${APP}/device/0101010101010101/event/up`)), 'BH_DECODE_SYNTAX', '$');
});

test('tts up: the DevEUI from the body (the topic has the device id), received_at, decoded_payload, best gateway', () => {
  const m = JSON.parse(readFileSync(fixture('lorawan/tts-v3-uplink.json'), 'utf8')) as { topic: string; payload: Record<string, unknown> };
  const frame: Frame = { input: 'ns', payload: JSON.stringify(m.payload), receivedAt: 1_800_000_000_000, topic: m.topic };
  const [r] = readingsOf(ttsDecoder.create({ radio: true, statusValues: true })(frame));
  assert.equal(r!.device, '3036363266398f0d');
  assert.equal(r!.ts, Date.parse('2024-03-22T17:54:52.358Z'));
  assert.equal(r!.seq, 9);
  assert.deepEqual(r!.values, { detected: true, rssi: -51, snr: 13.5, gateways: 1, sf: 7, fCnt: 9, fPort: 1 });
  // A webhook post (no topic) of the same body; and another message type is skipped.
  assert.equal(readingsOf(ttsDecoder.create({ radio: false, statusValues: true })({ ...frame, topic: '/hook' }))[0]!.values['detected'], true);
  assert.deepEqual(ttsDecoder.create({ radio: false, statusValues: true })({ ...frame, topic: 'v3/icicle-monitor@ttn/devices/portenta-h7-icicle-00/down/ack' }), { skipped: 'tts_down_ack' });
  throwsCode(() => ttsDecoder.create({ radio: false, statusValues: true })({ ...frame, payload: JSON.stringify({ ...m.payload, end_device_ids: { device_id: 'x' } }) }), 'BH_DECODE_NO_DEVICE', 'end_device_ids.dev_eui');
  // The ids a downlink needs: application and tenant from the topic, the device id too.
  assert.deepEqual(r!.lorawan, { ns: 'tts', applicationId: 'icicle-monitor', tenant: 'ttn', deviceId: 'portenta-h7-icicle-00', fPort: 1, rssi: -51, snr: 13.5, gateways: 1, sf: 7 });
});

test('tts: a downlink is a down/push with the order as correlation id; down/sent, ack, nack and failed naming it settle it', () => {
  const msg = ttsDecoder.downlink!({ id: 'o-7', devEui: '3036363266398f0d', applicationId: 'icicle-monitor', tenant: 'ttn', deviceId: 'portenta-h7-icicle-00', fPort: 15, bytes: Uint8Array.from([0xff]), confirmed: false });
  assert.equal(msg.topic, 'v3/icicle-monitor@ttn/devices/portenta-h7-icicle-00/down/push');
  assert.deepEqual(JSON.parse(msg.payload), { downlinks: [{ f_port: 15, frm_payload: '/w==', confirmed: false, priority: 'NORMAL', correlation_ids: ['backhaul:order:o-7'] }] });
  throwsCode(() => ttsDecoder.downlink!({ id: 'o', devEui: '3036363266398f0d', applicationId: 'a', fPort: 1, bytes: Uint8Array.from([1]), confirmed: true }), 'BH_COMMAND_REFUSED', 'device');
  const decode = ttsDecoder.create({ radio: false, statusValues: true });
  const ids = { device_id: 'portenta-h7-icicle-00', application_ids: { application_id: 'icicle-monitor' }, dev_eui: '3036363266398F0D' };
  const at = '2024-03-22T18:00:00Z';
  const answer = (type: string, body: Record<string, unknown>) =>
    decode({ input: 'ns', receivedAt: 1, topic: `v3/icicle-monitor@ttn/devices/portenta-h7-icicle-00/${type}`, payload: JSON.stringify({ end_device_ids: ids, correlation_ids: ['as:downlink:01HS'], received_at: at, ...body }) });
  const dl = { f_port: 15, frm_payload: '/w==', confirmed: true, correlation_ids: ['as:downlink:01HS', 'backhaul:order:o-7'] };
  const base = { kind: 'downlink', device: '3036363266398f0d', ts: Date.parse(at), command: 'o-7' } as const;
  assert.deepEqual(answer('down/ack', { downlink_ack: dl }), { skipped: 'tts_down_ack', notice: { ...base, outcome: 'acknowledged' } });
  assert.deepEqual(answer('down/nack', { downlink_nack: dl }), { skipped: 'tts_down_nack', notice: { ...base, outcome: 'failed', reason: 'the device did not acknowledge the downlink (nack)' } });
  assert.deepEqual(answer('down/sent', { downlink_sent: dl }), { skipped: 'tts_down_sent', notice: { ...base, outcome: 'sent' } });
  assert.deepEqual(answer('down/failed', { downlink_failed: { downlink: dl, error: { namespace: 'pkg/networkserver', name: 'application_downlink_too_long', message_format: 'application downlink too long' } } }), {
    skipped: 'tts_down_failed',
    notice: { ...base, outcome: 'failed', reason: 'the network server could not send it: application downlink too long' },
  });
  // Someone else's downlink (no correlation id of ours), and a queued one, are only skipped.
  assert.deepEqual(answer('down/ack', { downlink_ack: { ...dl, correlation_ids: ['as:downlink:01HS'] } }), { skipped: 'tts_down_ack' });
  assert.deepEqual(answer('down/queued', { downlink_queued: dl }), { skipped: 'tts_down_queued' });
});

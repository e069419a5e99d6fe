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
  assert.deepEqual(decode(cs('ack')), { skipped: 'chirpstack_ack' });
  const { topic: _t, ...http } = cs('status');
  assert.equal(readingsOf(decode({ ...http, topic: '/ingest' }))[0]!.values['battery'], 88.3);
  assert.deepEqual(decode({ ...cs('join'), topic: '/ingest' }), { skipped: 'chirpstack_join', notice: joined });
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
});

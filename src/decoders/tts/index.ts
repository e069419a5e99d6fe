// tts: The Things Stack v3's MQTT integration (`v3/{app}@{tenant}/devices/{deviceId}/{up|join|down/...}`) and its
// webhooks (told apart by the body): the topic carries the device id, the body the DevEUI
// (`end_device_ids.dev_eui`); empty fields are left out. `up` → one reading of the DevEUI, timed by `received_at`,
// values from `uplink_message.decoded_payload`; every other message is skipped by type.
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { Frame } from '../../core/types.js';
import { countOf, decodedValues, devEuiOf, gatewaysOf, isRecord, joined, LorawanOptions, nested, parseNsMessage, rawOf, timeOf, uplinkResult, type JsonRecord } from '../lorawan.js';

const PROTOBUF_HINT = 'The Things Stack sends JSON on its MQTT integration; check that this input reads the NS\'s integration broker';

/** The message type: the topic's levels after the device id, else the body's one top-level message field. */
function typeOf(frame: Frame, body: JsonRecord): string {
  const m = frame.topic === undefined ? null : /^v3\/[^/]+\/devices\/[^/]+\/(.+)$/.exec(frame.topic);
  if (m?.[1] !== undefined) return m[1];
  for (const [field, type] of [
    ['uplink_message', 'up'],
    ['join_accept', 'join'],
    ['downlink_ack', 'down/ack'],
    ['downlink_nack', 'down/nack'],
    ['downlink_sent', 'down/sent'],
    ['downlink_failed', 'down/failed'],
    ['downlink_queued', 'down/queued'],
    ['location_solved', 'location/solved'],
    ['service_data', 'service/data'],
  ] as const) {
    if (field in body) return type;
  }
  throw new BackhaulError('BH_DECODE_SHAPE', 'neither the topic nor the body says which The Things Stack message this is', { path: '$' });
}

export const ttsDecoder = defineDecoder({
  kind: 'decoder',
  type: 'tts',
  description: 'The Things Stack v3 integration messages (MQTT or webhooks): uplinks as readings of the DevEUI.',
  options: LorawanOptions,
  idKind: 'deveui',
  deviceType: 'lorawan-sensor',
  frameCounter: true,
  create(o) {
    return (frame: Frame): DecodeResult => {
      const body = parseNsMessage(frame, PROTOBUF_HINT);
      const type = typeOf(frame, body);
      const skipped = `tts_${type.replace(/\//g, '_').replace(/[^a-z_]/g, '')}`;
      if (type !== 'up' && type !== 'join') return { skipped };
      const ids = body['end_device_ids'];
      if (!isRecord(ids)) throw new BackhaulError('BH_DECODE_NO_DEVICE', 'the message has no end_device_ids', { path: 'end_device_ids' });
      const devEui = devEuiOf(ids['dev_eui'], 'end_device_ids.dev_eui');
      if (type === 'join') return joined(skipped, devEui, timeOf(body['received_at'], 'received_at', frame), ids['dev_addr']);
      const up = body['uplink_message'];
      if (!isRecord(up)) throw new BackhaulError('BH_DECODE_SHAPE', 'an uplink has an uplink_message object', { path: 'uplink_message' });
      const ts = timeOf(body['received_at'] ?? up['received_at'], 'received_at', frame);
      const sf = nested(up, 'settings', 'data_rate', 'lora')?.['spreading_factor'];
      return uplinkResult(
        {
          devEui,
          ts,
          fCnt: countOf(up, 'f_cnt', 'uplink_message') ?? 0,
          fPort: countOf(up, 'f_port', 'uplink_message'),
          values: decodedValues(up['decoded_payload'], 'uplink_message.decoded_payload'),
          gateways: gatewaysOf(up['rx_metadata']),
          sf: typeof sf === 'number' ? sf : undefined,
          raw: rawOf(up['frm_payload'], 'uplink_message.frm_payload'),
        },
        o,
        frame,
        'tts',
      );
    };
  },
});

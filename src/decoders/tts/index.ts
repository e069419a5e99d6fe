// tts: The Things Stack v3's MQTT integration (`v3/{app}@{tenant}/devices/{deviceId}/{up|join|down/...}`) and its
// webhooks (told apart by the body): the topic carries the device id, the body the DevEUI
// (`end_device_ids.dev_eui`); empty fields are left out. `up` → one reading of the DevEUI, timed by `received_at`,
// values from `uplink_message.decoded_payload`; `down/sent`, `down/ack`, `down/nack` and `down/failed` of a downlink
// Backhaul pushed (its correlation id names the order) → what became of it; every other message is skipped by type.
// Downlinks go to `v3/{app}@{tenant}/devices/{deviceId}/down/push`.
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { Frame } from '../../core/types.js';
import {
  base64Of,
  countOf,
  decodedValues,
  devEuiOf,
  downlinkResult,
  gatewaysOf,
  idOf,
  isRecord,
  joined,
  LorawanOptions,
  nested,
  ORDER_CORRELATION,
  orderCorrelation,
  parseNsMessage,
  rawOf,
  timeOf,
  uplinkResult,
  type JsonRecord,
} from '../lorawan.js';

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

const DOWNLINK_ANSWERS: Readonly<Record<string, { outcome: 'sent' | 'acknowledged' | 'failed'; reason?: string }>> = {
  'down/sent': { outcome: 'sent' },
  'down/ack': { outcome: 'acknowledged' },
  'down/nack': { outcome: 'failed', reason: 'the device did not acknowledge the downlink (nack)' },
  'down/failed': { outcome: 'failed' },
};

/** The application, tenant and device id: from the topic (`v3/{app}@{tenant}/devices/{id}/…`), else the body. */
function linkOf(topic: string | undefined, ids: JsonRecord): { applicationId?: string; tenant?: string; deviceId?: string } {
  const m = topic === undefined ? null : /^v3\/([^/@]+)(?:@([^/]+))?\/devices\/([^/]+)\//.exec(topic);
  const applicationId = m?.[1] ?? idOf(nested(ids, 'application_ids')?.['application_id']);
  const tenant = m?.[2];
  const deviceId = m?.[3] ?? idOf(ids['device_id']);
  return { ...(applicationId !== undefined ? { applicationId } : {}), ...(tenant !== undefined ? { tenant } : {}), ...(deviceId !== undefined ? { deviceId } : {}) };
}

export const ttsDecoder = defineDecoder({
  kind: 'decoder',
  type: 'tts',
  description: 'The Things Stack v3 integration messages (MQTT or webhooks): uplinks as readings of the DevEUI.',
  options: LorawanOptions,
  idKind: 'deveui',
  deviceType: 'lorawan-sensor',
  frameCounter: true,
  downlink: (req) => {
    if (req.deviceId === undefined) throw new BackhaulError('BH_COMMAND_REFUSED', `The Things Stack names devices by its own id, and none is known for ${req.devEui} yet`, { path: 'device' });
    const app = req.tenant === undefined ? req.applicationId : `${req.applicationId}@${req.tenant}`;
    const downlink = { f_port: req.fPort, frm_payload: base64Of(req.bytes), confirmed: req.confirmed, priority: 'NORMAL', correlation_ids: [`${ORDER_CORRELATION}${req.id}`] };
    return { topic: `v3/${app}/devices/${req.deviceId}/down/push`, payload: JSON.stringify({ downlinks: [downlink] }) };
  },
  create(o) {
    return (frame: Frame): DecodeResult => {
      const body = parseNsMessage(frame, PROTOBUF_HINT);
      const type = typeOf(frame, body);
      const skipped = `tts_${type.replace(/\//g, '_').replace(/[^a-z_]/g, '')}`;
      const answer = DOWNLINK_ANSWERS[type];
      if (type !== 'up' && type !== 'join' && answer === undefined) return { skipped };
      const ids = body['end_device_ids'];
      if (!isRecord(ids)) throw new BackhaulError('BH_DECODE_NO_DEVICE', 'the message has no end_device_ids', { path: 'end_device_ids' });
      const devEui = devEuiOf(ids['dev_eui'], 'end_device_ids.dev_eui');
      if (type === 'join') return joined(skipped, devEui, timeOf(body['received_at'], 'received_at', frame), ids['dev_addr']);
      if (answer !== undefined) {
        const failed = nested(body, 'downlink_failed', 'error');
        const text = failed && [failed['message_format'], failed['name']].find((x): x is string => typeof x === 'string');
        const why = answer.reason ?? (failed ? `the network server could not send it: ${(text ?? 'failed').slice(0, 300)}` : undefined);
        return downlinkResult(skipped, devEui, timeOf(body['received_at'], 'received_at', frame), orderCorrelation(body), answer.outcome, why);
      }
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
          link: linkOf(frame.topic, ids),
        },
        o,
        frame,
        'tts',
      );
    };
  },
});

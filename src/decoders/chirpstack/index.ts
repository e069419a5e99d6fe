// chirpstack: ChirpStack v4's MQTT integration (`application/{applicationId}/device/{devEui}/event/{type}`) and its
// HTTP integration (`?event=type`, or told apart by the body), JSON marshaler: the protobuf JSON mapping, camelCase,
// base64 bytes, zero and false fields left out. `up` → one reading of the DevEUI, timed by the NS's `time`, values
// from the NS's decoded `object`; `status` → battery (%) and link margin; `ack` / `txack` (and a `log` error naming a
// queue item) → what became of a downlink Backhaul sent, whose queue item id is the order's id; other `log` errors
// and warnings → a device.network_error notice; the rest is skipped by type. Downlinks go to
// `application/{applicationId}/device/{devEui}/command/down`.
import { defineDecoder, type DecodeResult } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { Frame, Reading } from '../../core/types.js';
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
  parseNsMessage,
  rawOf,
  timeOf,
  uplinkResult,
  type JsonRecord,
} from '../lorawan.js';

const PROTOBUF_HINT = 'set `json=true` under `[integration.mqtt]` in chirpstack.toml (or the HTTP integration\'s payload encoding to JSON)';

const EVENTS = ['up', 'status', 'join', 'ack', 'txack', 'log', 'location', 'integration'] as const;
type EventKind = (typeof EVENTS)[number];

/** The event type from the MQTT topic's last level, else from the body's shape (HTTP posts may not say). */
function eventOf(frame: Frame, body: JsonRecord): EventKind {
  const m = frame.topic === undefined ? null : /(?:^|\/)event\/([a-z]+)$|[?&]event=([a-z]+)/.exec(frame.topic);
  const named = m?.[1] ?? m?.[2];
  if (named !== undefined) {
    if ((EVENTS as readonly string[]).includes(named)) return named as EventKind;
    throw new BackhaulError('BH_DECODE_SHAPE', `unknown ChirpStack event type ${JSON.stringify(named)}`, { path: 'topic' });
  }
  if ('rxInfo' in body || 'data' in body || 'object' in body || 'fCnt' in body) return 'up';
  if ('batteryLevel' in body || 'margin' in body || 'externalPowerSource' in body || 'batteryLevelUnavailable' in body) return 'status';
  if ('acknowledged' in body || 'queueItemId' in body) return 'ack';
  if ('level' in body && 'code' in body) return 'log';
  if ('devAddr' in body) return 'join';
  throw new BackhaulError('BH_DECODE_SHAPE', 'neither the topic nor the body says which ChirpStack event this is', { path: '$' });
}

/** The application id an MQTT topic names (`application/{id}/device/…`). */
function applicationOf(topic: string | undefined): string | undefined {
  const m = topic === undefined ? null : /^application\/([^/]+)\/device\//.exec(topic);
  return m?.[1];
}

/**
 * A log event: an error naming a downlink's queue item fails that order; other errors and warnings become a
 * device.network_error notice; INFO is skipped.
 */
function logResult(body: JsonRecord, devEui: string, ts: number): DecodeResult {
  const level = typeof body['level'] === 'string' ? body['level'] : 'INFO';
  const code = typeof body['code'] === 'string' ? body['code'].slice(0, 64) : 'UNKNOWN';
  const description = typeof body['description'] === 'string' ? body['description'].slice(0, 500) : '';
  if (level !== 'ERROR' && level !== 'WARNING') return { skipped: 'chirpstack_log' };
  const context = isRecord(body['context']) ? body['context'] : {};
  const item = idOf(context['queue_item_id'] ?? context['queueItemId']);
  if (level === 'ERROR' && item !== undefined) return downlinkResult('chirpstack_log', devEui, ts, item, 'failed', `${code}: ${description}`);
  return { skipped: 'chirpstack_log', notice: { kind: 'network_error', device: devEui, ts, level, code, description } };
}

export const chirpstackDecoder = defineDecoder({
  kind: 'decoder',
  type: 'chirpstack',
  description: 'ChirpStack v4 integration events (MQTT or HTTP, JSON): uplinks and device status as readings of the DevEUI.',
  options: LorawanOptions,
  idKind: 'deveui',
  deviceType: 'lorawan-sensor',
  frameCounter: true,
  // The order's id is the queue item's, so ack and txack events name the order they answer.
  downlink: (req) => ({
    topic: `application/${req.applicationId}/device/${req.devEui}/command/down`,
    payload: JSON.stringify({ id: req.id, devEui: req.devEui, confirmed: req.confirmed, fPort: req.fPort, data: base64Of(req.bytes) }),
  }),
  create(o) {
    return (frame: Frame): DecodeResult => {
      const body = parseNsMessage(frame, PROTOBUF_HINT);
      const kind = eventOf(frame, body);
      const skipped = `chirpstack_${kind}`;
      if (kind === 'location' || kind === 'integration') return { skipped };
      const info = body['deviceInfo'];
      if (!isRecord(info)) throw new BackhaulError('BH_DECODE_NO_DEVICE', 'the message has no deviceInfo', { path: 'deviceInfo' });
      const devEui = devEuiOf(info['devEui'], 'deviceInfo.devEui');
      const ts = timeOf(body['time'], 'time', frame);
      if (kind === 'join') return joined(skipped, devEui, ts, body['devAddr']);
      if (kind === 'ack') {
        const ok = body['acknowledged'] === true;
        return downlinkResult(skipped, devEui, ts, idOf(body['queueItemId']), ok ? 'acknowledged' : 'failed', ok ? undefined : 'the device did not acknowledge the downlink');
      }
      if (kind === 'txack') return downlinkResult(skipped, devEui, ts, idOf(body['queueItemId']), 'sent');
      if (kind === 'log') return logResult(body, devEui, ts);
      const link = { applicationId: idOf(info['applicationId']) ?? applicationOf(frame.topic) };
      if (kind === 'status') {
        if (!o.statusValues) return { skipped: 'chirpstack_status' };
        const values: Record<string, number> = {};
        const units: Record<string, string> = {};
        const battery = body['batteryLevel'];
        // On external power, or when the device cannot tell, there is no battery level: no battery alarm either.
        if (body['externalPowerSource'] !== true && body['batteryLevelUnavailable'] !== true && typeof battery === 'number' && Number.isFinite(battery)) {
          values['battery'] = battery;
          units['battery'] = '%';
        }
        values['margin'] = typeof body['margin'] === 'number' ? body['margin'] : 0;
        units['margin'] = 'dB';
        const r: Reading = {
          kind: 'reading',
          device: devEui,
          ts,
          values,
          units,
          authenticated: false,
          source: { input: frame.input, decoder: 'chirpstack', ...(frame.topic !== undefined ? { topic: frame.topic } : {}) },
          lorawan: {
            ns: 'chirpstack',
            ...(link.applicationId !== undefined ? { applicationId: link.applicationId } : {}),
            ...(values['battery'] !== undefined ? { battery: values['battery'] } : {}),
            margin: values['margin'],
          },
        };
        return { readings: [r] };
      }
      const sf = nested(body, 'txInfo', 'modulation', 'lora')?.['spreadingFactor'];
      return uplinkResult(
        {
          devEui,
          ts,
          fCnt: countOf(body, 'fCnt', '') ?? 0,
          fPort: countOf(body, 'fPort', ''),
          values: decodedValues(body['object'], 'object'),
          gateways: gatewaysOf(body['rxInfo']),
          sf: typeof sf === 'number' ? sf : undefined,
          raw: rawOf(body['data'], 'data'),
          link,
        },
        o,
        frame,
        'chirpstack',
      );
    };
  },
});

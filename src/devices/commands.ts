// Orders to devices. An order is recorded (registry `commands` table, plus an audit entry), then published as the
// broker itself on the device's command topic:
//
//   <base>/command   {"id": "<order id>", "dest": "<device id>", "order": "reboot", "params": {...}, "ts": "<ISO time>"}
//
// Devices of one kind in one room share a base topic, so each reads `dest` (its own id, or `all`). A device
// acknowledges by publishing a status on `<base>/device` that names the order:
//
//   {"ack": "<order id>", "result": "ok"}            acknowledged ("result" may be left out)
//   {"ack": "<order id>", "result": "error", ...}     failed ("error" or "failed", or an "error" field)
//
// The whole status is kept as the order's result. An order nobody acknowledges within `ackTimeoutMs` expires.
// `reinstall` also resets the device's credentials and opens its claim window (the operator who sent it wants the
// device to bootstrap again): its next bootstrap call receives a new password, and its current connection is closed
// once the order has had time to arrive.
//
// A LoRaWAN device (`ordersVia: lorawan`) takes an order as a downlink through its network server: the order's
// parameters are the `data` of its codec's `encodeDownlink` (or the operator gives the bytes and fPort), the message
// is published on the connection of the input its uplinks came on, in the form that input's decoder knows, and the
// NS's answers (ChirpStack ack / txack, The Things Stack down/ack, nack, failed, sent) settle it: a confirmed downlink
// by the device's acknowledgement, an unconfirmed one once transmitted.
import { randomUUID } from 'node:crypto';
import type { Clock, ClockTimer } from '../core/clock.js';
import type { BrokerPort, DeviceNotice, DownlinkRequest } from '../core/driver.js';
import { BackhaulError, errorText } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { makeEvent } from '../core/events.js';
import type { HubEvent } from '../core/types.js';
import { checkOrderParams, shownOrderParams, type DeviceTypes } from './device-types.js';
import type { DeviceStatus } from './gate.js';
import { CLAIM_WINDOW_DEFAULT_MS, openClaimWindows } from './provision.js';
import type { DeviceStore } from './store/index.js';
import type { CommandRecord } from './store/orders.js';
import type { TopicScheme } from './topics.js';
import type { Device, JsonObject, JsonValue, LorawanState } from './types.js';

export interface SendCommand {
  /** Canonical device id. */
  readonly device: string;
  readonly order: string;
  readonly params?: JsonObject;
  /** Who sends it, for the audit log: `cli:alice`, `api:bob`. */
  readonly actor: string;
  /** Send it to a device that never connected too (it may connect later and find it retained by nobody: at once). */
  readonly force?: boolean;
  /** A LoRaWAN downlink's bytes (hex or base64) and port as given, instead of the device's codec encoding the order. */
  readonly downlink?: { readonly hex?: string; readonly base64?: string; readonly fPort: number };
}

/** The bytes of a downlink given by hand; BH_COMMAND_ORDER naming the field when they are not hex / base64. */
export function downlinkBytes(given: NonNullable<SendCommand['downlink']>): Uint8Array {
  const { hex, base64 } = given;
  if ((hex === undefined) === (base64 === undefined)) throw new BackhaulError('BH_COMMAND_ORDER', 'give the downlink\'s bytes once: hex or base64', { path: 'downlink' });
  if (hex !== undefined) {
    const h = hex.replace(/[\s:]/g, '');
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(h)) throw new BackhaulError('BH_COMMAND_ORDER', `${JSON.stringify(hex.slice(0, 40))} is not bytes in hex (two digits each)`, { path: 'downlink.hex' });
    return Uint8Array.from(Buffer.from(h, 'hex'));
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64!) || base64!.length % 4 !== 0) {
    throw new BackhaulError('BH_COMMAND_ORDER', `${JSON.stringify(base64!.slice(0, 40))} is not base64`, { path: 'downlink.base64' });
  }
  return Uint8Array.from(Buffer.from(base64!, 'base64'));
}

/** Where a LoRaWAN device's downlinks go: the input, its decoder, the NS's ids. */
export interface LorawanLink {
  readonly ns: string;
  readonly input: string;
  readonly applicationId: string;
  readonly tenant?: string;
  readonly deviceId?: string;
}

/** The device's config `network` over what its uplinks taught; undefined while the input, NS or application is unknown. */
export function lorawanLink(d: Pick<Device, 'config' | 'lorawan'>): LorawanLink | undefined {
  const given = d.config['network'];
  const cfg: Record<string, JsonValue> = typeof given === 'object' && given !== null && !Array.isArray(given) ? given : {};
  const pick = (k: 'ns' | 'input' | 'applicationId' | 'tenant' | 'deviceId'): string | undefined => {
    const v = cfg[k];
    return typeof v === 'string' ? v : d.lorawan?.[k];
  };
  const [ns, input, applicationId, tenant, deviceId] = [pick('ns'), pick('input'), pick('applicationId'), pick('tenant'), pick('deviceId')];
  if (ns === undefined || input === undefined || applicationId === undefined) return undefined;
  return { ns, input, applicationId, ...(tenant !== undefined ? { tenant } : {}), ...(deviceId !== undefined ? { deviceId } : {}) };
}

/** An input's way to a network server: its decoder's downlink form and its own connection. */
export interface DownlinkPort {
  format(req: DownlinkRequest): { readonly topic: string; readonly payload: string };
  publish(topic: string, payload: Uint8Array): Promise<void>;
}

/** Whether a device can take orders now, and over what; `reason` says why not (shown where orders are offered). */
export interface OrderReach {
  readonly accepted: boolean;
  readonly via?: 'mqtt' | 'lorawan';
  readonly reason?: string;
  /** Refused only because it never connected: `force` sends it anyway. */
  readonly forceable?: boolean;
}

/** Can `d` take an order: its type takes orders, it is enabled, not BLOCKED, has a command topic, has connected. */
export function orderReach(d: Device, types: DeviceTypes, scheme: Pick<TopicScheme, 'topics'>, heardAt?: number): OrderReach {
  const t = types.get(d.type);
  if (t?.ordersVia === 'none') return { accepted: false, reason: `a ${t.name} takes no orders: nothing reaches it back` };
  if (!d.enabled) return { accepted: false, reason: 'it is disabled' };
  if (d.state === 'BLOCKED') return { accepted: false, reason: 'it is BLOCKED' };
  if (t?.ordersVia === 'lorawan') {
    if (!lorawanLink(d)) return { accepted: false, reason: 'none of its uplinks was heard yet, so the network server ids a downlink needs are unknown (give them in its config: network)' };
    return { accepted: true, via: 'lorawan' };
  }
  if (!scheme.topics(d)) return { accepted: false, reason: 'it has no location yet, so no command topic' };
  // Without a login of its own it cannot subscribe to its command topic: a radio-only device heard through a receiver.
  if (d.credentials?.hash === undefined) return { accepted: false, reason: 'it has no broker login, so nothing of it listens for orders (a radio-only device)' };
  // The registry's last-seen time is written in batches; the hub's liveness view (heardAt) is the fresher one.
  if (d.lastSeen === undefined && heardAt === undefined) return { accepted: false, forceable: true, reason: 'it has never connected' };
  return { accepted: true, via: 'mqtt' };
}

export interface CommandCenterOptions {
  readonly store: DeviceStore;
  readonly scheme: TopicScheme;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The broker devices listen on; undefined when the config has none. */
  readonly broker: () => BrokerPort | undefined;
  readonly ackTimeoutMs: number;
  /** How long a reinstalled device keeps its connection, so the order reaches it first. */
  readonly reinstallGraceMs?: number;
  /** How long the claim window a reinstall opens stays open (default 30 min). */
  readonly reinstallClaimMs?: number;
  /** After credentials change (reinstall): re-read the registry so the broker's view follows. */
  readonly changed?: () => Promise<unknown>;
  /** When the hub last heard from a device (fresher than the registry's lastSeen). */
  readonly heardAt?: (id: string) => number | undefined;
  /** command.acknowledged / command.failed / command.expired events, routed like readings. */
  readonly publish?: (e: HubEvent) => void;
  /** The way to a network server through an input (undefined: no such input, or it cannot publish). */
  readonly downlinks?: (input: string, ns: string) => DownlinkPort | undefined;
  /**
   * Encode an order for a LoRaWAN device with its codec's encodeDownlink; undefined when none of its codecs has one.
   * Throws the codec's coded error (BH_CODEC_…).
   */
  readonly encode?: (device: string, data: JsonObject, fPort: number | undefined) => { bytes: Uint8Array; fPort: number } | undefined;
  /** A LoRaWAN device's network side as last heard (fresher than the registry's). */
  readonly lorawanOf?: (id: string) => LorawanState | undefined;
}

const ORDER = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const MAX_PARAMS_BYTES = 16 * 1024;

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How a status answers an order: undefined when it names none. */
export function ackOf(status: JsonValue): { id: string; ok: boolean } | undefined {
  if (!isObject(status) || typeof status['ack'] !== 'string') return undefined;
  const result = status['result'];
  const failed = status['error'] !== undefined || (typeof result === 'string' && /^(error|failed|failure|nok)$/i.test(result));
  return { id: status['ack'], ok: !failed };
}

export class CommandCenter {
  private readonly timers = new Map<string, ClockTimer>();
  private stopped = false;

  constructor(private readonly o: CommandCenterOptions) {}

  /** Expire what a previous run left unanswered too long; watch the rest. */
  async start(): Promise<void> {
    for (const c of await this.o.store.listCommands({ status: 'sent' })) {
      const d = await this.o.store.get(c.device);
      this.watch(c, d && this.o.store.types.get(d.type)?.minAckTimeoutMs);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) this.o.clock.clearTimeout(t);
    this.timers.clear();
  }

  /** Validate, record, publish. Throws BackhaulErrors naming the field at fault; the order is audited either way. */
  async send(req: SendCommand): Promise<CommandRecord> {
    if (!ORDER.test(req.order)) {
      throw new BackhaulError('BH_COMMAND_ORDER', `an order is a word of letters, digits, _ . - (at most 64), not ${JSON.stringify(req.order)}`, { path: 'order' });
    }
    const given = req.params ?? {};
    if (Buffer.byteLength(JSON.stringify(given)) > MAX_PARAMS_BYTES) {
      throw new BackhaulError('BH_COMMAND_ORDER', `the parameters take more than ${MAX_PARAMS_BYTES} bytes`, { path: 'params' });
    }
    const stored = await this.o.store.get(req.device);
    if (!stored) throw new BackhaulError('BH_DEVICE_NOT_FOUND', `no device ${JSON.stringify(req.device)} in the registry`, { path: 'device' });
    const heard = this.o.lorawanOf?.(stored.id);
    const d: Device = heard ? { ...stored, lorawan: heard } : stored;
    const params = checkOrderParams(this.o.store.types, d.type, req.order, given);
    // What is kept and shown: parameters the type marks secret reach the device only.
    const shown = shownOrderParams(this.o.store.types, d.type, req.order, params);
    const topics = this.o.scheme.topics(d);
    const reach = orderReach(d, this.o.store.types, this.o.scheme, this.o.heardAt?.(d.id));
    if (!reach.accepted && !(reach.forceable === true && req.force === true)) {
      const reason = reach.reason ?? 'it cannot take orders';
      await this.audit(req, d, 'refused', { reason });
      const unsupported = this.o.store.types.get(d.type)?.ordersVia === 'none';
      throw new BackhaulError(
        unsupported ? 'BH_COMMAND_UNSUPPORTED' : 'BH_COMMAND_REFUSED',
        `cannot send ${req.order} to ${d.id}: ${reason}${reach.forceable === true ? ' (force sends it anyway)' : ''}`,
        { path: 'device' },
      );
    }
    if (reach.via === 'lorawan') return this.sendDownlink(req, d, params, shown);
    if (req.downlink) throw new BackhaulError('BH_COMMAND_ORDER', `${d.id} is no LoRaWAN device: bytes and an fPort are for downlinks`, { path: 'downlink' });
    if (!topics) throw new BackhaulError('BH_COMMAND_REFUSED', `cannot send ${req.order} to ${d.id}: it has no command topic`, { path: 'device' });
    const broker = this.o.broker();
    if (!broker) {
      await this.audit(req, d, 'refused', { reason: 'no embedded broker' });
      throw new BackhaulError('BH_COMMAND_NO_BROKER', 'orders travel through the embedded broker, and the config has no `broker` input', { path: 'inputs' });
    }
    const id = randomUUID();
    const at = this.o.clock.now();
    // Recorded before it is published, so an acknowledgement can never arrive for an order not yet known.
    const record = await this.o.store.recordCommand({ id, device: d.id, order: req.order, params: shown, actor: req.actor, topic: topics.command, dest: d.id, at });
    const payload = { id, dest: d.id, order: req.order, params, ts: new Date(at).toISOString() };
    try {
      await broker.publish(topics.command, new TextEncoder().encode(JSON.stringify(payload)), { qos: 1 });
    } catch (e) {
      const why = errorText(e);
      await this.o.store.settleCommand(id, 'failed', { error: `not published: ${why}` });
      await this.audit(req, d, `error: ${why}`, { command: id });
      throw new BackhaulError('BH_COMMAND_FAILED', `could not publish ${req.order} to ${topics.command}: ${why}`, { cause: e });
    }
    await this.audit(req, d, 'sent', { command: id, topic: topics.command, params: shown });
    this.o.logger.info({ device: d.id, order: req.order, command: id, topic: topics.command, actor: req.actor }, 'order sent');
    if (req.order === 'reinstall') await this.reinstall(d, req.actor, broker);
    this.watch(record);
    return record;
  }

  /** An order to a LoRaWAN device: encoded, recorded, published to its network server as a downlink. */
  private async sendDownlink(req: SendCommand, d: Device, params: JsonObject, shown: JsonObject): Promise<CommandRecord> {
    const refuse = async (code: 'BH_COMMAND_REFUSED' | 'BH_COMMAND_ORDER', why: string, path: string): Promise<never> => {
      await this.audit(req, d, 'refused', { reason: why });
      throw new BackhaulError(code, `cannot send ${req.order} to ${d.id}: ${why}`, { path });
    };
    const link = lorawanLink(d)!; // orderReach accepted it
    const port = this.o.downlinks?.(link.input, link.ns);
    if (!port) return refuse('BH_COMMAND_REFUSED', `input ${link.input} cannot send downlinks (it is no mqtt input of this config on the ${link.ns} network server's broker)`, 'device');
    let enc: { bytes: Uint8Array; fPort: number } | undefined;
    if (req.downlink) {
      try {
        enc = { bytes: downlinkBytes(req.downlink), fPort: req.downlink.fPort };
      } catch (e) {
        await this.audit(req, d, 'refused', { reason: errorText(e) });
        throw e;
      }
      if (!Number.isInteger(enc.fPort) || enc.fPort < 1 || enc.fPort > 223) return refuse('BH_COMMAND_ORDER', `fPort ${enc.fPort} is not an application port (1..223)`, 'downlink.fPort');
      if (enc.bytes.length === 0 || enc.bytes.length > 242) return refuse('BH_COMMAND_ORDER', `a downlink holds 1 to 242 bytes, not ${enc.bytes.length}`, 'downlink');
    } else {
      const fPort = typeof d.config['fPort'] === 'number' ? d.config['fPort'] : undefined;
      try {
        enc = this.o.encode?.(d.id, params, fPort);
      } catch (e) {
        await this.audit(req, d, `error: ${errorText(e)}`, {});
        throw e;
      }
      if (!enc) return refuse('BH_COMMAND_REFUSED', 'none of its codecs defines encodeDownlink: give the bytes (hex or base64) and the fPort', 'device');
    }
    const id = randomUUID();
    const at = this.o.clock.now();
    const confirmed = d.config['confirmed'] !== false;
    let msg: { topic: string; payload: string };
    try {
      msg = port.format({ id, devEui: d.id, applicationId: link.applicationId, ...(link.tenant !== undefined ? { tenant: link.tenant } : {}), ...(link.deviceId !== undefined ? { deviceId: link.deviceId } : {}), fPort: enc.fPort, bytes: enc.bytes, confirmed });
    } catch (e) {
      return refuse('BH_COMMAND_REFUSED', errorText(e), 'device');
    }
    const kept: JsonObject = { ...shown, ...(req.downlink ? { bytes: Buffer.from(enc.bytes).toString('hex'), fPort: enc.fPort } : {}) };
    const record = await this.o.store.recordCommand({ id, device: d.id, order: req.order, params: kept, actor: req.actor, topic: msg.topic, dest: d.id, at });
    try {
      await port.publish(msg.topic, new TextEncoder().encode(msg.payload));
    } catch (e) {
      const why = errorText(e);
      await this.o.store.settleCommand(id, 'failed', { error: `not published: ${why}` });
      await this.audit(req, d, `error: ${why}`, { command: id });
      throw new BackhaulError('BH_COMMAND_FAILED', `could not publish ${req.order} to ${msg.topic}: ${why}`, { cause: e });
    }
    const detail = { command: id, topic: msg.topic, fPort: enc.fPort, bytes: Buffer.from(enc.bytes).toString('hex'), confirmed };
    await this.audit(req, d, 'sent', { ...detail, params: shown });
    this.o.logger.info({ device: d.id, order: req.order, actor: req.actor, ...detail }, 'downlink sent');
    this.watch(record, this.o.store.types.get(d.type)?.minAckTimeoutMs);
    return record;
  }

  /** What a network server said of a downlink: settles the order it names (a transmission only an unconfirmed one). */
  async onDownlink(n: Extract<DeviceNotice, { kind: 'downlink' }>): Promise<void> {
    const c = await this.o.store.getCommand(n.command);
    if (!c || c.device !== n.device || c.status !== 'sent') return; // another application's, or settled already
    if (n.outcome === 'sent') {
      const d = await this.o.store.get(c.device);
      if (d?.config['confirmed'] !== false) return; // a confirmed downlink waits for the device's acknowledgement
      await this.settle(c, 'acknowledged', { transmitted: true, confirmed: false }, n.ts);
      return;
    }
    await this.settle(c, n.outcome, n.outcome === 'acknowledged' ? { acknowledged: true } : { error: n.reason ?? 'failed' }, n.ts);
  }

  /** A device's status message: settles the order it acknowledges, if any. */
  async onStatus(s: DeviceStatus): Promise<void> {
    const ack = ackOf(s.status);
    if (!ack) return;
    const c = await this.o.store.getCommand(ack.id);
    if (!c || c.device !== s.device || c.status !== 'sent') return; // unknown, someone else's, or settled already
    await this.settle(c, ack.ok ? 'acknowledged' : 'failed', s.status, s.at);
  }

  private async reinstall(d: Device, actor: string, broker: BrokerPort): Promise<void> {
    if (d.source === 'config') {
      this.o.logger.warn({ device: d.id }, 'reinstall of a device declared in the config: its credentials come from the config and are kept');
      return;
    }
    await this.o.store.resetCredentials(d.id);
    await this.o.store.appendAudit({ actor, action: 'credentials.reset', device: d.id, detail: { via: 'reinstall' }, result: 'ok' });
    await openClaimWindows(this.o.store, [d], { forMs: this.o.reinstallClaimMs ?? CLAIM_WINDOW_DEFAULT_MS, actor, now: this.o.clock.now(), via: 'reinstall' });
    await this.o.changed?.();
    const username = d.credentials?.username;
    if (username !== undefined) {
      const t = this.o.clock.setTimeout(() => {
        this.timers.delete(`reinstall:${d.id}`);
        const n = broker.disconnect(username);
        if (n > 0) this.o.logger.info({ device: d.id, connections: n }, 'closed the connection of a reinstalled device');
      }, this.o.reinstallGraceMs ?? 2000);
      this.timers.set(`reinstall:${d.id}`, t);
    }
  }

  /** Expire the order when unanswered after the configured time (or its type's minimum, when that is longer). */
  private watch(c: CommandRecord, minMs?: number): void {
    if (this.stopped) return;
    const timeoutMs = Math.max(this.o.ackTimeoutMs, minMs ?? 0);
    const left = c.sentAt + timeoutMs - this.o.clock.now();
    const t = this.o.clock.setTimeout(
      () => {
        this.timers.delete(c.id);
        this.settle(c, 'expired', `no acknowledgement within ${Math.round(timeoutMs / 1000)} s`, this.o.clock.now()).catch((e: unknown) =>
          this.o.logger.warn({ command: c.id, err: errorText(e) }, 'could not record an expired order'),
        );
      },
      Math.max(0, left),
    );
    this.timers.set(c.id, t);
  }

  private async settle(c: CommandRecord, status: 'acknowledged' | 'failed' | 'expired', result: JsonValue, at: number): Promise<void> {
    const t = this.timers.get(c.id);
    if (t) {
      this.o.clock.clearTimeout(t);
      this.timers.delete(c.id);
    }
    const after = await this.o.store.settleCommand(c.id, status, result, at);
    if (after?.status !== status || after.doneAt !== at) return; // settled by someone else first
    await this.o.store.appendAudit({
      actor: status === 'expired' ? 'hub' : `device:${c.device}`,
      action: `command.${c.order}`,
      device: c.device,
      detail: { command: c.id, ...(isObject(result) ? { answer: result } : {}) },
      result: status,
      at,
    });
    this.o.logger.info({ device: c.device, order: c.order, command: c.id, status }, `order ${status}`);
    const fields = { ts: at, device: c.device, message: `${c.order} to ${c.device}: ${status}` };
    const ids = { command: c.id, order: c.order };
    this.o.publish?.(
      status === 'expired'
        ? makeEvent('command.expired', { ...ids, reason: typeof result === 'string' ? result : JSON.stringify(result) }, fields)
        : makeEvent(
            status === 'acknowledged' ? 'command.acknowledged' : 'command.failed',
            { ...ids, ...(typeof result === 'string' ? { reason: result } : { answer: JSON.stringify(result) }) },
            fields,
          ),
    );
  }

  private audit(req: SendCommand, d: Device, result: string, detail: JsonObject): Promise<unknown> {
    return this.o.store.appendAudit({ actor: req.actor, action: `command.${req.order}`, device: d.id, detail, result });
  }
}

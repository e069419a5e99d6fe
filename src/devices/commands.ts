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
import { randomUUID } from 'node:crypto';
import type { Clock, ClockTimer } from '../core/clock.js';
import type { BrokerPort } from '../core/driver.js';
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
import type { Device, JsonObject, JsonValue } from './types.js';

export interface SendCommand {
  /** Canonical device id. */
  readonly device: string;
  readonly order: string;
  readonly params?: JsonObject;
  /** Who sends it, for the audit log: `cli:alice`, `api:bob`. */
  readonly actor: string;
  /** Send it to a device that never connected too (it may connect later and find it retained by nobody: at once). */
  readonly force?: boolean;
}

/** Whether a device can take orders now, and over what; `reason` says why not (shown where orders are offered). */
export interface OrderReach {
  readonly accepted: boolean;
  readonly via?: 'mqtt';
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
    for (const c of await this.o.store.listCommands({ status: 'sent' })) this.watch(c);
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
    const d = await this.o.store.get(req.device);
    if (!d) throw new BackhaulError('BH_DEVICE_NOT_FOUND', `no device ${JSON.stringify(req.device)} in the registry`, { path: 'device' });
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

  private watch(c: CommandRecord): void {
    if (this.stopped) return;
    const left = c.sentAt + this.o.ackTimeoutMs - this.o.clock.now();
    const t = this.o.clock.setTimeout(
      () => {
        this.timers.delete(c.id);
        this.settle(c, 'expired', `no acknowledgement within ${Math.round(this.o.ackTimeoutMs / 1000)} s`, this.o.clock.now()).catch((e: unknown) =>
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

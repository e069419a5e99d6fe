// What the broker's hooks share (authenticate.ts, authorize.ts, publish.ts and the lifecycle in index.ts): one
// BrokerState per input, made in `create`, holding the per-client and per-socket tables and the counting of refusals
// and errors. The hooks read its fields directly; nothing here is allocated per message.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client } from 'aedes';
import type { ClockTimer } from '../../core/clock.js';
import type { InputContext, Principal } from '../../core/driver.js';
import { errorText, type BackhaulError } from '../../core/errors.js';
import type { RateLimiter } from '../../core/ratelimit.js';
import { LogThrottle } from '../../core/throttle.js';
import { InFlight } from '../../core/inflight.js';
import type { PacketGuard } from './guard.js';
import { ClientIds, QoS2Receipts } from './sessions.js';

/** Labels of `backhaul_broker_refused_total{reason}`. */
export type RefusalReason =
  | 'connect_too_large'
  | 'packet_too_large'
  | 'malformed_length'
  | 'max_connections'
  | 'max_connections_per_address'
  | 'connect_timeout'
  | 'client_id_empty'
  | 'client_id_taken'
  | 'login_rate'
  | 'login_backoff'
  | 'bad_login'
  | 'not_authorized'
  | 'qos2_inflight';

/** QoS 2 publishes one session may have awaiting PUBREL (aedes's own default bound, kept in step with ours). */
export const QOS2_INFLIGHT = 1000;

/**
 * What the broker keeps for one open socket besides aedes's own client: one object, and no closure of its own once
 * the login is accepted (10,000 idle devices are 10,000 of these).
 */
export interface Conn {
  readonly address: string;
  readonly guard: PacketGuard;
  /** The connect timer, until the login is accepted (then cleared and dropped). */
  timer: ClockTimer | undefined;
  /** The client whose login was accepted on this socket, and the ClientIds its id was claimed in. */
  client: Client | undefined;
  ids: ClientIds | undefined;
}

export function addressOf(client: Client | null): string | undefined {
  const a = (client?.conn as Partial<Socket> | undefined)?.remoteAddress;
  return typeof a === 'string' ? a : undefined;
}

export class BrokerState {
  // What each connected client may do; a client without an entry is anonymous (only when `anonymous` is on). Kept
  // by client, not socket: aedes authorizes a client's will after its socket closed.
  readonly principals = new WeakMap<Client, Principal>();
  /** Data-path failures already counted, so aedes's clientError does not recount. */
  readonly counted = new WeakSet<Error>();
  /** Open connections: sockets (TCP, TLS) and WebSocket streams. */
  readonly conns = new Map<Duplex, Conn>();
  /** Publishes being handed to the data path; stop() lets them finish. */
  readonly inflight = new InFlight();
  // Both follow aedes's in-memory sessions, so they are made anew with each broker (in start()).
  clientIds = new ClientIds();
  receipts = new QoS2Receipts(QOS2_INFLIGHT);
  /** Made in start() from the options. */
  logins: RateLimiter | undefined;
  /** False before start() and from stop() on: QoS 1 and 2 publishes are then not acknowledged. */
  accepting = false;
  private readonly throttle: LogThrottle;

  constructor(
    readonly ctx: InputContext,
    readonly anonymous: boolean,
  ) {
    this.throttle = new LogThrottle(ctx.clock);
  }

  countError(key: string, msg: string, err: unknown): void {
    this.ctx.metrics.inputErrors.inc({ input: this.ctx.id });
    const suppressed = this.throttle.take(key);
    if (suppressed !== null) {
      this.ctx.logger.warn({ err: errorText(err), ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    }
  }

  /** A refusal of the broker's own limits: counted by reason, logged with its code at most once a minute per reason. */
  refuse(reason: RefusalReason, err: BackhaulError, details: Record<string, unknown> = {}): void {
    this.ctx.metrics.brokerRefused.inc({ input: this.ctx.id, reason });
    const suppressed = this.throttle.take(`refused:${reason}`);
    if (suppressed !== null) {
      this.ctx.logger.warn({ code: err.code, ...details, ...(suppressed > 0 ? { suppressed } : {}) }, err.message);
    }
  }
}

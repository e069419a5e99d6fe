// One shape per driver kind (Telegraf's lesson): a definition with a type name, a TypeBox/JSON Schema for its options
// and a factory taking the validated options plus a context. Constructors only store; `start()`/`open()` do the work;
// `stop()`/`close()` release everything the instance owns. A third-party package can export a definition of the
// same shape.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Clock } from './clock.js';
import { BackhaulError, type ErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { HistoryReader } from './history.js';
import type { IdKind } from './ids.js';
import type { Frame, Message, Reading } from './types.js';

/**
 * A problem JSON Schema cannot express (an MQTT topic filter's syntax, a mapping path), found by a driver's `check`
 * at config load, so `backhaul check` reports it before anything starts. `path` is relative to the instance's
 * options, e.g. `topics[1]`.
 */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export interface DriverContext {
  /** Instance id: the input or sink key in the config, or `route/stage` for stages. */
  readonly id: string;
  /** Child logger bound to this instance. */
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** Aborted when the hub stops. */
  readonly signal: AbortSignal;
  /** Directory for the driver's own files (SQLite, JSON lines); exists when the driver starts. */
  readonly dataDir: string;
  /** Resolve a path from the config: relative paths are relative to the config file's folder. */
  resolvePath(p: string): string;
}

// ---------------------------------------------------------------- inputs

export interface InputContext extends DriverContext {
  /**
   * Hand one frame to the data path. Resolves once its readings are in every outbox they were routed to (or were
   * counted as dropped). Inputs await it before acknowledging to their source (PUBACK, HTTP 2xx, next line read):
   * that is the backpressure path. It never rejects for bad data: decode errors are counted and logged by the hub.
   */
  emit(frame: Frame): Promise<void>;
  /**
   * Like `emit`, but throws the decode error instead of only counting it, for inputs that can answer their client
   * (HTTP 400 with the code and path). The error is still counted.
   */
  emitStrict(frame: Frame): Promise<number>;
  /**
   * Check a device's login against the registry: the device's principal only for a known, enabled, not BLOCKED
   * device whose password matches; inputs that take logins (the embedded broker) refuse the others. The username of
   * a login that passed is the frame's `identity.username`, which is what makes its readings `authenticated`.
   */
  authenticate(username: string, password: string): Promise<Principal | undefined>;
  /**
   * Check a device's client certificate (its chain verified by the input's TLS listener) against the registry:
   * `id` as the certificate names it, `fingerprint` its SHA-256 (64 lower-case hex). The principal only when the
   * registry holds this certificate for that device, enabled and not BLOCKED; otherwise why not, for the log.
   */
  authenticateCertificate(id: string, fingerprint: string): Promise<{ readonly principal: Principal } | { readonly refused: string }>;
}

/** A verified login and what it may do on a broker (the device's topic ACL, or a service account's filters). */
export interface Principal {
  readonly username: string;
  /** The device this login proves; absent for Backhaul's own service accounts. */
  readonly device?: string;
  mayPublish(topic: string): boolean;
  maySubscribe(filter: string): boolean;
}

/** What an input that is a broker offers the hub: carrying orders to devices, and dropping a device's session. */
export interface BrokerPort {
  /** Publish as the broker itself (no client, no ACL); resolves once handed to the subscribers. */
  publish(topic: string, payload: Uint8Array, opts: { readonly qos: 0 | 1; readonly retain?: boolean }): Promise<void>;
  /** Close every connection logged in as `username` (a device whose password was reset); returns how many. */
  disconnect(username: string): number;
  /**
   * The port it listens on and the host devices should use (undefined: the host they reached Backhaul by); `tls` when
   * that port speaks MQTT over TLS, and `tlsPort` for MQTT over TLS beside a plain `port`.
   */
  address(): { readonly host?: string; readonly port: number; readonly tls?: boolean; readonly tlsPort?: number };
}

export interface Input {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What a person needs to reach it once started (`{ url: "mqtt://127.0.0.1:1883" }`); logged and shown by the demo. */
  info?(): Readonly<Record<string, string | number>>;
  /** Present on inputs devices connect to as a broker (the embedded broker). */
  readonly broker?: BrokerPort;
  /**
   * Publish on the input's own connection (an MQTT client input: a LoRaWAN downlink to the network server's
   * broker). Resolves when the broker took it (QoS 1).
   */
  publish?(topic: string, payload: Uint8Array): Promise<void>;
  /**
   * Re-read the certificate files of the input's TLS listeners now (SIGHUP): new handshakes get the new certificate,
   * open connections stay. True when loaded, false when refused (logged; the old one is kept), undefined without TLS.
   */
  reloadCertificates?(): boolean | undefined;
}

export interface InputDefinition<S extends TSchema = TSchema> {
  readonly kind: 'input';
  readonly type: string;
  readonly description: string;
  /** Options schema, without the common keys `type` and `decoder`. */
  readonly options: S;
  /** Decoder used when the config names none. */
  readonly defaultDecoder: string;
  /**
   * The ids of the devices an instance with these options speaks for, when they are known before it starts (a
   * simulator), so a config can declare them (`backhaul demo` does).
   */
  knownDevices?(options: Static<S>): readonly string[];
  /**
   * True when the broker behind an instance with these options lets only a device publish under its own base topic
   * (a Mosquitto kept in step by `brokerSync`), so a reading on a device's base topic proves that device.
   */
  topicsProveDevices?(options: Static<S>): boolean;
  check?(options: Static<S>): readonly ConfigProblem[];
  create(options: Static<S>, ctx: InputContext): Input;
}

// ---------------------------------------------------------------- decoders

/** A decoder either yields readings or says the frame was recognised but holds none (an OpenTRV prompt line). */
/**
 * What a frame says of a device besides readings: a LoRaWAN join (the NS accepted a (re)join), or what became of a
 * downlink Backhaul sent (`command` is the order's id).
 */
export type DeviceNotice =
  | { readonly kind: 'joined'; readonly device: string; readonly ts: number; readonly devAddr?: string }
  | {
      readonly kind: 'downlink';
      readonly device: string;
      readonly ts: number;
      readonly command: string;
      /** `sent`: transmitted (settles an unconfirmed downlink); `acknowledged` / `failed`: the device's answer, or the NS's refusal. */
      readonly outcome: 'sent' | 'acknowledged' | 'failed';
      readonly reason?: string;
    }
  | { readonly kind: 'network_error'; readonly device: string; readonly ts: number; readonly level: string; readonly code: string; readonly description: string };

/** A downlink to send through a network server's MQTT integration. */
export interface DownlinkRequest {
  /** The order's id: the NS's queue item or correlation id, so its answer names the order. */
  readonly id: string;
  readonly devEui: string;
  readonly applicationId: string;
  readonly tenant?: string;
  readonly deviceId?: string;
  readonly fPort: number;
  readonly bytes: Uint8Array;
  readonly confirmed: boolean;
}

export type DecodeResult = { readonly readings: readonly Reading[] } | { readonly skipped: string; readonly notice?: DeviceNotice };

/** Pure: same frame, same result. Throws a BackhaulError (code + path) on malformed input. */
export type Decode = (frame: Frame) => DecodeResult;

export interface DecoderDefinition<S extends TSchema = TSchema> {
  readonly kind: 'decoder';
  readonly type: string;
  readonly description: string;
  /** Options schema, without `type`. */
  readonly options: S;
  /**
   * The kind of device id every reading of this decoder carries, when its bearer names devices in one form (an
   * OpenTRV node id); the device gate then makes ids canonical as that kind. Absent: guessed from each id's form.
   */
  readonly idKind?: IdKind;
  /**
   * The device type (src/devices/device-types.ts) a device first seen through this decoder is registered as (an
   * OpenTRV node is an `opentrv-valve`). Absent: `generic`.
   */
  readonly deviceType?: string;
  /**
   * Its readings' `seq` is a LoRaWAN frame counter (fCnt): the device gate drops a repeat as a duplicate (the NS
   * delivered it twice), counts a gap as lost uplinks and takes a fall (a rejoin) as a reset, not a loss.
   */
  readonly frameCounter?: boolean;
  /**
   * The message that asks this decoder's network server to send a downlink, published on the input's own
   * connection to the NS's broker (an input with `publish`); its answers come back as `downlink` notices.
   */
  readonly downlink?: (req: DownlinkRequest) => { readonly topic: string; readonly payload: string };
  check?(options: Static<S>): readonly ConfigProblem[];
  create(options: Static<S>): Decode;
}

// ---------------------------------------------------------------- stages

export interface StageContext extends DriverContext {
  /** The route's name. */
  readonly route: string;
  /** Output produced outside `process` (a window closing on a timer) goes here, on to the rest of the route. */
  emit(msg: Message): void;
  /** Count what the stage removed, by reason (`out_of_range`, `filtered`). */
  dropped(reason: string, n?: number): void;
}

export interface Stage {
  /** Zero or more messages out for one in. */
  process(msg: Message): readonly Message[];
  /** Release timers. May emit final output (a closing window) through `ctx.emit`, synchronously; nothing after. */
  stop?(): void;
}

export interface StageDefinition<S extends TSchema = TSchema> {
  readonly kind: 'stage';
  readonly type: string;
  readonly description: string;
  readonly options: S;
  /** Keeps state per key (device, measurement), bounded by its `maxKeys` option (documented in its README). */
  readonly keyed?: boolean;
  /** Its job includes events (it may change, make or drop them); a stage without it passes every event unchanged. */
  readonly handlesEvents?: boolean;
  check?(options: Static<S>): readonly ConfigProblem[];
  create(options: Static<S>, ctx: StageContext): Stage;
}

// ---------------------------------------------------------------- sinks

/** Items of a batch that the remote refused for good; every other item of the batch counts as accepted. */
export interface SinkWriteResult {
  readonly rejected?: ReadonlyArray<{ readonly index: number; readonly error: BackhaulError }>;
}

export interface Sink {
  open(): Promise<void>;
  /**
   * Deliver a batch, in order. Resolve when every item not listed as rejected is accepted by the remote end.
   * Throw a SinkError for a failure of the whole batch (retryable or not).
   */
  write(batch: readonly Message[]): Promise<SinkWriteResult | void>;
  close(): Promise<void>;
  /**
   * Optional, for sinks that hold a connection (mqtt). The runner calls it once, before the first `open()`, with a
   * function the sink calls whenever its far end is reachable again (a CONNACK after a reconnect). That ends the
   * runner's retry wait at once, so a backlog moves when the remote is back rather than when the backoff runs out.
   * Sinks that connect per request (http, emoncms) leave it out: their next attempt is the test.
   */
  onReady?(listener: () => void): void;
}

export type SinkContext = DriverContext;

export interface SinkDefinition<S extends TSchema = TSchema> {
  readonly kind: 'sink';
  readonly type: string;
  readonly description: string;
  /** Options schema, without the common keys `type` and `outbox`. */
  readonly options: S;
  /**
   * Batches the runner keeps in flight by default (`outbox.window` overrides): more than 1 only where concurrent
   * writes keep their order at the far end (MQTT publishes on one connection) or order does not matter (the historian).
   */
  readonly window?: number;
  /** Most messages per write by default (`outbox.batchSize` overrides); 100 when absent. */
  readonly batchSize?: number;
  /** How long the runner waits for a batch to fill by default (`outbox.lingerMs` overrides); 0 when absent. */
  readonly linger?: number;
  /**
   * For sinks that keep history the API can read (the historian): open a read-only reader of what an instance with
   * these options stored, or undefined while there is nothing to read yet. `api.historian` may name only such sinks.
   */
  openHistory?(options: Static<S>, where: Pick<DriverContext, 'dataDir' | 'resolvePath'>): HistoryReader | undefined;
  check?(options: Static<S>): readonly ConfigProblem[];
  create(options: Static<S>, ctx: SinkContext): Sink;
}

/**
 * A failure of a whole batch, or of opening. `retryable: false` stops the sink (its queue is kept) until an operator
 * acts. Coded like every error: BH_SINK_WRITE when a retry may mend it, BH_SINK_FATAL when not (the runner shows a
 * failed open as BH_SINK_OPEN).
 */
export class SinkError extends BackhaulError {
  /** Try again after this long rather than after the runner's backoff (a far end's Retry-After, a rate limit). */
  readonly retryAfterMs: number | undefined;
  /**
   * Not a failure: the sink chose to wait (its own rate limit). Not counted as a retry, not an error in status, and
   * no step towards `sink.failing`; needs `retryAfterMs`.
   */
  readonly deferred: boolean;

  constructor(
    message: string,
    readonly retryable: boolean,
    opts?: { readonly cause?: unknown; readonly code?: ErrorCode; readonly retryAfterMs?: number; readonly deferred?: boolean },
  ) {
    super(opts?.code ?? (retryable ? 'BH_SINK_WRITE' : 'BH_SINK_FATAL'), message, opts?.cause === undefined ? {} : { cause: opts.cause });
    this.name = 'SinkError';
    this.retryAfterMs = opts?.retryAfterMs;
    this.deferred = retryable && opts?.deferred === true && opts.retryAfterMs !== undefined;
  }
}

// ---------------------------------------------------------------- registry

export interface DriverRegistry {
  readonly inputs: ReadonlyMap<string, InputDefinition>;
  readonly decoders: ReadonlyMap<string, DecoderDefinition>;
  readonly stages: ReadonlyMap<string, StageDefinition>;
  readonly sinks: ReadonlyMap<string, SinkDefinition>;
}

export function byType<D extends { readonly type: string }>(defs: readonly D[]): ReadonlyMap<string, D> {
  const m = new Map<string, D>();
  for (const d of defs) {
    if (m.has(d.type)) throw new Error(`two drivers share the type name ${d.type}`);
    m.set(d.type, d);
  }
  return m;
}

// Identity helpers that keep each driver's options type tied to its schema.
export const defineInput = <S extends TSchema>(d: InputDefinition<S>): InputDefinition<S> => d;
export const defineDecoder = <S extends TSchema>(d: DecoderDefinition<S>): DecoderDefinition<S> => d;
export const defineStage = <S extends TSchema>(d: StageDefinition<S>): StageDefinition<S> => d;
export const defineSink = <S extends TSchema>(d: SinkDefinition<S>): SinkDefinition<S> => d;

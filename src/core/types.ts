// The three shapes that travel through Backhaul (see docs/architecture.md): a Frame is what an input received, a
// Reading is one device's values at one time, an Event is something the hub itself observed. Readings and Events
// share the router, so both carry a `kind` discriminant.
import type { HubEvent } from './events.js';

/** Who sent a frame, as far as the transport can tell. Filled by inputs; used by the device gate. */
export interface TransportIdentity {
  /** MQTT username, HTTP basic user, ... */
  readonly username?: string;
  readonly clientId?: string;
  readonly remoteAddress?: string;
}

export interface Frame {
  /** Id of the input instance (the key under `inputs` in the config). */
  readonly input: string;
  /** Raw bytes or text, as received. */
  readonly payload: Uint8Array | string;
  /** Receive time, ms since the Unix epoch, from the hub's clock. */
  readonly receivedAt: number;
  /** MQTT topic or HTTP path the frame came on, when there is one. */
  readonly topic?: string;
  /** MIME type when the transport says (HTTP Content-Type). */
  readonly contentType?: string;
  readonly identity?: TransportIdentity;
}

export type Value = number | string | boolean;

export interface ReadingSource {
  readonly input: string;
  readonly decoder: string;
  readonly topic?: string;
}

export interface Reading {
  readonly kind: 'reading';
  /** Canonical device id (e.g. OpenTRV node id in lower-case hex, a SenML base name). */
  readonly device: string;
  /** Measurement time, ms since the Unix epoch. */
  readonly ts: number;
  /** The device's own frame sequence number, when it sends one (OpenTRV `+`). */
  readonly seq?: number;
  readonly values: Readonly<Record<string, Value>>;
  /** SenML (RFC 8428) unit per value name, where one is known. */
  readonly units?: Readonly<Record<string, string>>;
  /** True only when the transport identity proves the device. */
  readonly authenticated: boolean;
  readonly source: ReadingSource;
  /**
   * What a LoRaWAN network server said of the uplink besides its values: the ids a downlink needs and the radio.
   * The device gate keeps it in the registry and takes it off; it is not routed.
   */
  readonly lorawan?: LorawanMeta;
}

/** The network server's side of a LoRaWAN uplink (decoders with `frameCounter`). */
export interface LorawanMeta {
  /** The decoder that read it, which also knows how that network server takes a downlink (`chirpstack`, `tts`). */
  readonly ns: string;
  /** ChirpStack's application id, The Things Stack's application id. */
  readonly applicationId?: string;
  /** The Things Stack's tenant (`ttn` on The Things Network). */
  readonly tenant?: string;
  /** The network server's own device id (The Things Stack), which its downlink topic names. */
  readonly deviceId?: string;
  readonly fPort?: number;
  /** The best gateway's. */
  readonly rssi?: number;
  readonly snr?: number;
  readonly gateways?: number;
  readonly sf?: number;
  /** From the NS's device status (ChirpStack `status`): battery %, link margin dB. */
  readonly battery?: number;
  readonly margin?: number;
}

export type EventSeverity = 'info' | 'warning' | 'critical';

/**
 * An event the hub raised: a union discriminated by `type`, derived from the map of event types in events.ts, whose
 * `makeEvent` is the one way to make one.
 */
export type { HubEvent };

/** Anything the router routes. */
export type Message = Reading | HubEvent;

export function isReading(m: Message): m is Reading {
  return m.kind === 'reading';
}

// ---------------------------------------------------------------- sink status

/** A sink's delivery state, as `backhaul status`, the API and the dashboard show it (src/outbox/runner.ts). */
export type SinkState = 'starting' | 'up' | 'retrying' | 'stopped' | 'closed';

export interface SinkStatus {
  readonly id: string;
  readonly type: string;
  readonly state: SinkState;
  /** Messages waiting in the outbox. */
  readonly backlog: number;
  readonly backlogBytes: number;
  /** Age of the oldest waiting message, ms (0 when empty). */
  readonly oldestAgeMs: number;
  readonly delivered: number;
  readonly dropped: number;
  readonly retries: number;
  readonly lastError?: { readonly message: string; readonly at: number };
}

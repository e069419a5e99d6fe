// Every event type the hub raises, in one map from type to its data (Zigbee2MQTT's typed event bus is the model).
// The map is a value (TypeBox schemas), so docs/events.md is generated from it and tests can check a raised event
// against its schema; `EventMap` and `HubEvent` are derived from it, so a raise site whose data has the wrong shape
// does not compile. Events are made only by `makeEvent` (built-in types) and `customEvent` (a template stage's own
// type); a test keeps object literals of events out of the rest of src.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { EventSeverity, Value } from './types.js';

const ms = (description: string) => Type.Number({ description: `${description} (ms since the epoch)` });
const duration = (description: string) => Type.Number({ description: `${description} (ms)` });
const volts = (description: string) => Type.Number({ description: `${description} (V)` });
/** What every order event names: the order's id and what was ordered. */
const orderFields = {
  command: Type.String({ description: 'the order\'s id' }),
  order: Type.String({ description: 'what was ordered (`reinstall`, ...)' }),
};
/** How a device's status answered an order. */
const answerFields = {
  answer: Type.Optional(Type.String({ description: 'the device\'s status, as JSON text' })),
  reason: Type.Optional(Type.String({ description: 'the device\'s status instead, when it was a plain string' })),
};
const ValueSchema = Type.Union([Type.Number(), Type.String(), Type.Boolean()]);
const Policy = Type.Union([Type.Literal('register'), Type.Literal('quarantine'), Type.Literal('drop')], { description: 'the `devices.unknown` policy' });
const Level = (description: string) => Type.Union([Type.Literal('NORMAL'), Type.Literal('WARNING'), Type.Literal('DANGER')], { description });

/** What every alarm event names (src/devices/alarms.ts). */
const alarmFields = {
  alarm: Type.String({ description: 'the alarm\'s id' }),
  alarmKind: Type.String({ description: '`offline`, `battery_low`, `severity`, `blocked`, `mode` (a device) or `backlog`, `failing` (a sink)' }),
  subjectKind: Type.Union([Type.Literal('device'), Type.Literal('sink')], { description: 'what the alarm is about' }),
  subject: Type.String({ description: 'the device\'s or the sink\'s id' }),
  name: Type.String({ description: 'how people call the subject: the device\'s description and room, or the sink\'s id' }),
  aspect: Type.Optional(Type.String({ description: 'what of it: the measurement of a `severity` alarm' })),
  raisedAt: ms('when the alarm was raised'),
};

/** What the map says of one event type. */
export interface EventSpec {
  /** Its severity; a list when it varies (the raise site chooses, and must). */
  readonly severity: EventSeverity | readonly EventSeverity[];
  /** How the severity is chosen when it varies. */
  readonly severityRule?: string;
  /** It is about one device and carries `device` (so a route's `match.devices` applies to it). */
  readonly device: boolean;
  /** Who raises it. */
  readonly by: string;
  readonly when: string;
  /** Its `data`: always a flat object of numbers, strings and booleans. */
  readonly data: TSchema;
}

export const EVENT_TYPES = {
  'device.offline': {
    severity: 'warning',
    device: true,
    by: 'the liveness monitor (`src/devices/liveness.ts`)',
    when: 'A device is silent **longer** than its `maxSilentMs` (at the threshold exactly it is still online); once per silence.',
    data: Type.Object({ lastSeen: ms('its last message'), silentMs: duration('how long it has been silent'), threshold: duration('its `maxSilentMs`') }),
  },
  'device.online': {
    severity: 'info',
    device: true,
    by: 'the liveness monitor',
    when: 'Its first message after `device.offline` (never on a first sighting).',
    data: Type.Object({
      lastSeen: Type.Optional(ms('its message before the silence')),
      silentMs: duration('how long it was silent'),
      threshold: Type.Optional(duration('its `maxSilentMs`; absent when it has none')),
    }),
  },
  'device.battery_low': {
    severity: 'warning',
    device: true,
    by: 'the liveness monitor',
    when: 'A battery value **below** its `batteryFloor` (at the floor is not low); once, until `device.battery_ok`.',
    data: Type.Object({ value: volts('the battery value'), floor: volts('its `batteryFloor`'), recoverAbove: volts('floor + hysteresis: above it the battery is ok again') }),
  },
  'device.battery_ok': {
    severity: 'info',
    device: true,
    by: 'the liveness monitor',
    when: 'After `device.battery_low`, a value **above** floor + hysteresis (at it is still low); once.',
    data: Type.Object({ value: volts('the battery value'), floor: volts('its `batteryFloor`'), recoverAbove: volts('floor + hysteresis') }),
  },
  'liveness.overflow': {
    severity: 'warning',
    device: false,
    by: 'the liveness monitor',
    when: 'A new device arrived while `maxDevices` are watched (it is not watched for silence or battery); once per time the monitor fills.',
    data: Type.Object({ maxDevices: Type.Number({ description: 'devices watched at most' }), firstRefused: Type.String({ description: 'the first device not watched' }) }),
  },
  'device.unknown': {
    severity: ['info', 'warning'],
    severityRule: '`info` with the `register` policy, `warning` with `quarantine` and `drop`',
    device: true,
    by: 'the device gate (`src/devices/gate.ts`)',
    when: 'A reading from a device not in the registry; once per new id, bounded by `devices.unknownEvents` (docs/config.md).',
    data: Type.Object({ policy: Policy, input: Type.String({ description: 'the input it came on' }) }),
  },
  'device.unknown_suppressed': {
    severity: 'warning',
    device: false,
    by: 'the device gate',
    when: 'One minute after `device.unknown` events were first held back by `devices.unknownEvents`: how many.',
    data: Type.Object({
      suppressed: Type.Number({ description: 'events held back' }),
      first: Type.String({ description: 'the first device held back' }),
      since: ms('when the first was held back'),
      policy: Policy,
    }),
  },
  'device.joined': {
    severity: 'info',
    device: true,
    by: 'the hub, from a LoRaWAN network server\'s join message (the `chirpstack` and `tts` decoders)',
    when: 'A LoRaWAN device (re)joined its network: its frame counter starts again, which is not counted as lost uplinks.',
    data: Type.Object({ input: Type.String({ description: 'the input it came on' }), devAddr: Type.Optional(Type.String({ description: 'its new device address' })) }),
  },
  'device.network_error': {
    severity: 'warning',
    device: true,
    by: 'the hub, from a LoRaWAN network server\'s log event (ChirpStack `log` at level ERROR or WARNING)',
    when: 'The network server reported a problem with a device: its payload codec failed, a downlink did not fit, a frame counter was reused…',
    data: Type.Object({
      input: Type.String({ description: 'the input it came on' }),
      code: Type.String({ description: 'the network server\'s code (`UPLINK_CODEC`, `DOWNLINK_PAYLOAD_SIZE`, …)' }),
      level: Type.String({ description: '`ERROR` or `WARNING`' }),
      description: Type.String({ description: 'what the network server said' }),
    }),
  },
  'device.active': {
    severity: 'info',
    device: true,
    by: 'the device gate',
    when: 'A device\'s self-description on `<base>/device` passed its type\'s `describe` schema, and it was INIT (or BLOCKED and unblocked since).',
    data: Type.Object({ previous: Type.String({ description: 'its state before: `INIT`' }) }),
  },
  'device.blocked': {
    severity: 'critical',
    device: true,
    by: 'the device gate (an invalid self-description), or an operator (`backhaul devices block`, the API)',
    when: 'The device became BLOCKED: its readings are dropped (counted as `blocked`) and its login refused until an operator unblocks it.',
    data: Type.Object({ reason: Type.String({ description: 'why: the schema\'s complaint with its path, or the operator\'s words' }), by: Type.String({ description: '`hub` or the operator' }) }),
  },
  'device.unblocked': {
    severity: 'info',
    device: true,
    by: 'an operator',
    when: 'A BLOCKED device was unblocked: back to INIT, until its next self-description.',
    data: Type.Object({ by: Type.String({ description: 'the operator' }) }),
  },
  'device.mode': {
    severity: ['info', 'warning', 'critical'],
    severityRule: '`info` for NORMAL, `warning` for WARNING, `critical` for DANGER',
    device: true,
    by: 'the device gate',
    when: 'The severity mode a device reports of itself (`"mode"` in a status on `<base>/device`) changed.',
    data: Type.Object({ mode: Level('the mode now'), previous: Type.Optional(Level('the mode before; absent the first time')) }),
  },
  'command.acknowledged': {
    severity: 'info',
    device: true,
    by: 'orders (`src/devices/commands.ts`)',
    when: 'The device\'s status acknowledged an order with `"result": "ok"`.',
    data: Type.Object({ ...orderFields, ...answerFields }),
  },
  'command.failed': {
    severity: 'warning',
    device: true,
    by: 'orders',
    when: 'The device\'s status acknowledged an order with another result.',
    data: Type.Object({ ...orderFields, ...answerFields }),
  },
  'command.expired': {
    severity: 'warning',
    device: true,
    by: 'orders',
    when: 'No acknowledgement within `devices.commandTimeoutMs`.',
    data: Type.Object({ ...orderFields, reason: Type.String({ description: 'why, e.g. `no acknowledgement within 60 s`' }) }),
  },
  'device.credentials_claimed_twice': {
    severity: 'critical',
    device: true,
    by: 'the device bootstrap (`src/api/bootstrap.ts`)',
    when: 'A device asked for its first password, which an earlier bootstrap call took; at most once per device per 10 minutes (src/api/README.md).',
    data: Type.Object({
      address: Type.String({ description: 'the caller\'s address' }),
      claimedBy: Type.Optional(Type.String({ description: 'the address that took the password' })),
      claimedAt: Type.Optional(ms('when it was taken')),
    }),
  },
  'sink.backlog': {
    severity: 'warning',
    device: false,
    by: 'the sink\'s runner (`src/outbox/runner.ts`)',
    when: 'A sink\'s backlog reached its `outbox.backlogAlert` (docs/config.md); once, until `sink.backlog_ok`. Also at start, when the backlog kept from the last run is that long.',
    data: Type.Object({
      sink: Type.String({ description: 'the sink\'s id' }),
      items: Type.Number({ description: 'messages waiting' }),
      bytes: Type.Number({ description: 'bytes waiting' }),
      oldestAgeMs: duration('age of the oldest waiting message'),
      threshold: Type.Number({ description: 'its `outbox.backlogAlert`' }),
      state: Type.String({ description: 'the sink\'s state: `starting`, `up`, `retrying`, `stopped`' }),
    }),
  },
  'sink.backlog_ok': {
    severity: 'info',
    device: false,
    by: 'the sink\'s runner',
    when: 'After `sink.backlog`, the backlog is down to half the `backlogAlert` or less; once.',
    data: Type.Object({
      sink: Type.String({ description: 'the sink\'s id' }),
      items: Type.Number({ description: 'messages waiting' }),
      threshold: Type.Number({ description: 'its `outbox.backlogAlert`' }),
      peak: Type.Number({ description: 'the most messages that waited since `sink.backlog`' }),
      durationMs: duration('time since `sink.backlog`'),
    }),
  },
  'config.applied': {
    severity: 'info',
    device: false,
    by: 'the hub (`src/runtime/hub.ts`)',
    when: 'At start, once the outboxes and routes are built and before any input: names the config the hub runs (so it comes first in every sink it is routed to).',
    data: Type.Object({
      source: Type.String({ description: 'the config file (or a label such as `demo`)' }),
      hash: Type.String({
        description: 'SHA-256 (hex) of the config as shown by the API (secrets as references or redacted): the same config always has the same hash; a changed secret value does not change it',
      }),
      inputs: Type.Number({ description: 'inputs' }),
      routes: Type.Number({ description: 'routes' }),
      sinks: Type.Number({ description: 'sinks' }),
    }),
  },
  'livemap.snapshot': {
    severity: 'info',
    device: false,
    by: 'the `livemap` stage',
    when: 'Periodically and/or on change (src/pipeline/stages/livemap/README.md).',
    data: Type.Record(Type.String(), ValueSchema, {
      description: '`<device>/<measurement>`: the value; `<device>/<measurement>/ageMs`: how long ago it was measured; `<device>/<measurement>/unit` with `units`',
    }),
  },
  'severity.changed': {
    severity: ['info', 'warning', 'critical'],
    severityRule: '`info` for NORMAL, `warning` for WARNING, `critical` for DANGER',
    device: true,
    by: 'the `severity` stage',
    when: 'A device\'s level for the stage\'s measurement changed (src/pipeline/stages/severity/README.md).',
    data: Type.Object({
      measurement: Type.String({ description: 'the value judged' }),
      value: Type.Number({ description: 'the value that changed the level' }),
      level: Level('the new level'),
      previous: Level('the level before'),
      unit: Type.Optional(Type.String({ description: 'its SenML unit, when the reading has one' })),
    }),
  },
  'sink.failing': {
    severity: 'warning',
    device: false,
    by: 'the sink\'s runner (`src/outbox/runner.ts`)',
    when: 'A sink has failed without a success for its `outbox.failingAfterMs` (docs/config.md); once, until `sink.recovered`.',
    data: Type.Object({
      sink: Type.String({ description: 'the sink\'s id' }),
      since: ms('its first failure of this run of failures'),
      failures: Type.Number({ description: 'failed attempts since then' }),
      error: Type.String({ description: 'the last error\'s message' }),
    }),
  },
  'sink.recovered': {
    severity: 'info',
    device: false,
    by: 'the sink\'s runner',
    when: 'After `sink.failing`, the sink\'s first successful delivery; once.',
    data: Type.Object({
      sink: Type.String({ description: 'the sink\'s id' }),
      durationMs: duration('how long it was failing'),
    }),
  },



  'alarm.raised': {
    severity: ['warning', 'critical'],
    severityRule: 'the alarm\'s severity: `critical` for a device in DANGER (`severity` stage), `warning` otherwise',
    device: false,
    by: 'the alarm keeper (`src/devices/alarms.ts`)',
    when: 'A condition began that has no open alarm of the same subject, kind and aspect; once per alarm (a restart raises nothing that is still the same alarm).',
    data: Type.Object(alarmFields),
  },
  'alarm.reminder': {
    severity: ['warning', 'critical'],
    severityRule: 'the alarm\'s severity',
    device: false,
    by: 'the alarm keeper',
    when: 'An alarm still raised (not acknowledged, not cleared) `alarms.remindEveryMs` after it was raised or last reminded of.',
    data: Type.Object({ ...alarmFields, reminder: Type.Number({ description: 'how many reminders, this one included' }) }),
  },
  'alarm.acknowledged': {
    severity: 'info',
    device: false,
    by: 'the alarm keeper, for an operator (API, CLI, dashboard)',
    when: 'An operator acknowledged an open alarm: it stays open until its condition ends, with no more reminders.',
    data: Type.Object({ ...alarmFields, by: Type.String({ description: 'who acknowledged it' }), note: Type.Optional(Type.String({ description: 'their note' })) }),
  },
  'alarm.cleared': {
    severity: 'info',
    device: false,
    by: 'the alarm keeper',
    when: 'An alarm\'s condition ended (the device spoke again, the battery recovered, the backlog drained, ...) or an operator cleared it.',
    data: Type.Object({
      ...alarmFields,
      by: Type.String({ description: '`condition` when its condition ended, else the operator who cleared it' }),
      durationMs: duration('how long it was open'),
    }),
  },
} as const satisfies Readonly<Record<string, EventSpec>>;

type Specs = typeof EVENT_TYPES;
/** Every built-in event type. */
export type EventType = keyof Specs;

/** Event type → its data. */
export type EventMap = { readonly [T in EventType]: Readonly<Static<Specs[T]['data']>> };

/** Any event's data, as sinks, the journal and the historian carry it: a flat object of numbers, strings, booleans. */
export type EventData = Readonly<Record<string, Value>>;
type Flat<T extends EventData> = T;
/** Does not compile when some event's data is not flat. */
export type AnyEventData = Flat<EventMap[EventType]>;

type SeverityOf<T extends EventType> = Specs[T]['severity'] extends readonly (infer S)[] ? S : Specs[T]['severity'];

interface EventBase {
  readonly kind: 'event';
  readonly ts: number;
  readonly message: string;
}

/** Events about a device carry it; the others have none. */
type DeviceOf<T extends EventType> = Specs[T]['device'] extends true ? { readonly device: string } : { readonly device?: undefined };

/**
 * A built-in event: its type decides its data, severity and whether it names a device. Its data also reads as
 * `EventData`, so generic consumers (template, expressions, sinks) can look a name up.
 */
export type KnownEvent<T extends EventType = EventType> = T extends EventType
  ? EventBase & { readonly type: T; readonly severity: SeverityOf<T>; readonly data: EventMap[T] & EventData } & DeviceOf<T>
  : never;

declare const customBrand: unique symbol;
/** A type no built-in event has: made only by `customEvent`, which checks that. */
export type CustomEventType = string & { readonly [customBrand]: true };

/** An event of a type the config chose (the `template` stage's `event`), with a reading's values as data. */
export interface CustomEvent extends EventBase {
  readonly type: CustomEventType;
  readonly severity: EventSeverity;
  readonly device?: string;
  readonly data?: EventData;
}

/** Anything the hub raises (`kind: 'event'`), discriminated by `type`. */
export type HubEvent = KnownEvent | CustomEvent;

/** What a raise site gives besides the data: the severity only where it varies, `device` only where it is about one. */
export type EventFields<T extends EventType> = { readonly ts: number; readonly message: string } & (Specs[T]['severity'] extends readonly EventSeverity[]
  ? { readonly severity: SeverityOf<T> }
  : { readonly severity?: never }) &
  (Specs[T]['device'] extends true ? { readonly device: string } : { readonly device?: never });

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_TYPES, type);
}

/** The one way to make a built-in event. */
export function makeEvent<T extends EventType>(type: T, data: EventMap[T], f: EventFields<T>): KnownEvent<T> {
  // The types rule these out; this is for callers that got round them (a cast, plain JavaScript).
  if (!isEventType(type)) throw new Error(`no event type ${String(type)}`);
  const spec: EventSpec = EVENT_TYPES[type];
  const given = f as { readonly severity?: EventSeverity; readonly device?: string };
  const severity = given.severity ?? spec.severity;
  if (typeof severity !== 'string') throw new Error(`event ${type} needs a severity (one of ${severity.join(', ')})`);
  const device = given.device;
  const e = { kind: 'event', type, ts: f.ts, severity, ...(device !== undefined ? { device } : {}), message: f.message, data };
  return e as unknown as KnownEvent<T>;
}

/** An event of a type of the config's choosing, which must not be a built-in one (the template stage checks it at load). */
export function customEvent(
  type: string,
  data: EventData,
  f: { readonly ts: number; readonly message: string; readonly severity: EventSeverity; readonly device?: string },
): CustomEvent {
  if (isEventType(type)) throw new Error(`${type} is a built-in event type; its data is the hub's own`);
  return { kind: 'event', type: type as CustomEventType, ts: f.ts, severity: f.severity, ...(f.device !== undefined ? { device: f.device } : {}), message: f.message, data };
}

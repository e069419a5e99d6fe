// Device types: an extensible list. Each type has a name, a short topic name (the `<kind>` level of its devices'
// topics), default thresholds, and a TypeBox (JSON Schema) schema for the per-device config an operator may set and
// the device fetches at bootstrap. A third party adds a type with `DeviceTypes.register`.
import { Type, type TSchema } from '@sinclair/typebox';
import { BackhaulError } from '../core/errors.js';
import { redactWith } from '../core/config/redact.js';
import { SchemaValidator, suggest } from '../core/config/validate.js';
import { shown } from '../core/errors.js';
import type { IdKind, JsonObject, Thresholds } from './types.js';

export interface DeviceType {
  /** `opentrv-valve`: lower case, digits and `-`. */
  readonly name: string;
  /** The `<kind>` topic level of its devices: `u4/301/<topicName>`. */
  readonly topicName: string;
  readonly description: string;
  /** The id kinds its devices usually have (informative). */
  readonly idKinds?: readonly IdKind[];
  /** Thresholds of a device of this type that sets none of its own. */
  readonly defaults: Thresholds;
  /** Schema of the per-device config; `additionalProperties: false` catches typos. */
  readonly config: TSchema;
  /**
   * Orders its devices understand, each with a schema of its parameters: checked when the order is sent
   * (BH_COMMAND_ORDER naming the parameter). A parameter marked `secret: true` reaches the device as given but is kept
   * and shown redacted (orders list, API, audit). Orders not listed are sent with whatever parameters they have.
   */
  readonly orders?: Readonly<Record<string, TSchema>>;
  /**
   * How orders reach its devices: `mqtt` (default), on the device's command topic of the embedded broker;
   * `lorawan`, as a downlink through the network server the device's uplinks came from; `none`: it cannot take
   * orders (a radio-only valve), and sending one is BH_COMMAND_UNSUPPORTED.
   */
  readonly ordersVia?: 'mqtt' | 'lorawan' | 'none';
  /**
   * How long an order to such a device may wait for its answer when `devices.commandTimeoutMs` is shorter (a
   * LoRaWAN class A device hears a downlink only after its next uplink, and answers in the one after).
   */
  readonly minAckTimeoutMs?: number;
  /**
   * Schema of the self-description its devices publish on `<base>/device` (hardware, sensors, firmware, location
   * claim): a valid one makes the device ACTIVE, an invalid one BLOCKED with the reason. Default DESCRIPTION.
   */
  readonly describe?: TSchema;
}

const Text = (description: string) => Type.String({ minLength: 1, maxLength: 200, description });

/**
 * The self-description every type accepts unless it names its own: what the device is and claims. A status that
 * has `hardware`, `firmware` or `sensors` is one (isSelfDescription); other fields (`mode`, order answers) may ride
 * along.
 */
export const DESCRIPTION = Type.Object(
  {
    hardware: Type.Optional(Text('Make and model, e.g. `OpenTRV REV7`.')),
    firmware: Type.Optional(Text('Firmware version.')),
    sensors: Type.Optional(Type.Array(Text('A measurement it reports.'), { maxItems: 64, uniqueItems: true, description: 'What it measures.' })),
    serial: Type.Optional(Text('Serial number.')),
    location: Type.Optional(
      Type.Object(
        { site: Type.Optional(Text('Site.')), building: Type.Optional(Text('Building.')), room: Type.Optional(Text('Room.')) },
        { additionalProperties: false, description: 'Where it claims to be (kept; the registry\'s location decides its topics).' },
      ),
    ),
    mode: Type.Optional(Type.Union(['NORMAL', 'WARNING', 'DANGER'].map((m) => Type.Literal(m)), { description: 'Its severity mode.' })),
  },
  { additionalProperties: true },
);

/** Whether a status message is a self-description (rather than only an order's answer or a mode). */
export function isSelfDescription(status: unknown): status is Record<string, unknown> {
  if (typeof status !== 'object' || status === null || Array.isArray(status)) return false;
  return 'hardware' in status || 'firmware' in status || 'sensors' in status;
}

const TYPE_NAME = /^[a-z][a-z0-9-]{0,39}$/;
const TOPIC_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const MIN = 60_000;

export const BUILTIN_DEVICE_TYPES: readonly DeviceType[] = [
  {
    name: 'opentrv-valve',
    topicName: 'valve',
    description: 'OpenTRV radiator valve (868 MHz radio, battery powered); orders reach only a valve with a broker login of its own.',
    idKinds: ['opentrv'],
    defaults: { maxSilentMs: 30 * MIN, batteryFloor: 2.4 },
    config: Type.Object(
      {
        targetC: Type.Optional(Type.Number({ minimum: 5, maximum: 30, description: 'Comfort temperature (°C).' })),
        frostC: Type.Optional(Type.Number({ minimum: 5, maximum: 12, description: 'Frost-protection temperature (°C).' })),
        ecoBias: Type.Optional(Type.Boolean({ description: 'Favour saving energy over comfort.' })),
      },
      { additionalProperties: false },
    ),
  },
  {
    name: 'room-sensor',
    topicName: 'sensors',
    description: 'Room sensor module (temperature, humidity, CO2, light, noise, presence), usually over WiFi MQTT.',
    idKinds: ['mac', 'uuid'],
    defaults: { maxSilentMs: 15 * MIN },
    config: Type.Object(
      {
        reportIntervalS: Type.Optional(Type.Integer({ minimum: 10, maximum: 3600, description: 'Seconds between reports.' })),
        measurements: Type.Optional(
          Type.Array(
            Type.Union(['temperature', 'humidity', 'co2', 'luminosity', 'noise', 'presence'].map((m) => Type.Literal(m))),
            { uniqueItems: true, description: 'What the module reports.' },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    orders: {
      wifi: Type.Object(
        {
          ssid: Type.String({ minLength: 1, maxLength: 32, description: 'The network to join.' }),
          password: Type.String({ minLength: 8, maxLength: 63, secret: true, description: 'Its WPA2 passphrase (shown redacted once sent).' }),
        },
        { additionalProperties: false, description: 'Join another WiFi network.' },
      ),
    },
  },
  {
    name: 'shutter',
    topicName: 'shutter',
    description: 'Motorised window shutter (up, down, stop, position).',
    idKinds: ['mac', 'uuid'],
    defaults: { maxSilentMs: 60 * MIN },
    config: Type.Object(
      {
        travelTimeS: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 300, description: 'Seconds from fully open to fully closed.' })),
        invert: Type.Optional(Type.Boolean({ description: 'The motor is wired the other way round.' })),
      },
      { additionalProperties: false },
    ),
  },
  {
    name: 'lorawan-sensor',
    topicName: 'lorawan',
    description: 'LoRaWAN end device, through a network server (ChirpStack v4, The Things Stack v3); orders become downlinks.',
    idKinds: ['deveui'],
    ordersVia: 'lorawan',
    minAckTimeoutMs: 6 * 60 * MIN,
    defaults: { maxSilentMs: 120 * MIN },
    config: Type.Object(
      {
        fPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 223, description: 'Application port of its uplinks.' })),
        codec: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Payload codec name.' })),
        confirmed: Type.Optional(
          Type.Boolean({ description: 'Send downlinks confirmed (default), so the device\'s acknowledgement settles the order; unconfirmed ones are settled once transmitted.' }),
        ),
        network: Type.Optional(
          Type.Object(
            {
              input: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The mqtt input on the network server\'s broker that carries its downlinks.' })),
              ns: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The decoder that knows that network server (`chirpstack`, `tts`).' })),
              applicationId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[^/+#\\s]+$', description: 'The network server\'s application id.' })),
              tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[^/+#\\s]+$', description: 'The Things Stack tenant (`ttn`).' })),
              deviceId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[^/+#\\s]+$', description: 'The Things Stack device id.' })),
            },
            { additionalProperties: false, description: 'The network server ids a downlink needs, used before what its uplinks taught (needed when none was heard yet).' },
          ),
        ),
      },
      { additionalProperties: false },
    ),
  },
  {
    name: 'senml-device',
    topicName: 'senml',
    description: 'A device sending SenML (RFC 8428) packs; its silence threshold is learned from its own cadence.',
    defaults: {},
    config: Type.Record(Type.String(), Type.Unknown()),
  },
  {
    name: 'generic',
    topicName: 'generic',
    description: 'Any other device; its config is any JSON object.',
    defaults: {},
    config: Type.Record(Type.String(), Type.Unknown()),
  },
];

export class DeviceTypes {
  private readonly types = new Map<string, DeviceType>();
  private readonly validator = new SchemaValidator();

  constructor(types: readonly DeviceType[] = BUILTIN_DEVICE_TYPES) {
    for (const t of types) this.register(t);
  }

  /** Add a type (its config schema is compiled here, once). Throws on a bad or duplicate name. */
  register(t: DeviceType): void {
    if (!TYPE_NAME.test(t.name)) throw new Error(`device type name ${shown(t.name)} must match ${TYPE_NAME.source}`);
    if (!TOPIC_NAME.test(t.topicName)) throw new Error(`device type ${t.name}: topic name ${shown(t.topicName)} must match ${TOPIC_NAME.source}`);
    if (this.types.has(t.name)) throw new Error(`two device types are named ${t.name}`);
    this.validator.compile(t.config);
    this.validator.compile(t.describe ?? DESCRIPTION);
    for (const schema of Object.values(t.orders ?? {})) this.validator.compile(schema);
    this.types.set(t.name, t);
  }

  get(name: string): DeviceType | undefined {
    return this.types.get(name);
  }

  /** The type, or BH_DEVICE_TYPE naming the known ones. */
  require(name: string, path = 'type'): DeviceType {
    const t = this.types.get(name);
    if (!t) {
      const known = this.names();
      throw new BackhaulError('BH_DEVICE_TYPE', `unknown device type ${shown(name)}${suggest(name, known)}; known: ${known.join(', ')}`, { path });
    }
    return t;
  }

  /**
   * A self-description checked against its type's `describe` schema: undefined when valid, else why not (the path
   * at fault and the problem, as shown to operators in `blockedReason`).
   */
  checkDescription(typeName: string, description: unknown): string | undefined {
    const schema = this.types.get(typeName)?.describe ?? DESCRIPTION;
    const first = this.validator.validate(schema, structuredClone(description), 'description')[0];
    return first === undefined ? undefined : `invalid self-description: ${first.path ?? 'description'} ${first.detail}`;
  }

  names(): string[] {
    return [...this.types.keys()].sort();
  }

  list(): DeviceType[] {
    return this.names().map((n) => this.types.get(n)!);
  }

  /**
   * `config` checked against the type's schema: a copy with the schema's defaults filled in, or the first problem as
   * BH_DEVICE_CONFIG with its path under `path` (`config.targetC`), the others listed in the message.
   */
  validateConfig(typeName: string, config: unknown, path = 'config'): JsonObject {
    const t = this.require(typeName);
    const copy: unknown = config === undefined ? {} : structuredClone(config);
    const errs = this.validator.validate(t.config, copy, path);
    const first = errs[0];
    if (first) {
      const more = errs.length > 1 ? ` (and ${errs.slice(1).map((e) => e.message).join('; ')})` : '';
      throw new BackhaulError('BH_DEVICE_CONFIG', `${first.detail} (type ${t.name})${more}`, first.path === undefined ? {} : { path: first.path });
    }
    if (typeof copy !== 'object' || copy === null || Array.isArray(copy)) {
      throw new BackhaulError('BH_DEVICE_CONFIG', 'must be a JSON object', { path });
    }
    return copy as JsonObject;
  }
}

/**
 * An order's parameters checked against the schema its device's type gives it (defaults filled in); as given when the
 * type declares no such order. BH_COMMAND_ORDER at `params.<name>` otherwise.
 */
export function checkOrderParams(types: DeviceTypes, typeName: string, order: string, params: JsonObject): JsonObject {
  const schema = types.get(typeName)?.orders?.[order];
  if (schema === undefined) return params;
  const copy = structuredClone(params);
  const errs = new SchemaValidator().validate(schema, copy, 'params');
  const first = errs[0];
  if (first) throw new BackhaulError('BH_COMMAND_ORDER', `${first.detail} (order ${order} of type ${typeName})`, first.path === undefined ? {} : { path: first.path });
  return copy;
}

/** An order's parameters as they may be kept and shown: those its schema marks secret redacted. */
export function shownOrderParams(types: DeviceTypes, typeName: string, order: string, params: JsonObject): JsonObject {
  const schema = types.get(typeName)?.orders?.[order];
  return schema === undefined ? params : (redactWith(schema, params, 'params') as JsonObject);
}

/** The device's thresholds, each falling back to the learned one (silence) and its type's default. */
export function effectiveThresholds(device: { readonly type: string; readonly thresholds: Thresholds; readonly learnedSilentMs?: number | undefined }, types: DeviceTypes): Thresholds {
  const d = types.get(device.type)?.defaults ?? {};
  // The operator's own, then what the device's cadence taught, then its type's.
  const maxSilentMs = device.thresholds.maxSilentMs ?? device.learnedSilentMs ?? d.maxSilentMs;
  const batteryFloor = device.thresholds.batteryFloor ?? d.batteryFloor;
  return { ...(maxSilentMs !== undefined ? { maxSilentMs } : {}), ...(batteryFloor !== undefined ? { batteryFloor } : {}) };
}

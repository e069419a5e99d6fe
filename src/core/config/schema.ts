// The top-level config schema. Driver options are validated separately against each driver's own schema, so an
// error reads `inputs.radio.baud: must be integer` and a driver package can bring its schema with it.
import { Type, type Static } from '@sinclair/typebox';

/** Ids of inputs and sinks appear in paths, topics and metric labels: keep them plain. */
export const ID_PATTERN = '^[A-Za-z][A-Za-z0-9_-]{0,63}$';

export const DriverInstance = Type.Object(
  { type: Type.String({ minLength: 1, description: 'Driver type name, e.g. "mqtt".' }) },
  { additionalProperties: true },
);

export const OutboxOptions = Type.Object(
  {
    type: Type.Union([Type.Literal('sqlite'), Type.Literal('memory')], {
      default: 'sqlite',
      description: 'sqlite: durable, survives crashes and restarts (one file per sink under <data>/outbox/). memory: lost on exit.',
    }),
    sync: Type.Union([Type.Literal('full'), Type.Literal('normal')], {
      default: 'full',
      description: 'sqlite: `full` survives a power cut; `normal` survives a process crash and is faster.',
    }),
    maxItems: Type.Integer({ minimum: 1, default: 1_000_000, description: 'Most messages waiting for this sink.' }),
    maxBytes: Type.Integer({ minimum: 1024, default: 268_435_456, description: 'Most bytes of messages waiting for this sink (256 MiB).' }),
    overflow: Type.Union([Type.Literal('drop-oldest'), Type.Literal('drop-newest'), Type.Literal('block')], {
      default: 'drop-oldest',
      description: 'When full: drop the oldest, refuse the newest, or block (slow the inputs down; nothing is dropped).',
    }),
    batchSize: Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: 'Most messages per write.' }),
    lingerMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 0, description: 'Wait this long for a batch to fill.' }),
    retryMinMs: Type.Integer({ minimum: 1, default: 500, description: 'First retry delay after a failed write.' }),
    retryMaxMs: Type.Integer({ minimum: 1, default: 60_000, description: 'Longest retry delay.' }),
    ratePerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Most messages delivered per second (token bucket); no limit when absent.' })),
    rateBurst: Type.Optional(Type.Integer({ minimum: 1, description: 'Bucket size: messages that may go at once after a quiet spell (default: one second\'s worth).' })),
  },
  { additionalProperties: false },
);
export type OutboxOptions = Static<typeof OutboxOptions>;

export const Match = Type.Object(
  {
    kind: Type.Union([Type.Literal('reading'), Type.Literal('event'), Type.Literal('any')], {
      default: 'reading',
      description: 'Which messages the route takes.',
    }),
    devices: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Device ids or globs (* and ?).' })),
    inputs: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Input ids.' })),
    topics: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'MQTT topic filters on the frame topic.' })),
    measurements: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Keep only these measurements; readings with none are not matched.' }),
    ),
    events: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Event types or globs (kind event/any).' })),
    authenticated: Type.Optional(Type.Boolean({ description: 'Only readings whose transport identity proved the device.' })),
  },
  { additionalProperties: false },
);
export type Match = Static<typeof Match>;

export const Route = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, description: 'Shown in logs and metrics; default route-<index>.' })),
    match: Type.Optional(Match),
    stages: Type.Optional(Type.Array(DriverInstance, { description: 'Applied in order.' })),
    to: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Sink ids.' }),
  },
  { additionalProperties: false },
);

export const ConfigFile = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    data: Type.Optional(Type.String({ minLength: 1, description: 'Folder for SQLite and other files; relative to the config file.' })),
    secrets: Type.Optional(Type.String({ minLength: 1, description: 'Credentials file (JSON object of strings), mode 0600.' })),
    log: Type.Optional(
      Type.Object(
        {
          level: Type.Optional(
            Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    devices: Type.Optional(
      Type.Object(
        {
          unknown: Type.Union([Type.Literal('register'), Type.Literal('quarantine'), Type.Literal('drop')], {
            default: 'register',
            description: 'Readings of a device not in the registry: register it (INIT), quarantine it (registered disabled, readings dropped), or drop them.',
          }),
          refreshMs: Type.Integer({ minimum: 100, default: 10_000, description: 'How often the registry is re-read (changes made with `backhaul devices`).' }),
        },
        { additionalProperties: false },
      ),
    ),
    inputs: Type.Record(Type.String({ pattern: ID_PATTERN }), DriverInstance, { default: {} }),
    sinks: Type.Record(Type.String({ pattern: ID_PATTERN }), DriverInstance),
    routes: Type.Array(Route, { minItems: 1 }),
  },
  { additionalProperties: false },
);

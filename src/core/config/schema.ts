// The top-level config schema. Driver options are validated separately against each driver's own schema, so an
// error reads `inputs.radio.baud: must be integer` and a driver package can bring its schema with it.
import { TlsServerOptions } from '../tls-server.js';
import { Type, type Static } from '@sinclair/typebox';
import { ID_KINDS } from '../ids.js';
import { BrokerSyncOptions } from './broker-sync.js';
import { StoreOptions } from './store.js';

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
      description: 'sqlite: durable, survives crashes and restarts (the shared journal, <data>/journal.sqlite). memory: lost on exit.',
    }),
    sync: Type.Union([Type.Literal('full'), Type.Literal('normal')], {
      default: 'full',
      description:
        'sqlite: `full` survives a power cut; `normal` survives a process crash and is faster. The journal is shared, so it syncs as the strictest of its sinks asks.',
    }),
    maxItems: Type.Integer({ minimum: 1, default: 1_000_000, description: 'Most messages waiting for this sink.' }),
    maxBytes: Type.Integer({ minimum: 1024, default: 268_435_456, description: 'Most bytes of messages waiting for this sink (256 MiB).' }),
    overflow: Type.Union([Type.Literal('drop-oldest'), Type.Literal('drop-newest'), Type.Literal('block')], {
      default: 'drop-oldest',
      description: 'When full: drop the oldest, refuse the newest, or block (slow the inputs down; nothing is dropped).',
    }),
    batchSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10_000, description: 'Most messages per write (default: the sink type\'s own, 100 for most).' }),
    ),
    window: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 256,
        description: 'Batches in flight at once, acknowledged in order (default: the sink type\'s own, 1 where order at the far end needs it).',
      }),
    ),
    lingerMs: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 60_000, description: 'Wait this long for a batch to fill (default: the sink type\'s own, 0 for most).' }),
    ),
    retryMinMs: Type.Integer({ minimum: 1, default: 500, description: 'First retry delay after a failed write.' }),
    retryMaxMs: Type.Integer({ minimum: 1, default: 60_000, description: 'Longest retry delay.' }),
    ratePerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Most messages delivered per second (token bucket); no limit when absent.' })),
    rateBurst: Type.Optional(Type.Integer({ minimum: 1, description: 'Bucket size: messages that may go at once after a quiet spell (default: one second\'s worth).' })),
    backlogAlert: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Raise `sink.backlog` when this many messages wait, and `sink.backlog_ok` once half as many or fewer do (docs/events.md); at most `maxItems`; no such events when absent.',
      }),
    ),
    failingAfterMs: Type.Integer({
      minimum: 0,
      default: 300_000,
      description: 'Raise `sink.failing` once the sink has failed for this long without a success (0: at its first failure), and `sink.recovered` at its next success (docs/events.md). A sink that stops for good raises it at once.',
    }),
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

/** A device as the config file declares it (src/devices/declared.ts). */
export const DeclaredDevice = Type.Object(
  {
    id: Type.String({ minLength: 1, description: 'MAC, DevEUI, UUID, OpenTRV node id, or another id (give `kind`).' }),
    kind: Type.Optional(Type.Union(ID_KINDS.map((k) => Type.Literal(k)), { description: 'Default: told from the id\'s form.' })),
    type: Type.String({ minLength: 1, description: 'Device type (`backhaul devices types`).' }),
    site: Type.Optional(Type.String()),
    building: Type.Optional(Type.String()),
    room: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Array(Type.String())),
    enabled: Type.Optional(Type.Boolean({ default: true })),
    maxSilent: Type.Optional(Type.String({ minLength: 1, description: 'Silence after which it is offline, e.g. `30m`; default from its type.' })),
    batteryFloor: Type.Optional(Type.Number({ description: 'Volts under which its battery is low; default from its type.' })),
    config: Type.Optional(Type.Object({}, { description: 'Its config, valid against its type\'s schema.' })),
    username: Type.Optional(Type.String({ minLength: 1, description: 'Its MQTT login on the embedded broker (default: its id when a password is given).' })),
    // The top level is validated before secrets are resolved, so the reference form is allowed here.
    password: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Object({ secret: Type.String({ minLength: 1 }) }, { additionalProperties: false })], {
        description: 'Its MQTT password: use `{"secret": NAME}`. Without one, it cannot log in.',
        secret: true,
      }),
    ),
  },
  { additionalProperties: false },
);

/** A device login that may carry readings for other devices (src/devices/gateways.ts). */
export const Gateway = Type.Object(
  {
    login: Type.String({ minLength: 1, description: 'The gateway\'s MQTT login on the embedded broker (its registry username, by default its device id).' }),
    devices: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Canonical ids or globs (`*`, `?`) of the devices it forwards for, e.g. `["0d*"]` or `["70b3d57ed0*"]`.',
    }),
    description: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ConfigFile = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    data: Type.Optional(Type.String({ minLength: 1, description: 'Folder for SQLite and other files; relative to the config file.' })),
    secrets: Type.Optional(Type.String({ minLength: 1, secret: false, description: 'Credentials file (JSON object of strings), mode 0600.' })),
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
          refreshMs: Type.Integer({ minimum: 100, default: 10_000, description: 'How often the registry is checked for changes (made with `backhaul devices`), and re-read when it changed.' }),
          topics: Type.Optional(
            Type.Object(
              {
                prefix: Type.Optional(Type.String({ minLength: 1, description: 'Levels put before every device topic, e.g. `campus`.' })),
                homeSite: Type.Optional(Type.String({ minLength: 1, description: 'This concentrator\'s own site: devices there (or with no site) are local; others are under `abroad/<site>/`.' })),
              },
              { additionalProperties: false, description: 'The topic scheme devices publish under (src/devices/topics.ts).' },
            ),
          ),
          commandTimeoutMs: Type.Integer({
            minimum: 1000,
            default: 60_000,
            description: 'An order no device acknowledges within this time is marked expired (a LoRaWAN downlink waits at least 6 h: its device answers only after its next uplinks).',
          }),
          gateways: Type.Optional(
            Type.Array(Gateway, {
              description: 'Device logins allowed to carry readings for other devices (a hub, a LoRa gateway). Any other device login carries only its own readings.',
            }),
          ),
          unknownEvents: Type.Optional(
            Type.Object(
              {
                burst: Type.Integer({ minimum: 1, default: 20, description: '`device.unknown` events (and log lines) that may come at once.' }),
                perMinute: Type.Number({ exclusiveMinimum: 0, default: 10, description: 'Events regained per minute after a burst.' }),
              },
              { additionalProperties: false, description: 'Bound on `device.unknown` events and log lines; past it, one summary a minute says how many were held back.' },
            ),
          ),
          learn: Type.Optional(
            Type.Object(
              {
                enabled: Type.Boolean({ default: true, description: 'Learn a silence threshold for devices that set none of their own.' }),
                factor: Type.Number({ minimum: 1.5, maximum: 100, default: 3, description: 'The threshold is this many times the median gap between its messages.' }),
                samples: Type.Integer({ minimum: 2, maximum: 100, default: 5, description: 'Gaps needed first (the last 2 × samples are kept).' }),
                minMs: Type.Integer({ minimum: 1000, default: 300_000, description: 'Never less than this (ms; default 5 minutes).' }),
                maxMs: Type.Integer({ minimum: 1000, default: 172_800_000, description: 'Never more than this (ms; default 2 days).' }),
              },
              {
                additionalProperties: false,
                description: 'Silence thresholds learned from each device\'s own report interval, used until an operator sets `maxSilentMs` (and before its type\'s default).',
              },
            ),
          ),
          declared: Type.Optional(
            Type.Array(DeclaredDevice, {
              description: 'Devices declared here: read-only entries in the registry, beside those added by CLI, API or manifest.',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    codecs: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }), Type.String({ minLength: 1 }), {
        description:
          'LoRaWAN payload codecs (device-repository format, docs/lorawan.md): name → JavaScript file (relative to the config file). A device uses the codec its config names (`codec`), else the one named like its type; it runs on uplinks the network server did not decode.',
      }),
    ),
    alarms: Type.Optional(
      Type.Object(
        {
          remindEveryMs: Type.Optional(
            Type.Integer({ minimum: 60_000, description: 'Raise `alarm.reminder` for an alarm still raised (not acknowledged) this often (ms). Absent: no reminders.' }),
          ),
        },
        { additionalProperties: false, description: 'Alarms (src/devices/alarms.ts, docs/api.md).' },
      ),
    ),
    api: Type.Optional(
      Type.Object(
        {
          host: Type.String({ default: '0.0.0.0', description: 'Address the HTTP API listens on.' }),
          port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Its TCP port; 0 picks a free one (see the log).' }),
          historian: Type.Optional(
            Type.String({ description: 'The `sqlite` sink whose file the API reads readings and events from; default: the first one.' }),
          ),
          trustProxy: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              description:
                'Reverse proxies (addresses or CIDRs, e.g. `127.0.0.1`, `10.0.0.0/8`) whose X-Forwarded-For and X-Forwarded-Proto are believed: rate limits key on the client they name, and `X-Forwarded-Proto: https` makes the session cookie `Secure`. Default: none, the headers are ignored.',
            }),
          ),
          mosquittoGoAuth: Type.Boolean({
            default: false,
            description: 'Serve `/auth/mosquitto/user`, `/superuser` and `/acl` for mosquitto-go-auth\'s HTTP backend (JSON parameters, status responses), answering from the registry (docs/tls.md).',
          }),
          tls: Type.Optional(TlsServerOptions),
          bootstrap: Type.Boolean({
            default: true,
            description: 'Serve `/bootstrap/v1/credentials` and `/bootstrap/v1/config`, where devices fetch their login and config (src/api/README.md).',
          }),
        },
        { additionalProperties: false, description: 'The HTTP API. Absent: none is started.' },
      ),
    ),
    brokerSync: Type.Optional(BrokerSyncOptions),
    store: StoreOptions,
    inputs: Type.Record(Type.String({ pattern: ID_PATTERN }), DriverInstance, { default: {} }),
    sinks: Type.Record(Type.String({ pattern: ID_PATTERN }), DriverInstance),
    routes: Type.Array(Route, { minItems: 1 }),
  },
  { additionalProperties: false },
);

import type { AlarmKeeper } from '../../devices/alarms.js';
// What the REST routes need from the running hub, passed in (no singletons), and the device view they answer with.
import { Type, type Static } from '@sinclair/typebox';
import type { Clock } from '../../core/clock.js';
import type { HistoryReader } from '../../core/history.js';
import type { HubEvent, SinkStatus } from '../../core/types.js';
import type { Metrics } from '../../core/metrics.js';
import { orderReach, type SendCommand } from '../../devices/commands.js';
import { effectiveThresholds, type DeviceTypes } from '../../devices/device-types.js';
import type { LivenessState } from '../../devices/liveness.js';
import type { UplinkCounts } from '../../devices/gate.js';
import type { DeviceStore } from '../../devices/store/index.js';
import type { CommandRecord } from '../../devices/store/orders.js';
import type { TopicScheme } from '../../devices/topics.js';
import type { Device, LorawanState } from '../../devices/types.js';

export interface ApiDeps {
  readonly store: DeviceStore;
  readonly types: DeviceTypes;
  readonly scheme: TopicScheme;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** The historian the readings, latest values and events come from; undefined when the config has none. */
  historian(): HistoryReader | undefined;
  sendCommand(req: SendCommand): Promise<CommandRecord>;
  /** After a change the gate must see at once (a block): re-read the registry. */
  devicesChanged?(): Promise<unknown>;
  /** A password just generated for a device (add, reset-credentials): given to an external broker (brokerSync). */
  passwordIssued?(device: Device, password: string): Promise<void>;
  sinks(): readonly SinkStatus[];
  /** What the liveness monitor knows of a device (fresher than the registry's lastSeen, written in batches). */
  liveness(id: string): LivenessState | undefined;
  /** What the gate counted of a LoRaWAN device's uplinks since the hub started. */
  uplinks?(id: string): UplinkCounts | undefined;
  /** A LoRaWAN device's network side as last heard (fresher than the registry's). */
  lorawan?(id: string): LorawanState | undefined;
  /** The alarms (src/devices/alarms.ts). */
  readonly alarms: Pick<AlarmKeeper, 'list' | 'get' | 'counts' | 'acknowledge' | 'clear'>;
  /** The config as written, secrets as `{"secret": NAME}`. */
  config(): unknown;
  /** Every hub event as it is raised; returns the unsubscribe function. */
  onEvent(listener: (e: HubEvent) => void): () => void;
  /** True once every input started and the registry is open. */
  ready(): boolean;
  readonly startedAt: number;
}

export const LIVENESS = ['active', 'late', 'outdated', 'unknown', 'disabled'] as const;
export type Liveness = (typeof LIVENESS)[number];

/**
 * What the dashboard colours: disabled (grey), outdated (red: silent past its threshold), late (amber: past half of
 * it), active (green), unknown (never heard from, or no threshold).
 */
export function livenessOf(d: Device, types: DeviceTypes, state: LivenessState | undefined, now: number): Liveness {
  if (!d.enabled || d.state === 'BLOCKED') return 'disabled';
  if (state?.online === false) return 'outdated';
  const last = Math.max(state?.lastSeen ?? -Infinity, d.lastSeen ?? -Infinity);
  const max = effectiveThresholds(d, types).maxSilentMs;
  if (!Number.isFinite(last) || max === undefined) return 'unknown';
  const silent = now - last;
  if (silent > max) return 'outdated';
  return silent > max / 2 ? 'late' : 'active';
}

const Location = Type.Object({ site: Type.Optional(Type.String()), building: Type.Optional(Type.String()), room: Type.Optional(Type.String()) });

export const DeviceView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  type: Type.String(),
  location: Location,
  description: Type.String(),
  tags: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  state: Type.String(),
  blockedReason: Type.Optional(Type.String()),
  mode: Type.Optional(Type.Union(['NORMAL', 'WARNING', 'DANGER'].map((m) => Type.Literal(m)), { description: 'The severity mode it last reported of itself.' })),
  thresholds: Type.Object({ maxSilentMs: Type.Optional(Type.Number()), batteryFloor: Type.Optional(Type.Number()) }),
  learnedSilentMs: Type.Optional(Type.Number({ description: 'The silence threshold learned from its cadence (used while it sets none of its own).' })),
  orders: Type.Object(
    {
      accepted: Type.Boolean({ description: 'Orders can reach it now.' }),
      via: Type.Optional(Type.Union([Type.Literal('mqtt'), Type.Literal('lorawan')], { description: '`mqtt`: its command topic; `lorawan`: a downlink through its network server.' })),
      reason: Type.Optional(Type.String({ description: 'Why not, when they cannot.' })),
      forceable: Type.Optional(Type.Boolean({ description: 'Refused only because it never connected: `force` sends anyway.' })),
    },
    { description: 'Whether orders are offered for it (its type takes orders, it is enabled, not BLOCKED, has a command topic, has connected).' },
  ),
  lastSeen: Type.Optional(Type.Number()),
  lastStatus: Type.Optional(Type.Unknown()),
  config: Type.Object({}, { additionalProperties: true }),
  username: Type.Optional(Type.String()),
  passwordIssued: Type.Boolean(),
  claim: Type.Object({
    open: Type.Boolean({ description: 'Its claim window is open: a bootstrap call may fetch its first password.' }),
    until: Type.Optional(Type.Number({ description: 'When the window closes (or closed), ms.' })),
    code: Type.Boolean({ description: 'A claim code is set (never shown).' }),
    claimedAt: Type.Optional(Type.Number({ description: 'When a bootstrap call took its password, ms.' })),
    claimedBy: Type.Optional(Type.String({ description: 'The client address of that call.' })),
  }),
  source: Type.String(),
  topics: Type.Optional(Type.Object({ base: Type.String(), status: Type.String(), command: Type.String() })),
  liveness: Type.Union(LIVENESS.map((l) => Type.Literal(l))),
  uplinks: Type.Optional(
    Type.Object(
      { lastFCnt: Type.Number(), lost: Type.Number(), duplicates: Type.Number(), resets: Type.Number() },
      { description: 'A LoRaWAN device\'s uplinks since the hub started: its last frame counter, uplinks lost (counter gaps), duplicates dropped, counter resets.' },
    ),
  ),
  lorawan: Type.Optional(
    Type.Object(
      {
        ns: Type.String({ description: 'The decoder that read it: `chirpstack`, `tts`.' }),
        input: Type.String({ description: 'The input its uplinks came on (and its downlinks go out on).' }),
        applicationId: Type.Optional(Type.String()),
        tenant: Type.Optional(Type.String()),
        deviceId: Type.Optional(Type.String({ description: 'The network server\'s own device id (The Things Stack).' })),
        fCnt: Type.Optional(Type.Number({ description: 'Its last frame counter.' })),
        fPort: Type.Optional(Type.Number()),
        rssi: Type.Optional(Type.Number({ description: 'dBm, the best gateway\'s, of the last uplink.' })),
        snr: Type.Optional(Type.Number({ description: 'dB, the best gateway\'s, of the last uplink.' })),
        gateways: Type.Optional(Type.Number({ description: 'How many gateways heard the last uplink.' })),
        sf: Type.Optional(Type.Number({ description: 'Spreading factor of the last uplink.' })),
        battery: Type.Optional(Type.Number({ description: '%, from its last status (absent on external power).' })),
        margin: Type.Optional(Type.Number({ description: 'Link margin (dB) from its last status.' })),
        at: Type.Number({ description: 'When its last uplink was received, ms.' }),
      },
      { description: 'A LoRaWAN device\'s network side, kept in the registry: the ids a downlink needs, its signal and battery.' },
    ),
  ),
});
export type DeviceView = Static<typeof DeviceView>;

export function deviceView(stored: Device, deps: Pick<ApiDeps, 'types' | 'scheme' | 'liveness' | 'clock' | 'uplinks' | 'lorawan'>): DeviceView {
  const heard = deps.lorawan?.(stored.id);
  const d: Device = heard ? { ...stored, lorawan: heard } : stored;
  const state = deps.liveness(d.id);
  const uplinks = deps.uplinks?.(d.id);
  const lastSeen = Math.max(state?.lastSeen ?? -Infinity, d.lastSeen ?? -Infinity);
  const topics = deps.scheme.topics(d);
  return {
    id: d.id,
    kind: d.kind,
    type: d.type,
    location: { ...d.location },
    description: d.description,
    tags: [...d.tags],
    enabled: d.enabled,
    state: d.state,
    ...(d.blockedReason !== undefined ? { blockedReason: d.blockedReason } : {}),
    ...(d.mode !== undefined ? { mode: d.mode } : {}),
    thresholds: effectiveThresholds(d, deps.types),
    ...(d.learnedSilentMs !== undefined ? { learnedSilentMs: d.learnedSilentMs } : {}),
    orders: orderReach(d, deps.types, deps.scheme, state?.lastSeen),
    ...(Number.isFinite(lastSeen) ? { lastSeen } : {}),
    ...(d.lastStatus !== undefined ? { lastStatus: d.lastStatus } : {}),
    config: d.config,
    ...(d.credentials ? { username: d.credentials.username } : {}),
    passwordIssued: d.credentials?.passwordIssued ?? false,
    claim: {
      open: d.claim?.until !== undefined && d.claim.until > deps.clock.now(),
      ...(d.claim?.until !== undefined ? { until: d.claim.until } : {}),
      code: d.claim?.codeHash !== undefined,
      ...(d.claim?.claimedAt !== undefined ? { claimedAt: d.claim.claimedAt } : {}),
      ...(d.claim?.claimedBy !== undefined ? { claimedBy: d.claim.claimedBy } : {}),
    },
    source: d.source,
    ...(topics ? { topics: { ...topics } } : {}),
    liveness: livenessOf(d, deps.types, state, deps.clock.now()),
    ...(uplinks ? { uplinks } : {}),
    ...(d.lorawan ? { lorawan: { ...d.lorawan } } : {}),
  };
}

export const CommandView = Type.Object({
  id: Type.String(),
  device: Type.String(),
  order: Type.String(),
  params: Type.Object({}, { additionalProperties: true }),
  actor: Type.String(),
  topic: Type.String(),
  dest: Type.String(),
  sentAt: Type.Number(),
  status: Type.String(),
  doneAt: Type.Optional(Type.Number()),
  result: Type.Optional(Type.Unknown()),
});

export const AuditView = Type.Object({
  seq: Type.Number(),
  at: Type.Number(),
  actor: Type.String(),
  action: Type.String(),
  device: Type.Optional(Type.String()),
  detail: Type.Optional(Type.Object({}, { additionalProperties: true })),
  result: Type.Optional(Type.String()),
});

export const EventView = Type.Object({
  ts: Type.Number(),
  type: Type.String(),
  severity: Type.String(),
  device: Type.Optional(Type.String()),
  message: Type.String(),
  data: Type.Optional(Type.Object({}, { additionalProperties: true })),
});

// The hub's counters and gauges, on a registry of its own (no global default registry, so two hubs in one process,
// as in tests, never share counts), with the process metrics prom-client collects (`process_*`, `nodejs_*`). The
// API serves `registry` at /metrics.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** What the sampled sink gauges need from a sink. */
export interface SinkGaugeSource {
  readonly id: string;
  readonly state: string;
  readonly backlog: number;
  readonly backlogBytes: number;
  readonly oldestAgeMs: number;
}

/** Default metrics left out of the registry (see the constructor). */
export const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/**
 * A counter bumped for every frame or reading: counted in a plain map and handed to prom-client when scraped
 * (`collect`), because prom-client hashes the label object on every `inc`, several times per reading.
 */
export class HotCounter {
  private readonly pending = new Map<string, number>();
  readonly counter: Counter;

  constructor(registry: Registry, name: string, help: string, private readonly label: string) {
    const pending = this.pending;
    this.counter = new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        for (const [value, n] of pending) this.inc({ [label]: value }, n);
        pending.clear();
      },
    });
  }

  inc(labels: Readonly<Record<string, string>>, n = 1): void {
    const value = labels[this.label] ?? '';
    this.pending.set(value, (this.pending.get(value) ?? 0) + n);
  }
}

export class Metrics {
  readonly registry = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // prom-client's sums of the labelled nodejs_active_{handles,requests,resources} gauges are gauges named `_total`,
    // which the exposition format keeps for counters (`promtool check metrics` fails on them). The labelled gauges
    // stay; the sum is `sum(nodejs_active_handles)`.
    for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
  }

  readonly framesTotal = this.hot('backhaul_frames_total', 'Frames received, by input.', 'input');
  readonly framesSkipped = this.counter(
    'backhaul_frames_skipped_total',
    'Frames recognised but carrying no reading (status, prompt, error lines), by input and reason.',
    ['input', 'reason'],
  );
  readonly decodeErrors = this.counter('backhaul_decode_errors_total', 'Frames that failed to decode, by input and error code.', [
    'input',
    'reason',
  ]);
  readonly framesUnacknowledged = this.counter(
    'backhaul_frames_qos0_total',
    'MQTT frames received at QoS 0 (fire-and-forget: the sender gets no acknowledgement and would not resend), by input.',
    ['input'],
  );
  readonly readingsTotal = this.hot('backhaul_readings_total', 'Readings decoded, by input.', 'input');
  readonly uplinksLost = this.counter(
    'backhaul_lorawan_uplinks_lost_total',
    'LoRaWAN uplinks never received, by input: gaps in a device\'s frame counter (a reset after a rejoin is not one).',
    ['input'],
  );
  readonly gateDropped = this.counter(
    'backhaul_gate_dropped_total',
    'Readings the device gate dropped, by input and reason (unknown, disabled, blocked, bad_id, foreign_device, duplicate).',
    ['input', 'reason'],
  );
  readonly registryRejected = this.counter(
    'backhaul_registry_rejected_total',
    'Items of a batched registry write refused one by one (the rest were written), by what (status, last_seen).',
    ['what'],
  );
  readonly brokerSyncChanges = this.counter(
    'backhaul_broker_sync_changes_total',
    'Changes brokerSync made at the external Mosquitto, by action (create, acl, roles, disable, enable, revoke, password, delete, conflict).',
    ['action'],
  );
  readonly brokerSyncFailures = this.counter(
    'backhaul_broker_sync_failures_total',
    'brokerSync syncs or password pushes that failed (Mosquitto unreachable, no answer, a command answered with an error), by what (resync, password).',
    ['what'],
  );
  readonly devicesUnknown = this.counter('backhaul_unknown_device_readings_total', 'Readings from devices not in the registry, by policy.', ['policy']);
  readonly unknownEventsSuppressed = this.counter(
    'backhaul_unknown_device_events_suppressed_total',
    'New unknown devices whose device.unknown event and log line were held back by devices.unknownEvents (the policy still applied).',
    [],
  );
  readonly routeMessages = this.hot('backhaul_route_messages_total', 'Messages that matched a route, by route.', 'route');
  readonly stageDropped = this.counter('backhaul_stage_dropped_total', 'Messages or values a stage removed, by route, stage and reason.', [
    'route',
    'stage',
    'reason',
  ]);
  readonly sinkEnqueued = this.hot('backhaul_sink_enqueued_total', 'Messages put in a sink\'s outbox.', 'sink');
  readonly sinkDelivered = this.hot('backhaul_sink_delivered_total', 'Messages a sink delivered.', 'sink');
  readonly sinkRetries = this.counter('backhaul_sink_retries_total', 'Batch deliveries retried after an error.', ['sink']);
  readonly tlsFailures = this.counter(
    'backhaul_tls_failures_total',
    'TLS connections Backhaul opened that failed (certificate refused or handshake), by client (`sinks.<id>`, `inputs.<id>`) and reason.',
    ['client', 'reason'],
  );
  readonly sinkDropped = this.counter('backhaul_sink_dropped_total', 'Messages a sink dropped, by reason.', ['sink', 'reason']);
  readonly notifySent = this.counter('backhaul_notify_sent_total', 'Notifications a notify sink (ntfy, smtp, webhook) sent, digests included.', ['sink']);
  readonly notifySuppressed = this.counter(
    'backhaul_notify_suppressed_total',
    'Messages a notify sink did not send on their own, by reason (duplicate, reminder, quiet_hours: folded into a digest, rate_limit: held back for now).',
    ['sink', 'reason'],
  );
  // Read from the sinks when scraped, not set on every put and acknowledgement.
  readonly sinkBacklog = this.sampled('backhaul_sink_backlog_items', 'Messages waiting in a sink\'s outbox.', (s) => s.backlog);
  // Read from the sinks when scraped, so they are never stale.
  private sinkSource: () => readonly SinkGaugeSource[] = () => [];
  readonly sinkBacklogBytes = this.sampled('backhaul_sink_backlog_bytes', 'Bytes of messages waiting in a sink\'s outbox.', (s) => s.backlogBytes);
  readonly sinkOldestAge = this.sampled(
    'backhaul_sink_oldest_age_seconds',
    'Age of the oldest message waiting in a sink\'s outbox (0 when empty).',
    (s) => s.oldestAgeMs / 1000,
  );
  readonly sinkUp = this.sampled('backhaul_sink_up', '1 when the sink delivers, 0 when it is retrying or stopped.', (s) => (s.state === 'up' ? 1 : 0));
  readonly inputErrors = this.counter('backhaul_input_errors_total', 'Input failures (connection lost, read error), by input.', ['input']);
  readonly brokerRefused = this.counter(
    'backhaul_broker_refused_total',
    'Connections, logins and packets the embedded MQTT broker refused, by input and reason (packet_too_large, connect_too_large, ' +
      'malformed_length, max_connections, max_connections_per_address, connect_timeout, client_id_empty, client_id_taken, ' +
      'login_rate, login_backoff, bad_login, not_authorized, bad_certificate, qos2_inflight).',
    ['input', 'reason'],
  );
  readonly eventsTotal = this.counter('backhaul_events_total', 'Events raised (device.offline, command.acknowledged, ...), by type and severity.', [
    'type',
    'severity',
  ]);
  readonly apiRateLimited = this.counter(
    'backhaul_api_rate_limited_total',
    'API and bootstrap requests refused with 429 for their client address, by what was limited (session, token, bootstrap).',
    ['limit'],
  );
  readonly bootstrapRefused = this.counter(
    'backhaul_bootstrap_refused_total',
    'Bootstrap credential calls refused, by reason (unknown, no_window, expired, claimed, code, disabled, config).',
    ['reason'],
  );

  private devicesSource: () => Readonly<Record<string, number>> | undefined = () => undefined;
  readonly devicesByState = new Gauge({
    name: 'backhaul_devices',
    help:
      'Devices by state: active (heard within their threshold), outdated (silent longer), unknown (no threshold or not heard yet), ' +
      'blocked (BLOCKED), disabled.',
    labelNames: ['state'],
    registers: [this.registry],
    collect: (() => {
      const read = () => this.devicesSource();
      return function (this: Gauge<'state'>) {
        this.reset();
        for (const [k, v] of Object.entries(read() ?? {})) this.set({ state: k }, v);
      };
    })(),
  });

  private alarmsSource: () => ReadonlyArray<{ readonly kind: string; readonly state: string; readonly n: number }> = () => [];
  readonly alarmsByKind = new Gauge({
    name: 'backhaul_alarms',
    help: 'Open alarms by kind (offline, battery_low, blocked, severity, mode, backlog, failing) and state (raised, acknowledged).',
    labelNames: ['kind', 'state'],
    registers: [this.registry],
    collect: (() => {
      const read = () => this.alarmsSource();
      return function (this: Gauge<'kind' | 'state'>) {
        this.reset();
        for (const { kind, state, n } of read()) this.set({ kind, state }, n);
      };
    })(),
  });

  /** Where the alarms gauge reads from (the hub binds its alarm keeper). */
  bindAlarms(source: () => ReadonlyArray<{ readonly kind: string; readonly state: string; readonly n: number }>): void {
    this.alarmsSource = source;
  }

  /** Where the devices gauge reads from (the hub binds its device gate). */
  bindDevices(source: () => Readonly<Record<string, number>> | undefined): void {
    this.devicesSource = source;
  }

  /** Where the sampled sink gauges read from (the hub binds its sink runners). */
  bindSinks(source: () => readonly SinkGaugeSource[]): void {
    this.sinkSource = source;
  }

  private sampled(name: string, help: string, pick: (s: SinkGaugeSource) => number): Gauge<'sink'> {
    // `collect` runs on every scrape with `this` bound to the gauge; the arrow keeps hold of the Metrics instance.
    const sinks = () => this.sinkSource();
    return new Gauge({
      name,
      help,
      labelNames: ['sink'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sinks()) this.set({ sink: s.id }, pick(s));
      },
    });
  }

  private hot(name: string, help: string, label: string): HotCounter {
    return new HotCounter(this.registry, name, help, label);
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  /** Current value of a counter or gauge for some labels, 0 if never touched. For tests and `status`. */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = this.registry.getSingleMetric(name);
    if (!m) throw new Error(`no metric named ${name}`);
    const data = await m.get();
    let sum = 0;
    for (const v of data.values) {
      if (Object.entries(labels).every(([k, want]) => v.labels[k] === want)) sum += v.value;
    }
    return sum;
  }
}

// The composition root: builds every part from a validated config and wires the data path
//   inputs ──Frame──▶ decoder ──Reading──▶ device gate ──▶ router ──▶ route stages ──▶ sink runners (outbox → sink)
// Nothing here is global: config, logger and clock come in, so tests run several hubs in one process.
import { stableJson } from '../core/json.js';
import { makePrivateDir, wideModeMessage, wideModes } from '../core/private-files.js';
import { isAbsolute, resolve } from 'node:path';
import { systemClock, type Clock } from '../core/clock.js';
import type { LoadedConfig } from './config.js';
import { shownConfig } from './shown-config.js';
import type { BrokerPort, Decode, DeviceNotice, DriverContext, Input, Stage } from '../core/driver.js';
import type { Logger } from '../core/logger.js';
import { InFlight } from '../core/inflight.js';
import { Metrics } from '../core/metrics.js';
import { LogThrottle } from '../core/throttle.js';
import type { Frame, Message, Reading } from '../core/types.js';
import type { OutboxOptions } from '../core/config/schema.js';
import { BackhaulError, errorText, isBackhaulError } from '../core/errors.js';
import { deleteOutboxFile, findOrphanOutboxFiles, journalPath, outboxPath } from '../outbox/files.js';
import { Journal } from '../outbox/journal.js';
import type { Outbox } from '../outbox/outbox.js';
import { DeviceTypes } from '../devices/device-types.js';
import type { Device, JsonObject } from '../devices/types.js';
import { CommandCenter, type DownlinkPort, type SendCommand } from '../devices/commands.js';
import { syncDeclared } from '../devices/declared.js';
import { findDevice } from '../devices/store/rules.js';
import { DeviceGate } from '../devices/gate.js';
import { AlarmKeeper } from '../devices/alarms.js';
import type { AlarmRequest } from './control.js';
import type { DeviceStore } from '../devices/store/index.js';
import { openDeviceStore, openTokenStore } from './stores.js';
import type { CommandRecord } from '../devices/store/orders.js';
import { TopicScheme } from '../devices/topics.js';
import { ApiServer, type ApiPlugin } from '../api/server.js';
import { bootstrapRoutes } from '../api/bootstrap.js';
import { SessionStore } from '../api/auth.js';
import { dashboardRoot, dashboardRoutes } from '../api/dashboard.js';
import { restApi, type ApiDeps } from '../api/rest/index.js';
import { ensureFirstAdmin, type TokenStore } from '../api/tokens.js';
import { existsSync, readFileSync } from 'node:fs';
import type { HistoryReader } from '../core/history.js';
import type { HubEvent } from '../core/types.js';
import { makeEvent } from '../core/events.js';
import { Codec, loadCodecEngine } from '../decoders/codecs.js';
import { flattenValues } from '../decoders/lorawan.js';
import { createHash } from 'node:crypto';
import { SinkRunner, type SinkStatus } from '../outbox/runner.js';
import { Router, type RouteRuntime } from '../pipeline/router.js';
import { BrokerSync, type BrokerSyncStatus, type SyncReport } from './dynsec.js';
import { goAuthRoutes } from '../api/go-auth.js';

export interface HubOptions {
  readonly config: LoadedConfig;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly metrics?: Metrics;
  /** How long `stop()` lets each sink deliver what is queued (the rest waits in its outbox). */
  readonly drainMs?: number;
  /** Delete the outboxes of sinks no longer in the config, even when they still hold messages. */
  readonly discardOrphanOutboxes?: boolean;
  /**
   * The first start with an API creates an admin token: it is handed here once (the CLI prints it) and only its hash
   * is kept.
   */
  readonly onFirstAdminToken?: (token: string) => void;
}

export interface InputStatus {
  readonly id: string;
  readonly type: string;
  readonly info: Readonly<Record<string, string | number>>;
}

export class Hub {
  readonly metrics: Metrics;
  readonly config: LoadedConfig;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly ac = new AbortController();
  private readonly inputs: Array<{ id: string; type: string; input: Input }> = [];
  private readonly runners = new Map<string, SinkRunner>();
  /** The durable journal every `sqlite` outbox is a lane of, and the in-memory one for `memory` outboxes. */
  private journal: Journal | undefined;
  private memoryJournal: Journal | undefined;
  private readonly stages: Stage[] = [];
  private router: Router | undefined;
  private store: DeviceStore | undefined;
  private alarms: AlarmKeeper | undefined;
  private gate: DeviceGate | undefined;
  /** LoRaWAN payload codecs by name (config `codecs`), each in its own sandbox. */
  private readonly codecs = new Map<string, Codec>();
  /**
   * Decoders whose readings carry a LoRaWAN frame counter and maybe a raw payload for a codec (`frameCounter` in their
   * definition); set by loadCodecs, before the gate is made with it.
   */
  private rawDecoders: ReadonlySet<string> = new Set();
  private commands: CommandCenter | undefined;
  /** The external Mosquitto kept in step with the registry (config `brokerSync`). */
  private brokerSync: BrokerSync | undefined;
  private api: ApiServer | undefined;
  private tokens: TokenStore | undefined;
  private historian: HistoryReader | undefined;
  private readonly eventListeners = new Set<(e: HubEvent) => void>();
  private running = false;
  private readonly startedAt: number;
  private readonly inflight = new InFlight();
  private readonly decodeLog: LogThrottle;
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: HubOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.metrics = opts.metrics ?? new Metrics();
    this.decodeLog = new LogThrottle(this.clock);
    this.startedAt = this.clock.now();
    this.metrics.bindSinks(() => this.sinkStatus());
    this.metrics.bindDevices(() => this.gate?.deviceCounts());
    this.metrics.bindAlarms(() => this.alarms?.openCounts() ?? []);
  }

  private context(bindings: Record<string, string>, id: string): DriverContext {
    const dir = this.config.dir;
    return {
      id,
      logger: this.logger.child(bindings),
      metrics: this.metrics,
      clock: this.clock,
      signal: this.ac.signal,
      dataDir: this.config.dataDir,
      resolvePath: (p) => (isAbsolute(p) ? p : resolve(dir, p)),
    };
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('hub already started');
    this.started = true;
    // Looked at before anything is created here: what is wider was made so by someone else, and stays so.
    for (const w of wideModes(this.config.dataDir)) {
      this.logger.warn({ path: w.path, mode: w.mode.toString(8) }, wideModeMessage(w));
    }
    makePrivateDir(this.config.dataDir);
    try {
      // Outboxes first: by the time an input accepts anything, every one exists.
      await this.openJournals();
      for (const spec of this.config.sinks) {
        const ctx = this.context({ sink: spec.id }, spec.id);
        const sink = spec.def.create(spec.options, ctx);
        const outbox = this.openOutbox(spec.id, spec.outbox);
        const opts = {
          ...spec.outbox,
          window: spec.outbox.window ?? spec.def.window ?? 1,
          lingerMs: spec.outbox.lingerMs ?? spec.def.linger ?? 0,
          batchSize: spec.outbox.batchSize ?? spec.def.batchSize ?? 100,
        };
        const runner = new SinkRunner(spec.id, spec.def.type, sink, outbox, opts, { ...ctx, raise: (e) => this.raise(e) });
        this.runners.set(spec.id, runner);
      }

      const routes: RouteRuntime[] = [];
      for (const spec of this.config.routes) {
        const stages: Stage[] = [];
        const route: RouteRuntime = { name: spec.name, match: spec.match, stages, to: spec.to.map((id) => this.runners.get(id)!) };
        spec.stages.forEach((s, i) => {
          const base = this.context({ route: spec.name, stage: s.def.type }, `${spec.name}/${s.def.type}`);
          const stage = s.def.create(s.options, {
            ...base,
            route: spec.name,
            emit: (m: Message) => {
              this.track(this.router!.resume(route, i, m)).catch((e: unknown) => base.logger.error({ err: e }, 'routing stage output failed'));
            },
            dropped: (reason: string, n = 1) => this.metrics.stageDropped.inc({ route: spec.name, stage: s.def.type, reason }, n),
          });
          stages.push(stage);
          this.stages.push(stage);
        });
        routes.push(route);
      }
      this.router = new Router(routes, this.metrics, (e) => this.eventRaised(e));
      // Before any input starts, so it comes first in every sink it is routed to.
      this.raise(this.configApplied());

      const types = new DeviceTypes();
      const scheme = new TopicScheme(types, this.config.devices.topics);
      this.store = await openDeviceStore(this.config.store, this.config.dataDir, { types, clock: this.clock });
      const devLog = this.logger.child({ part: 'devices' });
      const synced = await syncDeclared(this.store, this.config.devices.declared);
      if (synced.created.length + synced.updated.length + synced.removed.length + synced.adopted.length > 0) {
        devLog.info(
          { created: synced.created.length, updated: synced.updated.length, removed: synced.removed, adopted: synced.adopted },
          'devices declared in the config applied to the registry',
        );
      }
      const routeEvent = (e: Message) => {
        this.publish(e).catch((err: unknown) => this.logger.error({ err }, 'routing an event failed'));
      };
      // Before the gate and the sinks start, whose events it turns into alarms (eventRaised hands it every event).
      // Its events are routed after the event that caused them: the keeper sees an event as the router takes it,
      // before the router has put it in the outboxes; a microtask later it has.
      this.alarms = new AlarmKeeper({
        store: this.store.alarms,
        clock: this.clock,
        logger: devLog,
        emit: (e) => queueMicrotask(() => this.raise(e)),
        ...(this.config.alarms.remindEveryMs !== undefined ? { remindEveryMs: this.config.alarms.remindEveryMs } : {}),
        // Alarm events name a device as people call it (its description and room); the gate knows them once started.
        nameOf: (kind, subject) => (kind === 'device' ? (this.gate?.nameOf(subject) ?? subject) : subject),
      });
      await this.alarms.start();
      await this.loadCodecs();
      this.gate = new DeviceGate({
        store: this.store,
        offline: () => this.alarms?.openSubjects('device', 'offline') ?? [],
        blocked: () => this.alarms?.openSubjects('device', 'blocked') ?? [],
        scheme,
        policy: this.config.devices.unknown,
        refreshMs: this.config.devices.refreshMs,
        gateways: this.config.devices.gateways,
        unknownEvents: this.config.devices.unknownEvents,
        idKinds: new Map(this.config.inputs.flatMap((i) => (i.decoder.def.idKind ? [[i.decoder.def.type, i.decoder.def.idKind] as const] : []))),
        frameCounters: this.rawDecoders,
        topicInputs: new Set(this.config.inputs.filter((i) => i.def.topicsProveDevices?.(i.options as never) === true).map((i) => i.id)),
        deviceTypes: new Map(this.config.inputs.flatMap((i) => (i.decoder.def.deviceType ? [[i.decoder.def.type, i.decoder.def.deviceType] as const] : []))),
        ...(this.config.devices.learn ? { learn: this.config.devices.learn } : {}),
        logger: devLog,
        metrics: this.metrics,
        clock: this.clock,
        publish: routeEvent,
        onStatus: (st) => {
          this.commands?.onStatus(st).catch((err: unknown) => devLog.warn({ err, device: st.device }, 'matching an acknowledgement failed'));
        },
      });
      await this.gate.start();
      this.commands = new CommandCenter({
        store: this.store,
        scheme,
        clock: this.clock,
        logger: devLog,
        broker: () => this.brokerPort(),
        ackTimeoutMs: this.config.devices.commandTimeoutMs,
        heardAt: (id) => this.gate?.livenessOf(id)?.lastSeen,
        changed: () => this.devicesChanged(),
        publish: routeEvent,
        downlinks: (input, ns) => this.downlinkPort(input, ns),
        encode: (device, data, fPort) => this.encodeDownlink(device, data, fPort),
        lorawanOf: (id) => this.gate?.lorawanOf(id),
      });

      for (const spec of this.config.inputs) {
        const ctx = this.context({ input: spec.id }, spec.id);
        const decode = spec.decoder.def.create(spec.decoder.options);
        const input = spec.def.create(spec.options, {
          ...ctx,
          emit: (f: Frame) => this.track(this.accept(decode, f, false, ctx.logger)).then(() => undefined),
          emitStrict: (f: Frame) => this.track(this.accept(decode, f, true, ctx.logger)),
          authenticate: (username: string, password: string) => this.gate!.verify(username, password),
          authenticateCertificate: (id: string, fingerprint: string) => this.gate!.verifyCertificate(id, fingerprint),
        });
        this.inputs.push({ id: spec.id, type: spec.def.type, input });
        await input.start();
        ctx.logger.info({ type: spec.def.type, decoder: spec.decoder.def.type, ...(input.info?.() ?? {}) }, 'input started');
      }
      await this.commands.start();
      if (this.config.brokerSync) await this.startBrokerSync(scheme, devLog);
      if (this.config.api) await this.startApi(types, scheme);
      // Sinks connect last: their outboxes took messages from the start, and a sink that publishes back into an
      // embedded broker (the demo) finds it listening.
      for (const runner of this.runners.values()) runner.start();
      this.running = true;
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async startApi(types: DeviceTypes, scheme: TopicScheme): Promise<void> {
    const api = this.config.api!;
    const store = this.store!;
    const log = this.logger.child({ part: 'api' });
    const tokens = await openTokenStore(this.config.store, this.config.dataDir, { clock: this.clock });
    this.tokens = tokens;
    const first = await ensureFirstAdmin(tokens);
    if (first) {
      log.warn({ token: first.info.id, role: 'admin' }, 'created the first API token (admin); it is shown once, on stdout, and only its hash is kept');
      this.opts.onFirstAdminToken?.(first.token);
    }
    const deps: ApiDeps = {
      store,
      types,
      scheme,
      clock: this.clock,
      metrics: this.metrics,
      historian: () => this.openHistorian(),
      sendCommand: (req) => this.sendCommand(req),
      devicesChanged: () => this.devicesChanged(),
      ...(this.brokerSync ? { passwordIssued: (d: Device, password: string) => this.brokerSync!.passwordIssued(d, password) } : {}),
      sinks: () => this.sinkStatus(),
      liveness: (id) => this.gate?.livenessOf(id),
      uplinks: (id) => this.gate?.uplinksOf(id),
      lorawan: (id) => this.gate?.lorawanOf(id),
      alarms: this.alarms!,
      // Secrets as references, and what a schema marks secret but is written inline redacted (config/redact.ts).
      config: () => shownConfig(this.config).tree,
      onEvent: (listener) => this.onEvent(listener),
      ready: () => this.running,
      startedAt: this.startedAt,
    };
    const plugins: ApiPlugin[] = [];
    if (api.bootstrap) {
      plugins.push(
        bootstrapRoutes({
          store,
          scheme,
          clock: this.clock,
          metrics: this.metrics,
          broker: () => this.brokerPort()?.address() ?? this.brokerSync?.address(),
          ...(this.brokerSync ? { passwordIssued: (d: Device, password: string, hash: string) => this.brokerSync!.passwordIssued(d, password, hash) } : {}),
          // Into the router like the device gate's events, so routes can send the alarm anywhere.
          raise: (e) => {
            this.publish(e).catch((err: unknown) => log.error({ err }, 'routing a bootstrap event failed'));
          },
        }),
      );
    }
    plugins.push(restApi(deps, { tokens, sessions: new SessionStore({ clock: this.clock }), clock: this.clock, metrics: this.metrics }, log));
    if (api.mosquittoGoAuth) plugins.push(goAuthRoutes({ store, scheme, verify: (u, p) => this.gate!.verify(u, p) }));
    plugins.push(dashboardRoutes({ root: dashboardRoot() }));
    this.api = new ApiServer({
      host: api.host,
      port: api.port,
      logger: log,
      plugins,
      openapi: { title: 'Backhaul', version: '1' },
      ...(api.trustProxy !== undefined ? { trustProxy: api.trustProxy } : {}),
      ...(api.tls !== undefined ? { tls: { options: api.tls, clock: this.clock } } : {}),
    });
    await this.api.start();
  }

  /** The gate, and the external broker, see a registry change at once (an order, the API). */
  private async devicesChanged(): Promise<void> {
    await this.gate?.refresh();
    this.brokerSync?.changed();
  }

  /**
   * brokerSync: connects in the background and syncs on every connect (a Mosquitto down at start does not stop the
   * start). Declared devices' passwords come from the config, so Mosquitto may be given those.
   */
  private async startBrokerSync(scheme: TopicScheme, log: Logger): Promise<void> {
    const passwords = new Map<string, string>();
    for (const dd of this.config.devices.declared) {
      if (typeof dd.password !== 'string') continue;
      const d = await findDevice(this.store!, dd.id, dd.kind).catch(() => undefined);
      if (d?.credentials) passwords.set(d.credentials.username, dd.password);
    }
    this.brokerSync = new BrokerSync({
      config: this.config.brokerSync!,
      store: this.store!,
      scheme,
      logger: log.child({ part: 'brokerSync' }),
      clock: this.clock,
      refreshMs: this.config.devices.refreshMs,
      passwords,
      metrics: this.metrics,
    });
    await this.brokerSync.start();
  }

  /** A full resync of the external Mosquitto now (`backhaul devices sync-broker` asks the CLI's own; tests). */
  /** brokerSync's state for `backhaul status`; undefined without brokerSync. */
  brokerSyncStatus(): BrokerSyncStatus | undefined {
    return this.brokerSync?.status();
  }

  syncBroker(): Promise<SyncReport> {
    if (!this.brokerSync) return Promise.reject(new BackhaulError('BH_BROKER_SYNC', 'the config has no brokerSync', { path: 'brokerSync' }));
    return this.brokerSync.resync();
  }

  /** `backhaul alarms` through the control socket. */
  alarmsRequest(req: AlarmRequest): Promise<unknown> {
    const keeper = this.alarms;
    if (!keeper) return Promise.reject(new BackhaulError('BH_NOT_RUNNING', 'the hub is not running'));
    if (req.action === 'list') return keeper.list(req.query);
    return req.action === 'ack' ? keeper.acknowledge(req.id, req.by, req.note) : keeper.clear(req.id, req.by, req.note);
  }

  /** The history the API reads (read-only): the sink `api.historian` names, else the first that keeps history. */
  private openHistorian(): HistoryReader | undefined {
    if (this.historian?.isOpen) return this.historian;
    const want = this.config.api?.historian;
    const spec = this.config.sinks.find((s) => s.def.openHistory !== undefined && (want === undefined || s.id === want));
    if (!spec?.def.openHistory) return undefined;
    this.historian = spec.def.openHistory(spec.options, this.context({ sink: spec.id }, spec.id));
    return this.historian;
  }

  /** Route an event the hub raised; nothing waits for it (the router counts and logs what fails). */
  /** Every hub event as it is routed (the API's live feed, tests); returns the unsubscribe function. */
  onEvent(listener: (e: HubEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  private raise(e: HubEvent): void {
    this.publish(e).catch((err: unknown) => this.logger.error({ err, event: e.type }, 'routing an event failed'));
  }

  /** `config.applied`: which config this hub runs, by its hash. */
  private configApplied(): HubEvent {
    const hash = configHash(this.config);
    const c = this.config;
    const counts = { inputs: c.inputs.length, routes: c.routes.length, sinks: c.sinks.length };
    return makeEvent(
      'config.applied',
      { source: c.source, hash, ...counts },
      { ts: this.clock.now(), message: `config ${c.source} applied (${hash.slice(0, 12)}): ${counts.inputs} input(s), ${counts.routes} route(s), ${counts.sinks} sink(s)` },
    );
  }

  /** An event entered the router (or a stage made one): count it and tell the live feeds. */
  private eventRaised(e: HubEvent): void {
    this.metrics.eventsTotal.inc({ type: e.type, severity: e.severity });
    this.alarms?.observe(e);
    for (const l of this.eventListeners) {
      try {
        l(e);
      } catch (err) {
        this.logger.warn({ err }, 'an event listener failed');
      }
    }
  }

  /** The broker devices connect to (the first `broker` input), for orders and bootstrap answers. */
  private brokerPort(): BrokerPort | undefined {
    return this.inputs.find((i) => i.input.broker !== undefined)?.input.broker;
  }

  /** Send an order to a device (from the CLI over the control socket, or the REST API). See devices/commands.ts. */
  sendCommand(req: SendCommand): Promise<CommandRecord> {
    if (!this.commands) return Promise.reject(new Error('the hub is not running'));
    return this.commands.send(req);
  }

  /**
   * Re-read the certificate files of every TLS listener (the inputs', the API's) now, as on SIGHUP: new connections
   * get the renewed certificate, open ones stay. Lists who took the new files and who refused them (logged each).
   */
  reloadCertificates(): { reloaded: string[]; refused: string[] } {
    const out = { reloaded: [] as string[], refused: [] as string[] };
    const note = (who: string, r: boolean | undefined) => {
      if (r === true) out.reloaded.push(who);
      else if (r === false) out.refused.push(who);
    };
    for (const { id, input } of this.inputs) note(`inputs.${id}`, input.reloadCertificates?.());
    note('api', this.api?.reloadCertificates());
    return out;
  }

  /** The HTTP API's address, when the config has one. */
  apiUrl(): string | undefined {
    return this.api?.url;
  }

  /**
   * One durable journal for every `sqlite` outbox (it syncs as the strictest of them asks), brought up to date from
   * per-sink outbox files an earlier version left; then what sinks removed from the config left behind.
   */
  private async openJournals(): Promise<void> {
    this.memoryJournal = Journal.memory(this.clock);
    const durable = this.config.sinks.filter((s) => s.outbox.type === 'sqlite');
    const path = journalPath(this.config.dataDir);
    const ids = new Set(this.config.sinks.map((s) => s.id));
    if (durable.length > 0 || existsSync(path)) {
      const migrate = durable.map((s) => [s.id, outboxPath(this.config.dataDir, s.id)] as const).filter(([, p]) => existsSync(p));
      try {
        this.journal = await Journal.open({
          path,
          sync: durable.some((s) => s.outbox.sync === 'full') || durable.length === 0 ? 'full' : 'normal',
          clock: this.clock,
          lanes: durable.map((s) => s.id),
          migrate,
        });
      } catch (e) {
        throw new BackhaulError('BH_OUTBOX_OPEN', `cannot open the journal ${path}: ${errorText(e)}`, {
          path: 'sinks',
          cause: e,
        });
      }
      if (migrate.length > 0) this.logger.info({ sinks: migrate.map(([id]) => id) }, 'brought the outbox files of an earlier version into the journal');
      for (const o of this.journal.orphans(ids)) this.orphan(o.sink, o.items, path, () => this.journal!.discard(o.sink));
    }
    for (const o of findOrphanOutboxFiles(this.config.dataDir, ids)) {
      if (o.items === 0) deleteOutboxFile(o.path);
      else this.orphan(o.sink, o.items, o.path, () => deleteOutboxFile(o.path));
    }
  }

  private openOutbox(sinkId: string, o: OutboxOptions): Outbox {
    const limits = { maxItems: o.maxItems, maxBytes: o.maxBytes, overflow: o.overflow };
    if (o.type === 'memory' || !this.journal) return this.memoryJournal!.lane(sinkId, limits);
    return this.journal.lane(sinkId, limits);
  }

  /**
   * A sink removed from the config may leave undelivered messages in its queue. They are kept (and reported) until
   * the sink comes back, unless the operator asked to discard them.
   */
  private orphan(sink: string, items: number, path: string, discard: () => void): void {
    if (this.opts.discardOrphanOutboxes) {
      discard();
      this.logger.warn({ sink, items, path }, 'discarded the outbox of a sink no longer in the config');
      return;
    }
    this.logger.warn(
      { sink, items, path },
      `sink "${sink}" is no longer in the config but its outbox keeps ${items < 0 ? 'an unreadable number of' : items} message(s); ` +
        'put the sink back to deliver them, or start with --discard-orphan-outboxes to delete them',
    );
  }

  private track<T>(p: Promise<T>): Promise<T> {
    return this.inflight.track(p);
  }

  /** Decode a frame and route its readings. Returns the number of readings; never rejects unless `strict`. */
  private async accept(decode: Decode, frame: Frame, strict: boolean, log: Logger): Promise<number> {
    const input = frame.input;
    this.metrics.framesTotal.inc({ input });
    if (this.gate!.status(frame)) {
      // A logged-in device's status on `<base>/device`: kept as its last status, not decoded as readings.
      this.metrics.framesSkipped.inc({ input, reason: 'device_status' });
      return 0;
    }
    let result;
    try {
      result = decode(frame);
    } catch (e) {
      const code = isBackhaulError(e) ? e.code : 'internal';
      this.metrics.decodeErrors.inc({ input, reason: code });
      const suppressed = this.decodeLog.take(`${input}:${code}`);
      if (suppressed !== null) {
        const fields = isBackhaulError(e) ? { code, path: e.path } : { code, err: e };
        log.warn({ ...fields, topic: frame.topic, earlierSuppressed: suppressed }, `frame dropped: ${errorText(e)}`);
      }
      if (strict) throw e;
      return 0;
    }
    if ('skipped' in result) {
      this.metrics.framesSkipped.inc({ input, reason: result.skipped });
      if (result.notice) this.noticed(result.notice, input);
      return 0;
    }
    this.metrics.readingsTotal.inc({ input }, result.readings.length);
    // Every reading of the frame is handed to its outboxes before anything awaits, so frames emitted back to back
    // (a pipelining input) keep their order in every outbox.
    const pending: Array<Promise<void>> = [];
    for (const r of result.readings) {
      const admitted = this.gate!.admit(r, frame);
      const decoded = admitted && this.decodeRaw(admitted, log);
      if (decoded) pending.push(this.router!.route(decoded));
    }
    await Promise.all(pending);
    return result.readings.length;
  }

  /** Load the config's payload codecs into their sandboxes; a codec that does not load stops the start (BH_CODEC_LOAD). */
  private async loadCodecs(): Promise<void> {
    this.rawDecoders = new Set(this.config.inputs.flatMap((i) => (i.decoder.def.frameCounter === true ? [i.decoder.def.type] : [])));
    const entries = Object.entries(this.config.codecs);
    if (entries.length === 0) return;
    const engine = await loadCodecEngine();
    for (const [name, file] of entries) {
      let source: string;
      try {
        source = readFileSync(file, 'utf8');
      } catch (e) {
        throw new BackhaulError('BH_CODEC_LOAD', `cannot read codec ${name} (${file}): ${(e as NodeJS.ErrnoException).code ?? errorText(e)}`, { path: `codecs.${name}` });
      }
      this.codecs.set(name, new Codec(engine, name, source));
    }
    this.logger.info({ codecs: [...this.codecs.keys()] }, 'payload codecs loaded');
  }

  /**
   * A LoRaWAN uplink the network server did not decode carries its bytes (`payload`, hex) and `fPort`: the device's
   * codec decodes them into its values. No codec for it: kept raw. A codec that fails drops that uplink only,
   * counted as a decode error with its code.
   */
  private decodeRaw(r: Reading, log: Logger): Reading | undefined {
    const payload = r.values['payload'];
    if (this.codecs.size === 0 || typeof payload !== 'string' || !this.rawDecoders.has(r.source.decoder)) return r;
    const name = this.gate!.codecsOf(r.device).find((n) => this.codecs.has(n));
    if (name === undefined) return r;
    const { payload: _p, fPort, ...rest } = r.values;
    try {
      const out = this.codecs.get(name)!.decodeUplink({ bytes: [...Buffer.from(payload, 'hex')], fPort: typeof fPort === 'number' ? fPort : 0, recvTime: new Date(r.ts).toISOString() });
      return { ...r, values: { ...flattenValues(out.data, `codecs.${name}`), ...rest } };
    } catch (e) {
      const code = isBackhaulError(e) ? e.code : 'internal';
      this.metrics.decodeErrors.inc({ input: r.source.input, reason: code });
      const suppressed = this.decodeLog.take(`${r.source.input}:codec:${code}`);
      if (suppressed !== null) log.warn({ code, device: r.device, codec: name, earlierSuppressed: suppressed }, `uplink dropped: ${errorText(e)}`);
      return undefined;
    }
  }

  /**
   * A device notice from a decoder: a LoRaWAN join (the gate starts its frame counter again, and routes say so), a
   * network server's answer to a downlink (settles its order), or its error log (an event).
   */
  private noticed(n: DeviceNotice, input: string): void {
    const id = n.device;
    let e: HubEvent;
    if (n.kind === 'downlink') {
      this.commands?.onDownlink(n).catch((err: unknown) => this.logger.warn({ err, device: id, command: n.command }, 'settling a downlink failed'));
      return;
    }
    if (n.kind === 'network_error') {
      e = makeEvent('device.network_error', { input, code: n.code, level: n.level, description: n.description }, { ts: n.ts, device: id, message: `network server on ${id}: ${n.code} ${n.description}`.trim() });
    } else {
      this.gate!.joined(id);
      e = makeEvent('device.joined', { input, ...(n.devAddr !== undefined ? { devAddr: n.devAddr } : {}) }, { ts: n.ts, device: id, message: `LoRaWAN device ${id} joined${n.devAddr !== undefined ? ` (address ${n.devAddr})` : ''}` });
    }
    this.publish(e).catch((err: unknown) => this.logger.error({ err }, 'routing an event failed'));
  }

  /** The way to a network server through an input: its decoder is that NS's and it can publish on its connection. */
  private downlinkPort(id: string, ns: string): DownlinkPort | undefined {
    const spec = this.config.inputs.find((i) => i.id === id);
    const format = spec?.decoder.def.downlink;
    const input = this.inputs.find((i) => i.id === id)?.input;
    if (!format || spec.decoder.def.type !== ns || !input?.publish) return undefined;
    return { format, publish: (topic, payload) => input.publish!(topic, payload) };
  }

  /** An order's parameters as a downlink, by the first of the device's codecs that defines encodeDownlink. */
  private encodeDownlink(device: string, data: JsonObject, fPort: number | undefined): { bytes: Uint8Array; fPort: number } | undefined {
    const name = this.gate?.codecsOf(device).find((n) => this.codecs.get(n)?.encodes === true);
    if (name === undefined) return undefined;
    const out = this.codecs.get(name)!.encodeDownlink({ data, ...(fPort !== undefined ? { fPort } : {}) });
    const port = out.fPort ?? fPort;
    if (port === undefined) throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${name}: encodeDownlink gave no fPort, and the device's config names none`, { path: `codecs.${name}.fPort` });
    return { bytes: out.bytes, fPort: port };
  }

  /** Route a message the hub itself produced (an Event). */
  publish(msg: Message): Promise<void> {
    return this.router ? this.track(this.router.route(msg)) : Promise.resolve();
  }

  inputStatus(): InputStatus[] {
    return this.inputs.map(({ id, type, input }) => ({ id, type, info: input.info?.() ?? {} }));
  }

  sinkStatus(): SinkStatus[] {
    return [...this.runners.values()].map((r) => r.status());
  }

  /** Graceful stop: inputs stop accepting, in-flight frames finish, stages stop, sinks deliver what is queued and close. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.running = false;
    const drainMs = this.opts.drainMs ?? 5000;
    // Inputs wait for their in-flight frames; a frame blocked on a full outbox (overflow `block`, sink down) would
    // wait forever, so after drainMs the outboxes close and such frames fail: they were never acknowledged, and
    // their senders resend them.
    const unblock = setTimeout(() => {
      this.logger.warn('inputs still waiting for full outboxes; closing the outboxes so the stop can finish');
      for (const r of this.runners.values()) void r.closeOutbox();
    }, drainMs);
    const inputsStopped = (async () => {
      for (const { id, input } of [...this.inputs].reverse()) {
        try {
          await input.stop();
        } catch (e) {
          this.logger.warn({ input: id, err: e }, 'input stop failed');
        }
      }
      await this.inflight.settle();
    })();
    await inputsStopped;
    clearTimeout(unblock);
    for (const s of this.stages) s.stop?.();
    // What stages emitted on stop (a closing window) is still on its way into the outboxes.
    await this.inflight.settle();
    await Promise.all([...this.runners.values()].map((r) => r.stop(drainMs)));
    try {
      await this.journal?.close();
    } catch (e) {
      this.logger.warn({ err: e }, 'closing the journal failed');
    }
    this.commands?.stop();
    try {
      await this.brokerSync?.stop();
    } catch (e) {
      this.logger.warn({ err: e }, 'closing the brokerSync connection failed');
    }
    try {
      await this.api?.stop();
      await this.tokens?.close();
      this.historian?.close();
    } catch (e) {
      this.logger.warn({ err: e }, 'closing the HTTP API failed');
    }
    try {
      await this.gate?.stop();
      for (const c of this.codecs.values()) c.dispose();
      this.codecs.clear();
      await this.alarms?.stop();
      await this.store?.close();
    } catch (e) {
      this.logger.warn({ err: e }, 'closing the device registry failed');
    }
    this.ac.abort();
  }
}

/**
 * SHA-256 (hex) of the config as the API shows it (secrets as references, inline ones redacted: no secret goes into
 * it, so a changed secret value does not change it), its keys sorted (the order they are written in does not count).
 */
export function configHash(config: LoadedConfig): string {
  return createHash('sha256').update(stableJson(shownConfig(config).tree)).digest('hex');
}

// The device gate: every Reading passes it between the decoder and the router. It knows every device from an
// in-memory view of the registry (the hot path does no I/O), applies the unknown-device policy, drops readings of
// disabled and BLOCKED devices, marks readings `authenticated` when the transport identity proves the device, makes
// device ids canonical, and records last-seen times in batches. A device's login decides whose readings its frames
// may carry: its own only, unless the config declares it a gateway for others (BH_DEVICE_FOREIGN otherwise). It also
// answers for devices at the broker: a login becomes a Principal whose topic ACL reads the same view (so disabling or
// moving a device applies to connections already open, from the next refresh), and a device's status message on
// `<base>/device` is kept as its last status.
import type { Clock, ClockTimer } from '../core/clock.js';
import { BackhaulError, errorText, isBackhaulError, type ErrorCode } from '../core/errors.js';
import { checkJsonBounds } from '../core/json.js';
import { RateLimiter } from '../core/ratelimit.js';
import { LogThrottle } from '../core/throttle.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { Principal } from '../core/driver.js';
import { makeEvent } from '../core/events.js';
import type { Frame, HubEvent, LorawanMeta, Reading } from '../core/types.js';
import type { DeviceStore, Lease } from './store/index.js';
import type { TouchItem } from './store/devices.js';
import type { RehashItem } from './store/credentials.js';
import { effectiveThresholds, isSelfDescription } from './device-types.js';
import { gatewayMatcher, type GatewayConfig } from './gateways.js';
import { LivenessMonitor, type LivenessState } from './liveness.js';
import { COMMAND_LEVEL, mayPublish, maySubscribe, STATUS_LEVEL, type AclSubject, type TopicScheme } from './topics.js';
import { guessIdKind, isDeviceMode, isIdKind, normaliseId, type Device, type DeviceMode, type DeviceState, type IdKind, type JsonValue, type LorawanState, type Thresholds } from './types.js';
import type { ObservedItem } from './store/devices.js';
import { CadenceLearner, FrameCounters, type LearnOptions, type UplinkCounts } from './cadence.js';

export type { LearnOptions, UplinkCounts } from './cadence.js';

export type UnknownPolicy = 'register' | 'quarantine' | 'drop';

/** The description the gate gives a device it registers on first sight (below): it says how it came, not what it is. */
const FIRST_SIGHT = /^(registered|quarantined) on first sight, /;

interface Known {
  readonly enabled: boolean;
  readonly state: DeviceState;
  /** Its device type's name. */
  readonly type: string;
  /** The operator set its maxSilentMs: nothing is learned. */
  readonly ownSilent: boolean;
  /** The mode it last reported. */
  readonly mode: DeviceMode | undefined;
  /** The silence threshold learned from its cadence, if any (in `thresholds` unless its own is set). */
  readonly learned: number | undefined;
  /** How people call it: `big radiator, u4/302`, or `valve 819c` without a description. */
  readonly name: string;
  readonly username: string | undefined;
  /** When its password was last set: a login verified against an older one loses its rights. */
  readonly credentialsAt: number | undefined;
  /** The fingerprint of the client certificate it may log in with: a login made with another one loses its rights. */
  readonly fingerprint: string | undefined;
  /** Effective thresholds (the device's own, else its type's defaults), for liveness. */
  readonly thresholds: Thresholds;
  /** The type's topic name, to name the device in messages (`valve 819c`). */
  readonly kindName: string;
  /** The payload codec its config names (`codec`), if any; else one named like its type applies. */
  readonly codec: string | undefined;
  /** Undefined while the device has no location complete enough for topics. */
  readonly baseTopic: string | undefined;
}

/** A status message a device sent on its status topic, parsed. */
export interface DeviceStatus {
  readonly device: string;
  readonly at: number;
  readonly status: JsonValue;
}

export interface DeviceGateOptions {
  readonly store: DeviceStore;
  /** Devices offline already at start (their offline alarm is open): no second device.offline for the same silence. */
  readonly offline?: () => readonly string[];
  readonly scheme: TopicScheme;
  readonly policy: UnknownPolicy;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** Hub events (device.unknown) go here, into the router. */
  readonly publish: (e: HubEvent) => void;
  /** How often the view is reloaded from the registry (changes made by the CLI in another process). */
  readonly refreshMs?: number;
  /**
   * Inputs whose broker lets only a device publish under its own base topic (InputDefinition.topicsProveDevices):
   * a reading there on the device's base topic, shared with no other device, is authenticated.
   */
  readonly topicInputs?: ReadonlySet<string>;
  /** How often last-seen times are written. */
  readonly touchMs?: number;
  /** Each status message of a logged-in device (after it is recorded), for command acknowledgements. */
  readonly onStatus?: (s: DeviceStatus) => void;
  /** Device logins that may carry readings for other devices (`devices.gateways`). */
  readonly gateways?: readonly GatewayConfig[];
  /** Bound on device.unknown events and their log lines (`devices.unknownEvents`); absent: no bound. */
  readonly unknownEvents?: { readonly burst: number; readonly perMinute: number };
  /** The id kind of each decoder's readings, for decoders that declare one (`idKind` in their definition). */
  readonly idKinds?: ReadonlyMap<string, IdKind>;
  /** The device type a device first seen through a decoder gets (`deviceType` in its definition); else `generic`. */
  readonly deviceTypes?: ReadonlyMap<string, string>;
  /** Learn silence thresholds from devices' own cadence (`devices.learn`); absent: never. */
  readonly learn?: LearnOptions;
  /** Decoders whose readings' seq is a LoRaWAN frame counter (`frameCounter` in their definition). */
  readonly frameCounters?: ReadonlySet<string>;
  /** Devices whose blocked alarm is open (at start: a block made while the hub was down raises one). */
  readonly blocked?: () => readonly string[];
}

/** A device's name for people; the description the gate writes for devices it registered does not count. */
function nameOf(d: Device, kindName: string): string {
  const where = [d.location.building, d.location.room].filter((x) => x !== undefined && x !== '').join('/');
  const desc = d.description.trim();
  const own = desc !== '' && !FIRST_SIGHT.test(desc) ? desc : `${kindName} ${d.id}`;
  return where === '' ? own : `${own}, ${where}`;
}


/** How long held-back device.unknown events are gathered before one summary says how many. */
const UNKNOWN_SUMMARY_MS = 60_000;

/**
 * A verified device login, as the broker keeps it for the connection's life: a few fields and the gate, no closures
 * and not the Device record it was checked against (10,000 connected devices are 10,000 of these). As an AclSubject
 * it is the device as the login read it.
 */
/** Certificate logins are named `x509:<device id>`: a frame's identity tells them from password logins. */
export const CERT_LOGIN_PREFIX = 'x509:';

export function certificateLogin(id: string): string {
  return CERT_LOGIN_PREFIX + id;
}

class DeviceLogin implements Principal, AclSubject {
  constructor(
    private readonly gate: DeviceGate,
    readonly username: string,
    readonly device: string,
    /** When the password the login proved was set. */
    readonly setAt: number | undefined,
    readonly enabled: boolean,
    readonly state: DeviceState,
    readonly baseTopic: string | undefined,
    /** A certificate login: the fingerprint it proved. */
    readonly fingerprint?: string,
  ) {}

  mayPublish(topic: string): boolean {
    return mayPublish(this.gate.subjectOf(this), topic);
  }

  maySubscribe(filter: string): boolean {
    return maySubscribe(this.gate.subjectOf(this), filter);
  }
}

export class DeviceGate {
  private known = new Map<string, Known>();
  /** Login → device id. */
  private logins = new Map<string, string>();
  private readonly seen = new Map<string, number>();
  private readonly statuses = new Map<string, { at: number; status: JsonValue }>();
  private readonly announced = new Set<string>();
  private timer: ClockTimer | undefined;
  private lastRefresh = 0;
  /** The store's changeToken when the view was last read: an unchanged registry is not listed again. */
  private token: string | undefined;
  private stopped = false;
  private writes: Promise<unknown> = Promise.resolve();
  private liveness: LivenessMonitor | undefined;
  /** Logins this gate verified → their device, kept across refreshes: such a login stays a device login. */
  private readonly verified = new Map<string, string>();
  private readonly mayForward: (login: string, id: string) => boolean;
  private readonly foreignLog: LogThrottle;
  private readonly unknownLimit: RateLimiter | undefined;
  /** device.unknown events held back since the last summary. */
  private held: { count: number; first: string; since: number; timer: ClockTimer } | undefined;
  private warnings: LogThrottle | undefined;
  /** Generated passwords verified against their old scrypt hash, by device: the fast hash to store, at the next tick. */
  private readonly rehashes = new Map<string, RehashItem>();
  private readonly keyLog: LogThrottle;
  /** A fast hash nothing matches, checked when there is no device or no hash, so that costs the same microseconds. */
  private dummy: string | undefined;
  /** Devices learning their silence threshold (those without one of their own); undefined when learning is off. */
  private readonly cadence: CadenceLearner | undefined;
  /** LoRaWAN frame counters by device. */
  private readonly uplinks = new FrameCounters();
  /** Learned thresholds, modes and LoRaWAN network sides not written yet, by device. */
  private readonly observed = new Map<string, ObservedItem>();
  /** Base topic → the one device with a login that may publish there, or null when several may (topicInputs). */
  private topicHolders = new Map<string, string | null>();
  /** LoRaWAN devices' network side (NS ids, signal, battery), fresher than the registry's. */
  private readonly lorawan = new Map<string, LorawanState>();

  constructor(private readonly o: DeviceGateOptions) {
    this.cadence = o.learn && new CadenceLearner(o.learn);
    this.mayForward = gatewayMatcher(o.gateways ?? []);
    this.foreignLog = new LogThrottle(o.clock);
    this.keyLog = new LogThrottle(o.clock);
    const u = o.unknownEvents;
    // One key: the bound is on the whole flood, whoever sends it. No failures are recorded, so no backoff.
    this.unknownLimit = u && new RateLimiter(o.clock, { burst: u.burst, perSecond: u.perMinute / 60, failuresBeforeBackoff: Infinity, backoffMs: 0, maxBackoffMs: 0, maxKeys: 1 });
  }

  /** A warning at most once a minute per key, with how many were held back. */
  private warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const suppressed = (this.warnings ??= new LogThrottle(this.o.clock)).take(key);
    if (suppressed !== null) this.o.logger.warn({ ...fields, ...(suppressed > 0 ? { earlierSuppressed: suppressed } : {}) }, msg);
  }

  async start(): Promise<void> {
    const devices = await this.refresh();
    // A registry several instances share: one of them (the lease's holder) says device.offline and device.online for
    // the whole cluster, judging by the last-seen times every instance writes.
    this.lease = await this.o.store.lease?.('liveness');
    this.liveness = new LivenessMonitor({
      clock: this.o.clock,
      emit: (ev) => this.livenessEvent(ev),
      thresholdsOf: (id) => this.known.get(id)?.thresholds,
      describe: (id) => `${this.known.get(id)?.kindName ?? 'device'} ${id}`,
    });
    for (const d of devices) {
      if (!d.lorawan) continue;
      this.lorawan.set(d.id, d.lorawan);
      // A restart still tells the NS's repeat of the last uplink from a new one.
      if (d.lorawan.fCnt !== undefined) this.uplinks.seed(d.id, d.lorawan.fCnt);
    }
    const offline = new Set(this.o.offline?.() ?? []);
    this.liveness.start(devices.map((d) => ({ id: d.id, lastSeen: d.lastSeen, ...(offline.has(d.id) ? { offline: true } : {}) })));
    // Blocked or unblocked (by the CLI) while the hub was down: the alarm follows.
    const alarmed = new Set(this.o.blocked?.() ?? []);
    for (const d of devices) {
      if (d.state === 'BLOCKED' && !alarmed.has(d.id)) this.stateChanged(d.id, 'BLOCKED', d.blockedReason ?? 'blocked', 'operator');
      alarmed.delete(d.id);
    }
    for (const id of alarmed) if (this.known.get(id)?.state !== 'BLOCKED') this.stateChanged(id, 'INIT', undefined, 'operator');
    this.schedule();
    // A registry other instances share tells of their changes: refreshed at once, not at the next look.
    if (this.o.store.onChange) this.unwatch = await this.o.store.onChange(() => this.changedElsewhere());
    await this.followCluster().catch((e: unknown) => this.o.logger.warn({ err: errorText(e) }, 'reading the cluster\'s liveness failed; the next tick retries'));
  }

  private unwatch: (() => Promise<void>) | undefined;
  private lease: Lease | undefined;
  /** Whether this instance held the liveness lease at the last look (a takeover re-reads what is offline). */
  private leading = false;
  /** Devices whose device.offline the cluster published (their offline alarm is open), by this instance or another. */
  private readonly offlineShared = new Set<string>();
  /** The newest last-seen time read from the shared registry. */
  private seenMark = 0;

  /**
   * Liveness events of a cluster: only the lease holder's pass. Its device.offline first asks the registry whether
   * another instance heard the device since (then it was not silent: the deadline moves on, nothing is said); its
   * device.online only answers a device.offline the cluster published.
   */
  private livenessEvent(ev: HubEvent): void {
    if (!this.lease || (ev.type !== 'device.offline' && ev.type !== 'device.online') || ev.device === undefined) {
      this.o.publish(ev);
      return;
    }
    if (!this.lease.held) return; // the holder judges it
    const id = ev.device;
    if (ev.type === 'device.online') {
      if (this.offlineShared.delete(id)) this.o.publish(ev);
      return;
    }
    const judged = (ev.data as { lastSeen?: unknown }).lastSeen;
    this.o.store.get(id).then(
      (d) => {
        const seen = d?.lastSeen;
        if (seen !== undefined && typeof judged === 'number' && seen > judged) {
          this.liveness?.heard(id, seen);
          return;
        }
        this.offlineShared.add(id);
        this.o.publish(ev);
      },
      (e: unknown) => {
        this.o.logger.warn({ err: errorText(e), device: id }, 'the registry could not say whether another instance heard the device; device.offline raised');
        this.offlineShared.add(id);
        this.o.publish(ev);
      },
    );
  }

  /**
   * The lease holder, each tick: on taking the lease, what the cluster holds offline (open offline alarms); then the
   * signs of life other instances wrote since the last look, which move deadlines (and answer an offline device with
   * device.online).
   */
  private async followCluster(): Promise<void> {
    const lease = this.lease;
    const seenSince = this.o.store.seenSince?.bind(this.o.store);
    if (!lease || !seenSince) return;
    const held = lease.held;
    if (held && !this.leading) {
      this.offlineShared.clear();
      for (const a of await this.o.store.alarms.allOpen()) if (a.subjectKind === 'device' && a.kind === 'offline') this.offlineShared.add(a.subject);
      this.o.logger.info({ offline: this.offlineShared.size }, 'this instance now judges device liveness for the cluster');
    }
    this.leading = held;
    if (!held) return;
    const rows = await seenSince(this.seenMark);
    for (const r of rows) {
      if (r.lastSeen > this.seenMark) this.seenMark = r.lastSeen;
      const local = this.liveness?.state(r.id);
      if (local?.lastSeen !== undefined && local.lastSeen >= r.lastSeen) continue;
      if (local?.online === false && this.offlineShared.has(r.id)) this.liveness?.observe({ device: r.id }, r.lastSeen);
      else this.liveness?.heard(r.id, r.lastSeen);
    }
  }
  private refreshing: Promise<void> | undefined;
  private again = false;

  /** A change notice: one refresh at a time, and one more after it when notices came in meanwhile. */
  private changedElsewhere(): void {
    if (this.stopped) return;
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = this.refreshIfChanged()
      .catch((e: unknown) => this.o.logger.warn({ err: errorText(e) }, 'device registry refresh after a change notice failed; the next look retries'))
      .finally(() => {
        this.refreshing = undefined;
        if (this.again) {
          this.again = false;
          this.changedElsewhere();
        }
      });
  }

  /** Devices by state for metrics: active, outdated, unknown (by liveness), blocked, disabled. */
  deviceCounts(): { active: number; outdated: number; unknown: number; blocked: number; disabled: number } {
    const c = { active: 0, outdated: 0, unknown: 0, blocked: 0, disabled: 0 };
    for (const [id, k] of this.known) {
      if (!k.enabled) c.disabled++;
      else if (k.state === 'BLOCKED') c.blocked++;
      else {
        const online = this.liveness?.state(id)?.online;
        if (online === true) c.active++;
        else if (online === false) c.outdated++;
        else c.unknown++;
      }
    }
    return c;
  }

  /** One more LoRaWAN uplink: false for a duplicate; a gap is counted as lost uplinks. */
  private countUplink(id: string, fCnt: number, input: string): boolean {
    const seen = this.uplinks.observe(id, fCnt);
    if (seen === 'duplicate') return false;
    if (seen.lost > 0) this.o.metrics.uplinksLost.inc({ input }, seen.lost);
    return true;
  }

  /** The payload codecs that may decode a device's raw uplinks, first match wins: the one its config names, its type's. */
  codecsOf(id: string): readonly string[] {
    const k = this.known.get(id);
    if (!k) return [];
    return k.codec !== undefined ? [k.codec, k.type] : [k.type];
  }

  /** A LoRaWAN (re)join: the device's frame counter starts again. */
  joined(id: string): void {
    this.uplinks.joined(id);
  }

  /** A LoRaWAN device's network side as last heard: the NS ids a downlink needs, its signal and battery. */
  lorawanOf(id: string): LorawanState | undefined {
    return this.lorawan.get(id);
  }

  /** Keep what the NS said of an uplink (or a status), written with the next batch. */
  private noteLorawan(id: string, r: Reading, m: LorawanMeta): void {
    const prev = this.lorawan.get(id);
    const next: LorawanState = { ...prev, ...m, input: r.source.input, ...(r.seq !== undefined ? { fCnt: r.seq } : {}), at: Math.max(prev?.at ?? 0, r.ts) };
    if (this.lorawan.size >= 100_000 && !prev) return; // a flood of made-up DevEUIs must not grow memory
    this.lorawan.set(id, next);
    this.observed.set(id, { ...this.observed.get(id), id, lorawan: next });
  }

  /** What the gate counted of a LoRaWAN device's uplinks since it started. */
  uplinksOf(id: string): UplinkCounts | undefined {
    return this.uplinks.counts(id);
  }

  /** How people call a device (alarms, notifications): its description and room, else its kind and id. */
  nameOf(id: string): string | undefined {
    return this.known.get(id)?.name;
  }

  /** What the liveness monitor knows of a device. */
  livenessOf(id: string): LivenessState | undefined {
    return this.liveness?.state(id);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      void this.tick();
    }, Math.min(this.o.touchMs ?? 5000, this.o.refreshMs ?? 10_000));
  }

  private async tick(): Promise<void> {
    try {
      await this.flushTouches();
      await this.flushRehashes();
      await this.flushObserved();
      await this.followCluster();
      if (this.o.clock.now() - this.lastRefresh >= (this.o.refreshMs ?? 10_000)) await this.refreshIfChanged();
    } catch (e) {
      this.o.logger.warn({ err: errorText(e) }, 'device registry update failed; retrying');
    }
    this.schedule();
  }

  /**
   * Reload the view when the registry changed since the last read. Listing every device makes a KB or two of
   * garbage per device each interval: with 10,000 idle devices RSS climbed from ~140 to ~200 MiB with it.
   */
  private async refreshIfChanged(): Promise<void> {
    const token = await this.o.store.changeToken();
    if (token === this.token) this.lastRefresh = this.o.clock.now();
    else await this.refresh(token);
  }

  /** Reload the view of the registry. */
  async refresh(token?: string): Promise<readonly Device[]> {
    await this.writes; // the gate's own state changes are in the file first, or the view would lose them
    // Read before the list: a change made meanwhile moves the token again and is read at the next refresh.
    const read = token ?? (await this.o.store.changeToken());
    const devices = await this.o.store.list();
    const next = new Map<string, Known>();
    const logins = new Map<string, string>();
    const holders = new Map<string, string | null>();
    for (const d of devices) {
      const k = this.knownOf(d);
      next.set(d.id, k);
      if (k.username !== undefined) logins.set(k.username, d.id);
      // Every device with a login has a client whose role may publish under its base topic (devices/dynsec.ts),
      // disabled ones too (they may be enabled before the next refresh): a topic shared by two proves neither.
      if (d.credentials !== undefined && k.baseTopic !== undefined) holders.set(k.baseTopic, holders.has(k.baseTopic) ? null : d.id);
    }
    this.topicHolders = holders;
    // Devices registered by this gate but not written yet stay known.
    for (const [id, k] of this.known) if (!next.has(id) && this.announced.has(id)) next.set(id, k);
    // An operator blocked or unblocked a device (the API, or the CLI in another process): say so once. The gate's
    // own blocks are in its view already.
    const first = this.known.size === 0;
    const prev = this.known;
    this.known = next;
    if (!first) {
      for (const d of devices) {
        const before = prev.get(d.id)?.state;
        if (before === undefined || before === d.state) continue;
        if (d.state === 'BLOCKED') this.stateChanged(d.id, 'BLOCKED', d.blockedReason ?? 'blocked', 'operator');
        else if (before === 'BLOCKED') this.stateChanged(d.id, d.state, undefined, 'operator');
      }
    }
    this.logins = logins;
    this.token = read;
    this.lastRefresh = this.o.clock.now();
    this.liveness?.refresh(); // thresholds may have changed
    return devices;
  }

  private knownOf(d: Device): Known {
    const types = this.o.store.types;
    const ownSilent = d.thresholds.maxSilentMs !== undefined;
    if (ownSilent) this.cadence?.forget(d.id);
    // What was learned since the last write wins over what the file holds.
    const learnedSilentMs = ownSilent ? undefined : (this.cadence?.learned(d.id) ?? d.learnedSilentMs);
    const pendingMode = this.observed.get(d.id)?.mode;
    return {
      enabled: d.enabled,
      state: d.state,
      type: d.type,
      ownSilent,
      mode: pendingMode === null ? undefined : (pendingMode ?? d.mode),
      learned: learnedSilentMs,
      name: nameOf(d, types.get(d.type)?.topicName ?? 'device'),
      codec: typeof d.config['codec'] === 'string' ? d.config['codec'] : undefined,
      username: d.credentials?.hash !== undefined ? d.credentials.username : undefined,
      credentialsAt: d.credentials?.updatedAt,
      fingerprint: d.certificate?.fingerprint,
      thresholds: effectiveThresholds({ ...d, learnedSilentMs }, types),
      kindName: types.get(d.type)?.topicName ?? 'device',
      baseTopic: this.o.scheme.baseTopic(d),
    };
  }

  /**
   * The reading as it may continue (canonical id, `authenticated` set), or undefined when it is dropped (counted
   * by reason in backhaul_gate_dropped_total).
   */
  admit(r: Reading, frame: Frame): Reading | undefined {
    // The decoder's declared kind (an OpenTRV node id), else guessed from the id's form.
    const kind = this.o.idKinds?.get(r.source.decoder) ?? guessIdKind(r.device) ?? 'other';
    let id: string;
    try {
      id = normaliseId(kind, r.device);
    } catch {
      return this.drop(r, 'bad_id');
    }
    const login = frame.identity?.username;
    // A device login (not a service account, not anonymous) carries its own readings, and a declared gateway's also
    // those of its devices. Checked before the unknown-device policy, so a made-up id is never registered.
    const owner = login === undefined ? undefined : (this.logins.get(login) ?? this.verified.get(login));
    if (login !== undefined && owner !== undefined && id !== owner && !this.mayForward(login, id)) return this.foreign(r, id, login, owner, frame);
    let k = this.known.get(id);
    if (!k) {
      const policy = this.o.policy;
      this.o.metrics.devicesUnknown.inc({ policy });
      if (!this.announced.has(id)) {
        if (this.announced.size >= 100_000) this.announced.clear(); // a flood of made-up ids must not grow memory
        this.announceUnknown(id, kind, r, policy);
      }
      if (policy === 'drop') return this.drop(r, 'unknown');
      k = this.known.get(id)!;
    }
    if (!k.enabled) return this.drop(r, 'disabled');
    if (k.state === 'BLOCKED') return this.drop(r, 'blocked');
    if (r.seq !== undefined && this.o.frameCounters?.has(r.source.decoder) === true && !this.countUplink(id, r.seq, r.source.input)) return this.drop(r, 'duplicate');
    // Only the device's own login proves it: readings a gateway forwards are not authenticated.
    const authenticated =
      (owner === id && login !== undefined && (k.username === login || (k.fingerprint !== undefined && login === certificateLogin(id)))) ||
      (login === undefined && this.o.topicInputs?.has(frame.input) === true && this.topicProves(frame.topic, id, k.baseTopic));
    this.seen.set(id, Math.max(this.seen.get(id) ?? 0, frame.receivedAt));
    if (!k.ownSilent && this.cadence) this.learn(id, k, frame.receivedAt, this.cadence);
    let out: Reading;
    if (r.lorawan !== undefined) {
      // The NS's side goes to the registry, not down the routes.
      const { lorawan, ...rest } = r;
      this.noteLorawan(id, r, lorawan);
      out = { ...rest, device: id, authenticated };
    } else {
      out = id === r.device && authenticated === r.authenticated ? r : { ...r, device: id, authenticated };
    }
    this.liveness?.observe(out, frame.receivedAt);
    return out;
  }

  /**
   * A device login: known by its username, enabled, not BLOCKED, and the password matches its stored hash (the fast
   * format: microseconds on the event loop; scrypt, for a person's password: ~40 ms on the thread pool). A registry
   * device's generated password found under an old scrypt hash is moved to the fast format, written with the next
   * batch of last-seen times. The principal's ACL reads the gate's view on every check, so a device disabled, blocked,
   * moved or whose password was reset loses its rights at the next refresh, even on a connection already open.
   */
  async verify(username: string, password: string): Promise<Principal | undefined> {
    // The names of certificate logins are not passwords' to take.
    const d = username.startsWith(CERT_LOGIN_PREFIX) ? undefined : await this.o.store.getByUsername(username);
    const stored = d?.credentials?.hash;
    if (!d || !d.enabled || d.state === 'BLOCKED' || !stored) {
      this.dummy ??= this.o.store.logins.hash('backhaul-no-such-login-0000');
      await this.o.store.logins.verify(password, this.dummy);
      return undefined;
    }
    // A migration not written yet: its fast hash stands for the scrypt one it replaces (a reconnect before the next
    // tick costs microseconds too).
    const pending = this.rehashes.get(d.id);
    const hash = pending !== undefined && pending.from === stored ? pending.to : stored;
    const c = await this.o.store.logins.check(password, hash, { migrate: d.source === 'registry' });
    if (!c.ok) {
      this.keyMismatch(d, hash);
      return undefined;
    }
    if (c.rehash !== undefined) this.rehashes.set(d.id, { id: d.id, from: stored, to: c.rehash });
    const id = d.id;
    this.verified.set(username, id);
    // A login is a sign of life: a device that connected is heard from (and may be given orders) before it publishes.
    const at = this.o.clock.now();
    this.seen.set(id, Math.max(this.seen.get(id) ?? 0, at));
    // What the login just read is the freshest view of this device (it may have bootstrapped a moment ago): take it
    // now rather than at the next refresh, so its status and readings are recognised at once.
    const prev = this.known.get(id);
    let baseTopic: string | undefined;
    if (prev === undefined || (prev.credentialsAt ?? -Infinity) <= (d.credentials?.updatedAt ?? -Infinity)) {
      const k = this.knownOf(d);
      this.known.set(id, k);
      this.logins.set(username, id);
      baseTopic = k.baseTopic; // the same string, not a copy per connection
    } else {
      baseTopic = this.o.scheme.baseTopic(d);
    }
    this.liveness?.observe({ device: id }, at);
    return new DeviceLogin(this, username, id, d.credentials?.updatedAt, d.enabled, d.state, baseTopic);
  }

  /**
   * A frame of a topic-proving input (a Mosquitto kept in step by brokerSync) proves the device when it came under the
   * device's base topic (not its command topic, which only Backhaul publishes to) and no other device may publish there.
   */
  private topicProves(topic: string | undefined, id: string, base: string | undefined): boolean {
    if (topic === undefined || base === undefined || this.topicHolders.get(base) !== id) return false;
    if (topic !== base && !topic.startsWith(`${base}/`)) return false;
    return !(topic === `${base}/${COMMAND_LEVEL}` || topic.startsWith(`${base}/${COMMAND_LEVEL}/`));
  }

  /**
   * A device login by client certificate (the broker's TLS listeners verified its chain against their client CAs):
   * `certId` is the id the certificate names (its CN or a SAN, as the broker is configured), `fingerprint` its SHA-256.
   * The principal only when the registry holds this very certificate for that device, enabled and not BLOCKED. Its
   * login name is `x509:<id>`; it keeps its rights while the registry keeps the certificate (a renewed or removed one,
   * like a disabled device, loses them at the next refresh).
   */
  async verifyCertificate(certId: string, fingerprint: string): Promise<{ principal: Principal } | { refused: string }> {
    const d = await this.o.store.getByCertificate(fingerprint);
    if (!d) return { refused: `no device in the registry has the certificate ${fingerprint.slice(0, 16)}… (of ${certId})` };
    let named: string | undefined;
    try {
      named = normaliseId(d.kind, certId);
    } catch {
      named = undefined;
    }
    if (named !== d.id) return { refused: `the certificate names ${certId}, but the registry holds it for device ${d.id}` };
    if (!d.enabled || d.state === 'BLOCKED') return { refused: `device ${d.id} is ${d.enabled ? 'BLOCKED' : 'disabled'}` };
    const username = certificateLogin(d.id);
    this.verified.set(username, d.id);
    const at = this.o.clock.now();
    this.seen.set(d.id, Math.max(this.seen.get(d.id) ?? 0, at));
    const prev = this.known.get(d.id);
    if (prev === undefined || prev.fingerprint !== fingerprint) this.known.set(d.id, this.knownOf(d));
    const k = this.known.get(d.id)!;
    this.liveness?.observe({ device: d.id }, at);
    return { principal: new DeviceLogin(this, username, d.id, d.certificate?.updatedAt, d.enabled, d.state, k.baseTopic, fingerprint) };
  }

  /** What a device login may do now (DeviceLogin's ACL asks on every check). */
  subjectOf(login: DeviceLogin): AclSubject {
    const k = this.known.get(login.device);
    // A device added, or given this login, since the last refresh: judged by what the login just read.
    if (!k) return login;
    // A certificate login keeps its rights while the registry holds that certificate for the device.
    if (login.fingerprint !== undefined) return k.fingerprint === login.fingerprint ? k : { ...k, enabled: false };
    const setAt = login.setAt;
    if (setAt !== undefined && (k.credentialsAt === undefined || k.credentialsAt < setAt)) {
      return k.baseTopic !== undefined ? k : { enabled: k.enabled, state: k.state, baseTopic: login.baseTopic };
    }
    // Its password reset or its login changed since: the connection keeps no rights.
    return k.username === login.username && k.credentialsAt === setAt ? k : { ...k, enabled: false };
  }

  /**
   * When `frame` is a logged-in device's message on its own status topic: record it as the device's last status
   * (kept as sent, when it is JSON), count it as a sign of life, and return true, so the hub does not decode it as
   * readings. False for every other frame.
   */
  status(frame: Frame): boolean {
    const username = frame.identity?.username;
    if (username === undefined || frame.topic === undefined) return false;
    const id = this.logins.get(username) ?? (username.startsWith(CERT_LOGIN_PREFIX) ? this.verified.get(username) : undefined);
    const k = id === undefined ? undefined : this.known.get(id);
    if (id === undefined || !k || k.baseTopic === undefined || frame.topic !== `${k.baseTopic}/${STATUS_LEVEL}`) return false;
    if (!k.enabled || k.state === 'BLOCKED') return true;
    let status: JsonValue;
    const text = typeof frame.payload === 'string' ? frame.payload : new TextDecoder().decode(frame.payload);
    const at = frame.receivedAt;
    try {
      checkJsonBounds(text, 'the status');
    } catch (e) {
      // Refused, not kept: nothing downstream (the registry's JSON, order results) could store it. Still a sign of
      // life of a device that logged in.
      const code = isBackhaulError(e) ? e.code : 'internal';
      this.o.metrics.decodeErrors.inc({ input: frame.input, reason: code });
      this.warn(`status:${code}`, { device: id, code }, `status of ${id} refused: ${errorText(e)}`);
      this.seen.set(id, Math.max(this.seen.get(id) ?? 0, at));
      this.liveness?.observe({ device: id }, at);
      return true;
    }
    try {
      status = JSON.parse(text) as JsonValue;
    } catch {
      status = text; // not JSON: kept as the text it is
    }
    const prev = this.statuses.get(id);
    if (!prev || at >= prev.at) this.statuses.set(id, { at, status });
    this.seen.set(id, Math.max(this.seen.get(id) ?? 0, at));
    this.liveness?.observe({ device: id }, at);
    this.describe(id, k, status, at, frame);
    this.o.onStatus?.({ device: id, at, status });
    return true;
  }

  /** A device without a silence threshold of its own: when its cadence teaches a new one, the view and liveness follow. */
  private learn(id: string, k: Known, at: number, cadence: CadenceLearner): void {
    const ms = cadence.observe(id, at, k.learned);
    if (ms === undefined) return;
    this.known.set(id, { ...k, learned: ms, thresholds: { ...k.thresholds, maxSilentMs: ms } });
    this.observed.set(id, { ...this.observed.get(id), id, learnedSilentMs: ms });
    this.liveness?.refresh(id);
    this.o.logger.info({ device: id, maxSilentMs: ms }, `${k.kindName} ${id}: silence threshold learned from its cadence`);
  }

  /**
   * The device's state moved (by its self-description, or an operator): the view follows at once, and the event
   * says so. `reason`: why it is BLOCKED.
   */
  private stateChanged(id: string, state: DeviceState, reason: string | undefined, by: string, previous?: DeviceState): void {
    const k = this.known.get(id);
    if (k && k.state !== state) this.known.set(id, { ...k, state });
    const ts = this.o.clock.now();
    const name = `${k?.kindName ?? 'device'} ${id}`;
    if (state === 'BLOCKED') {
      this.o.publish(makeEvent('device.blocked', { reason: reason ?? 'blocked', by }, { ts, device: id, message: `${name} BLOCKED: ${reason ?? 'blocked'}` }));
    } else if (state === 'ACTIVE' && previous !== 'BLOCKED' && by === 'hub') {
      this.o.publish(makeEvent('device.active', { previous: previous ?? 'INIT' }, { ts, device: id, message: `${name} is ACTIVE: its self-description is valid` }));
    } else {
      this.o.publish(makeEvent('device.unblocked', { by }, { ts, device: id, message: `${name} unblocked (now ${state})` }));
    }
  }

  /** A self-description or a mode in a device's status: its state and mode follow. */
  private describe(id: string, k: Known, status: JsonValue, at: number, frame: Frame): void {
    if (isSelfDescription(status)) {
      const why = this.o.store.types.checkDescription(k.type, status);
      if (why !== undefined) {
        this.o.metrics.decodeErrors.inc({ input: frame.input, reason: 'BH_DEVICE_DESCRIPTION' satisfies ErrorCode });
        this.warn(`describe:${id}`, { device: id, code: 'BH_DEVICE_DESCRIPTION' }, `${k.kindName} ${id} BLOCKED: ${why}`);
        this.setState(id, 'BLOCKED', why);
        this.stateChanged(id, 'BLOCKED', why, 'hub');
        return;
      }
      if (k.state === 'INIT') {
        this.setState(id, 'ACTIVE');
        this.stateChanged(id, 'ACTIVE', undefined, 'hub', 'INIT');
      }
    }
    if (typeof status !== 'object' || status === null || Array.isArray(status) || !('mode' in status)) return;
    const mode = status['mode'];
    if (!isDeviceMode(mode)) {
      this.warn(`mode:${id}`, { device: id, code: 'BH_DEVICE_FIELD', path: 'mode' }, `status of ${id}: mode must be NORMAL, WARNING or DANGER, not ${JSON.stringify(mode)}; ignored`);
      return;
    }
    const now = this.known.get(id) ?? k;
    if (now.mode === mode) return;
    this.known.set(id, { ...now, mode });
    this.observed.set(id, { ...this.observed.get(id), id, mode });
    const severity = mode === 'DANGER' ? 'critical' : mode === 'WARNING' ? 'warning' : 'info';
    this.o.publish(
      makeEvent('device.mode', { mode, ...(now.mode !== undefined ? { previous: now.mode } : {}) }, { ts: at, severity, device: id, message: `${now.kindName} ${id} reports ${mode}` }),
    );
  }

  /** Write a state the gate decided, in order with its other writes. */
  private setState(id: string, state: DeviceState, reason?: string): void {
    this.writes = this.writes
      .then(() => this.o.store.setState(id, state, reason))
      .catch((e: unknown) => this.o.logger.warn({ device: id, state, err: errorText(e) }, 'could not record a device\'s state'));
  }

  private drop(r: Reading, reason: string): undefined {
    this.o.metrics.gateDropped.inc({ input: r.source.input, reason });
    return undefined;
  }

  /** A device login's reading naming another device it is not a gateway for: dropped, counted, logged (throttled). */
  private foreign(r: Reading, id: string, login: string, owner: string, frame: Frame): undefined {
    const suppressed = this.foreignLog.take(login);
    if (suppressed !== null) {
      const e = new BackhaulError(
        'BH_DEVICE_FOREIGN',
        `the login ${login} (device ${owner}) sent a reading for device ${id}, and devices.gateways does not let it; reading dropped`,
        { path: 'device' },
      );
      this.o.logger.warn({ code: e.code, path: e.path, login, device: id, input: r.source.input, topic: frame.topic, earlierSuppressed: suppressed }, e.message);
    }
    return this.drop(r, 'foreign_device');
  }

  private announceUnknown(id: string, kind: IdKind, r: Reading, policy: UnknownPolicy): void {
    this.announced.add(id);
    const at = this.o.clock.now();
    if (policy !== 'drop') {
      // quarantine: registered but disabled, so an operator sees it and decides; register: admitted as INIT. Its type
      // is the one its decoder implies (an OpenTRV node is a valve), so its defaults apply from the first reading.
      const implied = this.o.deviceTypes?.get(r.source.decoder);
      const type = (implied !== undefined ? this.o.store.types.get(implied) : undefined) ?? this.o.store.types.get('generic');
      const typeName = type?.name ?? 'generic';
      this.known.set(id, {
        enabled: policy === 'register',
        state: 'INIT',
        type: typeName,
        ownSilent: false,
        mode: undefined,
        learned: undefined,
        name: `${type?.topicName ?? 'device'} ${id}`,
        codec: undefined,
        username: undefined,
        credentialsAt: undefined,
        fingerprint: undefined,
        thresholds: type?.defaults ?? {},
        kindName: type?.topicName ?? 'device',
        baseTopic: undefined,
      });
      const input = {
        id,
        kind: isIdKind(kind) ? kind : 'other',
        type: typeName,
        enabled: policy === 'register',
        description: `${policy === 'register' ? 'registered' : 'quarantined'} on first sight, ${new Date(at).toISOString()}, from input ${r.source.input}`,
      };
      this.writes = this.writes
        .then(() => this.o.store.upsert(input))
        .catch((e: unknown) => this.o.logger.warn({ device: id, err: errorText(e) }, 'could not register an unknown device'));
    }
    if (this.unknownLimit && !this.unknownLimit.attempt('device.unknown').ok) {
      this.holdUnknown(id, at);
      return;
    }
    this.o.logger.info({ device: id, policy, input: r.source.input }, `unknown device ${id}: ${policy}`);
    this.o.publish(
      makeEvent(
        'device.unknown',
        { policy, input: r.source.input },
        {
          ts: at,
          severity: policy === 'register' ? 'info' : 'warning',
          device: id,
          message: `unknown device ${id} seen on input ${r.source.input}: ${policy === 'register' ? 'registered as INIT' : policy === 'quarantine' ? 'quarantined (registered disabled)' : 'its readings are dropped'}`,
        },
      ),
    );
  }

  /** A device.unknown event held back by the bound: counted, and summed up once UNKNOWN_SUMMARY_MS later. */
  private holdUnknown(id: string, at: number): void {
    this.o.metrics.unknownEventsSuppressed.inc();
    if (this.held) {
      this.held.count++;
      return;
    }
    const timer = this.o.clock.setTimeout(() => this.summariseUnknown(true), UNKNOWN_SUMMARY_MS);
    this.held = { count: 1, first: id, since: at, timer };
  }

  /** One log line (and, while running, one `device.unknown_suppressed` event) for the held-back events. */
  private summariseUnknown(event: boolean): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    this.o.clock.clearTimeout(h.timer);
    const policy = this.o.policy;
    const message =
      `${h.count} more unknown device(s) since ${new Date(h.since).toISOString()} (the first ${h.first}): their device.unknown events ` +
      `and log lines were held back by devices.unknownEvents; the ${policy} policy still applied to them`;
    this.o.logger.warn({ suppressed: h.count, first: h.first, policy }, message);
    if (!event) return;
    this.o.publish(makeEvent('device.unknown_suppressed', { suppressed: h.count, first: h.first, since: h.since, policy }, { ts: this.o.clock.now(), message }));
  }

  /** A login refused because its hash was made with another key than this registry's: say so (throttled). */
  private keyMismatch(d: Device, hash: string): void {
    const made = this.o.store.logins.keyOf(hash);
    if (made === undefined || made === this.o.store.logins.keyId || this.keyLog.take(made) === null) return;
    this.o.logger.warn(
      { device: d.id, hashKey: made, registryKey: this.o.store.logins.keyId },
      `device ${d.id}'s password hash was made with login key ${made}, but this registry's key is ${this.o.store.logins.keyId} ` +
        '(registry.key in the data folder was replaced or lost): restore that file from the backup of the data folder, or reset the credentials of such devices',
    );
  }

  /** Store the fast hashes of logins migrated since the last tick, in one transaction. Lost on a crash: redone then. */
  private async flushRehashes(): Promise<void> {
    if (this.rehashes.size === 0) return;
    const items = [...this.rehashes.values()];
    this.rehashes.clear();
    let n: number;
    try {
      n = await this.o.store.rehashCredentials(items);
    } catch (e) {
      for (const i of items) if (!this.rehashes.has(i.id)) this.rehashes.set(i.id, i); // kept for the next tick
      throw e;
    }
    this.o.logger.info({ migrated: n }, `${n} device password hash(es) moved from scrypt to the fast format`);
  }

  /** Write learned thresholds and modes; a failed batch is kept for the next tick unless newer values came. */
  private async flushObserved(): Promise<void> {
    if (this.observed.size === 0) return;
    const items = [...this.observed.values()];
    this.observed.clear();
    await this.writes;
    try {
      await this.o.store.setObserved(items);
    } catch (e) {
      for (const i of items) this.observed.set(i.id, { ...i, ...this.observed.get(i.id) });
      throw e;
    }
  }

  private async flushTouches(): Promise<void> {
    if (this.seen.size === 0 && this.statuses.size === 0) return;
    // Statuses first: the store keeps a status only when it is not older than the last-seen time already written.
    const items: TouchItem[] = [
      ...[...this.statuses].map(([id, s]) => ({ id, at: s.at, status: s.status })),
      ...[...this.seen].map(([id, at]) => ({ id, at })),
    ];
    this.statuses.clear();
    this.seen.clear();
    await this.writes;
    let result;
    try {
      result = await this.o.store.touchMany(items);
    } catch (e) {
      // The store failed as a whole (disk full, file locked): keep the batch for the next flush, where anything newer
      // that arrived meanwhile wins.
      this.requeue(items);
      throw e;
    }
    // One bad item is refused alone; the others are written.
    for (const { index, error } of result.rejected) {
      const item = items[index];
      const what = item?.status === undefined ? 'last_seen' : 'status';
      this.o.metrics.registryRejected.inc({ what });
      this.warn(`reject:${what}`, { device: item?.id, code: error.code, path: error.path }, `registry refused the ${what.replace('_', '-')} of ${item?.id}: ${error.message}`);
    }
  }

  private requeue(items: readonly TouchItem[]): void {
    for (const item of items) {
      if (item.status !== undefined) {
        const now = this.statuses.get(item.id);
        if (!now || now.at < item.at) this.statuses.set(item.id, { at: item.at, status: item.status });
      } else {
        this.seen.set(item.id, Math.max(this.seen.get(item.id) ?? 0, item.at));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.unwatch?.();
    await this.refreshing;
    await this.lease?.stop();
    this.liveness?.stop();
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.summariseUnknown(false); // the router is stopping: the count goes to the log only
    await this.writes;
    await this.flushTouches();
    await this.flushRehashes();
    await this.flushObserved();
  }
}

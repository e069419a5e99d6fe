// The device gate: every Reading passes it between the decoder and the router. It knows every device from an
// in-memory view of the registry (the hot path does no I/O), applies the unknown-device policy, drops readings of
// disabled and BLOCKED devices, marks readings `authenticated` when the transport identity proves the device, makes
// device ids canonical, and records last-seen times in batches.
import type { Clock, ClockTimer } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { Frame, HubEvent, Reading } from '../core/types.js';
import { verifyPassword } from './credentials.js';
import type { DeviceStore } from './registry.js';
import { effectiveThresholds } from './device-types.js';
import { LivenessMonitor } from './liveness.js';
import { guessIdKind, isIdKind, normaliseId, type Device, type DeviceState, type IdKind, type Thresholds } from './types.js';

export type UnknownPolicy = 'register' | 'quarantine' | 'drop';

interface Known {
  readonly enabled: boolean;
  readonly state: DeviceState;
  readonly username: string | undefined;
  /** Effective thresholds (the device's own, else its type's defaults), for liveness. */
  readonly thresholds: Thresholds;
  /** The type's topic name, to name the device in messages (`valve 819c`). */
  readonly kindName: string;
}

export interface DeviceGateOptions {
  readonly store: DeviceStore;
  readonly policy: UnknownPolicy;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** Hub events (device.unknown) go here, into the router. */
  readonly publish: (e: HubEvent) => void;
  /** How often the view is reloaded from the registry (changes made by the CLI in another process). */
  readonly refreshMs?: number;
  /** How often last-seen times are written. */
  readonly touchMs?: number;
}

/** The id kind a reading's device id has: OpenTRV node ids from the OpenTRV decoder, else guessed from its form. */
function kindFor(r: Reading): IdKind {
  if (r.source.decoder === 'opentrv') return 'opentrv';
  return guessIdKind(r.device) ?? 'other';
}

export class DeviceGate {
  private known = new Map<string, Known>();
  private readonly seen = new Map<string, number>();
  private readonly announced = new Set<string>();
  private timer: ClockTimer | undefined;
  private lastRefresh = 0;
  private stopped = false;
  private writes: Promise<unknown> = Promise.resolve();
  private liveness: LivenessMonitor | undefined;

  constructor(private readonly o: DeviceGateOptions) {}

  async start(): Promise<void> {
    const devices = await this.refresh();
    this.liveness = new LivenessMonitor({
      clock: this.o.clock,
      emit: this.o.publish,
      thresholdsOf: (id) => this.known.get(id)?.thresholds,
      describe: (id) => `${this.known.get(id)?.kindName ?? 'device'} ${id}`,
    });
    this.liveness.start(devices.map((d) => ({ id: d.id, lastSeen: d.lastSeen })));
    this.schedule();
  }

  /** Liveness counts for metrics and the dashboard: active, outdated, unknown. */
  livenessCounts(): { active: number; outdated: number; unknown: number } | undefined {
    return this.liveness?.counts();
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
      if (this.o.clock.now() - this.lastRefresh >= (this.o.refreshMs ?? 10_000)) await this.refresh();
    } catch (e) {
      this.o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'device registry update failed; retrying');
    }
    this.schedule();
  }

  /** Reload the view of the registry. */
  async refresh(): Promise<readonly Device[]> {
    const devices = await this.o.store.list();
    const types = this.o.store.types;
    const next = new Map<string, Known>();
    for (const d of devices) {
      next.set(d.id, {
        enabled: d.enabled,
        state: d.state,
        username: d.credentials?.username,
        thresholds: effectiveThresholds(d, types),
        kindName: types.get(d.type)?.topicName ?? 'device',
      });
    }
    // Devices registered by this gate but not written yet stay known.
    for (const [id, k] of this.known) if (!next.has(id) && this.announced.has(id)) next.set(id, k);
    this.known = next;
    this.lastRefresh = this.o.clock.now();
    this.liveness?.refresh(); // thresholds may have changed
    return devices;
  }

  /**
   * The reading as it may continue (canonical id, `authenticated` set), or undefined when it is dropped (counted
   * by reason in backhaul_gate_dropped_total).
   */
  admit(r: Reading, frame: Frame): Reading | undefined {
    const kind = kindFor(r);
    let id: string;
    try {
      id = normaliseId(kind, r.device);
    } catch {
      return this.drop(r, 'bad_id');
    }
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
    const username = frame.identity?.username;
    const authenticated = username !== undefined && k.username !== undefined && username === k.username;
    this.seen.set(id, Math.max(this.seen.get(id) ?? 0, frame.receivedAt));
    const out = id === r.device && authenticated === r.authenticated ? r : { ...r, device: id, authenticated };
    this.liveness?.observe(out, frame.receivedAt);
    return out;
  }

  /** A device login: known by its username, enabled, not BLOCKED, and the password matches its scrypt hash. */
  async verify(username: string, password: string): Promise<boolean> {
    const d = await this.o.store.getByUsername(username);
    const hash = d?.credentials?.hash;
    if (!d || !d.enabled || d.state === 'BLOCKED' || !hash) return false;
    return verifyPassword(password, hash);
  }

  private drop(r: Reading, reason: string): undefined {
    this.o.metrics.gateDropped.inc({ input: r.source.input, reason });
    return undefined;
  }

  private announceUnknown(id: string, kind: IdKind, r: Reading, policy: UnknownPolicy): void {
    this.announced.add(id);
    const at = this.o.clock.now();
    if (policy !== 'drop') {
      // quarantine: registered but disabled, so an operator sees it and decides; register: admitted as INIT.
      const type = this.o.store.types.get('generic');
      this.known.set(id, {
        enabled: policy === 'register',
        state: 'INIT',
        username: undefined,
        thresholds: type?.defaults ?? {},
        kindName: type?.topicName ?? 'device',
      });
      const input = {
        id,
        kind: isIdKind(kind) ? kind : 'other',
        type: 'generic',
        enabled: policy === 'register',
        description: `${policy === 'register' ? 'registered' : 'quarantined'} on first sight, ${new Date(at).toISOString()}, from input ${r.source.input}`,
      };
      this.writes = this.writes
        .then(() => this.o.store.upsert(input))
        .catch((e: unknown) => this.o.logger.warn({ device: id, err: e instanceof Error ? e.message : String(e) }, 'could not register an unknown device'));
    }
    this.o.logger.info({ device: id, policy, input: r.source.input }, `unknown device ${id}: ${policy}`);
    this.o.publish({
      kind: 'event',
      type: 'device.unknown',
      ts: at,
      severity: policy === 'register' ? 'info' : 'warning',
      device: id,
      message: `unknown device ${id} seen on input ${r.source.input}: ${policy === 'register' ? 'registered as INIT' : policy === 'quarantine' ? 'quarantined (registered disabled)' : 'its readings are dropped'}`,
      data: { policy, input: r.source.input },
    });
  }

  private async flushTouches(): Promise<void> {
    if (this.seen.size === 0) return;
    const items = [...this.seen].map(([id, at]) => ({ id, at }));
    this.seen.clear();
    await this.writes;
    await this.o.store.touchMany(items);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.liveness?.stop();
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    await this.writes;
    await this.flushTouches();
  }
}

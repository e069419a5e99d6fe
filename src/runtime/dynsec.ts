// An external Mosquitto 2 kept in step with the device registry through its dynamic-security plugin: commands as JSON
// on `$CONTROL/dynamic-security/v1`, answers on `$CONTROL/dynamic-security/v1/response` (Mosquitto's
// plugins/dynamic-security/README.md). What the broker should hold is planned in src/devices/dynsec.ts; this file
// talks to the broker: one admin connection, commands batched (`batchSize` per message) and matched to their answers
// by `correlationData`, a full resync at start, after every reconnect, when the registry's change token moves (looked
// at every `devices.refreshMs`), on demand and every `resyncMs`; and a password pushed the moment one is generated.
// Everything goes through one queue, so a resync never interleaves with a password push.
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { Clock, ClockTimer } from '../core/clock.js';
import type { BrokerSyncConfig } from '../core/config/broker-sync.js';
import { BackhaulError, errorText } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { LogThrottle } from '../core/throttle.js';
import {
  desiredDevices,
  planPassword,
  planSync,
  type DynsecAcl,
  type DynsecClient,
  type DynsecCommand,
  type DynsecRole,
  type DynsecState,
  type SyncChange,
} from '../devices/dynsec.js';
import type { DeviceStore } from '../devices/store/index.js';
import type { TopicScheme } from '../devices/topics.js';
import type { Device } from '../devices/types.js';

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE = `${DYNSEC_TOPIC}/response`;

interface DynsecResponse {
  readonly command: string;
  readonly error?: string;
  readonly data?: unknown;
  readonly correlationData?: string;
}

export interface SyncReport {
  readonly devices: number;
  readonly commands: number;
  readonly changes: readonly SyncChange[];
  /** Commands the plugin answered with an error, as `command username: error`. */
  readonly errors: readonly string[];
  readonly ms: number;
}

/** What `backhaul status` shows of brokerSync. */
export interface BrokerSyncStatus {
  readonly url: string;
  readonly connected: boolean;
  /** The last full sync that went through, if any. */
  readonly lastSync?: { readonly at: number; readonly devices: number; readonly commands: number; readonly changes: number; readonly ms: number };
  /** The last sync that failed (Mosquitto unreachable, a command refused), if it came after the last good one. */
  readonly lastError?: { readonly at: number; readonly message: string };
}

export interface BrokerSyncOptions {
  readonly config: BrokerSyncConfig;
  readonly store: DeviceStore;
  readonly scheme: TopicScheme;
  readonly logger: Logger;
  readonly clock: Clock;
  /** How often the registry's change token is looked at (the config's `devices.refreshMs`); 0: never (the CLI). */
  readonly refreshMs: number;
  /** Passwords Backhaul may set, by username: devices declared in the config file with one. */
  readonly passwords?: ReadonlyMap<string, string>;
  /** The hub's metrics (changes and failures counted); the CLI has none. */
  readonly metrics?: Metrics;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The plugin's listClients / listRoles answers (verbose) as a state; anything malformed is an error, not a guess. */
function stateOf(clientsData: unknown, rolesData: unknown): DynsecState {
  const clients = new Map<string, DynsecClient>();
  const roles = new Map<string, DynsecRole>();
  const cl = isObj(clientsData) && Array.isArray(clientsData['clients']) ? (clientsData['clients'] as unknown[]) : undefined;
  const rl = isObj(rolesData) && Array.isArray(rolesData['roles']) ? (rolesData['roles'] as unknown[]) : undefined;
  if (!cl || !rl) throw new BackhaulError('BH_BROKER_SYNC', 'the dynamic-security plugin answered listClients/listRoles without a client or role list', { path: 'brokerSync' });
  for (const c of cl) {
    if (!isObj(c) || typeof c['username'] !== 'string') continue;
    const rs = Array.isArray(c['roles']) ? (c['roles'] as unknown[]) : [];
    clients.set(c['username'], {
      username: c['username'],
      ...(typeof c['textdescription'] === 'string' ? { textdescription: c['textdescription'] } : {}),
      disabled: c['disabled'] === true,
      roles: rs.flatMap((r) => (isObj(r) && typeof r['rolename'] === 'string' ? [r['rolename']] : [])),
    });
  }
  for (const r of rl) {
    if (!isObj(r) || typeof r['rolename'] !== 'string') continue;
    const acls: DynsecAcl[] = (Array.isArray(r['acls']) ? (r['acls'] as unknown[]) : []).flatMap((a) =>
      isObj(a) && typeof a['acltype'] === 'string' && typeof a['topic'] === 'string'
        ? [{ acltype: a['acltype'], topic: a['topic'], priority: typeof a['priority'] === 'number' ? a['priority'] : 0, allow: a['allow'] === true }]
        : [],
    );
    roles.set(r['rolename'], { rolename: r['rolename'], acls });
  }
  return { clients, roles };
}

/** Commands on one admin connection, matched to their answers by correlationData. */
class DynsecLink {
  private client: MqttClient | undefined;
  private readonly pending = new Map<string, { resolve: (r: DynsecResponse) => void; reject: (e: Error) => void; timer: ClockTimer }>();
  private seq = 0;
  /** Tells our answers from those of other admin clients, which share the response topic. */
  private readonly tag = randomBytes(6).toString('hex');

  constructor(
    private readonly o: { readonly config: BrokerSyncConfig; readonly clock: Clock; readonly logger: Logger },
    private readonly onConnect: () => void,
  ) {}

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** Connect; `persistent` keeps reconnecting (the hub), otherwise the first failure rejects (the CLI). */
  async open(persistent: boolean): Promise<void> {
    const c = this.o.config;
    const opts = { username: c.username, password: c.password, clientId: `backhaul-dynsec-${this.tag}`, reconnectPeriod: persistent ? 2000 : 0, connectTimeout: c.timeoutMs };
    const client = mqtt.connect(c.url, opts);
    this.client = client;
    client.on('message', (topic, payload) => this.answer(topic, payload));
    client.on('connect', () => {
      client.subscribe(DYNSEC_RESPONSE, { qos: 1 }, (err) => {
        if (err) this.o.logger.warn({ err }, 'cannot subscribe to the dynamic-security responses');
        else this.onConnect();
      });
    });
    client.on('close', () => this.failAll('the connection to Mosquitto closed'));
    if (persistent) {
      const log = new LogThrottle(this.o.clock);
      client.on('error', (err) => {
        const suppressed = log.take(err.message);
        if (suppressed !== null) this.o.logger.warn({ err: err.message, url: c.url, earlierSuppressed: suppressed }, 'brokerSync: cannot reach Mosquitto; retrying');
      });
      return;
    }
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', (err) => reject(new BackhaulError('BH_BROKER_SYNC', `cannot connect to ${c.url} as ${c.username}: ${err.message}`, { path: 'brokerSync.url' })));
      client.once('close', () => reject(new BackhaulError('BH_BROKER_SYNC', `cannot connect to ${c.url}: connection closed`, { path: 'brokerSync.url' })));
    });
    // Subscribed before the first command goes out, or its answer would be missed.
    await client.subscribeAsync(DYNSEC_RESPONSE, { qos: 1 });
  }

  private answer(topic: string, payload: Buffer): void {
    if (topic !== DYNSEC_RESPONSE) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    const responses = isObj(body) && Array.isArray(body['responses']) ? (body['responses'] as unknown[]) : [];
    for (const r of responses) {
      if (!isObj(r) || typeof r['correlationData'] !== 'string') continue;
      const p = this.pending.get(r['correlationData']);
      if (!p) continue;
      this.pending.delete(r['correlationData']);
      this.o.clock.clearTimeout(p.timer);
      p.resolve(r as unknown as DynsecResponse);
    }
  }

  private failAll(why: string): void {
    for (const [k, p] of this.pending) {
      this.pending.delete(k);
      this.o.clock.clearTimeout(p.timer);
      p.reject(new BackhaulError('BH_BROKER_SYNC', why, { path: 'brokerSync' }));
    }
  }

  /**
   * Send commands, `batchSize` per message, one message after the other (the plugin works through them in order, so
   * sending more at once gains nothing, and `timeoutMs` then measures the plugin's time for one message); resolves
   * with the answers in order.
   */
  async run(commands: readonly DynsecCommand[]): Promise<DynsecResponse[]> {
    const out: DynsecResponse[] = [];
    const size = this.o.config.batchSize;
    for (let i = 0; i < commands.length; i += size) out.push(...(await this.runBatch(commands.slice(i, i + size))));
    return out;
  }

  private async runBatch(commands: readonly DynsecCommand[]): Promise<DynsecResponse[]> {
    const client = this.client;
    if (!client?.connected) throw new BackhaulError('BH_BROKER_SYNC', `not connected to ${this.o.config.url}`, { path: 'brokerSync.url' });
    const answers: Array<Promise<DynsecResponse>> = [];
    const batch = commands.map((cmd) => {
      const id = `${this.tag}-${++this.seq}`;
      answers.push(
        new Promise<DynsecResponse>((resolve, reject) => {
          const timer = this.o.clock.setTimeout(() => {
            this.pending.delete(id);
            reject(new BackhaulError('BH_BROKER_SYNC', `the dynamic-security plugin did not answer ${cmd.command} within ${this.o.config.timeoutMs} ms (is the plugin loaded, and may ${this.o.config.username} publish to ${DYNSEC_TOPIC}?)`, { path: 'brokerSync' }));
          }, this.o.config.timeoutMs);
          this.pending.set(id, { resolve, reject, timer });
        }),
      );
      return { ...cmd, correlationData: id };
    });
    // Handled from here on, whatever comes first: a timeout, a failed send or a closed connection.
    const all = Promise.all(answers);
    all.catch(() => undefined);
    try {
      await client.publishAsync(DYNSEC_TOPIC, JSON.stringify({ commands: batch }), { qos: 1 });
    } catch (e) {
      this.failAll(`cannot publish to ${DYNSEC_TOPIC}: ${errorText(e)}`);
    }
    return all;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.failAll('brokerSync stopped');
    if (c) await c.endAsync(true);
  }
}

/** The registry's devices kept in step at an external Mosquitto (module comment). */
export class BrokerSync {
  private link: DynsecLink | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: ClockTimer | undefined;
  private lastToken: string | undefined;
  private lastFull = 0;
  private stopped = false;
  private readonly errLog: LogThrottle;
  /** The last full sync's report, for `backhaul status` and tests. */
  lastReport: SyncReport | undefined;
  private lastReportAt = 0;
  private lastError: { at: number; message: string } | undefined;

  constructor(private readonly o: BrokerSyncOptions) {
    this.errLog = new LogThrottle(o.clock);
  }

  /** The hub: connects in the background (a broker down at start is retried), syncs on every connect. */
  start(): Promise<void> {
    this.stopped = false;
    this.link = new DynsecLink(this.o, () => this.background('connected'));
    const opened = this.link.open(true);
    if (this.o.refreshMs > 0) this.arm();
    return opened;
  }

  /** The CLI: connect once; throws BH_BROKER_SYNC when Mosquitto cannot be reached. */
  async open(): Promise<void> {
    this.link = new DynsecLink(this.o, () => undefined);
    await this.link.open(false);
  }

  /** For `backhaul status`: the connection, the last sync and the last failure (the url without credentials). */
  status(): BrokerSyncStatus {
    let url = this.o.config.url;
    try {
      const u = new URL(url);
      u.username = '';
      u.password = '';
      url = u.toString();
    } catch {
      // shown as configured
    }
    const r = this.lastReport;
    return {
      url,
      connected: this.link?.connected === true,
      ...(r ? { lastSync: { at: this.lastReportAt, devices: r.devices, commands: r.commands, changes: r.changes.length, ms: r.ms } } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** Where devices connect: the broker's host and port, for bootstrap answers when there is no embedded broker. */
  address(): { host: string; port: number } | undefined {
    try {
      const u = new URL(this.o.config.url);
      const tls = u.protocol === 'mqtts:' || u.protocol === 'ssl:' || u.protocol === 'tls:';
      return { host: u.hostname, port: u.port === '' ? (tls ? 8883 : 1883) : Number(u.port) };
    } catch {
      return undefined;
    }
  }

  private arm(): void {
    this.timer = this.o.clock.setTimeout(() => {
      this.tick()
        .catch(() => undefined)
        .finally(() => {
          if (!this.stopped) this.arm();
        });
    }, this.o.refreshMs);
  }

  private async tick(): Promise<void> {
    if (!this.link?.connected) return;
    const token = await this.o.store.changeToken();
    const due = this.o.config.resyncMs > 0 && this.o.clock.now() - this.lastFull >= this.o.config.resyncMs;
    if (token !== this.lastToken || due) await this.resync().catch(() => undefined);
  }

  /** The registry changed (the API, an order): sync now rather than at the next look. */
  changed(): void {
    this.background('registry changed');
  }

  private background(why: string): void {
    if (this.stopped) return;
    this.resync().catch((err: unknown) => {
      const suppressed = this.errLog.take('sync');
      if (suppressed !== null) this.o.logger.warn({ err: errorText(err), why, earlierSuppressed: suppressed }, 'brokerSync: the sync failed; it is tried again');
    });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async readState(): Promise<DynsecState> {
    // count -1: every entry, not the first page.
    const [clients, roles] = await this.link!.run([
      { command: 'listClients', verbose: true, count: -1 },
      { command: 'listRoles', verbose: true, count: -1 },
    ]);
    for (const r of [clients, roles]) if (r?.error !== undefined) throw new BackhaulError('BH_BROKER_SYNC', `${r.command}: ${r.error}`, { path: 'brokerSync' });
    return stateOf(clients?.data, roles?.data);
  }

  private async apply(commands: readonly DynsecCommand[]): Promise<string[]> {
    if (commands.length === 0) return [];
    const answers = await this.link!.run(commands);
    return answers.flatMap((a, i) => {
      if (a.error === undefined) return [];
      const c = commands[i];
      const who = c?.['username'] ?? c?.['rolename'];
      return [`${a.command}${typeof who === 'string' ? ` ${who}` : ''}: ${a.error}`];
    });
  }

  /** A full, idempotent resync: the broker's managed clients and roles made what the registry says. */
  resync(): Promise<SyncReport> {
    const run = this.enqueue(async () => {
      const started = Date.now();
      if (!this.link) throw new BackhaulError('BH_BROKER_SYNC', 'brokerSync is not started', { path: 'brokerSync' });
      const token = await this.o.store.changeToken();
      const devices = await this.o.store.list();
      const desired = desiredDevices(devices, this.o.scheme, { rolePrefix: this.o.config.rolePrefix, ...(this.o.passwords ? { passwords: this.o.passwords } : {}) });
      const state = await this.readState();
      const plan = planSync(state, desired, { rolePrefix: this.o.config.rolePrefix, randomPassword: () => randomBytes(32).toString('base64url') });
      const errors = await this.apply(plan.commands);
      this.lastToken = token;
      this.lastFull = this.o.clock.now();
      const report: SyncReport = { devices: desired.length, commands: plan.commands.length, changes: plan.changes, errors, ms: Date.now() - started };
      this.lastReport = report;
      this.lastReportAt = this.o.clock.now();
      if (errors.length === 0) this.lastError = undefined;
      const counts: Record<string, number> = {};
      for (const c of plan.changes) counts[c.action] = (counts[c.action] ?? 0) + 1;
      if (plan.commands.length > 0 || errors.length > 0) {
        this.o.logger.info({ devices: desired.length, commands: plan.commands.length, changes: counts, errors: errors.slice(0, 10), ms: report.ms }, 'brokerSync: Mosquitto brought in step with the registry');
      }
      for (const c of plan.changes) if (c.action === 'conflict') this.o.logger.warn({ username: c.username, device: c.device }, `brokerSync: ${c.detail ?? 'conflict'}`);
      for (const [action, n] of Object.entries(counts)) this.o.metrics?.brokerSyncChanges.inc({ action }, n);
      if (errors.length > 0) throw new BackhaulError('BH_BROKER_SYNC', `${errors.length} dynamic-security command(s) failed, the first: ${errors[0]}`, { path: 'brokerSync' });
      return report;
    });
    run.catch((err: unknown) => {
      this.o.metrics?.brokerSyncFailures.inc({ what: 'resync' });
      this.lastError = { at: this.o.clock.now(), message: errorText(err) };
    });
    return run;
  }

  /**
   * A password just generated for `device` (whose credentials hold, or are about to hold, `hash`): given to Mosquitto
   * now, since Backhaul keeps only its hash. Throws BH_BROKER_SYNC when Mosquitto cannot take it.
   */
  passwordIssued(device: Device, password: string, hash?: string): Promise<void> {
    const run = this.enqueue(async () => {
      if (!this.link) throw new BackhaulError('BH_BROKER_SYNC', 'brokerSync is not started', { path: 'brokerSync' });
      const creds = device.credentials;
      const d: Device = creds && hash !== undefined ? { ...device, credentials: { ...creds, hash } } : device;
      const w = desiredDevices([d], this.o.scheme, { rolePrefix: this.o.config.rolePrefix })[0];
      if (!w) return;
      const state = await this.readStateOf(w.username, w.role);
      const plan = planPassword(state, w, password);
      const conflict = plan.changes.find((c) => c.action === 'conflict');
      if (conflict) throw new BackhaulError('BH_BROKER_SYNC', `${w.username}: ${conflict.detail ?? 'conflict'}`, { path: 'brokerSync' });
      const errors = await this.apply(plan.commands);
      if (errors.length > 0) throw new BackhaulError('BH_BROKER_SYNC', `Mosquitto did not take the new password of ${w.username}: ${errors[0]}`, { path: 'brokerSync' });
      this.o.logger.info({ device: d.id, username: w.username }, 'brokerSync: new password given to Mosquitto');
      this.o.metrics?.brokerSyncChanges.inc({ action: 'password' });
    });
    run.catch(() => this.o.metrics?.brokerSyncFailures.inc({ what: 'password' }));
    return run;
  }

  /** One client and its role, without listing all of them. */
  private async readStateOf(username: string, role: string): Promise<DynsecState> {
    const [c, r] = await this.link!.run([
      { command: 'getClient', username },
      { command: 'getRole', rolename: role },
    ]);
    const client = c?.error === undefined && isObj(c?.data) ? c.data['client'] : undefined;
    const rl = r?.error === undefined && isObj(r?.data) ? r.data['role'] : undefined;
    return stateOf({ clients: client ? [client] : [] }, { roles: rl ? [rl] : [] });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    // Closed first: what waits for an answer fails now rather than at its timeout, and the queue drains.
    const link = this.link;
    this.link = undefined;
    await link?.close();
    await this.queue;
  }
}

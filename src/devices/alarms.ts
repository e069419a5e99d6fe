// The alarm keeper: turns the hub's condition events into alarms with a lifecycle (alarm-types.ts), kept in the
// registry, and raises the alarm.* events routes send to people:
//
//   device.offline / device.online            → offline      (device)
//   device.battery_low / device.battery_ok    → battery_low  (device)
//   severity.changed WARNING|DANGER / NORMAL  → severity     (device, aspect = the measurement)
//   device.blocked / device.unblocked|active  → blocked      (device)
//   device.mode WARNING|DANGER / NORMAL       → mode         (device)
//   sink.backlog / sink.backlog_ok            → backlog      (sink)
//   sink.failing / sink.recovered             → failing      (sink)
//
// A condition event whose alarm is open already (the same silence reported again after a restart) moves the alarm's
// lastSeenAt and raises nothing. The open alarms are held in memory so the decision is synchronous (two events in one
// tick cannot both raise); every change is written in order through one chain.
import { randomBytes } from 'node:crypto';
import type { Clock, ClockTimer } from '../core/clock.js';
import { humanDuration } from '../core/duration.js';
import { BackhaulError, errorText } from '../core/errors.js';
import { makeEvent, type HubEvent } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { Alarm, AlarmCounts, AlarmKind, AlarmQuery, AlarmRecords, AlarmSeverity, AlarmSubjectKind } from './alarm-types.js';

export interface AlarmKeeperOptions {
  readonly store: AlarmRecords;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where alarm.* events go (the router). Must not throw. */
  readonly emit: (e: HubEvent) => void;
  /** Remind of a raised (not acknowledged) alarm this often; none when absent. */
  readonly remindEveryMs?: number;
  /** How people call a subject (`valve 819c, kitchen`); default its id. */
  readonly nameOf?: (subjectKind: AlarmSubjectKind, subject: string) => string;
}

interface Condition {
  readonly subjectKind: AlarmSubjectKind;
  readonly subject: string;
  readonly kind: AlarmKind;
  readonly aspect: string;
}

type Change = { readonly raise: Condition & { readonly severity: AlarmSeverity } } | { readonly clear: Condition };

const keyOf = (c: Condition): string => `${c.subjectKind}\u0000${c.subject}\u0000${c.kind}\u0000${c.aspect}`;

/** The alarm a hub event begins or ends, if any. */
export function alarmChange(e: HubEvent): Change | undefined {
  const d = e.data ?? {};
  const device = e.device;
  const sink = typeof d['sink'] === 'string' ? d['sink'] : undefined;
  const dev = (kind: AlarmKind, aspect = ''): Condition | undefined => (device === undefined ? undefined : { subjectKind: 'device', subject: device, kind, aspect });
  const snk = (kind: AlarmKind): Condition | undefined => (sink === undefined ? undefined : { subjectKind: 'sink', subject: sink, kind, aspect: '' });
  const raise = (c: Condition | undefined, severity: AlarmSeverity = 'warning'): Change | undefined => (c ? { raise: { ...c, severity } } : undefined);
  const clear = (c: Condition | undefined): Change | undefined => (c ? { clear: c } : undefined);
  const level = (l: unknown, c: Condition | undefined) => (l === 'NORMAL' ? clear(c) : raise(c, l === 'DANGER' ? 'critical' : 'warning'));
  switch (e.type) {
    case 'device.offline':
      return raise(dev('offline'));
    case 'device.online':
      return clear(dev('offline'));
    case 'device.battery_low':
      return raise(dev('battery_low'));
    case 'device.battery_ok':
      return clear(dev('battery_low'));
    case 'severity.changed':
      return level(d['level'], dev('severity', typeof d['measurement'] === 'string' ? d['measurement'] : ''));
    case 'device.blocked':
      return raise(dev('blocked'), 'critical');
    case 'device.unblocked':
    case 'device.active':
      return clear(dev('blocked'));
    case 'device.mode':
      return level(d['mode'], dev('mode'));
    case 'sink.backlog':
      return raise(snk('backlog'));
    case 'sink.backlog_ok':
      return clear(snk('backlog'));
    case 'sink.failing':
      return raise(snk('failing'));
    case 'sink.recovered':
      return clear(snk('failing'));
    default:
      return undefined;
  }
}

export class AlarmKeeper {
  private readonly open = new Map<string, Alarm>();
  private writes: Promise<void> = Promise.resolve();
  private timer: ClockTimer | undefined;
  private running = false;

  constructor(private readonly o: AlarmKeeperOptions) {}

  /** Load the open alarms kept from the last run, and arm reminders. */
  async start(): Promise<void> {
    for (const a of await this.o.store.allOpen()) this.open.set(keyOf(a), a);
    this.running = true;
    this.arm();
  }

  /** Waits for every change to be written. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.writes;
  }

  /** Alarms as kept, once every change so far is written (what the API and CLI read). */
  async list(q?: AlarmQuery): Promise<Alarm[]> {
    await this.writes;
    return this.o.store.list(q);
  }

  async get(id: string): Promise<Alarm | undefined> {
    await this.writes;
    return this.o.store.get(id);
  }

  async counts(): Promise<AlarmCounts> {
    await this.writes;
    return this.o.store.counts();
  }

  /** Open alarms by kind and state, from memory (the metrics gauge reads it at every scrape). */
  openCounts(): Array<{ kind: AlarmKind; state: 'raised' | 'acknowledged'; n: number }> {
    const m = new Map<string, { kind: AlarmKind; state: 'raised' | 'acknowledged'; n: number }>();
    for (const a of this.open.values()) {
      const state = a.state === 'acknowledged' ? 'acknowledged' : 'raised';
      const k = `${a.kind} ${state}`;
      const c = m.get(k) ?? { kind: a.kind, state, n: 0 };
      c.n++;
      m.set(k, c);
    }
    return [...m.values()];
  }

  /** Devices with an open alarm of this kind (the liveness monitor starts them offline: no second device.offline). */
  openSubjects(subjectKind: AlarmSubjectKind, kind: AlarmKind): string[] {
    return [...this.open.values()].filter((a) => a.subjectKind === subjectKind && a.kind === kind).map((a) => a.subject);
  }

  /** A hub event: raise or clear the alarm it stands for. Never throws. */
  observe(e: HubEvent): void {
    if (!this.running) return;
    const change = alarmChange(e);
    if (!change) return;
    const now = this.o.clock.now();
    if ('raise' in change) {
      const c = change.raise;
      const key = keyOf(c);
      const known = this.open.get(key);
      if (known) {
        // The same condition again (a restart's device.offline for the same silence): no new alarm, no event.
        const severity: AlarmSeverity = known.severity === 'critical' || c.severity === 'critical' ? 'critical' : 'warning';
        const next = { ...known, lastSeenAt: now, severity };
        this.open.set(key, next);
        this.write(next);
        return;
      }
      const a: Alarm = {
        id: `al_${randomBytes(6).toString('hex')}`,
        kind: c.kind,
        subjectKind: c.subjectKind,
        subject: c.subject,
        aspect: c.aspect,
        severity: c.severity,
        state: 'raised',
        message: e.message,
        raisedAt: now,
        lastSeenAt: now,
        reminders: 0,
        remindedAt: now,
      };
      this.open.set(key, a);
      this.write(a);
      this.announce('alarm.raised', a, now, `alarm: ${e.message}`);
      this.arm();
      return;
    }
    const key = keyOf(change.clear);
    const a = this.open.get(key);
    if (a) this.close(key, a, 'condition', now, e.message);
  }

  /** An operator acknowledges an open alarm: no more reminders; it stays open until its condition ends. */
  async acknowledge(id: string, by: string, note?: string): Promise<Alarm> {
    const [key, a] = await this.find(id);
    if (a.state === 'acknowledged') return a;
    const now = this.o.clock.now();
    const next: Alarm = { ...a, state: 'acknowledged', acknowledgedAt: now, acknowledgedBy: by, ...(note !== undefined && note !== '' ? { note } : {}) };
    this.open.set(key, next);
    this.write(next);
    this.announce('alarm.acknowledged', next, now, `alarm acknowledged by ${by}${note ? ` (${note})` : ''}: ${a.message}`, { by, ...(note ? { note } : {}) });
    await this.writes;
    return next;
  }

  /** An operator clears an open alarm (its condition, if it holds still, raises a new one when next reported). */
  async clear(id: string, by: string, note?: string): Promise<Alarm> {
    const [key, a] = await this.find(id);
    const next = this.close(key, a, by, this.o.clock.now(), undefined, note);
    await this.writes;
    return next;
  }

  private async find(id: string): Promise<[string, Alarm]> {
    for (const [key, a] of this.open) if (a.id === id) return [key, a];
    const kept = await this.o.store.get(id);
    if (!kept) throw new BackhaulError('BH_ALARM_NOT_FOUND', `no alarm ${id}`, { path: 'id' });
    throw new BackhaulError('BH_ALARM_STATE', `alarm ${id} is cleared already`, { path: 'id' });
  }

  private close(key: string, a: Alarm, by: string, now: number, why?: string, note?: string): Alarm {
    const next: Alarm = { ...a, state: 'cleared', clearedAt: now, clearedBy: by, ...(note !== undefined && note !== '' ? { note } : {}) };
    this.open.delete(key);
    this.write(next);
    const durationMs = Math.max(0, now - a.raisedAt);
    const text = by === 'condition' ? `alarm cleared after ${humanDuration(durationMs)}: ${why ?? a.message}` : `alarm cleared by ${by} after ${humanDuration(durationMs)}: ${a.message}`;
    this.announce('alarm.cleared', next, now, text, { by, durationMs });
    return next;
  }

  private announce(type: 'alarm.raised' | 'alarm.acknowledged' | 'alarm.cleared' | 'alarm.reminder', a: Alarm, now: number, message: string, extra: Record<string, string | number> = {}): void {
    const fields = {
      alarm: a.id,
      alarmKind: a.kind,
      subjectKind: a.subjectKind,
      subject: a.subject,
      name: this.o.nameOf?.(a.subjectKind, a.subject) ?? a.subject,
      ...(a.aspect !== '' ? { aspect: a.aspect } : {}),
      raisedAt: a.raisedAt,
    };
    let e: HubEvent;
    if (type === 'alarm.raised') e = makeEvent(type, fields, { ts: now, message, severity: a.severity });
    else if (type === 'alarm.reminder') e = makeEvent(type, { ...fields, reminder: a.reminders }, { ts: now, message, severity: a.severity });
    else if (type === 'alarm.acknowledged') e = makeEvent(type, { ...fields, by: String(extra['by']), ...(extra['note'] !== undefined ? { note: String(extra['note']) } : {}) }, { ts: now, message });
    else e = makeEvent(type, { ...fields, by: String(extra['by']), durationMs: Number(extra['durationMs']) }, { ts: now, message });
    this.o.emit(e);
  }

  private write(a: Alarm): void {
    this.writes = this.writes
      .then(() => this.o.store.put(a))
      .catch((e: unknown) => this.o.logger.error({ alarm: a.id, err: errorText(e) }, 'could not keep an alarm in the registry'));
  }

  /** The next reminder due, if reminders are on. */
  private arm(): void {
    const every = this.o.remindEveryMs;
    if (every === undefined || !this.running) return;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    let due = Infinity;
    for (const a of this.open.values()) if (a.state === 'raised') due = Math.min(due, a.remindedAt + every);
    if (due === Infinity) return;
    this.timer = this.o.clock.setTimeout(() => this.remind(), Math.max(0, due - this.o.clock.now()));
  }

  private remind(): void {
    this.timer = undefined;
    const every = this.o.remindEveryMs;
    if (every === undefined || !this.running) return;
    const now = this.o.clock.now();
    for (const [key, a] of this.open) {
      if (a.state !== 'raised' || now - a.remindedAt < every) continue;
      const next: Alarm = { ...a, reminders: a.reminders + 1, remindedAt: now };
      this.open.set(key, next);
      this.write(next);
      this.announce('alarm.reminder', next, now, `reminder ${next.reminders}: still open after ${humanDuration(now - a.raisedAt)}: ${a.message}`);
    }
    this.arm();
  }
}

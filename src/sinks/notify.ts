// What the ntfy, smtp and webhook sinks share: the words of a notification, notify once per alarm, reminders on or
// off, quiet hours with one digest at their end, and a rate limit per target. Each sink only says how one note is sent.
// Held messages stay in the sink's durable outbox (a deferred SinkError), so quiet hours and the rate limit lose
// nothing across a restart.
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { SinkError, type ConfigProblem, type SinkContext, type SinkWriteResult } from '../core/driver.js';
import type { BackhaulError } from '../core/errors.js';
import { humanDuration } from '../core/duration.js';
import { Zone, zoneProblem } from '../core/localtime.js';
import type { EventSeverity, Message, Value } from '../core/types.js';

const HHMM = '^([01][0-9]|2[0-3]):[0-5][0-9]$';

/** The options every notify sink takes (spread into its schema). */
export const notifyOptions = {
  reminders: Type.Boolean({ default: false, description: 'Send `alarm.reminder` events too (by default only the first word of each alarm state is sent).' }),
  quietHours: Type.Optional(
    Type.Object(
      {
        from: Type.String({ pattern: HHMM, description: 'Local time quiet hours begin, `HH:MM`.' }),
        to: Type.String({ pattern: HHMM, description: 'Local time they end, `HH:MM` (before `from`: they span midnight).' }),
        timeZone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone of `from` and `to`; default: the sink\'s `timeZone`.' })),
      },
      {
        additionalProperties: false,
        description:
          '`{from, to, timeZone?}`, local `HH:MM` times: nothing is sent between them (they may span midnight); at their end one digest message tells what was held.',
      },
    ),
  ),
  rateLimit: Type.Optional(
    Type.Object(
      {
        count: Type.Integer({ minimum: 1, description: 'At most this many notifications ...' }),
        perMs: Type.Integer({ minimum: 1000, description: '... in any span of this many ms.' }),
      },
      { additionalProperties: false, description: '`{count, perMs}`: at most `count` notifications to this target in any `perMs` ms; over it, messages wait in the outbox (nothing is dropped).' },
    ),
  ),
  timeZone: Type.String({ minLength: 1, default: 'UTC', description: 'IANA time zone for times in the default wording (and for `quietHours`).' }),
  maxKeys: Type.Integer({
    minimum: 100,
    default: 10000,
    description: 'How many alarm notifications (alarm id + event type) are remembered to send each only once; the oldest are forgotten first.',
  }),
};

export type NotifyOptions = Static<TObject<typeof notifyOptions>>;

/** One notification as a sink sends it. */
export interface Note {
  readonly title: string;
  readonly text: string;
  readonly severity: EventSeverity;
  /** Short words about it (its alarm kind, its event type), for ntfy tags. */
  readonly tags: readonly string[];
}

/** What sending one note came to: sent, or refused for good by the far end (the message is dropped and counted). */
export type SendResult = { readonly sent: true } | { readonly rejected: BackhaulError };

/** Config problems of the shared options (for each sink's `check`). */
export function notifyProblems(o: NotifyOptions): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const tz = zoneProblem(o.timeZone);
  if (tz) out.push({ path: 'timeZone', message: tz });
  const q = o.quietHours;
  if (q) {
    if (q.from === q.to) out.push({ path: 'quietHours.to', message: 'quiet hours that end when they begin are empty; leave quietHours out instead' });
    if (q.timeZone !== undefined) {
      const qtz = zoneProblem(q.timeZone);
      if (qtz) out.push({ path: 'quietHours.timeZone', message: qtz });
    }
  }
  return out;
}

const minutes = (hm: string): number => Number(hm.slice(0, 2)) * 60 + Number(hm.slice(3, 5));

/** Local wall-clock time in a zone (core/localtime.ts), and `HH:MM` as the wording shows it. */
class LocalTime extends Zone {
  readonly hhmm: Intl.DateTimeFormat;
  constructor(tz: string) {
    super(tz);
    this.hhmm = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hourCycle: 'h23', hour: '2-digit', minute: '2-digit' });
  }
}

/** The alarm keeper's own wording (src/devices/alarms.ts announce()): replaced by the plain one below. A template stage's is kept. */
const KEEPER_WORDING = /^(alarm: |alarm acknowledged by |alarm cleared (after|by) |reminder \d+: )/;

const str = (v: Value | undefined): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

/** What an alarm is, in a few words, for the default wording. */
function alarmWhat(kind: string, aspect: string | undefined): string {
  switch (kind) {
    case 'offline':
      return 'silent';
    case 'battery_low':
      return 'battery low';
    case 'severity':
      return `${aspect ?? 'a value'} in alarm`;
    case 'backlog':
      return 'has a backlog';
    case 'failing':
      return 'failing';
    case 'blocked':
      return 'blocked';
    case 'mode':
      return 'reports an alarm mode';
    default:
      return `${kind} alarm`;
  }
}

/** Words of notifications and the identity each is sent once by. */
export class Wording {
  private readonly local: LocalTime;
  constructor(timeZone: string) {
    this.local = new LocalTime(timeZone);
  }

  /** The same message always gets the same key: a retried batch, or an alarm event raised twice, is sent once. */
  key(m: Message): string {
    if (m.kind === 'reading') return `r\u0000${m.device}\u0000${m.ts}\u0000${m.seq ?? ''}\u0000${JSON.stringify(m.values)}`;
    const alarm = str(m.data?.['alarm']);
    if (alarm !== undefined && m.type.startsWith('alarm.')) {
      const n = m.data?.['reminder'];
      return `a\u0000${alarm}\u0000${m.type}${typeof n === 'number' ? `\u0000${n}` : ''}`;
    }
    return `e\u0000${m.type}\u0000${m.device ?? ''}\u0000${m.ts}\u0000${m.message}`;
  }

  note(m: Message): Note {
    if (m.kind === 'reading') {
      const values = Object.entries(m.values)
        .filter(([k]) => k !== 'text' && k !== 'title')
        .map(([k, v]) => `${k} = ${String(v)}${m.units?.[k] ? ` ${m.units[k]}` : ''}`)
        .join(', ');
      return {
        title: str(m.values['title']) ?? `Backhaul: ${m.device}`,
        text: str(m.values['text']) ?? `${m.device}: ${values}`,
        severity: 'info',
        tags: ['reading'],
      };
    }
    const d = m.data ?? {};
    const givenTitle = str(d['title']);
    const givenText = str(d['text']);
    const alarm = m.type.startsWith('alarm.') && str(d['alarm']) !== undefined;
    if (!alarm) {
      return { title: givenTitle ?? `Backhaul: ${m.type}`, text: givenText ?? m.message, severity: m.severity, tags: [m.type] };
    }
    const kind = str(d['alarmKind']) ?? 'alarm';
    const subject = str(d['subject']) ?? '';
    const name = str(d['name']) ?? subject;
    // A name made of the kind and id (`valve 0d49`, `valve 0d49, u4/302`) names the id already.
    const who = d['subjectKind'] === 'sink' ? `Sink ${subject}` : name !== subject && subject !== '' && !name.includes(subject) ? `${name} (${subject})` : name;
    const what = alarmWhat(kind, str(d['aspect']));
    const raisedAt = typeof d['raisedAt'] === 'number' ? d['raisedAt'] : m.ts;
    const since = this.local.hhmm.format(raisedAt);
    let title: string;
    let plain: string;
    switch (m.type) {
      case 'alarm.reminder':
        title = `Reminder: ${name}`;
        plain = `${who} still ${what}, since ${since}`;
        break;
      case 'alarm.acknowledged': {
        const note = str(d['note']);
        title = `Acknowledged: ${name}`;
        plain = `${who} ${what} since ${since}: acknowledged by ${str(d['by']) ?? 'an operator'}${note ? ` (${note})` : ''}`;
        break;
      }
      case 'alarm.cleared': {
        const by = str(d['by']);
        const took = typeof d['durationMs'] === 'number' ? ` after ${humanDuration(d['durationMs'])}` : '';
        title = `Cleared: ${name}`;
        plain = `${who} back to normal${took} (was ${what} since ${since})${by !== undefined && by !== 'condition' ? `, cleared by ${by}` : ''}`;
        break;
      }
      default:
        title = `Alarm: ${name}`;
        plain = `${who} ${what} since ${since}`;
    }
    // A template stage's words replace the hub's; the keeper's own (technical) ones give way to the plain wording.
    const text = givenText ?? (KEEPER_WORDING.test(m.message) ? plain : m.message);
    return { title: givenTitle ?? title, text, severity: m.severity, tags: [kind, m.type.slice('alarm.'.length)] };
  }
}

const SEVERITY_RANK: Readonly<Record<EventSeverity, number>> = { info: 0, warning: 1, critical: 2 };

/** Most held notifications a digest lists one by one. */
export const DIGEST_LINES = 25;

/** One note telling what quiet hours held. */
export function digestNote(held: readonly Note[], hhmm: string): Note {
  let severity: EventSeverity = 'info';
  const tags = new Set<string>(['digest']);
  for (const n of held) {
    if (SEVERITY_RANK[n.severity] > SEVERITY_RANK[severity]) severity = n.severity;
    for (const t of n.tags) tags.add(t);
  }
  // Bounded: ntfy keeps 4 KiB as a message, Discord 2000 characters; the first lines say what matters most often.
  const lines = held.slice(0, DIGEST_LINES).map((n) => `- ${n.text}`);
  if (held.length > DIGEST_LINES) lines.push(`… and ${held.length - DIGEST_LINES} more`);
  return {
    title: `Backhaul: ${held.length} notification${held.length === 1 ? '' : 's'} held during quiet hours (until ${hhmm})`,
    text: lines.join('\n'),
    severity,
    tags: [...tags],
  };
}

/**
 * The shared behaviour of one notify sink instance. `deliver` takes a batch and a function that sends one note; it
 * resolves once every message was sent (or refused for good, or needs no note), and throws a deferred SinkError when
 * quiet hours or the rate limit say wait: the runner keeps the batch queued and calls again then.
 */
export class Notifier {
  private readonly wording: Wording;
  private readonly quietTime: LocalTime;
  /** Keys of messages already sent (or refused for good), oldest first; at most `maxKeys`. */
  private readonly done = new Map<string, true>();
  /** Send times within the rate limit's span, oldest first. */
  private sentAt: number[] = [];

  constructor(
    private readonly o: NotifyOptions,
    private readonly ctx: SinkContext,
  ) {
    this.wording = new Wording(o.timeZone);
    this.quietTime = new LocalTime(o.quietHours?.timeZone ?? o.timeZone);
  }

  /** How long until the quiet hours end (ms), or undefined outside them. */
  quietLeft(now: number): number | undefined {
    const q = this.o.quietHours;
    if (!q) return undefined;
    const from = minutes(q.from) * 60;
    const to = minutes(q.to) * 60;
    const s = this.quietTime.secondOfDay(now);
    const inside = from < to ? s >= from && s < to : s >= from || s < to;
    if (!inside) return undefined;
    const left = (((to - s) % 86_400) + 86_400) % 86_400;
    // At least a second: a clock change (daylight saving) can make the sum short; the next call looks again.
    return Math.max(1000, left * 1000 - (now % 1000));
  }

  /**
   * The last quiet hours that have ended, [start, end) in ms, or undefined without quiet hours. Messages from then
   * that are still to send were held by them: they make the digest. Worked out from the clock, not remembered, so
   * a restart during quiet hours still ends them with a digest.
   */
  lastQuiet(now: number): { start: number; end: number } | undefined {
    const q = this.o.quietHours;
    if (!q) return undefined;
    const from = minutes(q.from) * 60;
    const to = minutes(q.to) * 60;
    const sinceEnd = (((this.quietTime.secondOfDay(now) - to) % 86_400) + 86_400) % 86_400;
    const end = now - (now % 1000) - sinceEnd * 1000;
    const length = (((to - from) % 86_400) + 86_400) % 86_400;
    return { start: end - length * 1000, end };
  }

  /** How long until the rate limit lets one more note go (ms), or 0. */
  private rateWait(now: number): number {
    const r = this.o.rateLimit;
    if (!r) return 0;
    this.sentAt = this.sentAt.filter((t) => t > now - r.perMs);
    const oldest = this.sentAt[0];
    return this.sentAt.length < r.count || oldest === undefined ? 0 : oldest + r.perMs - now;
  }

  private remember(key: string): void {
    this.done.delete(key);
    this.done.set(key, true);
    while (this.done.size > this.o.maxKeys) {
      const first = this.done.keys().next();
      if (first.done === true) break;
      this.done.delete(first.value);
    }
  }

  private count(suppressed: Map<string, number>): void {
    for (const [reason, n] of suppressed) if (n > 0) this.ctx.metrics.notifySuppressed.inc({ sink: this.ctx.id, reason }, n);
  }

  async deliver(batch: readonly Message[], send: (note: Note) => Promise<SendResult>): Promise<SinkWriteResult | void> {
    const suppressed = new Map<string, number>();
    const skip = (reason: string) => suppressed.set(reason, (suppressed.get(reason) ?? 0) + 1);
    const todo: Array<{ index: number; key: string; ts: number; note: Note }> = [];
    const seen = new Set<string>();
    for (const [index, m] of batch.entries()) {
      const key = this.wording.key(m);
      if (this.done.has(key) || seen.has(key)) {
        skip('duplicate');
        continue;
      }
      if (m.kind === 'event' && m.type === 'alarm.reminder' && !this.o.reminders) {
        skip('reminder');
        continue;
      }
      seen.add(key);
      todo.push({ index, key, ts: m.ts, note: this.wording.note(m) });
    }
    const clock = this.ctx.clock;
    const rejected: Array<{ index: number; error: BackhaulError }> = [];
    const sent = (n = 1) => this.ctx.metrics.notifySent.inc({ sink: this.ctx.id }, n);

    const quiet = todo.length > 0 ? this.quietLeft(clock.now()) : undefined;
    if (quiet !== undefined) {
      throw new SinkError(`quiet hours: ${todo.length} notification(s) held until they end, in ${humanDuration(quiet)}`, true, { deferred: true, retryAfterMs: quiet });
    }

    let rest = todo;
    const last = todo.length > 0 ? this.lastQuiet(clock.now()) : undefined;
    if (last) {
      const during = (t: { ts: number }) => t.ts >= last.start && t.ts < last.end;
      const digest = todo.filter(during);
      rest = todo.filter((t) => !during(t));
      if (digest.length > 0) {
        const wait = this.rateWait(clock.now());
        if (wait > 0) this.defer(wait, todo.length, suppressed);
        const r = await send(digestNote(digest.map((t) => t.note), this.quietTime.hhmm.format(last.end)));
        this.sentAt.push(clock.now());
        for (const t of digest) this.remember(t.key);
        if ('rejected' in r) for (const t of digest) rejected.push({ index: t.index, error: r.rejected });
        else {
          sent();
          suppressed.set('quiet_hours', (suppressed.get('quiet_hours') ?? 0) + digest.length);
        }
      }
    }

    for (const [i, t] of rest.entries()) {
      const wait = this.rateWait(clock.now());
      if (wait > 0) this.defer(wait, rest.length - i, suppressed);
      const r = await send(t.note);
      this.sentAt.push(clock.now());
      // Remembered at once: if a later note of this batch fails, the retried batch does not send this one again.
      this.remember(t.key);
      if ('rejected' in r) rejected.push({ index: t.index, error: r.rejected });
      else sent();
    }
    this.count(suppressed);
    rejected.sort((a, b) => a.index - b.index);
    return rejected.length > 0 ? { rejected } : undefined;
  }

  private defer(wait: number, left: number, suppressed: Map<string, number>): never {
    suppressed.set('rate_limit', (suppressed.get('rate_limit') ?? 0) + left);
    this.count(suppressed);
    const r = this.o.rateLimit;
    throw new SinkError(`rate limit (${r?.count ?? 0} per ${humanDuration(r?.perMs ?? 0)}): ${left} notification(s) wait ${humanDuration(wait)}`, true, {
      deferred: true,
      retryAfterMs: wait,
    });
  }
}

// Alarms: a condition an operator must know of, about one device or one sink, with a lifecycle kept in the registry
// (so a restart re-raises nothing that is still the same alarm):
//
//   raised ──ack──▶ acknowledged ──condition ends / operator clears──▶ cleared
//      └───────────────condition ends / operator clears───────────────▶ cleared
//
// At most one alarm is open (raised or acknowledged) per (subjectKind, subject, kind, aspect); a cleared one is
// history. alarms.ts turns hub events into these transitions.

export const ALARM_KINDS = ['offline', 'battery_low', 'severity', 'blocked', 'mode', 'backlog', 'failing'] as const;
/**
 * offline, battery_low, severity (the `severity` stage, per measurement), blocked (BLOCKED), mode (the device reports
 * WARNING or DANGER of itself) are about a device; backlog (over
 * `outbox.backlogAlert`) and failing (over `outbox.failingAfterMs`) about a sink.
 */
export type AlarmKind = (typeof ALARM_KINDS)[number];

export const ALARM_STATES = ['raised', 'acknowledged', 'cleared'] as const;
export type AlarmState = (typeof ALARM_STATES)[number];

export type AlarmSubjectKind = 'device' | 'sink';
export type AlarmSeverity = 'warning' | 'critical';

export interface Alarm {
  /** `al_` and 12 hex digits. */
  readonly id: string;
  readonly kind: AlarmKind;
  readonly subjectKind: AlarmSubjectKind;
  /** The device's canonical id or the sink's id. */
  readonly subject: string;
  /** What of the subject: the measurement of a `severity` alarm; '' otherwise. */
  readonly aspect: string;
  readonly severity: AlarmSeverity;
  readonly state: AlarmState;
  /** The raising event's message, e.g. `valve 819c (kitchen) silent for 31 min (threshold 30 min)`. */
  readonly message: string;
  readonly raisedAt: number;
  /** When the condition was last seen to hold (a restart's device.offline of the same silence moves it). */
  readonly lastSeenAt: number;
  readonly acknowledgedAt?: number;
  readonly acknowledgedBy?: string;
  readonly note?: string;
  readonly clearedAt?: number;
  /** `condition`, or the operator who cleared it. */
  readonly clearedBy?: string;
  /** Reminders sent (alarm.reminder), and when the last one (or the raise) was. */
  readonly reminders: number;
  readonly remindedAt: number;
}

export interface AlarmQuery {
  /** `open` = raised or acknowledged. */
  readonly state?: AlarmState | 'open';
  readonly kind?: AlarmKind;
  readonly subjectKind?: AlarmSubjectKind;
  readonly subject?: string;
  /** Newest first; default 100. */
  readonly limit?: number;
}

export interface AlarmCounts {
  readonly raised: number;
  readonly acknowledged: number;
  /** Open alarms by kind. */
  readonly byKind: Readonly<Partial<Record<AlarmKind, { readonly raised: number; readonly acknowledged: number }>>>;
}

/** Where alarms are kept: the device registry (store/alarms.ts). */
export interface AlarmRecords {
  /** The open alarm of this identity, if any. */
  open(subjectKind: AlarmSubjectKind, subject: string, kind: AlarmKind, aspect: string): Promise<Alarm | undefined>;
  /** Every open alarm (at start). */
  allOpen(): Promise<Alarm[]>;
  get(id: string): Promise<Alarm | undefined>;
  list(q?: AlarmQuery): Promise<Alarm[]>;
  counts(): Promise<AlarmCounts>;
  /** Insert a new alarm, or replace the one with its id. */
  put(a: Alarm): Promise<void>;
}

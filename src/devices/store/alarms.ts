// The alarms table of the registry file (alarm-types.ts has the model; alarms.ts the lifecycle). An open alarm's
// identity (subject kind, subject, kind, aspect) is unique among open alarms by a partial index, so two raises of the
// same condition can never leave two open alarms, whatever the caller does.
import { whereClause } from '../../core/sql.js';
import { ALARM_KINDS, ALARM_STATES, type Alarm, type AlarmCounts, type AlarmKind, type AlarmQuery, type AlarmRecords, type AlarmState, type AlarmSubjectKind } from '../alarm-types.js';
import { SqlitePart } from './sqlite.js';

export const ALARMS_SCHEMA = `
CREATE TABLE IF NOT EXISTS alarms (
  id              TEXT PRIMARY KEY,
  kind            TEXT    NOT NULL,
  subject_kind    TEXT    NOT NULL,
  subject         TEXT    NOT NULL,
  aspect          TEXT    NOT NULL DEFAULT '',
  severity        TEXT    NOT NULL,
  state           TEXT    NOT NULL,
  message         TEXT    NOT NULL,
  raised_at       INTEGER NOT NULL,
  last_seen_at    INTEGER NOT NULL,
  acknowledged_at INTEGER,
  acknowledged_by TEXT,
  note            TEXT,
  cleared_at      INTEGER,
  cleared_by      TEXT,
  reminders       INTEGER NOT NULL DEFAULT 0,
  reminded_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_open ON alarms (subject_kind, subject, kind, aspect) WHERE state != 'cleared';
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms (raised_at);
`;

/** A row of the alarms table, as every store reads it. */
export interface AlarmRow {
  id: string;
  kind: string;
  subject_kind: string;
  subject: string;
  aspect: string;
  severity: string;
  state: string;
  message: string;
  raised_at: number;
  last_seen_at: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  note: string | null;
  cleared_at: number | null;
  cleared_by: string | null;
  reminders: number;
  reminded_at: number;
}

export function toAlarm(r: AlarmRow): Alarm {
  return {
    id: r.id,
    kind: (ALARM_KINDS as readonly string[]).includes(r.kind) ? (r.kind as AlarmKind) : 'offline',
    subjectKind: r.subject_kind === 'sink' ? 'sink' : 'device',
    subject: r.subject,
    aspect: r.aspect,
    severity: r.severity === 'critical' ? 'critical' : 'warning',
    state: (ALARM_STATES as readonly string[]).includes(r.state) ? (r.state as AlarmState) : 'raised',
    message: r.message,
    raisedAt: r.raised_at,
    lastSeenAt: r.last_seen_at,
    ...(r.acknowledged_at !== null ? { acknowledgedAt: r.acknowledged_at } : {}),
    ...(r.acknowledged_by !== null ? { acknowledgedBy: r.acknowledged_by } : {}),
    ...(r.note !== null ? { note: r.note } : {}),
    ...(r.cleared_at !== null ? { clearedAt: r.cleared_at } : {}),
    ...(r.cleared_by !== null ? { clearedBy: r.cleared_by } : {}),
    reminders: r.reminders,
    remindedAt: r.reminded_at,
  };
}

export class SqliteAlarmRecords extends SqlitePart implements AlarmRecords {
  open(subjectKind: AlarmSubjectKind, subject: string, kind: AlarmKind, aspect: string): Promise<Alarm | undefined> {
    return this.read(() => {
      const r = this.stmt("SELECT * FROM alarms WHERE subject_kind = ? AND subject = ? AND kind = ? AND aspect = ? AND state != 'cleared'").get(subjectKind, subject, kind, aspect) as
        | AlarmRow
        | undefined;
      return r ? toAlarm(r) : undefined;
    });
  }

  allOpen(): Promise<Alarm[]> {
    return this.read(() => (this.stmt("SELECT * FROM alarms WHERE state != 'cleared' ORDER BY raised_at").all() as AlarmRow[]).map(toAlarm));
  }

  get(id: string): Promise<Alarm | undefined> {
    return this.read(() => {
      const r = this.stmt('SELECT * FROM alarms WHERE id = ?').get(id) as AlarmRow | undefined;
      return r ? toAlarm(r) : undefined;
    });
  }

  list(q: AlarmQuery = {}): Promise<Alarm[]> {
    return this.read(() => {
      const { sql, params } = whereClause([
        ['state = @state', 'state', q.state === 'open' ? undefined : q.state],
        ["state != 'cleared'", 'open', q.state === 'open' ? 1 : undefined],
        ['kind = @kind', 'kind', q.kind],
        ['subject_kind = @subjectKind', 'subjectKind', q.subjectKind],
        ['subject = @subject', 'subject', q.subject],
      ]);
      delete params['open'];
      params['limit'] = Math.max(0, Math.floor(q.limit ?? 100));
      return (this.stmt(`SELECT * FROM alarms ${sql} ORDER BY raised_at DESC, id DESC LIMIT @limit`).all(params) as AlarmRow[]).map(toAlarm);
    });
  }

  counts(): Promise<AlarmCounts> {
    return this.read(() => {
      const rows = this.stmt("SELECT kind, state, COUNT(*) AS n FROM alarms WHERE state != 'cleared' GROUP BY kind, state").all() as Array<{ kind: string; state: string; n: number }>;
      let raised = 0;
      let acknowledged = 0;
      const byKind: Partial<Record<AlarmKind, { raised: number; acknowledged: number }>> = {};
      for (const r of rows) {
        const k = (byKind[r.kind as AlarmKind] ??= { raised: 0, acknowledged: 0 });
        if (r.state === 'acknowledged') {
          acknowledged += r.n;
          k.acknowledged += r.n;
        } else {
          raised += r.n;
          k.raised += r.n;
        }
      }
      return { raised, acknowledged, byKind };
    });
  }

  put(a: Alarm): Promise<void> {
    return this.read(() => {
      this.stmt(
        `INSERT OR REPLACE INTO alarms (id, kind, subject_kind, subject, aspect, severity, state, message, raised_at, last_seen_at,
           acknowledged_at, acknowledged_by, note, cleared_at, cleared_by, reminders, reminded_at)
         VALUES (@id, @kind, @subjectKind, @subject, @aspect, @severity, @state, @message, @raisedAt, @lastSeenAt,
           @acknowledgedAt, @acknowledgedBy, @note, @clearedAt, @clearedBy, @reminders, @remindedAt)`,
      ).run({
        id: a.id,
        kind: a.kind,
        subjectKind: a.subjectKind,
        subject: a.subject,
        aspect: a.aspect,
        severity: a.severity,
        state: a.state,
        message: a.message,
        raisedAt: a.raisedAt,
        lastSeenAt: a.lastSeenAt,
        acknowledgedAt: a.acknowledgedAt ?? null,
        acknowledgedBy: a.acknowledgedBy ?? null,
        note: a.note ?? null,
        clearedAt: a.clearedAt ?? null,
        clearedBy: a.clearedBy ?? null,
        reminders: a.reminders,
        remindedAt: a.remindedAt,
      });
    });
  }
}

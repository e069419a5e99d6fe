// The SQLite historian: one row per value, so any measurement of any device can be queried by time range without
// knowing the devices in advance. Used by the sqlite sink (writes) and by the REST API and tests (reads).
//
// Rows are unique by (device, measurement, ts) and events by (type, ts, device): writing the same reading twice (a
// retried batch, an outbox replayed after a crash, `backhaul replay` of a file already loaded) keeps the first copy.
import { existsSync, linkSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createPrivateFile, makePrivateDir } from '../../core/private-files.js';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { DownsampleQuery, EventQuery, HistorianEvent, HistorianPoint, HistorianReading, HistoryReader, ReadingFilter, ReadingQuery } from '../../core/history.js';
import type { EventSeverity, HubEvent, Message, Reading, Value } from '../../core/types.js';

export type { DownsampleQuery, EventQuery, HistorianEvent, HistorianPoint, HistorianReading, ReadingFilter, ReadingQuery } from '../../core/history.js';
import { whereClause, type SqlParams } from '../../core/sql.js';

// 2: readings_device_measurement_ts dropped: readings_identity starts with the same columns and serves its queries.
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS readings (
  id            INTEGER PRIMARY KEY,
  device        TEXT    NOT NULL,
  ts            INTEGER NOT NULL,
  measurement   TEXT    NOT NULL,
  num           REAL,
  text          TEXT,
  bool          INTEGER,
  unit          TEXT,
  seq           INTEGER,
  input         TEXT,
  authenticated INTEGER NOT NULL DEFAULT 0
);
-- Idempotent on the whole value, not just (device, measurement, ts): a redelivered batch is stored once, but two
-- different values that share a millisecond (a file replay reads many lines in one) are both kept.
CREATE UNIQUE INDEX IF NOT EXISTS readings_identity
  ON readings (device, measurement, ts, ifnull(seq, -1), ifnull(num, 0), ifnull(text, ''), ifnull(bool, -1));
DROP INDEX IF EXISTS readings_device_measurement_ts;
CREATE INDEX IF NOT EXISTS readings_measurement_ts ON readings (measurement, ts);
CREATE TABLE IF NOT EXISTS events (
  id       INTEGER PRIMARY KEY,
  ts       INTEGER NOT NULL,
  type     TEXT    NOT NULL,
  severity TEXT    NOT NULL,
  device   TEXT,
  message  TEXT    NOT NULL,
  data     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_type_ts_device ON events (type, ts, ifnull(device, ''));
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_device_ts ON events (device, ts);
`;

export interface HistorianOpenOptions {
  /** Open for reading only (the REST API); the file must exist. */
  readonly readonly?: boolean;
  /**
   * `FULL` (default) syncs the WAL on every commit, so a written batch survives a power cut; `NORMAL` only survives
   * a process crash, and is faster.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Create the file 0600 (its folder 0700): the sink asks for it when the file is in the data folder. */
  readonly private?: boolean;
}

export interface WriteCounts {
  /** Value rows inserted (duplicates of stored rows are not counted). */
  readings: number;
  events: number;
}

interface ReadingRow {
  device: string;
  ts: number;
  measurement: string;
  num: number | null;
  text: string | null;
  bool: number | null;
  unit: string | null;
  seq: number | null;
  authenticated: number;
}

interface EventRow {
  ts: number;
  type: string;
  severity: string;
  device: string | null;
  message: string;
  data: string | null;
}

type Params = SqlParams;

function rowValue(r: ReadingRow): Value {
  if (r.bool !== null) return r.bool !== 0;
  if (r.text !== null) return r.text;
  return r.num ?? Number.NaN; // NaN is stored as NULL by SQLite
}

function toReading(r: ReadingRow): HistorianReading {
  return {
    device: r.device,
    ts: r.ts,
    measurement: r.measurement,
    value: rowValue(r),
    ...(r.unit !== null ? { unit: r.unit } : {}),
    ...(r.seq !== null ? { seq: r.seq } : {}),
    authenticated: r.authenticated !== 0,
  };
}

function toEvent(r: EventRow): HistorianEvent {
  let data: Record<string, Value> | undefined;
  if (r.data !== null) {
    try {
      data = JSON.parse(r.data) as Record<string, Value>;
    } catch {
      data = undefined;
    }
  }
  return {
    ts: r.ts,
    type: r.type,
    severity: r.severity as EventSeverity,
    ...(r.device !== null ? { device: r.device } : {}),
    message: r.message,
    ...(data !== undefined ? { data } : {}),
  };
}

function readingWhere(f: ReadingFilter): { sql: string; params: Params } {
  return whereClause([
    ['device = @device', 'device', f.device],
    ['measurement = @measurement', 'measurement', f.measurement],
    ['ts >= @from', 'from', f.from],
    ['ts < @to', 'to', f.to],
  ]);
}

function limitClause(limit: number | undefined, params: Params): string {
  if (limit === undefined) return '';
  params['limit'] = Math.max(0, Math.floor(limit));
  return ' LIMIT @limit';
}

function insertReadingRows(stmt: Database.Statement, r: Reading): number {
  let n = 0;
  const ts = Math.round(r.ts);
  const seq = r.seq ?? null;
  const auth = r.authenticated ? 1 : 0;
  for (const measurement in r.values) {
    const v = r.values[measurement];
    if (v === null || v === undefined) continue; // a non-finite number, as JSON gives it

    // Positional parameters: binding by name cost a lookup per parameter per row.
    n += stmt.run(
      r.device,
      ts,
      measurement,
      typeof v === 'number' ? v : null,
      typeof v === 'string' ? v : null,
      typeof v === 'boolean' ? (v ? 1 : 0) : null,
      r.units?.[measurement] ?? null,
      seq,
      r.source.input,
      auth,
    ).changes;
  }
  return n;
}

function insertEventRow(stmt: Database.Statement, e: HubEvent): number {
  return stmt.run({
    ts: Math.round(e.ts),
    type: e.type,
    severity: e.severity,
    device: e.device ?? null,
    message: e.message,
    data: e.data === undefined ? null : JSON.stringify(e.data),
  }).changes;
}

/**
 * Make a new historian file whole, then put it in place: a reader never finds the file without its tables. The REST
 * API opens the file as soon as it exists, and the sink creates it in its own thread, so without this a request in
 * that moment would find an empty database ("no such table").
 */
function createWithSchema(path: string, privateFile: boolean): void {
  const tmp = `${path}-new`;
  rmSync(tmp, { force: true }); // left by a crash in the middle of an earlier creation
  rmSync(`${tmp}-journal`, { force: true });
  if (privateFile) createPrivateFile(tmp); // 0600 before it holds anything; the link keeps the mode
  const db = new Database(tmp);
  try {
    db.transaction(() => {
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } finally {
    db.close();
  }
  try {
    linkSync(tmp, path); // fails rather than replace a file that appeared meanwhile
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return; // someone else made it first: use theirs
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    renameSync(tmp, path); // a file system without hard links
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Device ids per query of latestMany: well under SQLite's parameter limit, and one prepared statement per size. */
export const LATEST_CHUNK = 500;

export class Historian implements HistoryReader {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly writeTx: ((batch: readonly Message[]) => WriteCounts) | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    if (db.readonly) return;
    const insertReading = db.prepare(
      `INSERT INTO readings (device, ts, measurement, num, text, bool, unit, seq, input, authenticated)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    const insertEvent = db.prepare(
      `INSERT INTO events (ts, type, severity, device, message, data)
       VALUES (@ts, @type, @severity, @device, @message, @data) ON CONFLICT DO NOTHING`,
    );
    this.writeTx = db.transaction((batch: readonly Message[]) => {
      const counts: WriteCounts = { readings: 0, events: 0 };
      for (const m of batch) {
        if (m.kind === 'reading') counts.readings += insertReadingRows(insertReading, m);
        else counts.events += insertEventRow(insertEvent, m);
      }
      return counts;
    });
  }

  /** Open (and create, unless read-only) a historian file; `:memory:` gives a throw-away one. */
  static open(path: string, opts: HistorianOpenOptions = {}): Historian {
    const readonly = opts.readonly ?? false;
    if (!readonly && path !== ':memory:') {
      if (opts.private) makePrivateDir(dirname(path));
      else mkdirSync(dirname(path), { recursive: true });
      if (!existsSync(path)) createWithSchema(path, opts.private ?? false);
    }
    const db = new Database(path, { readonly, fileMustExist: readonly });
    try {
      db.pragma('busy_timeout = 5000');
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version > SCHEMA_VERSION) {
          throw new Error(`${path} has historian schema version ${version}; this Backhaul knows up to ${SCHEMA_VERSION}`);
        }
        db.exec(SCHEMA);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }
      return new Historian(db, path);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Store a batch in one transaction: all of it or (on a throw) none of it. */
  write(batch: readonly Message[]): WriteCounts {
    if (!this.writeTx) throw new Error('the historian is open read-only');
    return this.writeTx(batch);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  queryReadings(q: ReadingQuery = {}): HistorianReading[] {
    const { sql, params } = readingWhere(q);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const full = `SELECT device, ts, measurement, num, text, bool, unit, seq, authenticated FROM readings${sql} ORDER BY ts ${dir}, id ${dir}${limitClause(q.limit, params)}`;
    return (this.stmt(full).all(params) as ReadingRow[]).map(toReading);
  }

  /** Numeric values in buckets of `step` ms (for charts), oldest first; text and booleans are left out. */
  downsample(q: DownsampleQuery): HistorianPoint[] {
    const { sql, params } = readingWhere(q);
    const step = Math.max(1, Math.floor(q.step));
    const agg = q.agg ?? 'avg';
    // `last`: SQLite takes the bare columns of an aggregate from the row holding the MAX.
    const value = agg === 'last' ? 'num' : `${agg}(num)`;
    const extra = agg === 'last' ? ', max(ts) AS newest' : '';
    // A bucket is authenticated only when all of its values are; `last` takes the newest row's flag.
    const authenticated = agg === 'last' ? 'authenticated' : 'min(authenticated)';
    const where = sql ? `${sql} AND num IS NOT NULL` : ' WHERE num IS NOT NULL';
    const full = `SELECT measurement, (ts / ${step}) * ${step} AS bucket, ${value} AS value, max(unit) AS unit, ${authenticated} AS authenticated${extra}
      FROM readings${where} GROUP BY measurement, bucket ORDER BY bucket, measurement${limitClause(q.limit, params)}`;
    const rows = this.stmt(full).all(params) as Array<{ measurement: string; bucket: number; value: number; unit: string | null; authenticated: number }>;
    return rows.map((r) => ({
      measurement: r.measurement,
      ts: r.bucket,
      value: r.value,
      ...(r.unit !== null ? { unit: r.unit } : {}),
      authenticated: r.authenticated !== 0,
    }));
  }

  countReadings(f: ReadingFilter = {}): number {
    const { sql, params } = readingWhere(f);
    const row = this.stmt(`SELECT count(*) AS n FROM readings${sql}`).get(params) as { n: number };
    return row.n;
  }

  /** Every device with at least one stored value, sorted. */
  devices(): string[] {
    return this.stmt('SELECT DISTINCT device FROM readings ORDER BY device').pluck().all() as string[];
  }

  /** Every measurement name (of one device when given), sorted. */
  measurements(device?: string): string[] {
    if (device === undefined) {
      return this.stmt('SELECT DISTINCT measurement FROM readings ORDER BY measurement').pluck().all() as string[];
    }
    return this.stmt('SELECT DISTINCT measurement FROM readings WHERE device = ? ORDER BY measurement').pluck().all(device) as string[];
  }

  /** The newest stored value of each of a device's measurements, sorted by measurement. */
  latest(device: string): HistorianReading[] {
    // SQLite takes the bare columns of an aggregate query from the row holding the MAX.
    const rows = this.stmt(
      `SELECT device, measurement, max(ts) AS ts, num, text, bool, unit, seq, authenticated FROM readings
       WHERE device = ? GROUP BY measurement ORDER BY measurement`,
    ).all(device) as ReadingRow[];
    return rows.map(toReading);
  }

  /** {@link latest} for many devices at once, LATEST_CHUNK ids per query (SQLite bounds a statement's parameters). */
  latestMany(devices: readonly string[]): HistorianReading[] {
    const out: HistorianReading[] = [];
    const ids = [...new Set(devices)];
    for (let i = 0; i < ids.length; i += LATEST_CHUNK) {
      const chunk = ids.slice(i, i + LATEST_CHUNK);
      // Padded (with its last id) to a power of two or LATEST_CHUNK, so a few prepared statements serve every size.
      let size = 1;
      while (size < chunk.length) size *= 2;
      size = Math.min(size, LATEST_CHUNK);
      const last = chunk[chunk.length - 1] ?? '';
      while (chunk.length < size) chunk.push(last);
      const rows = this.stmt(
        `SELECT device, measurement, max(ts) AS ts, num, text, bool, unit, seq, authenticated FROM readings
         WHERE device IN (${chunk.map(() => '?').join(',')}) GROUP BY device, measurement ORDER BY device, measurement`,
      ).all(chunk) as ReadingRow[];
      for (const r of rows) out.push(toReading(r));
    }
    return out;
  }

  queryEvents(q: EventQuery = {}): HistorianEvent[] {
    const { sql: where, params } = whereClause([
      ['device = @device', 'device', q.device],
      ['type = @type', 'type', q.type],
      ['severity = @severity', 'severity', q.severity],
      ['ts >= @from', 'from', q.from],
      ['ts < @to', 'to', q.to],
    ]);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT ts, type, severity, device, message, data FROM events${where} ORDER BY ts ${dir}, id ${dir}${limitClause(q.limit, params)}`;
    return (this.stmt(sql).all(params) as EventRow[]).map(toEvent);
  }

  /** Delete readings and events older than `ts` (ms). Returns the rows deleted. */
  pruneBefore(ts: number): number {
    if (this.db.readonly) throw new Error('the historian is open read-only');
    const measurements = this.measurements();
    const del = this.stmt('DELETE FROM readings WHERE measurement = ? AND ts < ?'); // uses (measurement, ts)
    const delEvents = this.stmt('DELETE FROM events WHERE ts < ?');
    return this.db.transaction(() => {
      let n = 0;
      for (const m of measurements) n += del.run(m, ts).changes;
      return n + delEvents.run(ts).changes;
    })();
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

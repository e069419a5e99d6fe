// The PostgreSQL historian: the SQLite historian's rows and queries (src/sinks/sqlite/historian.ts) in a database
// every instance shares. Readings are one row per value in a table partitioned by time (native declarative
// partitioning, one partition a UTC day, made ahead; a DEFAULT partition takes what falls outside them), so retention
// drops whole partitions instead of deleting rows. Rows are unique on the whole value and events on (type, ts,
// device), so a batch written twice is stored once, as in SQLite. Schema changes are versioned migrations, applied by
// one instance at a time under an advisory lock; partition upkeep takes the same lock.
import pg from 'pg';
import { BackhaulError } from '../../core/errors.js';
import { inTransaction, migratePostgres } from '../../core/pg-migrations.js';
import type { DownsampleQuery, EventQuery, HistorianEvent, HistorianPoint, HistorianReading, HistoryReader, ReadingFilter, ReadingQuery } from '../../core/history.js';
import type { EventSeverity, HubEvent, Message, Reading, Value } from '../../core/types.js';

export const DAY_MS = 24 * 60 * 60 * 1000;

/** The advisory lock key of historian migrations and partition upkeep (any instance, any schema of this database). */
const LOCK_KEY = 0x6268_6869; // "bhhi"

/** A schema name as this module writes it into SQL: plain lower-case identifiers only. */
export function checkSchemaName(s: string): string | undefined {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(s) ? undefined : 'a schema name is 1 to 63 lower-case letters, digits and _, not starting with a digit';
}

/** Migrations by version: each runs once, in a transaction, in order. `S` is the quoted schema. */
const MIGRATIONS: ReadonlyArray<(s: string) => string> = [
  (s) => `
    CREATE SEQUENCE IF NOT EXISTS ${s}.readings_id;
    CREATE TABLE ${s}.readings (
      id            bigint  NOT NULL DEFAULT nextval('${s}.readings_id'),
      device        text    NOT NULL,
      ts            bigint  NOT NULL,
      measurement   text    NOT NULL,
      num           double precision,
      text          text,
      bool          boolean,
      unit          text,
      seq           bigint,
      input         text,
      authenticated boolean NOT NULL DEFAULT false
    ) PARTITION BY RANGE (ts);
    -- Idempotent on the whole value (as SQLite's readings_identity): NULLS NOT DISTINCT (PostgreSQL 15) makes a
    -- redelivered row without seq a conflict too.
    CREATE UNIQUE INDEX readings_identity ON ${s}.readings (device, measurement, ts, seq, num, text, bool) NULLS NOT DISTINCT;
    CREATE INDEX readings_measurement_ts ON ${s}.readings (measurement, ts);
    CREATE TABLE ${s}.readings_default PARTITION OF ${s}.readings DEFAULT;
    CREATE TABLE ${s}.events (
      id       bigserial PRIMARY KEY,
      ts       bigint NOT NULL,
      type     text   NOT NULL,
      severity text   NOT NULL,
      device   text,
      message  text   NOT NULL,
      data     jsonb
    );
    CREATE UNIQUE INDEX events_type_ts_device ON ${s}.events (type, ts, coalesce(device, ''));
    CREATE INDEX events_ts ON ${s}.events (ts);
    CREATE INDEX events_device_ts ON ${s}.events (device, ts);
  `,
];

export const HISTORIAN_SCHEMA_VERSION = MIGRATIONS.length;

/** Why a database cannot be used as a historian here (newer schema, no connection): the sink makes it a SinkError. */
export class HistorianOpenError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface ReadingRow {
  device: string;
  ts: number;
  measurement: string;
  num: number | null;
  text: string | null;
  bool: boolean | null;
  unit: string | null;
  seq: number | null;
  authenticated: boolean;
}

function toReading(r: ReadingRow): HistorianReading {
  const value: Value = r.bool !== null ? r.bool : r.text !== null ? r.text : (r.num ?? Number.NaN);
  return {
    device: r.device,
    ts: r.ts,
    measurement: r.measurement,
    value,
    ...(r.unit !== null ? { unit: r.unit } : {}),
    ...(r.seq !== null ? { seq: r.seq } : {}),
    authenticated: r.authenticated,
  };
}

// int8 comes back from pg as text (it may not fit a double); times and counters here do, so SQL casts them.
const READING_COLUMNS = 'device, ts::float8 AS ts, measurement, num, text, bool, unit, seq::float8 AS seq, authenticated';

class Where {
  readonly parts: string[] = [];
  readonly params: unknown[] = [];
  add(sql: (p: string) => string, v: unknown): this {
    if (v === undefined) return this;
    this.params.push(v);
    this.parts.push(sql(`$${this.params.length}`));
    return this;
  }
  limit(n: number | undefined): string {
    if (n === undefined) return '';
    this.params.push(Math.max(0, Math.floor(n)));
    return ` LIMIT $${this.params.length}`;
  }
  get sql(): string {
    return this.parts.length > 0 ? ` WHERE ${this.parts.join(' AND ')}` : '';
  }
}

function readingWhere(f: ReadingFilter): Where {
  return new Where()
    .add((p) => `device = ${p}`, f.device)
    .add((p) => `measurement = ${p}`, f.measurement)
    .add((p) => `ts >= ${p}`, f.from)
    .add((p) => `ts < ${p}`, f.to);
}

/** The UTC day (ms at its start) a time falls in. */
export function dayOf(ts: number): number {
  return Math.floor(ts / DAY_MS) * DAY_MS;
}

function partitionName(day: number): string {
  return `readings_p${new Date(day).toISOString().slice(0, 10).replace(/-/g, '')}`;
}

export interface PgHistorianOptions {
  readonly url: string;
  readonly password?: string;
  readonly schema: string;
  /** Connections the pool may open (the writer needs one; readers one more). */
  readonly max?: number;
  readonly connectTimeoutMs: number;
  /** A statement running longer (a lock another session holds) is cancelled: SQLSTATE 57014, an outage to retry. */
  readonly statementTimeoutMs: number;
}

export class PgHistorian implements HistoryReader {
  private readonly pool: pg.Pool;
  private readonly s: string;
  private closed = false;

  constructor(readonly o: PgHistorianOptions) {
    this.s = `"${o.schema}"`;
    this.pool = new pg.Pool({
      connectionString: o.url,
      ...(o.password !== undefined ? { password: o.password } : {}),
      max: o.max ?? 2,
      connectionTimeoutMillis: o.connectTimeoutMs,
      statement_timeout: o.statementTimeoutMs,
      // A historian that sits idle gives its connections back.
      idleTimeoutMillis: 30_000,
      application_name: 'backhaul-historian',
    });
    // A connection the server drops while idle: the pool replaces it; the error must not end the process.
    this.pool.on('error', () => undefined);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Apply the migrations this database lacks, one instance at a time. HistorianOpenError when it cannot. */
  async migrate(): Promise<void> {
    try {
      await migratePostgres(this.pool, {
        schema: this.o.schema,
        table: 'historian_migrations',
        lockKey: LOCK_KEY,
        migrations: MIGRATIONS.map((sql, i) => ({ version: i + 1, what: `historian schema ${i + 1}`, sql: () => sql(this.s) })),
        code: 'BH_SINK_OPEN',
        what: 'the historian',
        now: () => Date.now(),
      });
    } catch (e) {
      // A newer schema, or a migration the server refuses, needs a person; a connection that failed may pass.
      if (e instanceof BackhaulError) throw new HistorianOpenError(e.detail, false, { cause: e });
      throw e;
    }
  }

  /**
   * Make the daily partitions from `from` to `until` (ms) that do not exist, moving into each what the DEFAULT
   * partition holds of its day (a reading that came before its partition was made), and drop those wholly before
   * `dropBefore`, with what the DEFAULT partition and the events hold from before it. Returns the partitions made and
   * dropped.
   */
  async maintain(from: number, until: number, dropBefore?: number): Promise<{ created: string[]; dropped: string[] }> {
    const created: string[] = [];
    const dropped: string[] = [];
    return inTransaction(this.pool, async (c: pg.PoolClient) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const existing = new Set(
        (
          await c.query<{ name: string }>(
            `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = 'readings'`,
            [this.o.schema],
          )
        ).rows.map((r) => r.name),
      );
      for (let day = dayOf(from); day <= dayOf(until); day += DAY_MS) {
        const name = partitionName(day);
        if (existing.has(name)) continue;
        const t = `${this.s}."${name}"`;
        // Made apart, filled from the DEFAULT partition, then attached: creating it in place would fail while the
        // DEFAULT partition holds rows of its range.
        await c.query(`CREATE TABLE ${t} (LIKE ${this.s}.readings INCLUDING DEFAULTS)`);
        await c.query(`WITH moved AS (DELETE FROM ${this.s}.readings_default WHERE ts >= $1 AND ts < $2 RETURNING *) INSERT INTO ${t} SELECT * FROM moved`, [day, day + DAY_MS]);
        await c.query(`ALTER TABLE ${this.s}.readings ATTACH PARTITION ${t} FOR VALUES FROM (${day}) TO (${day + DAY_MS})`);
        created.push(name);
      }
      if (dropBefore !== undefined) {
        for (const name of [...existing].sort()) {
          const m = /^readings_p(\d{4})(\d{2})(\d{2})$/.exec(name);
          if (!m) continue;
          const day = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
          if (day + DAY_MS <= dropBefore) {
            await c.query(`DROP TABLE ${this.s}."${name}"`);
            dropped.push(name);
          }
        }
        await c.query(`DELETE FROM ${this.s}.readings_default WHERE ts < $1`, [dropBefore]);
        await c.query(`DELETE FROM ${this.s}.events WHERE ts < $1`, [dropBefore]);
      }
        return { created, dropped };
    });
  }

  /** Store a batch in one transaction: all of it or (on a throw) none of it. Returns the rows inserted. */
  async write(batch: readonly Message[]): Promise<{ readings: number; events: number }> {
    const cols: { device: string[]; ts: number[]; measurement: string[]; num: Array<number | null>; text: Array<string | null>; bool: Array<boolean | null>; unit: Array<string | null>; seq: Array<number | null>; input: string[]; auth: boolean[] } = {
      device: [], ts: [], measurement: [], num: [], text: [], bool: [], unit: [], seq: [], input: [], auth: [],
    };
    const ev: { ts: number[]; type: string[]; severity: string[]; device: Array<string | null>; message: string[]; data: Array<string | null> } = { ts: [], type: [], severity: [], device: [], message: [], data: [] };
    for (const m of batch) {
      if (m.kind === 'reading') addReading(cols, m);
      else addEvent(ev, m);
    }
    return inTransaction(this.pool, async (c: pg.PoolClient) => {
      let readings = 0;
      let events = 0;
      if (cols.device.length > 0) {
        const r = await c.query(
          `INSERT INTO ${this.s}.readings (device, ts, measurement, num, text, bool, unit, seq, input, authenticated)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[], $5::text[], $6::bool[], $7::text[], $8::bigint[], $9::text[], $10::bool[])
           ON CONFLICT DO NOTHING`,
          [cols.device, cols.ts, cols.measurement, cols.num, cols.text, cols.bool, cols.unit, cols.seq, cols.input, cols.auth],
        );
        readings = r.rowCount ?? 0;
      }
      if (ev.ts.length > 0) {
        const r = await c.query(
          `INSERT INTO ${this.s}.events (ts, type, severity, device, message, data)
           SELECT ts, type, severity, device, message, data::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
             AS e(ts, type, severity, device, message, data)
           ON CONFLICT DO NOTHING`,
          [ev.ts, ev.type, ev.severity, ev.device, ev.message, ev.data],
        );
        events = r.rowCount ?? 0;
      }
        return { readings, events };
    });
  }

  async queryReadings(q: ReadingQuery = {}): Promise<HistorianReading[]> {
    const w = readingWhere(q);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT ${READING_COLUMNS} FROM ${this.s}.readings${w.sql} ORDER BY ts ${dir}, id ${dir}${w.limit(q.limit)}`;
    return (await this.pool.query<ReadingRow>(sql, w.params)).rows.map(toReading);
  }

  /** Numeric values in buckets of `step` ms (for charts), oldest first; text and booleans are left out. */
  async downsample(q: DownsampleQuery): Promise<HistorianPoint[]> {
    const w = readingWhere(q);
    w.parts.push('num IS NOT NULL');
    const step = Math.max(1, Math.floor(q.step));
    const agg = q.agg ?? 'avg';
    const value = agg === 'last' ? '(array_agg(num ORDER BY ts DESC, id DESC))[1]' : `${agg}(num)`;
    const authenticated = agg === 'last' ? '(array_agg(authenticated ORDER BY ts DESC, id DESC))[1]' : 'bool_and(authenticated)';
    const sql = `SELECT measurement, ((ts / ${step}) * ${step})::float8 AS bucket, ${value}::float8 AS value, max(unit) AS unit, ${authenticated} AS authenticated
      FROM ${this.s}.readings${w.sql} GROUP BY measurement, bucket ORDER BY bucket, measurement${w.limit(q.limit)}`;
    const rows = (await this.pool.query<{ measurement: string; bucket: number; value: number; unit: string | null; authenticated: boolean }>(sql, w.params)).rows;
    return rows.map((r) => ({ measurement: r.measurement, ts: r.bucket, value: r.value, ...(r.unit !== null ? { unit: r.unit } : {}), authenticated: r.authenticated }));
  }

  async countReadings(f: ReadingFilter = {}): Promise<number> {
    const w = readingWhere(f);
    return Number((await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.s}.readings${w.sql}`, w.params)).rows[0]?.n ?? 0);
  }

  /** The newest stored value of each of a device's measurements, sorted by measurement. */
  latest(device: string): Promise<HistorianReading[]> {
    return this.latestMany([device]);
  }

  async latestMany(devices: readonly string[]): Promise<HistorianReading[]> {
    const ids = [...new Set(devices)];
    if (ids.length === 0) return [];
    const sql = `SELECT DISTINCT ON (device, measurement) ${READING_COLUMNS} FROM ${this.s}.readings WHERE device = ANY($1::text[])
      ORDER BY device, measurement, ts DESC, id DESC`;
    return (await this.pool.query<ReadingRow>(sql, [ids])).rows.map(toReading);
  }

  async queryEvents(q: EventQuery = {}): Promise<HistorianEvent[]> {
    const w = new Where()
      .add((p) => `device = ${p}`, q.device)
      .add((p) => `type = ${p}`, q.type)
      .add((p) => `severity = ${p}`, q.severity)
      .add((p) => `ts >= ${p}`, q.from)
      .add((p) => `ts < ${p}`, q.to);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT ts::float8 AS ts, type, severity, device, message, data FROM ${this.s}.events${w.sql} ORDER BY ts ${dir}, id ${dir}${w.limit(q.limit)}`;
    const rows = (await this.pool.query<{ ts: number; type: string; severity: string; device: string | null; message: string; data: Record<string, Value> | null }>(sql, w.params)).rows;
    return rows.map((r) => ({
      ts: r.ts,
      type: r.type,
      severity: r.severity as EventSeverity,
      ...(r.device !== null ? { device: r.device } : {}),
      message: r.message,
      ...(r.data !== null ? { data: r.data } : {}),
    }));
  }

  /** The daily partitions that exist now, oldest first (for tests and `backhaul status`). */
  async partitions(): Promise<string[]> {
    const r = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = 'readings' ORDER BY c.relname`,
      [this.o.schema],
    );
    return r.rows.map((x) => x.name);
  }

  /** Ends the pool; HistoryReader's close is synchronous, so the pool's end is awaited by `end()`. */
  close(): void {
    void this.end();
  }

  async end(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

function addReading(
  cols: { device: string[]; ts: number[]; measurement: string[]; num: Array<number | null>; text: Array<string | null>; bool: Array<boolean | null>; unit: Array<string | null>; seq: Array<number | null>; input: string[]; auth: boolean[] },
  r: Reading,
): void {
  const ts = Math.round(r.ts);
  for (const measurement in r.values) {
    const v = r.values[measurement];
    if (v === null || v === undefined) continue; // a non-finite number, as JSON gives it
    cols.device.push(r.device);
    cols.ts.push(ts);
    cols.measurement.push(measurement);
    // NaN is stored as NULL, as SQLite does.
    cols.num.push(typeof v === 'number' && !Number.isNaN(v) ? v : null);
    cols.text.push(typeof v === 'string' ? v : null);
    cols.bool.push(typeof v === 'boolean' ? v : null);
    cols.unit.push(r.units?.[measurement] ?? null);
    cols.seq.push(r.seq ?? null);
    cols.input.push(r.source.input);
    cols.auth.push(r.authenticated);
  }
}

function addEvent(ev: { ts: number[]; type: string[]; severity: string[]; device: Array<string | null>; message: string[]; data: Array<string | null> }, e: HubEvent): void {
  ev.ts.push(Math.round(e.ts));
  ev.type.push(e.type);
  ev.severity.push(e.severity);
  ev.device.push(e.device ?? null);
  ev.message.push(e.message);
  ev.data.push(e.data === undefined ? null : JSON.stringify(e.data));
}

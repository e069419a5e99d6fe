// One suite every historian backend passes (the SQLite file and PostgreSQL): the same batch written to each reads back
// the same through the query API the REST API uses (readings by device, measurement, time, order and limit; buckets
// by avg, min, max and last with their authenticated flag; latest values; events), and a batch written twice is stored
// once. PostgreSQL's own part: daily partitions made ahead, a reading that came before its partition moved into it,
// retention dropping whole partitions, a schema of a newer version refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pg from 'pg';
import { makeEvent } from '../../src/core/events.js';
import type { HistoryReader } from '../../src/core/history.js';
import type { Message, Reading } from '../../src/core/types.js';
import { Historian } from '../../src/sinks/sqlite/historian.js';
import { DAY_MS, HISTORIAN_SCHEMA_VERSION, PgHistorian } from '../../src/sinks/postgres/historian.js';
import { teardown, tempDir } from '../helpers/context.js';
import { freshSchema, POSTGRES_URL, postgresSkip } from '../helpers/postgres.js';

const T0 = Date.UTC(2026, 11, 4, 10, 0, 0);
const pgSkip = await postgresSkip();

interface Backend {
  write(batch: readonly Message[]): Promise<unknown>;
  readonly reader: HistoryReader;
}

const r = (device: string, at: number, values: Reading['values'], more: Partial<Reading> = {}): Reading => ({
  kind: 'reading',
  device,
  ts: T0 + at,
  values,
  authenticated: true,
  source: { input: 'in', decoder: 'json' },
  ...more,
});

const BATCH: Message[] = [
  r('dev-a', 0, { temp: 20, rh: 40, label: 'kitchen', open: false }, { units: { temp: '°C', rh: '%' }, seq: 1 }),
  r('dev-a', 30_000, { temp: 22 }, { units: { temp: '°C' }, seq: 2, authenticated: false }),
  r('dev-a', 60_000, { temp: 25, rh: 45 }, { units: { temp: '°C', rh: '%' }, seq: 3 }),
  r('dev-a', 61_000, { temp: 26 }, { units: { temp: '°C' }, seq: 4 }),
  r('dev-b', 5_000, { temp: 18.5, open: true }, { seq: 1 }),
  r('dev-b', 65_000, { temp: 19 }, { seq: 2 }),
  // Two different values in one millisecond are both kept; the same value twice once.
  r('dev-c', 1_000, { n: 1 }),
  r('dev-c', 1_000, { n: 2 }),
  makeEvent('device.offline', { lastSeen: T0 - 7_200_000, silentMs: 7_200_000, threshold: 3_600_000 }, { ts: T0 + 10_000, device: 'dev-b', message: 'silent for 2h' }),
  makeEvent('device.online', { silentMs: 1 }, { ts: T0 + 70_000, device: 'dev-b', message: 'back' }),
];

async function exercise(b: Backend): Promise<Record<string, unknown>> {
  await b.write(BATCH);
  await b.write(BATCH); // an outbox replayed after a crash
  const h = b.reader;
  return {
    all: await h.queryReadings({}),
    aTemp: await h.queryReadings({ device: 'dev-a', measurement: 'temp' }),
    window: await h.queryReadings({ from: T0 + 5_000, to: T0 + 61_000 }),
    newestTwo: await h.queryReadings({ device: 'dev-a', order: 'desc', limit: 2 }),
    c: await h.queryReadings({ device: 'dev-c' }),
    avg: await h.downsample({ device: 'dev-a', step: 60_000 }),
    min: await h.downsample({ device: 'dev-a', step: 60_000, agg: 'min' }),
    max: await h.downsample({ device: 'dev-a', step: 60_000, agg: 'max' }),
    last: await h.downsample({ device: 'dev-a', measurement: 'temp', step: 60_000, agg: 'last' }),
    latest: await h.latest('dev-a'),
    latestMany: await h.latestMany(['dev-b', 'dev-a', 'nobody', 'dev-a']),
    events: await h.queryEvents({}),
    eventsDesc: await h.queryEvents({ device: 'dev-b', order: 'desc', limit: 1 }),
    offline: await h.queryEvents({ type: 'device.offline' }),
  };
}

function checkShape(x: Record<string, unknown>): void {
  const all = x['all'] as Array<{ device: string; measurement: string; value: unknown }>;
  assert.equal(all.length, 13, 'each value once, however often the batch was written');
  assert.deepEqual((x['aTemp'] as Array<{ value: unknown }>).map((v) => v.value), [20, 22, 25, 26]);
  assert.deepEqual((x['c'] as Array<{ value: unknown }>).map((v) => v.value).sort(), [1, 2]);
  assert.deepEqual((x['avg'] as Array<{ measurement: string; value: number; authenticated: boolean }>).map((p) => [p.measurement, p.value, p.authenticated]), [
    ['rh', 40, true],
    ['temp', 21, false],
    ['rh', 45, true],
    ['temp', 25.5, true],
  ]);
  assert.deepEqual((x['last'] as Array<{ value: number; authenticated: boolean }>).map((p) => [p.value, p.authenticated]), [[22, false], [26, true]]);
  assert.deepEqual((x['latest'] as Array<{ measurement: string; value: unknown }>).map((v) => [v.measurement, v.value]), [['label', 'kitchen'], ['open', false], ['rh', 45], ['temp', 26]]);
  assert.deepEqual((x['events'] as Array<{ type: string }>).map((e) => e.type), ['device.offline', 'device.online']);
}

function sqliteBackend(dir: string): Backend & { close(): void } {
  const h = Historian.open(join(dir, 'history.sqlite'));
  return { write: (b) => Promise.resolve(h.write(b)), reader: h, close: () => h.close() };
}

test('historian conformance: the SQLite historian answers the query API as specified', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const b = sqliteBackend(d.path);
  t.after(() => b.close());
  checkShape(await exercise(b));
});

test('historian conformance: PostgreSQL answers every query exactly as SQLite does, for the same batch', { skip: pgSkip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const schema = freshSchema();
  later(() => schema.drop());
  const h = new PgHistorian({ url: POSTGRES_URL, schema: schema.name, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 });
  later(() => h.end());
  await h.migrate();
  await h.maintain(T0 - DAY_MS, T0 + DAY_MS);
  const fromPg = await exercise({ write: (b) => h.write(b), reader: h });
  checkShape(fromPg);
  const s = sqliteBackend(d.path);
  later(() => s.close());
  const fromSqlite = await exercise(s);
  for (const key of Object.keys(fromSqlite)) assert.deepEqual(fromPg[key], fromSqlite[key], `${key}: PostgreSQL and SQLite agree`);
});

test('postgres historian: daily partitions made ahead; a reading before its partition is moved into it; retention drops whole days; two instances migrate once; a newer schema is refused', { skip: pgSkip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const schema = freshSchema();
  later(() => schema.drop());
  const a = new PgHistorian({ url: POSTGRES_URL, schema: schema.name, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 });
  const b = new PgHistorian({ url: POSTGRES_URL, schema: schema.name, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 });
  later(() => a.end());
  later(() => b.end());
  await Promise.all([a.migrate(), b.migrate()]); // two instances starting together
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  later(() => admin.end());
  const versions = (await admin.query<{ version: number }>(`SELECT version FROM "${schema.name}".historian_migrations ORDER BY version`)).rows.map((x) => x.version);
  assert.deepEqual(versions, Array.from({ length: HISTORIAN_SCHEMA_VERSION }, (_, i) => i + 1), 'each migration applied once');

  // A reading three days ahead arrives before its day's partition exists: the DEFAULT partition keeps it.
  await a.write([r('dev-a', 3 * DAY_MS, { temp: 30 })]);
  const inDefault = async () => Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema.name}".readings_default`)).rows[0]!.n);
  assert.equal(await inDefault(), 1);
  const made = await a.maintain(T0 - DAY_MS, T0 + 3 * DAY_MS);
  assert.deepEqual(made.created, ['readings_p20261203', 'readings_p20261204', 'readings_p20261205', 'readings_p20261206', 'readings_p20261207']);
  assert.equal(await inDefault(), 0, 'moved into its partition when that was made');
  assert.equal((await a.queryReadings({ device: 'dev-a' })).length, 1, 'and still read back');
  assert.deepEqual((await b.maintain(T0 - DAY_MS, T0 + 3 * DAY_MS)).created, [], 'made once, whoever asks again');

  await a.write([r('dev-a', -DAY_MS, { temp: 10 }), r('dev-a', 0, { temp: 20 }), makeEvent('device.online', { silentMs: 1 }, { ts: T0 - DAY_MS, device: 'dev-a', message: 'old' })]);
  const dropped = await a.maintain(T0, T0, dayOf(T0));
  assert.deepEqual(dropped.dropped, ['readings_p20261203'], 'the day wholly before the cut is dropped');
  assert.deepEqual((await a.queryReadings({ device: 'dev-a' })).map((x) => x.value), [20, 30]);
  assert.deepEqual(await a.queryEvents({}), [], 'events before the cut are deleted');

  await admin.query(`INSERT INTO "${schema.name}".historian_migrations VALUES ($1, 0)`, [HISTORIAN_SCHEMA_VERSION + 1]);
  const c = new PgHistorian({ url: POSTGRES_URL, schema: schema.name, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 });
  later(() => c.end());
  await assert.rejects(c.migrate(), /the historian in schema \S+ is at schema version 2, written by a newer Backhaul \(this one knows up to 1\)/);
});

function dayOf(ts: number): number {
  return Math.floor(ts / DAY_MS) * DAY_MS;
}

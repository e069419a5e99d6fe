import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { makeEvent } from '../../src/core/events.js';
import type { Message } from '../../src/core/types.js';
import { defineSqliteSink, Historian, sqliteSink } from '../../src/sinks/sqlite/index.js';
import { driverContext, tempDir } from '../helpers/context.js';
import { offline, reading, T0, valve } from './messages.js';

const H = 3_600_000;

test('sqlite sink: readings and events stored, queried by device, measurement and time; survive reopening', async () => {
  const dir = tempDir();
  try {
    const ctx = driverContext({ dataDir: dir.path });
    const sink = sqliteSink.create({}, ctx);
    await sink.open();
    const path = join(dir.path, 'history.sqlite');
    assert.ok(existsSync(path));
    const b39a = [0, 1, 2, 3].map((i) => reading('b39a', T0 + i * H, { temperature: 18 + i, humidity: 60 - i }, { units: { temperature: 'Cel', humidity: '%RH' } }));
    await sink.write([valve, offline, ...b39a]);
    // an event without a device, and a retried batch that must not duplicate rows
    const applied = { source: 'hub.jsonc', hash: 'ab12', inputs: 1, routes: 2, sinks: 3 };
    await sink.write([makeEvent('config.applied', applied, { ts: T0 + 5, message: 'config v2' })]);
    await sink.write([valve, ...b39a]);
    await sink.close();

    const check = (h: Historian) => {
      assert.deepEqual(h.devices(), ['819c', 'b39a']);
      assert.deepEqual(h.measurements(), ['battery', 'boiler', 'humidity', 'occupancy', 'status', 'temperature']);
      assert.deepEqual(h.measurements('b39a'), ['humidity', 'temperature']);
      assert.equal(h.countReadings(), 5 + 8);
      assert.equal(h.countReadings({ device: 'b39a' }), 8);
      assert.deepEqual(h.queryReadings({ device: '819c' }), [
        { device: '819c', ts: T0, measurement: 'temperature', value: 16.625, unit: 'Cel', seq: 12, authenticated: true },
        { device: '819c', ts: T0, measurement: 'battery', value: 2.55, unit: 'V', seq: 12, authenticated: true },
        { device: '819c', ts: T0, measurement: 'occupancy', value: 2, seq: 12, authenticated: true },
        { device: '819c', ts: T0, measurement: 'boiler', value: true, seq: 12, authenticated: true },
        { device: '819c', ts: T0, measurement: 'status', value: 'ok', seq: 12, authenticated: true },
      ]);
      // [from, to): hours 1 and 2 of b39a's temperature
      assert.deepEqual(h.queryReadings({ device: 'b39a', measurement: 'temperature', from: T0 + H, to: T0 + 3 * H }), [
        { device: 'b39a', ts: T0 + H, measurement: 'temperature', value: 19, unit: 'Cel', authenticated: false },
        { device: 'b39a', ts: T0 + 2 * H, measurement: 'temperature', value: 20, unit: 'Cel', authenticated: false },
      ]);
      assert.equal(h.countReadings({ measurement: 'temperature', from: T0 + H }), 3);
      const newest = h.queryReadings({ measurement: 'temperature', order: 'desc', limit: 2 });
      assert.deepEqual(
        newest.map((r) => [r.device, r.ts, r.value]),
        [
          ['b39a', T0 + 3 * H, 21],
          ['b39a', T0 + 2 * H, 20],
        ],
      );
      assert.deepEqual(h.latest('b39a'), [
        { device: 'b39a', ts: T0 + 3 * H, measurement: 'humidity', value: 57, unit: '%RH', authenticated: false },
        { device: 'b39a', ts: T0 + 3 * H, measurement: 'temperature', value: 21, unit: 'Cel', authenticated: false },
      ]);
      assert.deepEqual(h.queryEvents(), [
        { ts: T0 + 5, type: 'config.applied', severity: 'info', message: 'config v2', data: applied },
        { ts: T0 + 60_000, type: 'device.offline', severity: 'warning', device: '819c', message: 'silent for 2h', data: offline.data },
      ]);
      assert.deepEqual(
        h.queryEvents({ device: '819c' }).map((e) => e.type),
        ['device.offline'],
      );
      assert.deepEqual(h.queryEvents({ from: T0 + 10 }).map((e) => e.type), ['device.offline']);
    };

    const h = Historian.open(path);
    check(h);
    h.close();
    const ro = Historian.open(path, { readonly: true });
    check(ro);
    assert.throws(() => ro.write([valve]), /read-only/);
    ro.close();

    // the file really is WAL, with the promised indexes
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    const idx = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'readings' ORDER BY name").pluck().all();
    assert.deepEqual(idx, ['readings_identity', 'readings_measurement_ts']);
    const plan = db
      .prepare("EXPLAIN QUERY PLAN SELECT * FROM readings WHERE measurement = 'x' AND ts >= 1")
      .all()
      .map((r) => (r as { detail: string }).detail)
      .join(' ');
    assert.match(plan, /readings_measurement_ts/);
    // a device's series is found through the unique index, which starts with (device, measurement, ts)
    const byDevice = db
      .prepare("EXPLAIN QUERY PLAN SELECT * FROM readings WHERE device = 'd' AND measurement = 'x' AND ts >= 1 ORDER BY ts")
      .all()
      .map((r) => (r as { detail: string }).detail)
      .join(' ');
    assert.match(byDevice, /USING INDEX readings_identity \(device=\? AND measurement=\? AND ts>\?\)/);
    assert.doesNotMatch(byDevice, /TEMP B-TREE/, 'no sort: the index gives the order');
    db.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: a relative path resolves against the config folder; retentionDays prunes old rows', async () => {
  const dir = tempDir();
  try {
    const clock = new ManualClock(T0 + 10 * 24 * H);
    const ctx = driverContext({ dataDir: join(dir.path, 'data'), clock });
    const sink = sqliteSink.create({ path: 'hist/h.sqlite', retentionDays: 2 }, ctx);
    await sink.open();
    const path = join(dir.path, 'data', 'hist/h.sqlite');
    await sink.write([
      reading('old', T0, { v: 1 }),
      reading('new', clock.now() - H, { v: 2 }),
      { ...offline, ts: T0 },
      { ...offline, ts: clock.now() },
    ]);
    // rows older than the retention stay until the next prune (hourly): move an hour on and write again
    clock.advance(H);
    await sink.write([reading('new', clock.now(), { v: 3 })]);
    await sink.close();
    const h = Historian.open(path);
    assert.deepEqual(h.devices(), ['new']);
    assert.deepEqual(h.queryReadings().map((r) => r.value), [2, 3]);
    assert.equal(h.queryEvents().length, 1);
    h.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: a file that cannot be opened is a non-retryable SinkError', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, 'blocker'), 'a file where a folder should be');
    const sink = sqliteSink.create({ path: 'blocker/h.sqlite' }, driverContext({ dataDir: dir.path }));
    await assert.rejects(sink.open(), (e: Error & { retryable?: boolean }) => e.name === 'SinkError' && e.retryable === false);
    await assert.rejects(sink.write([valve]), (e: Error & { retryable?: boolean }) => e.name === 'SinkError');
    await sink.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: different values in one millisecond are all kept; identical ones once', async () => {
  const dir = tempDir();
  try {
    const ctx = driverContext({ dataDir: dir.path });
    const sink = sqliteSink.create({}, ctx);
    await sink.open();
    const a = reading('0d49', T0, { temperature: 17.375 });
    const b = reading('0d49', T0, { temperature: 17.4375 });
    await sink.write([a, b, a]);
    await sink.write([b]);
    await sink.close();
    const h = Historian.open(join(dir.path, 'history.sqlite'));
    try {
      assert.deepEqual(h.queryReadings({ device: '0d49' }).map((r) => r.value), [17.375, 17.4375]);
    } finally {
      h.close();
    }
  } finally {
    dir.cleanup();
  }
});

type Failure = Error & { retryable?: boolean };

test('sqlite sink: the commit runs in the sink\'s own thread: a write waits out a lock the main thread holds while its event loop runs on', async () => {
  const dir = tempDir();
  try {
    const sink = sqliteSink.create({}, driverContext({ dataDir: dir.path }));
    await sink.open();
    const path = join(dir.path, 'history.sqlite');
    // The main thread takes the write lock. Were the sink's transaction run here, write() would block in SQLite's
    // busy wait (5 s) on this very thread, unable to see the lock released, and end in SQLITE_BUSY.
    const lock = new Database(path);
    lock.exec('BEGIN IMMEDIATE');
    lock.prepare("INSERT INTO events (ts, type, severity, message) VALUES (?, 'test.lock', 'info', 'held by the main thread')").run(T0);
    let settled = false;
    const written = sink.write([valve]).finally(() => (settled = true));
    await delay(50); // timers fire: the event loop is free while the thread waits for the lock
    assert.equal(settled, false, 'the write waits for the lock');
    const reader = Historian.open(path, { readonly: true });
    assert.equal(reader.countReadings(), 0);
    lock.exec('COMMIT');
    lock.close();
    await written;
    assert.equal(reader.countReadings({ device: '819c' }), 5);
    assert.deepEqual(reader.queryEvents().map((e) => e.type), ['test.lock']);
    reader.close();
    await sink.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: writes sent before the last one resolved all commit, in the order sent; close twice is safe; a write after close is retryable', async () => {
  const dir = tempDir();
  try {
    const sink = sqliteSink.create({}, driverContext({ dataDir: dir.path }));
    await sink.open();
    const writes = Array.from({ length: 20 }, (_, i) => sink.write([reading('a1', T0, { n: i }), reading('a2', T0 + i, { n: i })]));
    await Promise.all(writes);
    await Promise.all([sink.close(), sink.close()]);
    await sink.close();
    await assert.rejects(sink.write([valve]), (e: Failure) => e.name === 'SinkError' && e.retryable === true && /not open/.test(e.message));
    const h = Historian.open(join(dir.path, 'history.sqlite'), { readonly: true });
    // same ts: rows come back in insertion order, which is the order the writes were sent
    assert.deepEqual(h.queryReadings({ device: 'a1' }).map((r) => r.value), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(h.countReadings({ device: 'a2' }), 20);
    h.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: SQLite\'s verdict crosses the thread: a row it refuses and a file that is no database are non-retryable', async () => {
  const dir = tempDir();
  try {
    const sink = sqliteSink.create({}, driverContext({ dataDir: dir.path }));
    await sink.open();
    const noMessage = { ...offline, message: null } as unknown as Message; // NOT NULL: SQLITE_CONSTRAINT_NOTNULL
    await assert.rejects(sink.write([valve, noMessage]), (e: Failure) => e.name === 'SinkError' && e.retryable === false && /NOT NULL/.test(e.message));
    await sink.write([offline]); // the thread lives on; the refused batch was rolled back whole
    await sink.close();
    const h = Historian.open(join(dir.path, 'history.sqlite'), { readonly: true });
    assert.equal(h.countReadings(), 0);
    assert.equal(h.queryEvents().length, 1);
    h.close();

    writeFileSync(join(dir.path, 'junk.sqlite'), 'not a database, but long enough to have a header that SQLite checks'.repeat(20));
    const junk = sqliteSink.create({ path: 'junk.sqlite' }, driverContext({ dataDir: dir.path }));
    await assert.rejects(junk.open(), (e: Failure) => e.name === 'SinkError' && e.retryable === false && /not a database/.test(e.message));
    await junk.close();
  } finally {
    dir.cleanup();
  }
});

test('sqlite sink: a thread that dies fails its write (or open) retryable; the next write, or the next open(), starts a new thread', async () => {
  const dir = tempDir();
  try {
    const crashing = defineSqliteSink(new URL('./sqlite-crash-thread.js', import.meta.url));
    const sink = crashing.create({}, driverContext({ dataDir: dir.path }));
    await sink.open();
    await sink.write([reading('d1', T0, { v: 1 })]);
    const died = (e: Failure) => e.name === 'SinkError' && e.retryable === true && /thread exited/.test(e.message);
    await assert.rejects(sink.write([reading('crash', T0, { v: 0 })]), died);
    await sink.write([reading('d2', T0, { v: 2 })]); // what the runner does after a retryable failure: write again
    await assert.rejects(sink.write([reading('crash', T0, { v: 0 })]), died);
    await sink.open();
    await sink.write([reading('d3', T0, { v: 3 })]);
    await sink.close();
    const h = Historian.open(join(dir.path, 'history.sqlite'), { readonly: true });
    assert.deepEqual(h.devices(), ['d1', 'd2', 'd3']);
    h.close();

    // dying in the open is retryable too (unlike a file SQLite refuses)
    const crashOnOpen = crashing.create({ path: 'crash.sqlite' }, driverContext({ dataDir: dir.path }));
    await assert.rejects(crashOnOpen.open(), died);
    await crashOnOpen.close();
  } finally {
    dir.cleanup();
  }
});

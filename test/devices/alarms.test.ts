// The alarm keeper over a real registry file: one alarm per condition across restarts, its lifecycle (raised,
// acknowledged with a note, cleared by its condition or an operator), reminders on a manual clock, sink alarms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { ManualClock } from '../../src/core/clock.js';
import { EVENT_TYPES, makeEvent, type HubEvent } from '../../src/core/events.js';
import { createLogger } from '../../src/core/logger.js';
import { AlarmKeeper } from '../../src/devices/alarms.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { SqliteDeviceStore } from '../../src/devices/store/index.js';
import { tempDir } from '../helpers/context.js';

const T0 = Date.UTC(2026, 11, 2, 14, 2);
const logger = createLogger({ pretty: false, level: 'silent' });

const offline = (ts: number) =>
  makeEvent('device.offline', { lastSeen: T0 - 31 * 60_000, silentMs: 31 * 60_000, threshold: 30 * 60_000 }, { ts, device: 'valve-819c', message: 'valve 819c silent since 14:02' });
const online = (ts: number) => makeEvent('device.online', { silentMs: 40 * 60_000 }, { ts, device: 'valve-819c', message: 'valve 819c speaks again' });

function keeperOn(path: string, clock: ManualClock, remindEveryMs?: number) {
  const store = SqliteDeviceStore.open(path, { types: new DeviceTypes(), clock });
  const events: HubEvent[] = [];
  const keeper = new AlarmKeeper({
    store: store.alarms,
    clock,
    logger,
    emit: (e) => events.push(e),
    nameOf: (_k, id) => (id === 'valve-819c' ? 'Kitchen valve' : id),
    ...(remindEveryMs !== undefined ? { remindEveryMs } : {}),
  });
  return { store, keeper, events, types: () => events.map((e) => e.type) };
}

function checkSchema(e: HubEvent): void {
  const spec = EVENT_TYPES[e.type as keyof typeof EVENT_TYPES];
  assert.ok(spec, e.type);
  assert.ok(Value.Check(spec.data, e.data), `${e.type} data ${JSON.stringify(e.data)}`);
}

test('an offline device raises one alarm across three restarts, each of which reports the same silence again', async () => {
  const d = tempDir();
  try {
    const path = join(d.path, 'registry.sqlite');
    const clock = new ManualClock(T0);
    const raised: HubEvent[] = [];
    for (let run = 0; run < 3; run++) {
      const k = keeperOn(path, clock);
      await k.keeper.start();
      if (run > 0) assert.deepEqual(k.keeper.openSubjects('device', 'offline'), ['valve-819c'], `run ${run}: the open alarm is known at start`);
      k.keeper.observe(offline(clock.now()));
      raised.push(...k.events.filter((e) => e.type === 'alarm.raised'));
      await k.keeper.stop();
      await k.store.close();
      clock.advance(60_000);
    }
    assert.equal(raised.length, 1, 'raised once, not once per run');
    const e = raised[0]!;
    checkSchema(e);
    assert.equal(e.severity, 'warning');
    assert.equal(e.data?.['alarmKind'], 'offline');
    assert.equal(e.data?.['subject'], 'valve-819c');
    assert.equal(e.data?.['name'], 'Kitchen valve');
    assert.equal(e.message, 'alarm: valve 819c silent since 14:02');

    const k = keeperOn(path, clock);
    await k.keeper.start();
    const open = await k.store.alarms.list({ state: 'open' });
    assert.equal(open.length, 1);
    assert.equal(open[0]!.raisedAt, T0);
    assert.equal(open[0]!.lastSeenAt, T0 + 120_000, 'the later reports moved lastSeenAt');
    // The condition ends: cleared, with how long it was open; a new silence is a new alarm.
    k.keeper.observe(online(clock.now()));
    assert.deepEqual(k.types(), ['alarm.cleared']);
    checkSchema(k.events[0]!);
    assert.equal(k.events[0]!.data?.['by'], 'condition');
    assert.equal(k.events[0]!.data?.['durationMs'], 180_000);
    k.keeper.observe(offline(clock.now()));
    assert.deepEqual(k.types(), ['alarm.cleared', 'alarm.raised']);
    assert.notEqual(k.events[1]!.data?.['alarm'], e.data?.['alarm']);
    await k.keeper.stop();
    const all = await k.store.alarms.list();
    assert.deepEqual(all.map((a) => a.state), ['raised', 'cleared'], 'newest first; the first one is history');
    await k.store.close();
  } finally {
    d.cleanup();
  }
});

test('acknowledge with a note, clear by an operator; cleared alarms refuse both; unknown ids are coded errors', async () => {
  const d = tempDir();
  try {
    const clock = new ManualClock(T0);
    const k = keeperOn(join(d.path, 'registry.sqlite'), clock);
    await k.keeper.start();
    k.keeper.observe(makeEvent('device.battery_low', { value: 2.31, floor: 2.4, recoverAbove: 2.5 }, { ts: T0, device: 'valve-819c', message: 'battery low' }));
    const [a] = await k.keeper.list({ state: 'open' });
    assert.ok(a);
    clock.advance(5000);
    const acked = await k.keeper.acknowledge(a.id, 'api:alice', 'new batteries ordered');
    assert.equal(acked.state, 'acknowledged');
    assert.equal(acked.acknowledgedBy, 'api:alice');
    assert.equal(acked.acknowledgedAt, T0 + 5000);
    assert.equal(acked.note, 'new batteries ordered');
    assert.deepEqual(k.types(), ['alarm.raised', 'alarm.acknowledged']);
    checkSchema(k.events[1]!);
    assert.equal(k.events[1]!.data?.['note'], 'new batteries ordered');
    assert.deepEqual(await k.keeper.counts(), { raised: 0, acknowledged: 1, byKind: { battery_low: { raised: 0, acknowledged: 1 } } });

    const cleared = await k.keeper.clear(a.id, 'api:bob');
    assert.equal(cleared.state, 'cleared');
    assert.equal(cleared.clearedBy, 'api:bob');
    assert.equal(k.events[2]!.message, 'alarm cleared by api:bob after 5 s: battery low');
    await assert.rejects(k.keeper.acknowledge(a.id, 'api:alice'), { code: 'BH_ALARM_STATE' });
    await assert.rejects(k.keeper.clear(a.id, 'api:alice'), { code: 'BH_ALARM_STATE' });
    await assert.rejects(k.keeper.clear('al_000000000000', 'api:alice'), { code: 'BH_ALARM_NOT_FOUND' });
    assert.equal((await k.keeper.get(a.id))?.state, 'cleared', 'kept as history');
    assert.deepEqual(await k.keeper.counts(), { raised: 0, acknowledged: 0, byKind: {} });
    await k.keeper.stop();
    await k.store.close();
  } finally {
    d.cleanup();
  }
});

test('reminders every remindEveryMs while raised, none once acknowledged; sink alarms from sink.failing and sink.recovered', async () => {
  const d = tempDir();
  try {
    const clock = new ManualClock(T0);
    const k = keeperOn(join(d.path, 'registry.sqlite'), clock, 600_000);
    await k.keeper.start();
    k.keeper.observe(makeEvent('sink.failing', { sink: 'cloud', since: T0, failures: 7, error: 'BH_SINK_WRITE refused' }, { ts: T0, message: 'sink cloud has been failing for 5 min' }));
    clock.advance(599_999);
    assert.deepEqual(k.types(), ['alarm.raised']);
    clock.advance(1);
    assert.deepEqual(k.types(), ['alarm.raised', 'alarm.reminder']);
    checkSchema(k.events[1]!);
    assert.equal(k.events[1]!.data?.['reminder'], 1);
    assert.equal(k.events[1]!.data?.['subjectKind'], 'sink');
    assert.match(k.events[1]!.message, /^reminder 1: still open after 10 min: sink cloud has been failing/);
    clock.advance(600_000);
    assert.equal(k.events.filter((e) => e.type === 'alarm.reminder').length, 2);
    const [a] = await k.keeper.list({ state: 'open', subjectKind: 'sink' });
    await k.keeper.acknowledge(a!.id, 'cli:carol');
    clock.advance(3_600_000);
    assert.equal(k.events.filter((e) => e.type === 'alarm.reminder').length, 2, 'no reminder after acknowledgement');
    k.keeper.observe(makeEvent('sink.recovered', { sink: 'cloud', durationMs: 1 }, { ts: clock.now(), message: 'sink cloud delivers again' }));
    assert.equal(k.events.at(-1)!.type, 'alarm.cleared');
    assert.equal((await k.keeper.get(a!.id))?.reminders, 2);
    await k.keeper.stop();
    assert.equal(clock.pending(), 0, 'stop leaves no timer');
    await k.store.close();
  } finally {
    d.cleanup();
  }
});

test('the severity stage: WARNING raises an alarm per measurement, DANGER makes it critical without a second raise, NORMAL clears it', async () => {
  const d = tempDir();
  try {
    const clock = new ManualClock(T0);
    const k = keeperOn(join(d.path, 'registry.sqlite'), clock);
    await k.keeper.start();
    const level = (measurement: string, lvl: 'NORMAL' | 'WARNING' | 'DANGER', previous: 'NORMAL' | 'WARNING' | 'DANGER') =>
      makeEvent('severity.changed', { measurement, value: 1, level: lvl, previous }, { ts: clock.now(), device: 'room-1', severity: lvl === 'NORMAL' ? 'info' : lvl === 'DANGER' ? 'critical' : 'warning', message: `co2 ${lvl}` });
    k.keeper.observe(level('co2', 'WARNING', 'NORMAL'));
    k.keeper.observe(level('temperature', 'WARNING', 'NORMAL'));
    k.keeper.observe(level('co2', 'DANGER', 'WARNING'));
    assert.deepEqual(k.types(), ['alarm.raised', 'alarm.raised'], 'one per measurement; escalation is not a new alarm');
    assert.equal(k.events[0]!.data?.['aspect'], 'co2');
    const open = await k.keeper.list({ state: 'open', kind: 'severity' });
    assert.deepEqual(open.map((a) => [a.aspect, a.severity]).sort(), [['co2', 'critical'], ['temperature', 'warning']]);
    k.keeper.observe(level('co2', 'NORMAL', 'DANGER'));
    assert.deepEqual(k.types(), ['alarm.raised', 'alarm.raised', 'alarm.cleared']);
    assert.equal(k.events[2]!.data?.['aspect'], 'co2');
    assert.deepEqual((await k.keeper.list({ state: 'open' })).map((a) => a.aspect), ['temperature']);
    await k.keeper.stop();
    await k.store.close();
  } finally {
    d.cleanup();
  }
});

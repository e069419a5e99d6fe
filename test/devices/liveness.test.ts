// Liveness and battery health: device.offline exactly once after a silence longer than the threshold, device.online
// on return, battery_low once until recovery above floor + hysteresis, one clock timer for any number of devices,
// bounded memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, type Clock, type ClockTimer } from '../../src/core/clock.js';
import type { HubEvent, Reading, Value } from '../../src/core/types.js';
import { humanDuration } from '../../src/core/duration.js';
import { LivenessMonitor, type LivenessOptions, type LivenessThresholds } from '../../src/devices/liveness.js';

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const T0 = Date.parse('2026-01-01T00:00:00Z');

function reading(device: string, values: Record<string, Value> = { temperature: 20 }, units?: Record<string, string>): Reading {
  return { kind: 'reading', device, ts: 0, values, ...(units ? { units } : {}), authenticated: false, source: { input: 'test', decoder: 'test' } };
}

function setup(thresholds: Record<string, LivenessThresholds> | ((id: string) => LivenessThresholds | undefined), more: Partial<LivenessOptions> = {}) {
  const clock = new ManualClock(T0);
  const events: HubEvent[] = [];
  const thresholdsOf = typeof thresholds === 'function' ? thresholds : (id: string) => thresholds[id];
  const mon = new LivenessMonitor({ clock, emit: (e) => events.push(e), thresholdsOf, ...more });
  const types = (): string[] => events.map((e) => `${e.type} ${e.device ?? ''}`.trim());
  return { clock, events, mon, types };
}

test('device.offline is raised exactly once after the threshold, not at it; device.online on return; again after a new silence', () => {
  const { clock, events, mon, types } = setup({ '819c': { maxSilentMs: 30 * MIN } }, { describe: (id) => `valve ${id}` });
  mon.start([]);
  mon.observe(reading('819c'));
  assert.deepEqual(mon.state('819c'), { online: true, lastSeen: T0, batteryLow: false, battery: undefined });
  clock.advance(30 * MIN); // silent exactly the threshold: not longer
  assert.equal(events.length, 0);
  clock.advance(1);
  assert.deepEqual(types(), ['device.offline 819c']);
  assert.deepEqual(events[0], {
    kind: 'event',
    type: 'device.offline',
    ts: T0 + 30 * MIN + 1,
    severity: 'warning',
    device: '819c',
    message: 'valve 819c silent for 30 min (threshold 30 min)',
    data: { lastSeen: T0, silentMs: 30 * MIN + 1, threshold: 30 * MIN },
  });
  assert.equal(mon.state('819c')?.online, false);
  clock.advance(10 * H); // still silent: nothing more
  assert.equal(events.length, 1);
  assert.equal(clock.pending(), 0);

  mon.observe(reading('819c'));
  assert.deepEqual(types(), ['device.offline 819c', 'device.online 819c']);
  assert.deepEqual(events[1], {
    kind: 'event',
    type: 'device.online',
    ts: T0 + 10 * H + 30 * MIN + 1,
    severity: 'info',
    device: '819c',
    message: 'valve 819c back after 10 h 30 min of silence',
    data: { lastSeen: T0, silentMs: 10 * H + 30 * MIN + 1, threshold: 30 * MIN },
  });
  assert.equal(mon.state('819c')?.online, true);
  mon.observe(reading('819c')); // a second message is not a second return
  assert.equal(events.length, 2);

  clock.advance(30 * MIN);
  assert.equal(events.length, 2);
  clock.advance(1);
  assert.deepEqual(types(), ['device.offline 819c', 'device.online 819c', 'device.offline 819c']);
  assert.equal(events[2]!.ts, T0 + 10 * H + 60 * MIN + 2);
});

test('a device reporting within its threshold never goes offline, and costs no timer churn', () => {
  const { clock, events, mon } = setup({ a: { maxSilentMs: 10 * MIN }, b: { maxSilentMs: 15 * MIN } });
  mon.start([]);
  for (let i = 0; i < 100; i++) {
    mon.observe(reading('a'));
    mon.observe(reading('b'));
    assert.ok(clock.pending() <= 1);
    clock.advance(10 * MIN); // exactly the threshold between messages: never longer
  }
  assert.equal(events.length, 0);
  assert.deepEqual(mon.counts(), { active: 2, outdated: 0, unknown: 0 });
  clock.advance(5 * MIN + 1);
  assert.deepEqual(events.map((e) => e.device), ['a', 'b']);
  assert.deepEqual(mon.counts(), { active: 0, outdated: 2, unknown: 0 });
});

test('battery_low fires once over many low readings and again only after a recovery above floor + hysteresis', () => {
  const { events, mon, types } = setup({ v: { maxSilentMs: 30 * MIN, batteryFloor: 2.4 } }, { describe: (id) => `valve ${id}` });
  mon.start([]);
  const battery = (v: number) => mon.observe(reading('v', { battery: v, temperature: 19.5 }, { battery: 'V', temperature: 'Cel' }));
  battery(2.4); // at the floor: not below it
  assert.equal(events.length, 0);
  battery(2.39);
  assert.deepEqual(types(), ['device.battery_low v']);
  assert.deepEqual(events[0], {
    kind: 'event',
    type: 'device.battery_low',
    ts: T0,
    severity: 'warning',
    device: 'v',
    message: 'valve v battery low: 2.39 V (floor 2.4 V)',
    data: { value: 2.39, floor: 2.4, recoverAbove: 2.5 },
  });
  for (let i = 0; i < 50; i++) battery(2.3);
  battery(2.45); // above the floor but within the hysteresis
  battery(2.5); // exactly floor + hysteresis: not above it
  battery(2.35);
  assert.equal(events.length, 1);
  assert.equal(mon.state('v')?.batteryLow, true);
  battery(2.51);
  assert.deepEqual(types(), ['device.battery_low v', 'device.battery_ok v']);
  assert.equal(events[1]!.severity, 'info');
  assert.equal(events[1]!.message, 'valve v battery back to 2.51 V (floor 2.4 V)');
  for (let i = 0; i < 10; i++) battery(2.6);
  battery(2.4);
  assert.equal(events.length, 2);
  battery(2.399);
  assert.deepEqual(types(), ['device.battery_low v', 'device.battery_ok v', 'device.battery_low v']);
  assert.deepEqual(mon.state('v'), { online: true, lastSeen: T0, batteryLow: true, battery: 2.399 });
});

test('hysteresis and the battery measurement are options; floating point does not move the recovery edge', () => {
  const { events, mon, types } = setup({ s: { batteryFloor: 2.2 } }, { hysteresis: 0.1, batteryMeasurement: 'vbat' });
  mon.observe(reading('s', { battery: 1.0 })); // not the configured measurement
  assert.equal(events.length, 0);
  mon.observe(reading('s', { vbat: 2.1 }));
  mon.observe(reading('s', { vbat: 2.3 })); // 2.2 + 0.1 is 2.3, not 2.3000000000000003, and 2.3 is not above it
  assert.deepEqual(types(), ['device.battery_low s']);
  mon.observe(reading('s', { vbat: 2.3000001 }));
  assert.deepEqual(types(), ['device.battery_low s', 'device.battery_ok s']);

  const wide = setup({ s: { batteryFloor: 3 } }, { hysteresis: 0.3 });
  for (const v of [2.9, 3.2, 3.3, 2.9]) wide.mon.observe(reading('s', { battery: v }));
  assert.deepEqual(wide.types(), ['device.battery_low s']);
  wide.mon.observe(reading('s', { battery: 3.31 }));
  assert.deepEqual(wide.types(), ['device.battery_low s', 'device.battery_ok s']);
  assert.throws(() => new LivenessMonitor({ clock: new ManualClock(), emit: () => {}, thresholdsOf: () => undefined, hysteresis: -1 }), RangeError);
});

test('battery values that are not volts are ignored and counted; a device without a floor raises nothing', () => {
  const { events, mon } = setup({ v: { batteryFloor: 2.4 }, n: {} });
  mon.observe(reading('v', { battery: 80 }, { battery: '%' }));
  mon.observe(reading('v', { battery: 'low' }));
  mon.observe(reading('v', { battery: Number.NaN }));
  assert.equal(events.length, 0);
  assert.equal(mon.stats().batteryIgnored, 3);
  mon.observe(reading('n', { battery: 0.5 }));
  assert.equal(events.length, 0);
  assert.deepEqual(mon.state('n'), { online: undefined, lastSeen: T0, batteryLow: false, battery: 0.5 });
});

test('devices without a max silent interval never go offline and hold no timer', () => {
  const { clock, events, mon } = setup((id) => (id === 'floor-only' ? { batteryFloor: 2.4 } : undefined));
  mon.start([{ id: 'old', lastSeen: T0 - 365 * 24 * H }]);
  mon.observe(reading('x'));
  mon.observe(reading('floor-only'));
  assert.equal(clock.pending(), 0);
  clock.advance(30 * 24 * H);
  assert.equal(events.length, 0);
  assert.equal(mon.state('x')?.online, undefined);
  assert.deepEqual(mon.counts(), { active: 0, outdated: 0, unknown: 3 });
});

test('start(): a device already silent longer than its threshold goes offline on the first timer turn, others at their own deadline', () => {
  const { clock, events, mon, types } = setup({
    late: { maxSilentMs: 30 * MIN },
    soon: { maxSilentMs: 30 * MIN },
    fresh: { maxSilentMs: 30 * MIN },
    never: { maxSilentMs: 30 * MIN },
    future: { maxSilentMs: 30 * MIN },
  });
  mon.start([
    { id: 'late', lastSeen: T0 - 2 * H },
    { id: 'soon', lastSeen: T0 - 20 * MIN },
    { id: 'fresh', lastSeen: T0 },
    { id: 'never' },
    { id: 'future', lastSeen: T0 + 5 * H }, // clock skew: counted from now
  ]);
  assert.equal(events.length, 0, 'nothing is raised inside start()');
  assert.equal(clock.pending(), 1);
  assert.deepEqual(mon.counts(), { active: 4, outdated: 0, unknown: 1 });
  clock.advance(0);
  assert.deepEqual(types(), ['device.offline late']);
  assert.deepEqual(events[0]!.data, { lastSeen: T0 - 2 * H, silentMs: 2 * H, threshold: 30 * MIN });
  assert.equal(events[0]!.message, 'device late silent for 2 h (threshold 30 min)');
  clock.advance(10 * MIN);
  assert.equal(events.length, 1);
  clock.advance(1);
  assert.deepEqual(types(), ['device.offline late', 'device.offline soon']);
  clock.advance(20 * MIN);
  assert.deepEqual(types(), ['device.offline late', 'device.offline soon', 'device.offline fresh', 'device.offline future']);
  clock.advance(24 * H);
  assert.equal(events.length, 4, 'a device never seen is watched from its first message');
  assert.equal(mon.state('never')?.online, undefined);
  assert.deepEqual(mon.counts(), { active: 0, outdated: 4, unknown: 1 });
  mon.observe(reading('never'));
  clock.advance(30 * MIN + 1);
  assert.deepEqual(types().slice(4), ['device.offline never']);
});

test('start(): a device offline already in the last run (offline: true) raises no second device.offline; device.online when it speaks', () => {
  const { clock, events, mon, types } = setup({ gone: { maxSilentMs: 30 * MIN }, other: { maxSilentMs: 30 * MIN } });
  mon.start([
    { id: 'gone', lastSeen: T0 - 2 * H, offline: true },
    { id: 'other', lastSeen: T0 - 2 * H },
  ]);
  clock.advance(24 * H);
  assert.deepEqual(types(), ['device.offline other'], 'only the device not known offline is reported');
  assert.equal(mon.state('gone')?.online, false);
  assert.deepEqual(mon.counts(), { active: 0, outdated: 2, unknown: 0 });
  clock.advance(MIN);
  mon.observe(reading('gone'));
  assert.deepEqual(types(), ['device.offline other', 'device.online gone']);
  assert.equal(events[1]!.data?.['silentMs'], 26 * H + MIN, 'its silence counted from its last-seen time before the restart');
  clock.advance(30 * MIN + 1);
  assert.deepEqual(types().slice(2), ['device.offline gone'], 'a new silence is reported again');
});

test('start() keeps the later last-seen of a device observed before it', () => {
  const { clock, events, mon } = setup({ d: { maxSilentMs: MIN } });
  mon.observe(reading('d'));
  assert.equal(clock.pending(), 0, 'no timer before start');
  clock.advance(30 * S);
  mon.start([{ id: 'd', lastSeen: T0 - H }]);
  assert.equal(mon.state('d')?.lastSeen, T0);
  clock.advance(30 * S);
  assert.equal(events.length, 0);
  clock.advance(1);
  assert.equal(events.length, 1);
});

test('100,000 devices cost one clock timer, and each goes offline exactly once', () => {
  const N = 100_000;
  const { clock, events, mon } = setup((id) => ({ maxSilentMs: (10 + (Number(id.slice(1)) % 50)) * MIN }));
  const ids = Array.from({ length: N }, (_, i) => `d${i}`);
  mon.start(ids.map((id, i) => ({ id, lastSeen: T0 - (i % 7) * MIN })));
  assert.equal(clock.pending(), 1);
  clock.advance(3 * MIN); // at most 9 min of silence so far; the shortest threshold is 10 min
  for (const id of ids) mon.observe(reading(id));
  assert.equal(clock.pending(), 1);
  assert.deepEqual(mon.counts(), { active: N, outdated: 0, unknown: 0 });
  clock.advance(59 * MIN);
  assert.equal(events.length, N - N / 50, 'those with the longest threshold (59 min) are silent exactly that long');
  clock.advance(1);
  assert.equal(events.length, N);
  assert.equal(new Set(events.map((e) => e.device)).size, N);
  for (const e of events) assert.equal(e.ts, T0 + 3 * MIN + (e.data!['threshold'] as number) + 1);
  assert.equal(clock.pending(), 0);
  assert.deepEqual(mon.counts(), { active: 0, outdated: N, unknown: 0 });
  assert.deepEqual(mon.stats(), { tracked: N, refused: 0, batteryIgnored: 0 });
});

test('past maxDevices new devices are not watched: memory stays bounded, refusals are counted, one overflow event', () => {
  const { clock, events, mon, types } = setup(() => ({ maxSilentMs: MIN }), { maxDevices: 3 });
  mon.start([{ id: 'a', lastSeen: T0 }, { id: 'b', lastSeen: T0 }]);
  for (const id of ['c', 'd', 'e', 'd', 'c']) mon.observe(reading(id));
  assert.deepEqual(mon.stats(), { tracked: 3, refused: 3, batteryIgnored: 0 });
  assert.equal(mon.state('d'), undefined);
  assert.deepEqual(types(), ['liveness.overflow']);
  assert.equal(events[0]!.severity, 'warning');
  assert.deepEqual(events[0]!.data, { maxDevices: 3, firstRefused: 'd' });
  for (let i = 0; i < 1000; i++) mon.observe(reading(`x${i}`));
  assert.equal(mon.stats().tracked, 3);
  assert.equal(mon.stats().refused, 1003);
  assert.equal(events.length, 1);

  assert.equal(mon.forget('a'), true);
  assert.equal(mon.forget('a'), false);
  mon.observe(reading('d'));
  assert.equal(mon.state('d')?.online, true);
  mon.observe(reading('z')); // full again: a new overflow event
  assert.deepEqual(types(), ['liveness.overflow', 'liveness.overflow']);
  clock.advance(MIN + 1);
  assert.deepEqual(types().slice(2).sort(), ['device.offline b', 'device.offline c', 'device.offline d']);
  assert.throws(() => new LivenessMonitor({ clock, emit: () => {}, thresholdsOf: () => undefined, maxDevices: 0 }), RangeError);
});

test('stop() clears every timer; messages are still recorded; start() arms again', () => {
  const { clock, events, mon } = setup(() => ({ maxSilentMs: MIN }));
  mon.start([{ id: 'a', lastSeen: T0 }, { id: 'b', lastSeen: T0 - 10 * MIN }]);
  assert.equal(clock.pending(), 1);
  mon.stop();
  assert.equal(clock.pending(), 0);
  clock.advance(H);
  mon.observe(reading('c'));
  assert.equal(clock.pending(), 0);
  assert.equal(events.length, 0);
  mon.start();
  assert.equal(clock.pending(), 1);
  clock.advance(0);
  assert.deepEqual(events.map((e) => e.device).sort(), ['a', 'b']);
  clock.advance(MIN + 1);
  assert.deepEqual(events.map((e) => e.device).sort(), ['a', 'b', 'c']);
  // started again: an offline device stays offline (one event per silence), whatever start() is given
  mon.stop();
  mon.start([{ id: 'a', lastSeen: clock.now() }]);
  clock.advance(H);
  assert.equal(events.length, 3);
  assert.equal(mon.state('a')?.online, false);
  assert.equal(clock.pending(), 0);
});

test('forget() drops a device and its deadline; the last one takes the timer with it', () => {
  const { clock, events, mon } = setup(() => ({ maxSilentMs: MIN }));
  mon.start([]);
  mon.observe(reading('a'));
  clock.advance(10 * S);
  mon.observe(reading('b'));
  mon.forget('a');
  clock.advance(MIN - 10 * S + 1);
  assert.equal(events.length, 0);
  mon.forget('b');
  assert.equal(clock.pending(), 0);
  clock.advance(H);
  assert.equal(events.length, 0);
  assert.equal(mon.state('a'), undefined);
});

test('threshold changes: refresh() applies a lower one at once; a higher or removed one is noticed at the old deadline', () => {
  const th: Record<string, LivenessThresholds> = { a: { maxSilentMs: 30 * MIN }, b: { maxSilentMs: 10 * MIN }, c: { maxSilentMs: 10 * MIN } };
  const { clock, mon, types } = setup(th);
  mon.start([]);
  for (const id of ['a', 'b', 'c']) mon.observe(reading(id));
  th['a'] = { maxSilentMs: 5 * MIN };
  mon.refresh('a');
  th['b'] = { maxSilentMs: 20 * MIN };
  delete th['c'];
  clock.advance(5 * MIN + 1);
  assert.deepEqual(types(), ['device.offline a']);
  clock.advance(10 * MIN);
  assert.deepEqual(types(), ['device.offline a'], 'b has 20 min now, c none');
  clock.advance(5 * MIN);
  assert.deepEqual(types(), ['device.offline a', 'device.offline b']);
  clock.advance(24 * H);
  assert.equal(types().length, 2);
  assert.equal(mon.state('c')?.online, undefined);
  assert.equal(clock.pending(), 0);
});

test('a threshold longer than setTimeout allows (24.8 days) is waited for in steps', () => {
  const manual = new ManualClock(T0);
  const delays: number[] = [];
  const clock: Clock = {
    now: () => manual.now(),
    setTimeout: (fn: () => void, ms: number): ClockTimer => {
      delays.push(ms);
      return manual.setTimeout(fn, ms);
    },
    clearTimeout: (t) => manual.clearTimeout(t),
  };
  const events: HubEvent[] = [];
  const mon = new LivenessMonitor({ clock, emit: (e) => events.push(e), thresholdsOf: () => ({ maxSilentMs: 40 * 24 * H }) });
  mon.start([]);
  mon.observe(reading('far'));
  manual.advance(40 * 24 * H);
  assert.equal(events.length, 0);
  manual.advance(1);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.message, 'device far silent for 40 d (threshold 40 d)');
  assert.ok(delays.length >= 2 && delays.every((d) => d <= 2 ** 31 - 1), String(delays));
});

test('randomised: every offline event comes exactly at lastSeen + threshold + 1 ms, once per silence', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const N = 300;
  const threshold = (id: string): number => (1 + (Number(id.slice(1)) % 97)) * S;
  const { clock, events, mon } = setup((id) => ({ maxSilentMs: threshold(id) }));
  const seen = new Map<string, number[]>();
  mon.start([]);
  for (let step = 0; step < 20_000; step++) {
    clock.advance(rand(200));
    const id = `d${rand(N)}`;
    mon.observe(reading(id));
    const list = seen.get(id) ?? [];
    list.push(clock.now());
    seen.set(id, list);
    assert.ok(clock.pending() <= 1);
  }
  clock.advance(100 * S);
  const end = clock.now();
  let expected = 0;
  for (const [id, times] of seen) {
    const t = threshold(id);
    const offline = events.filter((e) => e.type === 'device.offline' && e.device === id).map((e) => e.ts);
    const want: number[] = [];
    let returns = 0;
    for (let i = 0; i < times.length; i++) {
      const next = times[i + 1];
      // The clock fires timers due at an instant before the message that arrives at that instant.
      if (times[i]! + t + 1 <= Math.min(next ?? Infinity, end)) {
        want.push(times[i]! + t + 1);
        if (next !== undefined) returns++;
      }
    }
    assert.deepEqual(offline, want, id);
    const online = events.filter((e) => e.type === 'device.online' && e.device === id).length;
    assert.equal(online, returns, `${id} online`);
    expected += want.length;
  }
  assert.equal(events.filter((e) => e.type === 'device.offline').length, expected);
});

test('humanDuration reads like a person would say it', () => {
  assert.equal(humanDuration(45 * S), '45 s');
  assert.equal(humanDuration(31 * MIN + 20 * S), '31 min');
  assert.equal(humanDuration(2 * H), '2 h');
  assert.equal(humanDuration(2 * H + 5 * MIN), '2 h 5 min');
  assert.equal(humanDuration(3 * 24 * H + 4 * H), '3 d 4 h');
});

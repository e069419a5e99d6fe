import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { privacyStage } from '../../src/pipeline/stages/privacy/index.js';
import { templateStage } from '../../src/pipeline/stages/template/index.js';
import { event, events, make, problems, reading, readings } from './harness.js';

const at = (iso: string) => Date.parse(iso);
/** Replayed data: the clock is far after the readings. */
const REPLAY = () => new ManualClock(at('2030-01-01T00:00:00Z'));

// ---------------------------------------------------------------- privacy

test('privacy: suppresses readings during the private local hours, following British Summer Time both ways', () => {
  const { stage, ctx } = make(privacyStage, { hours: '00:00-05:00', tz: 'Europe/London' }, REPLAY());
  const passes = (iso: string) => stage.process(reading('stop-1', at(iso), { people: 1 })).length === 1;
  // Winter (GMT): local = UTC.
  assert.equal(passes('2024-03-30T04:30:00Z'), false); // 04:30 GMT
  assert.equal(passes('2024-03-30T05:00:00Z'), true); // 05:00 GMT: the end is not private
  // 31 March 2024: at 01:00 UTC clocks go from 01:00 GMT to 02:00 BST.
  assert.equal(passes('2024-03-31T00:30:00Z'), false); // 00:30 GMT
  assert.equal(passes('2024-03-31T01:30:00Z'), false); // 02:30 BST
  assert.equal(passes('2024-03-31T03:59:00Z'), false); // 04:59 BST
  assert.equal(passes('2024-03-31T04:00:00Z'), true); // 05:00 BST
  assert.equal(passes('2024-03-31T04:30:00Z'), true); // 05:30 BST, though 04:30 UTC was private the day before
  assert.equal(passes('2024-03-30T23:59:00Z'), true); // 23:59 GMT
  // 27 October 2024: at 01:00 UTC clocks go from 02:00 BST back to 01:00 GMT; 01:30 happens twice.
  assert.equal(passes('2024-10-26T23:00:00Z'), false); // 00:00 BST
  assert.equal(passes('2024-10-27T00:30:00Z'), false); // 01:30 BST
  assert.equal(passes('2024-10-27T01:30:00Z'), false); // 01:30 GMT
  assert.equal(passes('2024-10-27T04:59:00Z'), false); // 04:59 GMT
  assert.equal(passes('2024-10-27T05:00:00Z'), true); // 05:00 GMT
  assert.equal(passes('2024-10-26T04:30:00Z'), true); // 05:30 BST
  assert.equal(ctx.drops.get('privacy'), 8);
});

test('privacy: hours spanning midnight, several ranges, only some devices and measurements', () => {
  const { stage } = make(
    privacyStage,
    { hours: ['22:00-06:00', '12:00-12:30'], tz: 'America/New_York', devices: ['stop-*'], measurements: ['people'] },
    REPLAY(),
  );
  const out = (device: string, iso: string) => readings(stage.process(reading(device, at(iso), { people: 2, battery: 3.1 }))).map((r) => r.values);
  assert.deepEqual(out('stop-1', '2024-06-01T03:00:00Z'), [{ battery: 3.1 }]); // 23:00 EDT
  assert.deepEqual(out('stop-1', '2024-06-01T09:59:00Z'), [{ battery: 3.1 }]); // 05:59 EDT
  assert.deepEqual(out('stop-1', '2024-06-01T10:00:00Z'), [{ people: 2, battery: 3.1 }]); // 06:00 EDT
  assert.deepEqual(out('stop-1', '2024-06-01T16:15:00Z'), [{ battery: 3.1 }]); // 12:15 EDT
  assert.deepEqual(out('lab-1', '2024-06-01T03:00:00Z'), [{ people: 2, battery: 3.1 }]); // not a private device
  const e = event();
  assert.deepEqual(stage.process(e), [e]);
});

test('privacy aggregate: private readings become hourly counts on the local hour; public ones pass as they are', () => {
  const { stage, ctx } = make(privacyStage, { hours: '00:00-05:00', tz: 'Europe/London', action: 'aggregate', grace: 0 }, REPLAY());
  const feed = (iso: string, values: Record<string, number> = { motion: 1 }) => stage.process(reading('stop-1', at(iso), values));
  // June: BST, local = UTC + 1.
  assert.deepEqual(feed('2024-06-01T02:10:00Z'), []); // 03:10 local
  assert.deepEqual(feed('2024-06-01T02:20:00Z'), []);
  assert.deepEqual(feed('2024-06-01T02:50:00Z', { motion: 0 }), []); // a count counts readings, whatever the value
  const out = feed('2024-06-01T03:05:00Z'); // 04:05 local closes the 03:00-04:00 bucket
  assert.deepEqual(
    readings(out).map((r) => [new Date(r.ts).toISOString(), r.values, r.units]),
    [['2024-06-01T02:00:00.000Z', { motion: 3 }, { motion: 'count' }]],
  );
  // A public reading passes unchanged, after the bucket it closes.
  const pub = feed('2024-06-01T04:10:00Z', { motion: 1 });
  assert.deepEqual(readings(pub).map((r) => [new Date(r.ts).toISOString(), r.values]), [
    ['2024-06-01T03:00:00.000Z', { motion: 1 }],
    ['2024-06-01T04:10:00.000Z', { motion: 1 }],
  ]);
  assert.equal(ctx.drops.get('privacy'), undefined);
});

test('privacy aggregate: the repeated hour of the autumn change is two buckets; minCount withholds small ones', () => {
  const { stage, ctx } = make(
    privacyStage,
    { hours: '00:00-05:00', tz: 'Europe/London', action: 'aggregate', grace: 0, minCount: 2 },
    REPLAY(),
  );
  const feed = (iso: string) => readings(stage.process(reading('stop-1', at(iso), { motion: 1 })));
  feed('2024-10-27T00:10:00Z'); // 01:10 BST
  feed('2024-10-27T00:40:00Z'); // 01:40 BST
  const first = feed('2024-10-27T01:10:00Z'); // 01:10 GMT: the same local hour, a new bucket
  assert.deepEqual(first.map((r) => [new Date(r.ts).toISOString(), r.values]), [['2024-10-27T00:00:00.000Z', { motion: 2 }]]);
  const second = feed('2024-10-27T02:10:00Z'); // one reading in the 01:00 GMT bucket: withheld
  assert.deepEqual(second, []);
  assert.equal(ctx.drops.get('min_count'), 1);
});

test('privacy aggregate: buckets follow a half-hour zone; stop() emits open buckets; past maxKeys values are suppressed', () => {
  const { stage, ctx } = make(privacyStage, { hours: '00:00-05:00', tz: 'Asia/Kolkata', action: 'aggregate', op: 'max', maxKeys: 1 }, REPLAY());
  stage.process(reading('s', at('2024-06-01T20:45:00Z'), { people: 4 })); // 02:15 IST
  stage.process(reading('s', at('2024-06-01T20:50:00Z'), { people: 6, noise: 40 })); // noise: no room
  assert.equal(ctx.drops.get('max_keys'), 1);
  stage.stop?.();
  assert.deepEqual(readings(ctx.emitted).map((r) => [new Date(r.ts).toISOString(), r.values]), [['2024-06-01T20:30:00.000Z', { people: 6 }]]);
});

test('privacy aggregate: 100,000 private series at the default limit; the next is suppressed (counted)', () => {
  const { stage, ctx } = make(privacyStage, { hours: '00:00-05:00', action: 'aggregate', measurements: ['people'] }, REPLAY());
  const ts = at('2024-06-01T02:00:00Z');
  for (let i = 0; i < 100_000; i++) stage.process(reading(`s${i}`, ts, { people: 1 }));
  assert.equal(ctx.drops.get('max_keys'), undefined);
  assert.deepEqual(stage.process(reading('one-more', ts, { people: 1, battery: 3 })), [reading('one-more', ts, { battery: 3 })]);
  assert.equal(ctx.drops.get('max_keys'), 1);
  stage.stop?.();
  assert.equal(ctx.emitted.length, 100_000);
});

test('privacy: config problems', () => {
  assert.deepEqual(problems(privacyStage, { hours: '00:00-05:00', tz: 'Europe/Londres' }), [
    'tz: unknown time zone "Europe/Londres" (use an IANA name such as "Europe/London" or "UTC")',
  ]);
  assert.deepEqual(problems(privacyStage, { hours: ['01:00-01:00'] }), ['hours[0]: 01:00-01:00 is empty; write 00:00-24:00 for the whole day']);
  assert.deepEqual(problems(privacyStage, { hours: '00:00-05:00', every: '7m' }), ['every: the bucket must divide a day (e.g. 15m, 1h, 6h, 1d)']);
  assert.ok(problems(privacyStage, { hours: '0-5' }).length > 0);
  assert.deepEqual(problems(privacyStage, { hours: '00:00-24:00' }), []);
});

// ---------------------------------------------------------------- template

test('template: phrasings in turn, values with units, local time (summer and winter)', () => {
  const { stage } = make(templateStage, {
    phrases: ['{device}: {temperature} at {time}', 'At {time} {device} read {temperature}', 'Temperature at {device}: {temperature:raw} degrees ({date})'],
    tz: 'Europe/London',
    deviceNames: { '2d1a': 'the living room' },
  });
  const texts = ['2024-07-01T14:05:00Z', '2024-07-01T14:20:00Z', '2024-01-15T14:35:00Z', '2024-01-15T14:50:00Z'].map((iso) => {
    const [e] = events(stage.process(reading('2d1a', at(iso), { temperature: 20.6875 }, { units: { temperature: 'Cel' } })));
    assert.equal(e?.type, 'notification');
    assert.equal(e?.severity, 'info');
    assert.equal(e?.device, '2d1a');
    assert.deepEqual(e?.data, { temperature: 20.6875 });
    return e?.message;
  });
  assert.deepEqual(texts, [
    'the living room: 20.7 °C at 15:05',
    'At 15:20 the living room read 20.7 °C',
    'Temperature at the living room: 20.7 degrees (15 Jan 2024)',
    'the living room: 20.7 °C at 14:50',
  ]);
});

test('template: a phrasing the message cannot fill is skipped; none fillable drops (counted); events keep their type', () => {
  const { stage, ctx } = make(templateStage, { phrases: ['{people} people at {id}', 'Busy at {id}: {{{level}}}'], locale: 'de-DE', decimals: 2 });
  assert.deepEqual(events(stage.process(reading('s1', 0, { people: 1234.5 }))).map((e) => e.message), ['1.234,5 people at s1']);
  assert.deepEqual(events(stage.process(reading('s1', 0, { people: 3 }))).map((e) => e.message), ['3 people at s1']); // the other needs {level}
  assert.deepEqual(stage.process(reading('s1', 0, { light: 3 })), []);
  assert.equal(ctx.drops.get('template_unfilled'), 1);
  const ev = event({ type: 'severity.changed', data: { level: 'DANGER', value: 35.25, unit: 'Cel' } });
  const [out] = events(stage.process(ev));
  assert.deepEqual(out, { ...ev, message: 'Busy at a: {DANGER}' });
  const v = make(templateStage, { phrases: ['{device} is {level}: {value}'] }).stage;
  assert.deepEqual(events(v.process(ev)).map((e) => e.message), ['a is DANGER: 35.3 °C']);
});

test('template: config problems', () => {
  assert.deepEqual(problems(templateStage, { phrases: ['ok {a}', 'bad {a', 'bad }'], tz: 'Mars/Base', locale: 'not a locale!' }), [
    'tz: unknown time zone "Mars/Base" (use an IANA name such as "Europe/London" or "UTC")',
    'locale: invalid locale "not a locale!" (use a BCP 47 tag such as "en-GB" or "de-DE")',
    'phrases[1]: unclosed { at character 5',
    'phrases[2]: unmatched } at character 5',
  ]);
});

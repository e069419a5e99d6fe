import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEvent } from '../../src/core/events.js';
import type { Message, Reading } from '../../src/core/types.js';
import { Metrics } from '../../src/core/metrics.js';
import { Router, compileMatch, type RouteTarget } from '../../src/pipeline/router.js';
import { rangeStage } from '../../src/pipeline/stages/range/index.js';
import { stageContext } from '../helpers/context.js';

const reading = (device: string, values: Record<string, number>, extra: Partial<Reading> = {}): Reading => ({
  kind: 'reading',
  device,
  ts: 1,
  values,
  authenticated: false,
  source: { input: 'radio', decoder: 'opentrv', topic: 'home/kitchen/valve' },
  ...extra,
});

class Collect implements RouteTarget {
  got: Message[] = [];
  enqueue(msgs: readonly Message[]) {
    this.got.push(...msgs);
    return Promise.resolve();
  }
}

test('match by device glob, input, topic filter and authentication', () => {
  assert.ok(compileMatch({ kind: 'reading', devices: ['8*'] })(reading('819c', { t: 1 })));
  assert.equal(compileMatch({ kind: 'reading', devices: ['8*'] })(reading('0d49', { t: 1 })), undefined);
  assert.ok(compileMatch({ kind: 'reading', inputs: ['radio'] })(reading('a', { t: 1 })));
  assert.equal(compileMatch({ kind: 'reading', inputs: ['lora'] })(reading('a', { t: 1 })), undefined);
  assert.ok(compileMatch({ kind: 'reading', topics: ['home/+/valve'] })(reading('a', { t: 1 })));
  assert.equal(compileMatch({ kind: 'reading', topics: ['office/#'] })(reading('a', { t: 1 })), undefined);
  assert.equal(compileMatch({ kind: 'reading', authenticated: true })(reading('a', { t: 1 })), undefined);
  assert.ok(compileMatch({ kind: 'reading', authenticated: true })(reading('a', { t: 1 }, { authenticated: true })));
});

test('match by measurements narrows the reading to them', () => {
  const m = compileMatch({ kind: 'reading', measurements: ['temperature'] })(reading('a', { temperature: 20, light: 4 }));
  assert.ok(m && m.kind === 'reading');
  assert.deepEqual(m.values, { temperature: 20 });
  assert.equal(compileMatch({ kind: 'reading', measurements: ['temperature'] })(reading('a', { light: 4 })), undefined);
});

test('events go only to routes that take events', () => {
  const ev: Message = makeEvent('device.offline', { lastSeen: 0, silentMs: 1, threshold: 0 }, { ts: 1, device: 'a', message: 'silent' });
  assert.equal(compileMatch({ kind: 'reading' })(ev), undefined);
  assert.ok(compileMatch({ kind: 'event', events: ['device.*'] })(ev));
  assert.equal(compileMatch({ kind: 'event', events: ['sink.*'] })(ev), undefined);
  assert.ok(compileMatch({ kind: 'any' })(ev));
});

test('a reading may match several routes; each route runs its own stages into its own sinks', async () => {
  const all = new Collect();
  const clean = new Collect();
  const metrics = new Metrics();
  const range = rangeStage.create({ limits: { temperature: { max: 85 } }, action: 'drop-value' }, stageContext());
  const router = new Router(
    [
      { name: 'raw', match: { kind: 'reading' }, stages: [], to: [all] },
      { name: 'clean', match: { kind: 'reading', devices: ['819c'] }, stages: [range], to: [clean, all] },
    ],
    metrics,
  );
  await router.route(reading('819c', { temperature: 400, light: 3 }));
  await router.route(reading('0d49', { temperature: 20 }));
  assert.deepEqual(
    all.got.map((m) => (m.kind === 'reading' ? [m.device, m.values] : [])),
    [
      ['819c', { temperature: 400, light: 3 }],
      ['819c', { light: 3 }],
      ['0d49', { temperature: 20 }],
    ],
  );
  assert.deepEqual(clean.got.map((m) => (m.kind === 'reading' ? m.values : {})), [{ light: 3 }]);
  assert.equal(await metrics.value('backhaul_route_messages_total', { route: 'raw' }), 2);
  assert.equal(await metrics.value('backhaul_route_messages_total', { route: 'clean' }), 1);
});

// Telling people, through the real hub: a declared device speaks once over the HTTP input, then falls silent (a short maxSilent, on a manual clock), the
// alarm keeper raises an offline alarm, a route of `alarm.*` events words it with the `template` stage and hands it
// to an ntfy sink pointed at a local HTTP server. The server gets exactly one human-worded message for the one
// alarm, and a restart of the hub (the same data folder, the alarm still open) sends nothing more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { buildConfig } from '../../src/runtime/config.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { httpRecorder } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

test('one offline alarm → one ntfy message in the template\'s words, and none more across a hub restart', { timeout: 90_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const ntfy = await httpRecorder((_r, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"id":"m1","event":"message"}');
  });
  t.after(() => ntfy.close());
  const start = Date.parse('2026-03-01T14:02:00Z');
  const clock = new ManualClock(start);
  const config = buildConfig(
    {
      data: d.path,
      devices: { declared: [{ id: 'valve-k', kind: 'other', type: 'generic', description: 'Kitchen valve', maxSilent: '1m' }] },
      inputs: { web: { type: 'http', host: '127.0.0.1', port: 0, decoder: 'json' } },
      sinks: {
        phones: { type: 'ntfy', url: ntfy.url, topic: 'site-a', timeZone: 'Europe/London', outbox: { retryMinMs: 50, retryMaxMs: 100 } },
      },
      routes: [
        {
          match: { kind: 'event', events: ['alarm.raised'] },
          stages: [{ type: 'template', tz: 'Europe/London', phrases: ['{name} has gone quiet (last heard before {time})'] }],
          to: ['phones'],
        },
      ],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );

  const hub = new Hub({ config, logger: silentLogger(), clock, drainMs: 500 });
  await hub.start();
  try {
    const ingest = String(hub.inputStatus().find((i) => i.id === 'web')?.info['url']);
    const res = await fetch(ingest, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'valve-k', temperature: 19.5 }) });
    assert.equal(res.status, 202, await res.text());
    clock.advance(60_001); // silent longer than its maxSilent
    await until(() => ntfy.requests.length >= 1, { timeoutMs: 10_000, what: 'the ntfy message' });
    clock.advance(10 * 60_000); // more silence: the same alarm
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    await hub.stop();
  }
  assert.equal(ntfy.requests.length, 1, 'one message for one alarm');
  const m = ntfy.requests[0]!;
  assert.equal(m.method, 'POST');
  assert.equal(m.url, '/site-a');
  assert.match(m.body, /^Kitchen valve.* has gone quiet \(last heard before 14:03\)$/, m.body);
  assert.match(String(m.headers['title']), /^Alarm: Kitchen valve/);
  assert.equal(m.headers['priority'], '4');

  // The same data folder again: the alarm is still open, the silence is the same, and nothing is sent twice.
  const again = new Hub({ config, logger: silentLogger(), clock, drainMs: 500 });
  await again.start();
  try {
    clock.advance(5 * 60_000);
    await new Promise((r) => setTimeout(r, 300));
    clock.advance(60 * 60_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(again.sinkStatus().find((s) => s.id === 'phones')?.state, 'up', 'the ntfy sink runs after the restart');
    assert.equal(await again.metrics.value('backhaul_events_total', { type: 'device.offline', severity: 'warning' }), 0, 'the same silence raises no second device.offline');
  } finally {
    await again.stop();
  }
  assert.equal(ntfy.requests.length, 1, `still one message after the restart: ${JSON.stringify(ntfy.requests.map((r) => r.body))}`);
});

test('reminders through the hub: alarms.remindEveryMs raises alarm.reminder for a raised alarm; an ntfy sink with reminders sends each once; an acknowledged alarm is not reminded of', { timeout: 90_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const ntfy = await httpRecorder((_r, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"id":"m1","event":"message"}');
  });
  t.after(() => ntfy.close());
  const clock = new ManualClock(Date.parse('2026-03-01T14:02:00Z'));
  const config = buildConfig(
    {
      data: d.path,
      alarms: { remindEveryMs: 3_600_000 },
      devices: { declared: [{ id: 'valve-k', kind: 'other', type: 'generic', description: 'Kitchen valve', maxSilent: '1m' }] },
      inputs: { web: { type: 'http', host: '127.0.0.1', port: 0, decoder: 'json' } },
      sinks: { phones: { type: 'ntfy', url: ntfy.url, topic: 'site-a', reminders: true, outbox: { retryMinMs: 50, retryMaxMs: 100 } } },
      routes: [{ match: { kind: 'event', events: ['alarm.raised', 'alarm.reminder'] }, to: ['phones'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), clock, drainMs: 500 });
  await hub.start();
  t.after(() => hub.stop());
  const ingest = String(hub.inputStatus().find((i) => i.id === 'web')?.info['url']);
  assert.equal((await fetch(ingest, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'valve-k', t: 1 }) })).status, 202);
  clock.advance(60_001);
  await until(() => ntfy.requests.length === 1, { timeoutMs: 10_000, what: 'the alarm' });
  clock.advance(3_600_000); // an hour, still raised: the first reminder
  await until(() => ntfy.requests.length === 2, { timeoutMs: 10_000, what: 'the first reminder' });
  assert.match(String(ntfy.requests[1]!.headers['title']), /^Reminder: Kitchen valve/);
  clock.advance(3_600_000);
  await until(() => ntfy.requests.length === 3, { timeoutMs: 10_000, what: 'the second reminder' });
  // Acknowledged: no more reminders.
  const open = await hub.alarmsRequest({ action: 'list', query: { state: 'open' } });
  const alarm = (open as Array<{ id: string }>)[0]!;
  await hub.alarmsRequest({ action: 'ack', id: alarm.id, by: 'test', note: 'on it' });
  clock.advance(3 * 3_600_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(ntfy.requests.length, 3, JSON.stringify(ntfy.requests.map((r) => r.headers['title'])));
});

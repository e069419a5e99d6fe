// Alarms through the real hub and its HTTP API: a sink that cannot reach its far end raises sink.failing at each
// start; across three restarts that is one alarm, raised once (alarm.raised delivered once to the alarm route's
// file sink), then acknowledged with a note and cleared through the API, which also counts it for the dashboard.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { reading } from '../sinks/messages.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';

test('one alarm across three restarts; acknowledged with a note and cleared through the API', { timeout: 90_000 }, async () => {
  const d = tempDir();
  const closed = await freePort(); // nothing listens: every delivery fails
  const alarmsFile = join(d.path, 'alarms.jsonl');
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register' },
      api: { host: '127.0.0.1', port: 0 },
      inputs: {},
      sinks: {
        cloud: { type: 'http', url: `http://127.0.0.1:${closed}/in`, outbox: { retryMinMs: 100, retryMaxMs: 200, failingAfterMs: 0 } },
        alarms: { type: 'file', path: alarmsFile },
      },
      routes: [{ to: ['cloud'] }, { match: { kind: 'event', events: ['alarm.*'] }, to: ['alarms'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const lines = () => (existsSync(alarmsFile) ? readFileSync(alarmsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) : []);
  let admin = '';
  try {
    for (let run = 0; run < 3; run++) {
      const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
      await hub.start();
      try {
        await hub.publish(reading('d1', Date.now(), { t: run }));
        await until(async () => (await hub.metrics.value('backhaul_events_total', { type: 'sink.failing', severity: 'warning' })) === 1, { what: `run ${run}: sink.failing` });
      } finally {
        await hub.stop();
      }
    }
    const raised = lines().filter((l) => l['event'] === 'alarm.raised');
    assert.equal(raised.length, 1, `alarm.raised once in three runs: ${JSON.stringify(lines().map((l) => l['event']))}`);
    assert.equal(raised[0]!['data']['subject'], 'cloud');
    assert.equal(raised[0]!['data']['alarmKind'], 'failing');

    const hub = new Hub({ config, logger: silentLogger(), drainMs: 200 });
    await hub.start();
    try {
      const base = hub.apiUrl()!;
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        return { status: res.status, body: (await res.json()) as any };
      };
      const open = await call('GET', '/api/v1/alarms?state=open');
      assert.equal(open.status, 200);
      assert.equal(open.body.items.length, 1);
      const a = open.body.items[0];
      assert.equal(a.id, raised[0]!['data']['alarm']);
      assert.equal(a.state, 'raised');
      assert.deepEqual((await call('GET', '/api/v1/alarms/counts')).body, { raised: 1, acknowledged: 0, byKind: { failing: { raised: 1, acknowledged: 0 } } });

      const acked = await call('POST', `/api/v1/alarms/${a.id}/ack`, { note: 'provider outage, ticket 4711' });
      assert.equal(acked.status, 200, JSON.stringify(acked.body));
      assert.equal(acked.body.state, 'acknowledged');
      assert.equal(acked.body.note, 'provider outage, ticket 4711');
      assert.match(acked.body.acknowledgedBy, /admin|bh_/);
      assert.deepEqual((await call('GET', '/api/v1/alarms/counts')).body.acknowledged, 1);
      assert.equal(await hub.metrics.value('backhaul_alarms', { kind: 'failing', state: 'acknowledged' }), 1);

      const cleared = await call('POST', `/api/v1/alarms/${a.id}/clear`, {});
      assert.equal(cleared.status, 200);
      assert.equal(cleared.body.state, 'cleared');
      const again = await call('POST', `/api/v1/alarms/${a.id}/ack`, {});
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'BH_ALARM_STATE');
      const missing = await call('GET', '/api/v1/alarms/al_000000000000');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'BH_ALARM_NOT_FOUND');
      const history = await call('GET', '/api/v1/alarms?state=cleared');
      assert.deepEqual(history.body.items.map((x: any) => x.id), [a.id]);
    } finally {
      await hub.stop();
    }
    const types = lines().map((l) => l['event']);
    assert.deepEqual(types.slice(0, 1), ['alarm.raised']);
    assert.ok(types.includes('alarm.acknowledged') && types.includes('alarm.cleared'), JSON.stringify(types));
  } finally {
    d.cleanup();
  }
});

test('backhaul alarms list / ack / clear against the running program, through its control socket', { timeout: 90_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const closed = await freePort();
  const cfg = join(d.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: join(d.path, 'data'),
      inputs: { sim: { type: 'simulator', devices: 1, intervalMs: 200 } },
      sinks: { cloud: { type: 'http', url: `http://127.0.0.1:${closed}/in`, outbox: { retryMinMs: 100, retryMaxMs: 200, failingAfterMs: 0 } } },
      routes: [{ to: ['cloud'] }],
    }),
  );
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  let listed: any[] = [];
  await until(
    async () => {
      const r = await runToEnd(['alarms', 'list', '--json', '-c', cfg]);
      assert.equal(r.code, 0, r.stderr);
      listed = JSON.parse(r.stdout) as any[];
      return listed.length === 1;
    },
    { what: 'the failing sink\'s alarm listed' },
  );
  assert.equal(listed[0].kind, 'failing');
  assert.equal(listed[0].subject, 'cloud');
  const table = await runToEnd(['alarms', 'list', '-c', cfg]);
  assert.match(table.stdout, /^ID\s+STATE\s+SEVERITY\s+KIND\s+SUBJECT/m);
  assert.match(table.stdout, new RegExp(`${listed[0].id as string}\\s+raised\\s+warning\\s+failing\\s+sink cloud`));

  const ack = await runToEnd(['alarms', 'ack', listed[0].id, '--note', 'known outage', '-c', cfg]);
  assert.equal(ack.code, 0, ack.stderr);
  assert.match(ack.stdout, new RegExp(`^alarm ${listed[0].id as string} acknowledged: sink cloud`));
  const clear = await runToEnd(['alarms', 'clear', listed[0].id, '--json', '-c', cfg]);
  assert.equal(clear.code, 0, clear.stderr);
  const cleared = JSON.parse(clear.stdout);
  assert.equal(cleared.state, 'cleared');
  assert.equal(cleared.note, 'known outage', 'the acknowledgement\'s note is kept');
  assert.match(cleared.acknowledgedBy, /^cli:/);
  const again = await runToEnd(['alarms', 'ack', listed[0].id, '-c', cfg]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^BH_ALARM_STATE/m);
  assert.equal((await runToEnd(['alarms', 'list', '-c', cfg])).stdout.trim(), 'no open alarms');
  assert.match((await runToEnd(['alarms', 'list', '--all', '-c', cfg])).stdout, /cleared/);
  const usage = await runToEnd(['alarms', 'list', '--state', 'bogus', '-c', cfg]);
  assert.equal(usage.code, 2);

  await app.stop();
  const notRunning = await runToEnd(['alarms', 'list', '-c', cfg]);
  assert.equal(notRunning.code, 1);
  assert.match(notRunning.stderr, /^BH_NOT_RUNNING/m);
});

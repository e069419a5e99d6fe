// Alarms through the real hub and its HTTP API: a sink that cannot reach its far end raises sink.failing at each
// start; across three restarts that is one alarm, raised once (alarm.raised delivered once to the alarm route's
// file sink), then acknowledged with a note and cleared through the API, which also counts it for the dashboard.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { reading } from '../sinks/messages.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

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

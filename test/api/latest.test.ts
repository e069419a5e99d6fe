// GET /api/v1/latest (docs/api.md): the device list's latest values, one call per page of devices, against a real hub
// (embedded broker, SQLite historian, real HTTP and MQTT); and the historian's latestMany across its 500-id chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { Historian, LATEST_CHUNK } from '../../src/sinks/sqlite/historian.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { reading, T0 } from '../sinks/messages.js';

interface Point {
  readonly measurement: string;
  readonly value: number | string | boolean;
  readonly unit?: string;
  readonly ts: number;
  readonly authenticated: boolean;
}

test('GET /latest: each named device\'s newest value per measurement, [] for one with nothing stored, coded refusals', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const port = await freePort();
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', refreshMs: 100 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: { type: 'json', time: 'time' }, users: [{ username: 'bridge', password: 'bridge-password' }] } },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  const base = hub.apiUrl() ?? '';
  const get = async (path: string): Promise<{ status: number; body: { devices?: Record<string, Point[]>; error?: { code: string; path?: string } } }> => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${admin}` } });
    return { status: res.status, body: (await res.json()) as { devices?: Record<string, Point[]>; error?: { code: string; path?: string } } };
  };

  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: 'bridge', password: 'bridge-password' });
  t.after(() => c.endAsync(true));
  const t0 = Date.UTC(2026, 10, 22, 10, 0, 0);
  for (let i = 0; i < 3; i++) {
    await c.publishAsync('devices/kitchen', JSON.stringify({ device: 'kitchen', time: t0 + i * 60_000, temperature: 20 + i, rssi: -70 - i }), { qos: 1 });
  }
  await c.publishAsync('devices/hall', JSON.stringify({ device: 'hall', time: t0, battery: 2.9 }), { qos: 1 });
  await until(async () => ((await get('/api/v1/latest?devices=kitchen,hall')).body.devices?.['kitchen'] ?? []).some((p) => p.value === 22), { what: 'kitchen\'s third reading stored' });
  await until(async () => ((await get('/api/v1/latest?devices=hall')).body.devices?.['hall'] ?? []).length === 1, { what: 'hall\'s reading stored' });

  const r = await get('/api/v1/latest?devices=kitchen,hall,nobody,kitchen');
  assert.equal(r.status, 200);
  const devices = r.body.devices ?? {};
  assert.deepEqual(Object.keys(devices).sort(), ['hall', 'kitchen', 'nobody']);
  assert.deepEqual(
    (devices['kitchen'] ?? []).map((p) => [p.measurement, p.value, p.ts - t0]).sort(),
    [
      ['rssi', -72, 120_000],
      ['temperature', 22, 120_000],
    ],
  );
  assert.deepEqual((devices['hall'] ?? []).map((p) => [p.measurement, p.value]), [['battery', 2.9]]);
  assert.equal((devices['hall'] ?? [])[0]?.authenticated, false, 'a bridge login is not the device\'s own');
  assert.deepEqual(devices['nobody'], []);

  const tooMany = await get(`/api/v1/latest?devices=${Array.from({ length: 501 }, (_, i) => `d${i}`).join(',')}`);
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.body.error?.code, 'BH_API_REQUEST');
  assert.equal(tooMany.body.error?.path, 'querystring.devices');
  const none = await get('/api/v1/latest?devices=,');
  assert.equal(none.status, 400);
  assert.equal(none.body.error?.path, 'querystring.devices');
  const unauth = await fetch(`${base}/api/v1/latest?devices=kitchen`);
  assert.equal(unauth.status, 401);
});

test('historian latestMany: every device of more than two chunks, the newest value of each measurement', () => {
  const d = tempDir();
  try {
    const h = Historian.open(join(d.path, 'history.sqlite'));
    try {
      const n = LATEST_CHUNK * 2 + 37;
      const ids = Array.from({ length: n }, (_, i) => `dev${i}`);
      h.write(ids.flatMap((id, i) => [reading(id, T0, { temperature: i, battery: 3 }, { units: { temperature: 'Cel', battery: 'V' } }), reading(id, T0 + 1000, { temperature: i + 0.5 })]));
      const got = h.latestMany([...ids, 'absent', 'dev0']);
      assert.equal(got.length, n * 2);
      const byDevice = new Map<string, Array<[string, unknown, number]>>();
      for (const r of got) byDevice.set(r.device, [...(byDevice.get(r.device) ?? []), [r.measurement, r.value, r.ts]]);
      assert.equal(byDevice.size, n);
      for (const [i, id] of ids.entries()) {
        assert.deepEqual(byDevice.get(id), [
          ['battery', 3, T0],
          ['temperature', i + 0.5, T0 + 1000],
        ]);
      }
      assert.deepEqual(h.latestMany([]), []);
      assert.deepEqual(h.latestMany(['dev7']), h.latest('dev7'));
    } finally {
      h.close();
    }
  } finally {
    d.cleanup();
  }
});

// Two Backhaul instances (real hubs: embedded broker, REST API) writing to one PostgreSQL historian: each API answers
// /readings and /latest with what both stored, as the sqlite historian's API would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { teardown, tempDir } from '../helpers/context.js';
import { freshSchema, POSTGRES_URL, postgresSkip } from '../helpers/postgres.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

const skip = await postgresSkip();

test('two instances, one PostgreSQL historian: readings through either broker are read back through either API', { skip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const schema = freshSchema('bh_e2e');
  later(() => schema.drop());
  const instances: Array<{ hub: Hub; port: number; admin: string }> = [];
  for (const name of ['north', 'south']) {
    const d = tempDir();
    later(() => d.cleanup());
    const port = await freePort();
    const config = buildConfig(
      {
        data: d.path,
        devices: { unknown: 'register' },
        api: { host: '127.0.0.1', port: 0, historian: 'history' },
        inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: { type: 'json', time: 'time' }, users: [{ username: 'bridge', password: 'bridge-password' }] } },
        sinks: { history: { type: 'postgres', url: POSTGRES_URL, schema: schema.name } },
        routes: [{ to: ['history'] }],
      },
      { source: name, dir: d.path },
      { registry: builtinRegistry() },
    );
    let admin = '';
    const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
    await hub.start();
    later(() => hub.stop());
    instances.push({ hub, port, admin });
  }
  const t0 = Date.UTC(2026, 11, 4, 8, 0, 0);
  // One room sensor heard by both concentrators (its first three readings by north, the next three by south).
  for (const [i, { port }] of instances.entries()) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: 'bridge', password: 'bridge-password' });
    for (let k = i * 3; k < i * 3 + 3; k++) await c.publishAsync('devices/x', JSON.stringify({ device: 'room-9', time: t0 + k * 60_000, temperature: 20 + k }), { qos: 1 });
    await c.endAsync();
  }
  for (const { hub, admin } of instances) {
    const get = async (path: string) => (await fetch(`${hub.apiUrl() ?? ''}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json() as Promise<Record<string, unknown>>;
    await until(async () => ((await get('/api/v1/readings?device=room-9&measurement=temperature'))['items'] as unknown[] | undefined)?.length === 6, { what: 'both instances\' readings' });
    const items = (await get('/api/v1/readings?device=room-9&measurement=temperature'))['items'] as Array<{ value: number; ts: number }>;
    assert.deepEqual(items.map((x) => [(x.ts - t0) / 60_000, x.value]), [[0, 20], [1, 21], [2, 22], [3, 23], [4, 24], [5, 25]]);
    const latest = (await get('/api/v1/latest?devices=room-9'))['devices'] as Record<string, Array<{ value: number }>>;
    assert.deepEqual(latest['room-9']?.map((p) => p.value), [25], 'the newest, whichever instance stored it');
    const buckets = (await get('/api/v1/readings?device=room-9&measurement=temperature&step=180000&agg=max'))['items'] as Array<{ value: number }>;
    assert.deepEqual(buckets.map((b) => b.value), [22, 25]);
  }
});

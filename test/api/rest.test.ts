// The REST API against a real hub: embedded broker, SQLite historian, device registry, real HTTP (fetch) and real
// MQTT clients. Every route is found from the OpenAPI document, so a route added later is held to the same rules:
// 401 without a token, 403 for a viewer on anything that changes something.
// The answers are JSON read loosely (`any`) and checked field by field below.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call,
   @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-assignment */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import mqtt from 'mqtt';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

const VALVE = '0d49';
const VALVE_PASSWORD = 'valve-0d49-password';
const SECRET = 'emoncms-key-never-shown';

interface Api {
  hub: Hub;
  base: string;
  mqttUrl: string;
  admin: string;
  call(method: string, path: string, o?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

async function setup(t: TestContext): Promise<Api> {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: VALVE, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, thresholds: { maxSilentMs: 60_000 } });
  await s.setCredentials(VALVE, { username: VALVE, hash: await hashPassword(VALVE_PASSWORD), passwordIssued: true });
  await s.create({ id: 'aa:bb:cc:dd:ee:01', type: 'shutter', location: { building: 'u4', room: '301' } });
  await s.close();
  const port = await freePort();
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop', refreshMs: 100 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: {
        devices: { type: 'broker', host: '127.0.0.1', port, decoder: { type: 'json', time: 'time' }, users: [{ username: 'bridge', password: 'bridge-password' }] },
      },
      sinks: {
        history: { type: 'sqlite' },
        emon: { type: 'emoncms', url: 'http://127.0.0.1:9/emoncms', apikey: { secret: 'emoncms' } },
      },
      routes: [{ to: ['history'] }, { match: { kind: 'event' }, to: ['history'] }, { match: { devices: ['nobody'] }, to: ['emon'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry(), env: { BACKHAUL_SECRET_EMONCMS: SECRET } },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  assert.match(admin, /^bh_[0-9a-f]{8}_[A-Za-z0-9_-]{32}$/, 'the first start hands out an admin token');
  const base = hub.apiUrl()!;
  const call: Api['call'] = async (method, path, o = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}),
        ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...o.headers,
      },
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* text (metrics) */
    }
    return { status: res.status, body, headers: res.headers };
  };
  return { hub, base, mqttUrl: `mqtt://127.0.0.1:${port}`, admin, call };
}

async function tokenFor(api: Api, role: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const r = await api.call('POST', '/api/v1/tokens', { token: api.admin, body: { name: `${role}-test`, role } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return String(r.body.token);
}

/** Every route of the OpenAPI document, with a concrete path (`:id` filled in). */
async function routes(api: Api): Promise<Array<{ method: string; path: string }>> {
  const doc = await api.call('GET', '/api/v1/openapi.json', { token: api.admin });
  assert.equal(doc.status, 200);
  assert.match(String(doc.body.openapi), /^3\./);
  const out: Array<{ method: string; path: string }> = [];
  for (const [path, ops] of Object.entries(doc.body.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(ops)) {
      if (!['get', 'post', 'patch', 'put', 'delete'].includes(method)) continue;
      out.push({ method: method.toUpperCase(), path: path.replace(/\{id\}/g, VALVE) });
    }
  }
  return out;
}

test('API: no token → 401 on every route but health and readiness; a viewer gets 403 on every mutating route', async (t) => {
  const api = await setup(t);
  const viewer = await tokenFor(api, 'viewer');
  const all = await routes(api);
  const paths = all.map((r) => `${r.method} ${r.path}`);
  for (const must of ['GET /api/v1/devices', 'POST /api/v1/devices/0d49/commands', 'GET /api/v1/readings', 'GET /api/v1/sinks', 'GET /api/v1/config', 'DELETE /api/v1/tokens/0d49']) {
    assert.ok(paths.includes(must), `${must} is in the OpenAPI document: ${paths.join(', ')}`);
  }
  const open = new Set(['GET /api/v1/health', 'GET /api/v1/ready', 'POST /api/v1/session', 'DELETE /api/v1/session']);
  for (const r of all.filter((x) => !x.path.startsWith('/bootstrap/'))) {
    const res = await api.call(r.method, r.path, r.method === 'GET' || r.method === 'DELETE' ? {} : { body: {} });
    if (open.has(`${r.method} ${r.path}`)) continue;
    assert.equal(res.status, 401, `${r.method} ${r.path} without a token`);
    assert.equal(res.body.error.code, 'BH_API_UNAUTHENTICATED');
  }
  assert.equal((await api.call('GET', '/metrics')).status, 401);
  assert.equal((await api.call('GET', '/api/v1/devices', { token: 'bh_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status, 401);
  assert.equal((await api.call('GET', '/api/v1/health')).status, 200);
  assert.deepEqual((await api.call('GET', '/api/v1/ready')).body, { ready: true });

  const mutating = all.filter((r) => r.method !== 'GET' && !r.path.startsWith('/bootstrap/') && !r.path.startsWith('/api/v1/session'));
  assert.ok(mutating.length >= 8, `mutating routes: ${mutating.map((r) => r.path).join(', ')}`);
  for (const r of mutating) {
    const res = await api.call(r.method, r.path, { token: viewer, ...(r.method === 'DELETE' ? {} : { body: {} }) });
    assert.equal(res.status, 403, `${r.method} ${r.path} as a viewer: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'BH_API_FORBIDDEN');
  }
  // A viewer reads.
  assert.equal((await api.call('GET', '/api/v1/devices', { token: viewer })).status, 200);
  // The refusals are audited under the viewer's name; the calls without a token are not (they changed nothing).
  const audit = (await api.call('GET', '/api/v1/audit?limit=1000', { token: api.admin })).body as Array<{ actor: string; result?: string }>;
  assert.equal(audit.filter((a) => a.actor === 'api:viewer-test' && a.result === 'error: BH_API_FORBIDDEN').length, mutating.length);
  assert.equal(audit.filter((a) => a.actor === 'api:anonymous').length, 0);
});

test('API: devices listed, filtered, created, edited with schema errors naming the field, enabled and disabled; every change audited', async (t) => {
  const api = await setup(t);
  const op = await tokenFor(api, 'operator');
  const list = await api.call('GET', '/api/v1/devices?building=U4&room=302', { token: op });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items.map((d: { id: string }) => d.id), [VALVE]);
  assert.equal(list.body.total, 1);
  assert.equal(list.body.items[0].topics.command, 'u4/302/valve/command');
  assert.equal(list.body.items[0].liveness, 'unknown');

  const bad = await api.call('GET', '/api/v1/devices?limit=0', { token: op });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.path, 'querystring.limit');

  const created = await api.call('POST', '/api/v1/devices', { token: op, body: { id: 'AA-BB-CC-DD-EE-09', type: 'shutter', location: { building: 'u4', room: '309' } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.device.id, 'aa:bb:cc:dd:ee:09');
  assert.equal(typeof created.body.password, 'string');
  assert.equal(created.headers.get('cache-control'), 'no-store');
  const twice = await api.call('POST', '/api/v1/devices', { token: op, body: { id: 'aa:bb:cc:dd:ee:09', type: 'shutter' } });
  assert.equal(twice.status, 409);
  assert.equal(twice.body.error.code, 'BH_DEVICE_EXISTS');
  const badRoom = await api.call('POST', '/api/v1/devices', { token: op, body: { id: 'aa:bb:cc:dd:ee:10', type: 'shutter', location: { building: 'u4', room: 'a/b' } } });
  assert.equal(badRoom.status, 400);
  assert.equal(badRoom.body.error.code, 'BH_DEVICE_LOCATION');
  assert.equal(badRoom.body.error.path, 'body.location.room');
  const missing = await api.call('POST', '/api/v1/devices', { token: op, body: { id: 'x1' } });
  assert.equal(missing.status, 400);
  assert.equal(missing.body.error.path, 'body.type');

  // Config validated against the type's schema (opentrv-valve: targetC 5..30).
  const tooHot = await api.call('PATCH', `/api/v1/devices/${VALVE}`, { token: op, body: { config: { targetC: 99 } } });
  assert.equal(tooHot.status, 400);
  assert.equal(tooHot.body.error.code, 'BH_DEVICE_CONFIG');
  assert.match(tooHot.body.error.path, /^body\.config\.targetC/);
  const ok = await api.call('PATCH', '/api/v1/devices/D49', { token: op, body: { config: { targetC: 19.5 }, description: 'the big radiator' } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.config, { targetC: 19.5 });

  const off = await api.call('POST', `/api/v1/devices/${VALVE}/disable`, { token: op });
  assert.equal(off.body.enabled, false);
  assert.equal(off.body.liveness, 'disabled');
  assert.equal((await api.call('POST', `/api/v1/devices/${VALVE}/enable`, { token: op })).body.enabled, true);
  const reset = await api.call('POST', `/api/v1/devices/${VALVE}/reset-credentials`, { token: op, body: { bootstrap: true } });
  assert.deepEqual(reset.body, { username: VALVE });

  const audit = await api.call('GET', `/api/v1/audit?device=${VALVE}`, { token: op });
  const actions = audit.body.map((a: { action: string; actor: string; result: string }) => `${a.actor} ${a.action} ${a.result}`);
  for (const want of ['api:operator-test device.set ok', 'api:operator-test device.disable ok', 'api:operator-test credentials.reset ok', 'api:operator-test api POST /api/v1/devices/:id/enable ok']) {
    assert.ok(actions.includes(want), `${want} in ${actions.join(' | ')}`);
  }
  // Failed changes are audited too.
  const all = await api.call('GET', '/api/v1/audit?action=api%20PATCH%20%2Fapi%2Fv1%2Fdevices%2F%3Aid', { token: op });
  assert.ok(all.body.some((a: { result: string }) => a.result === 'error: BH_DEVICE_CONFIG'), JSON.stringify(all.body));

  const shown = await api.call('GET', '/api/v1/devices/d49', { token: op });
  assert.equal(shown.body.description, 'the big radiator');
  assert.ok(shown.body.audit.length >= 3);
  assert.equal((await api.call('GET', '/api/v1/devices/nope', { token: op })).status, 404);
});

test('API: readings, downsampled readings, latest values, events, sinks; the config view shows no secret', async (t) => {
  const api = await setup(t);
  const viewer = await tokenFor(api, 'viewer');
  const dev = await mqtt.connectAsync(api.mqttUrl, { reconnectPeriod: 0, username: VALVE, password: VALVE_PASSWORD });
  t.after(() => dev.endAsync(true));
  const t0 = Date.UTC(2026, 10, 22, 10, 0, 0);
  for (let i = 0; i < 6; i++) {
    await dev.publishAsync('u4/302/valve/data', JSON.stringify({ device: VALVE, time: t0 + i * 60_000, temperature: 18 + i, battery: 3.1 }), { qos: 1 });
  }
  await until(async () => (await api.call('GET', `/api/v1/readings?device=${VALVE}&measurement=temperature`, { token: viewer })).body.items?.length === 6, { what: 'six readings stored' });
  const raw = await api.call('GET', `/api/v1/readings?device=${VALVE}&measurement=temperature&from=${t0 + 60_000}&to=${t0 + 180_000}`, { token: viewer });
  assert.deepEqual(raw.body.items.map((p: { value: number }) => p.value), [19, 20]);
  const down = await api.call('GET', `/api/v1/readings?device=${VALVE}&measurement=temperature&step=180000`, { token: viewer });
  assert.deepEqual(down.body.items.map((p: { ts: number; value: number }) => [p.ts - t0, p.value]), [[0, 19], [180_000, 22]]);
  const max = await api.call('GET', `/api/v1/readings?device=${VALVE}&measurement=temperature&step=180000&agg=max`, { token: viewer });
  assert.deepEqual(max.body.items.map((p: { value: number }) => p.value), [20, 23]);
  const latest = await api.call('GET', '/api/v1/devices/D49/latest', { token: viewer });
  assert.deepEqual(latest.body.values.map((v: { measurement: string; value: number }) => [v.measurement, v.value]), [['battery', 3.1], ['temperature', 23]]);
  // Sent over the valve's own login: authenticated, in every answer.
  assert.deepEqual(latest.body.values.map((v: { authenticated: boolean }) => v.authenticated), [true, true]);
  assert.ok(raw.body.items.every((p: { authenticated: boolean }) => p.authenticated === true));
  assert.ok(down.body.items.every((p: { authenticated: boolean }) => p.authenticated === true));
  assert.equal((await api.call('GET', '/api/v1/readings', { token: viewer })).body.error.path, 'querystring.device');

  const listed = await api.call('GET', '/api/v1/devices', { token: viewer });
  assert.equal(listed.body.items.find((d: { id: string }) => d.id === VALVE).liveness, 'active');

  const sinks = await api.call('GET', '/api/v1/sinks', { token: viewer });
  assert.deepEqual(sinks.body.map((s: { id: string }) => s.id).sort(), ['emon', 'history']);
  assert.ok(sinks.body.find((s: { id: string; delivered: number }) => s.id === 'history').delivered >= 6);

  const cfg = await api.call('GET', '/api/v1/config', { token: viewer });
  assert.equal(cfg.status, 200);
  assert.deepEqual(cfg.body.sinks.emon.apikey, { secret: 'emoncms' });
  assert.ok(!JSON.stringify(cfg.body).includes(SECRET));

  // An event (here: a device the registry does not know is dropped) is stored and listed. A service account sends it:
  // the valve's own login may only carry the valve's readings.
  const anon = await mqtt.connectAsync(api.mqttUrl, { reconnectPeriod: 0, username: 'bridge', password: 'bridge-password' });
  await anon.publishAsync('u4/302/valve/data', JSON.stringify({ device: 'stranger', time: t0, temperature: 1 }), { qos: 1 });
  await anon.endAsync();
  await until(async () => (await api.call('GET', '/api/v1/events?type=device.unknown', { token: viewer })).body.length === 1, { what: 'the device.unknown event stored' });
});

test('API: an order from the API reaches a real device client; the live event feed shows its acknowledgement; /metrics moves', async (t) => {
  const api = await setup(t);
  const op = await tokenFor(api, 'operator');
  const viewer = await tokenFor(api, 'viewer');
  const dev = await mqtt.connectAsync(api.mqttUrl, { reconnectPeriod: 0, username: VALVE, password: VALVE_PASSWORD });
  t.after(() => dev.endAsync(true));
  await dev.subscribeAsync('u4/302/valve/command', { qos: 1 });
  dev.on('message', (_topic, payload) => {
    const order = JSON.parse(payload.toString()) as { id: string };
    void dev.publishAsync('u4/302/valve/device', JSON.stringify({ ack: order.id, result: 'ok' }), { qos: 1 });
  });

  // The live feed, read as a browser's EventSource would.
  const ac = new AbortController();
  t.after(() => ac.abort());
  const stream = await fetch(`${api.base}/api/v1/events/stream`, { headers: { authorization: `Bearer ${viewer}` }, signal: ac.signal });
  assert.equal(stream.status, 200);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  let feed = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream.body!) {
      feed += decoder.decode(chunk as Uint8Array, { stream: true });
    }
  })().catch(() => undefined);

  const before = parsePrometheusTextFormat((await api.call('GET', '/metrics', { token: viewer })).body as string);
  const sent = await api.call('POST', '/api/v1/devices/D49/commands', { token: op, body: { order: 'reboot', params: { delayS: 5 } } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  assert.equal(sent.body.dest, VALVE);
  await until(async () => (await api.call('GET', `/api/v1/commands/${sent.body.id}`, { token: viewer })).body.status === 'acknowledged', { what: 'acknowledged' });
  await until(() => feed.includes('command.acknowledged'), { what: 'the acknowledgement in the live feed' });
  const event = feed.split('\n\n').find((b) => b.includes('command.acknowledged'))!;
  assert.match(event, /^event: hub-event$/m);
  const data = JSON.parse(/^data: (.*)$/m.exec(event)![1]!) as { device: string; severity: string };
  assert.equal(data.device, VALVE);
  ac.abort();
  await reading;

  const bad = await api.call('POST', '/api/v1/devices/D49/commands', { token: op, body: { order: 'rm -rf' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.path, 'body.order');
  const listed = await api.call('GET', '/api/v1/commands?device=d49', { token: viewer });
  assert.deepEqual(listed.body.map((c: { order: string; status: string }) => [c.order, c.status]), [['reboot', 'acknowledged']]);

  const after = parsePrometheusTextFormat((await api.call('GET', '/metrics', { token: viewer })).body as string);
  const value = (families: ReturnType<typeof parsePrometheusTextFormat>, name: string, labels: Record<string, string> = {}) => {
    const f = families.find((x) => x.name === name);
    assert.ok(f, `${name} is exported`);
    return f.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  };
  assert.ok(value(after, 'backhaul_events_total', { type: 'command.acknowledged' }) > value(before, 'backhaul_events_total', { type: 'command.acknowledged' }));
  assert.ok(value(after, 'backhaul_frames_total', { input: 'devices' }) > value(before, 'backhaul_frames_total', { input: 'devices' }));
  assert.equal(value(after, 'backhaul_devices', { state: 'unknown' }) + value(after, 'backhaul_devices', { state: 'active' }), 2);
  for (const name of ['backhaul_sink_backlog_items', 'backhaul_sink_delivered_total', 'backhaul_sink_retries_total', 'backhaul_decode_errors_total', 'process_resident_memory_bytes', 'process_cpu_seconds_total']) {
    assert.ok(after.some((f) => f.name === name), `${name} exported`);
  }
  for (const f of after.filter((x) => x.name.startsWith('backhaul_') && x.type === 'COUNTER')) assert.match(f.name, /_total$/);
});

test('API: dashboard session: login with a token sets an httpOnly SameSite cookie that authenticates; revoking the token ends it', async (t) => {
  const api = await setup(t);
  const viewer = await tokenFor(api, 'viewer');
  const login = await api.call('POST', '/api/v1/session', { body: { token: viewer } });
  assert.equal(login.status, 200);
  assert.deepEqual(login.body, { name: 'viewer-test', role: 'viewer' });
  const cookie = login.headers.get('set-cookie') ?? '';
  assert.match(cookie, /bh_session=/);
  assert.match(cookie, /HttpOnly/i);
  assert.match(cookie, /SameSite=Strict/i);
  const session = cookie.split(';')[0]!;
  const me = await api.call('GET', '/api/v1/session', { headers: { cookie: session } });
  assert.deepEqual(me.body, { name: 'viewer-test', role: 'viewer', via: 'session' });
  assert.equal((await api.call('POST', `/api/v1/devices/${VALVE}/commands`, { headers: { cookie: session }, body: { order: 'reboot' } })).status, 403);
  const tokens = await api.call('GET', '/api/v1/tokens', { token: api.admin });
  const id = tokens.body.find((x: { name: string }) => x.name === 'viewer-test').id as string;
  assert.equal((await api.call('DELETE', `/api/v1/tokens/${id}`, { token: api.admin })).status, 204);
  assert.equal((await api.call('GET', '/api/v1/devices', { headers: { cookie: session } })).status, 401);
  assert.equal((await api.call('GET', '/api/v1/devices', { token: viewer })).status, 401);
});

test('API: a second start keeps the tokens and creates no new admin token', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const firsts: string[] = [];
  const cfg = buildConfig(
    { data: d.path, api: { host: '127.0.0.1', port: 0 }, inputs: {}, sinks: { out: { type: 'file', path: join(d.path, 'o.jsonl') } }, routes: [{ to: ['out'] }] },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  for (let i = 0; i < 2; i++) {
    const hub = new Hub({ config: cfg, logger: silentLogger(), onFirstAdminToken: (tok) => firsts.push(tok) });
    await hub.start();
    const r = await fetch(`${hub.apiUrl()!}/api/v1/devices`, { headers: { authorization: `Bearer ${firsts[0]}` } });
    assert.equal(r.status, 200);
    await hub.stop();
  }
  assert.equal(firsts.length, 1);
});

test('API: the OpenAPI document has a unique operationId and a summary on every operation, security only where a token is needed, /metrics', async (t) => {
  const api = await setup(t);
  const doc = (await api.call('GET', '/api/v1/openapi.json', { token: api.admin })).body;
  assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['bearer', 'session']);
  assert.deepEqual(doc.security, [{ bearer: [] }, { session: [] }], 'a token (or the session cookie) unless an operation says otherwise');
  const ids: string[] = [];
  const open: string[] = [];
  const guarded: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(ops)) {
      const name = `${method.toUpperCase()} ${path}`;
      assert.equal(typeof op.operationId, 'string', `${name} has an operationId`);
      assert.ok(typeof op.summary === 'string' && op.summary.length > 5, `${name} has a summary`);
      ids.push(op.operationId);
      if (Array.isArray(op.security) && op.security.length === 0) open.push(name);
      else {
        assert.equal(op.security, undefined, `${name}: the document's security applies`);
        guarded.push(name);
      }
    }
  }
  assert.equal(new Set(ids).size, ids.length, `operationIds are unique: ${ids.join(', ')}`);
  assert.deepEqual(open.sort(), [
    'DELETE /api/v1/session',
    'GET /api/v1/health',
    'GET /api/v1/ready',
    'GET /bootstrap/v1/config',
    'GET /bootstrap/v1/credentials',
    'POST /api/v1/session',
  ]);
  assert.ok(guarded.includes('GET /metrics'), 'the metrics are described');
  assert.ok(doc.paths['/metrics'].get.responses['200'].content['text/plain'], 'as text');
  // What the document says is what the server does: public operations answer without a token, the others refuse.
  for (const name of [...open, ...guarded]) {
    const [method, path] = name.split(' ') as [string, string];
    if (path.endsWith('/stream')) continue;
    const res = await api.call(method, path.replace(/\{id\}/g, VALVE).replace('/bootstrap/v1/credentials', '/bootstrap/v1/credentials?mac=02:00:00:00:00:99'), method === 'GET' || method === 'DELETE' ? {} : { body: {} });
    // (The device bootstrap's /config answers 401 too, but for want of the device's own Basic login, not a token.)
    if (open.includes(name)) assert.notEqual(res.body?.error?.code, 'BH_API_UNAUTHENTICATED', `${name} is public`);
    else assert.equal(res.body?.error?.code, 'BH_API_UNAUTHENTICATED', `${name} needs a token`);
  }
});

test('API: an operator opens and closes claim windows and sets claim codes; a device claims its password in the window only', async (t) => {
  const api = await setup(t);
  const op = await tokenFor(api, 'operator');
  const mac = 'aa:bb:cc:dd:ee:01';
  const ask = (q = '') => api.call('GET', `/bootstrap/v1/credentials?mac=${mac}${q}`);
  assert.equal((await ask()).status, 403, 'no window yet');
  const view = await api.call('GET', `/api/v1/devices/${mac}`, { token: op });
  assert.deepEqual(view.body.claim, { open: false, code: false });

  const coded = await api.call('PUT', `/api/v1/devices/${mac}/claim-code`, { token: op, body: { code: 'LBL-7788' } });
  assert.equal(coded.status, 200, JSON.stringify(coded.body));
  assert.deepEqual(coded.body.claim, { open: false, code: true });
  assert.ok(!JSON.stringify(coded.body).includes('LBL-7788'));
  const badFor = await api.call('POST', `/api/v1/devices/${mac}/claim`, { token: op, body: { for: 'forever' } });
  assert.equal(badFor.status, 400);
  assert.deepEqual([badFor.body.error.code, badFor.body.error.path], ['BH_DEVICE_FIELD', 'body.for']);
  const opened = await api.call('POST', `/api/v1/devices/${mac}/claim`, { token: op, body: { for: '10m' } });
  assert.equal(opened.status, 200, JSON.stringify(opened.body));
  assert.deepEqual(opened.body.devices, [mac]);
  assert.equal((await api.call('GET', `/api/v1/devices/${mac}`, { token: op })).body.claim.open, true);
  const closed = await api.call('DELETE', `/api/v1/devices/${mac}/claim`, { token: op });
  assert.deepEqual(closed.body, { devices: [mac] });
  assert.equal((await ask('&code=LBL-7788')).status, 403, 'closed again');

  const all = await api.call('POST', '/api/v1/claim-windows', { token: op, body: { allUnclaimed: true, for: '1h' } });
  assert.equal(all.status, 200, JSON.stringify(all.body));
  assert.deepEqual(all.body.devices, [mac], 'the valve has its password; only the shutter waits');
  assert.equal((await ask('&code=wrong')).status, 403);
  const got = await ask('&code=LBL-7788');
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(typeof got.body.password, 'string');
  const after = (await api.call('GET', `/api/v1/devices/${mac}`, { token: op })).body;
  assert.equal(after.claim.open, false, 'the claim closed the window');
  assert.equal(after.claim.claimedBy, '127.0.0.1');
  assert.equal(after.passwordIssued, true);
  const again = await api.call('POST', `/api/v1/devices/${mac}/claim`, { token: op, body: {} });
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'BH_DEVICE_CLAIMED');
  const audit = (await api.call('GET', `/api/v1/audit?device=${encodeURIComponent(mac)}`, { token: op })).body.map((a: any) => `${a.actor} ${a.action}`);
  for (const want of ['api:operator-test claim.code', 'api:operator-test claim.open', 'api:operator-test claim.close', `device:${mac} credentials.issue`, `device:${mac} credentials.refused`]) {
    assert.ok(audit.includes(want), `${want} in ${audit.join(' | ')}`);
  }

  // The critical alarm reaches the hub's router (here the event route stores it in the historian).
  assert.equal((await ask('&code=LBL-7788')).status, 403);
  await until(async () => (await api.call('GET', '/api/v1/events?type=device.credentials_claimed_twice', { token: op })).body.length === 1, { what: 'the alarm stored as an event' });
  const ev = (await api.call('GET', '/api/v1/events?type=device.credentials_claimed_twice', { token: op })).body[0];
  assert.equal(ev.severity, 'critical');
  assert.equal(ev.device, mac);
});

test('API: an order parameter its device type marks secret reaches the device but is redacted in the order, the orders list and the audit', async (t) => {
  const api = await setup(t);
  const op = await tokenFor(api, 'operator');
  const id = 'aa:bb:cc:dd:ee:07';
  const made = await api.call('POST', '/api/v1/devices', { token: op, body: { id, type: 'room-sensor', location: { building: 'u4', room: '307' } } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const dev = await mqtt.connectAsync(api.mqttUrl, { reconnectPeriod: 0, username: made.body.username, password: made.body.password });
  t.after(() => dev.endAsync(true));
  await dev.subscribeAsync('u4/307/sensors/command', { qos: 1 });
  const got: any[] = [];
  dev.on('message', (_topic, payload) => got.push(JSON.parse(payload.toString())));

  const wifiPassword = 'correct-horse-battery';
  const sent = await api.call('POST', `/api/v1/devices/${id}/commands`, { token: op, body: { order: 'wifi', params: { ssid: 'lab', password: wifiPassword } } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  assert.deepEqual(sent.body.params, { ssid: 'lab', password: '<redacted>' });
  await until(() => got.length === 1, { what: 'the order reaches the device' });
  assert.deepEqual(got[0].params, { ssid: 'lab', password: wifiPassword }, 'the device gets the real value');

  const listed = await api.call('GET', `/api/v1/commands?device=${id}`, { token: op });
  const audit = await api.call('GET', `/api/v1/audit?device=${encodeURIComponent(id)}&action=command.wifi`, { token: op });
  const one = await api.call('GET', `/api/v1/commands/${sent.body.id}`, { token: op });
  for (const [what, r] of [['list', listed], ['audit', audit], ['one', one]] as const) {
    assert.equal(r.status, 200, what);
    assert.ok(!JSON.stringify(r.body).includes(wifiPassword), `${what}: ${JSON.stringify(r.body)}`);
  }
  assert.deepEqual(audit.body[0].detail.params, { ssid: 'lab', password: '<redacted>' });

  // The order's schema checks the parameters, naming the one at fault.
  const short = await api.call('POST', `/api/v1/devices/${id}/commands`, { token: op, body: { order: 'wifi', params: { ssid: 'lab', password: 'short' } } });
  assert.equal(short.status, 400);
  assert.deepEqual([short.body.error.code, short.body.error.path], ['BH_COMMAND_ORDER', 'body.params.password']);
  assert.ok(!JSON.stringify(short.body).includes('short"'), 'the refused value is not echoed');
});

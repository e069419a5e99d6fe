// Black-box: the real `backhaul` program, started from a config file as a user would, with real brokers and
// servers around it; assertions are on what arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { Historian } from '../../src/sinks/sqlite/historian.js';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort, httpRecorder, subscribe } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { MOSQUITTO, serviceSkip } from '../helpers/services.js';

const SECRET = 'emon-apikey-0f9e8d7c6b5a';

test('devices → embedded broker → json decoder → every sink kind (mqtt, sqlite, http, emoncms, file)', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const hook = await httpRecorder((_req, res) => {
    res.statusCode = 204;
    res.end();
  });
  t.after(() => hook.close());
  // A fake emoncms that checks what emoncms itself checks: the URL form, the node, the API key.
  const emon = await httpRecorder((req, res) => {
    const url = new URL(req.url, 'http://x');
    const form = new URLSearchParams(req.body);
    const key = req.headers.authorization?.replace(/^Bearer /, '') ?? url.searchParams.get('apikey') ?? form.get('apikey');
    res.setHeader('content-type', 'application/json');
    if (key !== SECRET) return void res.end(JSON.stringify({ success: false, message: 'Username or password empty' }));
    if (!/^\/emoncms\/input\/post(\/|$)/.test(url.pathname)) return void res.end(JSON.stringify({ success: false, message: 'bad path' }));
    if (!form.get('node') || !form.get('fulljson')) return void res.end(JSON.stringify({ success: false, message: 'no data' }));
    res.end(JSON.stringify({ success: true }));
  });
  t.after(() => emon.close());

  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(
    cfg,
    `{
      // written as a person would, comments and all
      "data": "data",
      "inputs": {
        "devices": { "type": "broker", "host": "127.0.0.1", "port": ${port}, "anonymous": true,
                     "decoder": { "type": "json", "seq": "seq" } },
      },
      "sinks": {
        "live":    { "type": "mqtt", "url": "mqtt://127.0.0.1:${port}", "topic": "backhaul/{device}/{measurement}", "qos": 1 },
        "history": { "type": "sqlite" },
        "hook":    { "type": "http", "url": "${hook.url}/readings" },
        "emon":    { "type": "emoncms", "url": "${emon.url}/emoncms", "apikey": { "secret": "emoncms" } },
        "jsonl":   { "type": "file", "path": "out/readings.jsonl" },
      },
      "routes": [
        { "name": "all", "to": ["live", "history", "hook", "jsonl"] },
        { "name": "energy", "match": { "devices": ["kitch*"], "measurements": ["temperature"] }, "to": ["emon"] },
      ],
    }`,
  );
  const app = runBackhaul(['start', '-c', cfg], { BACKHAUL_SECRET_EMONCMS: SECRET });
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const started = await app.waitFor((l) => l.msg === 'input started');
  assert.equal(started['url'], `mqtt://127.0.0.1:${port}`);

  const sub = await subscribe(`mqtt://127.0.0.1:${port}`, ['backhaul/#']);
  t.after(() => sub.close());
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync());
  const N = 20;
  for (let i = 0; i < N; i++) {
    await pub.publishAsync('devices/kitchen', JSON.stringify({ device: 'kitchen', seq: i, temperature: 20 + i / 10, humidity: 40 }), { qos: 1 });
  }
  // one malformed frame: counted and logged, nothing stops
  await pub.publishAsync('devices/kitchen', '{"device": "kitchen", "temperature": ', { qos: 1 });
  await pub.publishAsync('devices/hall', JSON.stringify({ device: 'hall', seq: 1, temperature: 18 }), { qos: 1 });

  await sub.waitForCount(2 * N + 1);
  const temps = sub.messages
    .filter((m) => m.topic === 'backhaul/kitchen/temperature')
    .map((m) => JSON.parse(m.payload) as { device: string; value: number; seq: number; unit?: string });
  assert.equal(temps.length, N);
  assert.deepEqual(
    temps.map((m) => [m.device, m.seq, m.value]),
    Array.from({ length: N }, (_, i) => ['kitchen', i, 20 + i / 10]),
  );
  assert.ok(sub.messages.some((m) => m.topic === 'backhaul/hall/temperature'));

  await until(() => hook.requests.reduce((n, r) => n + (JSON.parse(r.body) as unknown[]).length, 0) === N + 1, { what: 'http sink' });
  const posted = hook.requests.flatMap((r) => JSON.parse(r.body) as Array<{ device: string; values: Record<string, number> }>);
  assert.equal(hook.requests[0]!.method, 'POST');
  assert.equal(hook.requests[0]!.url, '/readings');
  assert.deepEqual(posted[0], { ...posted[0], device: 'kitchen', values: { temperature: 20, humidity: 40 } });

  await until(() => emon.requests.length === N, { what: 'emoncms sink' });
  const first = new URLSearchParams(emon.requests[0]!.body);
  assert.equal(first.get('node'), 'kitchen');
  assert.deepEqual(JSON.parse(first.get('fulljson')!), { temperature: 20 }); // the route narrowed it to temperature
  assert.ok(emon.requests.every((r) => r.headers.authorization === `Bearer ${SECRET}`));

  const jsonl = join(dir.path, 'out/readings.jsonl');
  await until(() => existsSync(jsonl) && readFileSync(jsonl, 'utf8').trim().split('\n').length === N + 1, { what: 'file sink' });

  assert.equal(await app.stop(), 0, 'SIGTERM stops cleanly');
  const h = Historian.open(join(dir.path, 'data/history.sqlite'));
  try {
    const rows = h.queryReadings({ device: 'kitchen', measurement: 'temperature' });
    assert.equal(rows.length, N);
    assert.deepEqual(
      rows.map((r) => r.value).sort((a, b) => Number(a) - Number(b)),
      Array.from({ length: N }, (_, i) => 20 + i / 10),
    );
    assert.equal(h.countReadings({ device: 'hall' }), 1);
  } finally {
    h.close();
  }
  const out = app.output();
  assert.ok(!out.includes(SECRET), 'the emoncms API key never appears in the output');
  assert.ok(app.logs.some((l) => l['code'] === 'BH_DECODE_SYNTAX' && l['input'] === 'devices'), 'the bad frame was logged with its code');
});

test('Mosquitto → mqtt input → route → mqtt sink → Mosquitto', async (t) => {
  const skip = await serviceSkip(MOSQUITTO);
  if (skip) return t.skip(skip);
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const run = randomUUID().slice(0, 8);
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      inputs: { upstream: { type: 'mqtt', url: MOSQUITTO.url, topics: [`bh-e2e/${run}/in/#`], qos: 1, decoder: { type: 'json', device: 'topic:-1' } } },
      sinks: { out: { type: 'mqtt', url: MOSQUITTO.url, topic: `bh-e2e/${run}/out/{device}/{measurement}` } },
      routes: [{ to: ['out'] }],
    }),
  );
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const sub = await subscribe(MOSQUITTO.url, [`bh-e2e/${run}/out/#`]);
  t.after(() => sub.close());
  const pub = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync());
  await pub.publishAsync(`bh-e2e/${run}/in/valve-7`, JSON.stringify({ temperature: 19.5, valve: 40 }), { qos: 1 });
  await pub.publishAsync(`bh-e2e/${run}/in/valve-8`, JSON.stringify({ temperature: 21 }), { qos: 0 });
  await sub.waitForCount(3);
  const got = Object.fromEntries(sub.messages.map((m) => [m.topic, (JSON.parse(m.payload) as { value: number }).value]));
  assert.deepEqual(got, {
    [`bh-e2e/${run}/out/valve-7/temperature`]: 19.5,
    [`bh-e2e/${run}/out/valve-7/valve`]: 40,
    [`bh-e2e/${run}/out/valve-8/temperature`]: 21,
  });
  assert.equal(await app.stop(), 0);
});

test('a slow sink does not delay an MQTT sink on the same route', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  let mqttArrivedWhileHttpPending = false;
  const live: { sub?: Awaited<ReturnType<typeof subscribe>> } = {};
  // The HTTP sink's server answers after 2 s.
  const slow = await httpRecorder(async (_req, res) => {
    await new Promise((r) => setTimeout(r, 2000));
    // Was the reading published on MQTT before this request was answered?
    mqttArrivedWhileHttpPending = (live.sub?.messages.length ?? 0) > 0;
    res.statusCode = 200;
    res.end();
  });
  t.after(() => slow.close());
  const cfg = join(dir.path, 'b.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: 'json' } },
      sinks: {
        slow: { type: 'http', url: `${slow.url}/in` },
        fast: { type: 'mqtt', url: `mqtt://127.0.0.1:${port}`, topic: 'backhaul/{device}' },
      },
      routes: [{ to: ['slow', 'fast'] }],
    }),
  );
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const sub = await subscribe(`mqtt://127.0.0.1:${port}`, ['backhaul/#']);
  live.sub = sub;
  t.after(() => sub.close());
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync());
  await pub.publishAsync('devices/a', JSON.stringify({ device: 'a', temperature: 20 }), { qos: 1 });
  await sub.waitForCount(1, 1500); // well before the slow server answers
  await until(() => slow.requests.length === 1, { what: 'the slow sink got its request' });
  const httpReceived = slow.requests[0]!.at;
  await until(() => mqttArrivedWhileHttpPending || Date.now() - httpReceived > 2500, { what: 'slow answer' });
  assert.ok(mqttArrivedWhileHttpPending, 'the MQTT message was delivered while the HTTP sink was still waiting for its answer');
});

test('check: valid config prints a summary without secrets; a broken one exits 1 with coded, located errors', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const cred = join(dir.path, 'credentials.json');
  writeFileSync(cred, JSON.stringify({ emoncms: SECRET, 'public-broker': 'public-broker-password-1234', 'sensor-309': 'sensor-309-password' }));
  chmodSync(cred, 0o600);
  // The example with sinks that need credentials, reading them from a credentials file beside it.
  const example = readFileSync(new URL('../../../examples/remote-sinks.jsonc', import.meta.url), 'utf8').replace(
    /\/\/ "secrets": "[^"]*",/,
    '"secrets": "./credentials.json",',
  );
  assert.match(example, /^\s+"secrets": "\.\/credentials\.json",/m);
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(cfg, example);
  const ok = await runToEnd(['check', '-c', cfg]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /is valid/);
  assert.match(ok.stdout, /devices\s+broker\s+decoder json\s+port=1883/);
  assert.match(ok.stdout, /open-data\s+measurements temperature \| range → public/);
  assert.match(ok.stdout, /apikey=<secret emoncms>/);
  assert.match(ok.stdout, /devices: unknown ones registered, 1 declared in this file \(1 with a login\)/);
  assert.ok(!ok.stdout.includes(SECRET) && !ok.stdout.includes('public-broker-password-1234') && !ok.stdout.includes('sensor-309-password'));

  writeFileSync(cfg, example.replace('"to": ["emon"]', '"to": ["emonn"]').replace('"port": 1883', '"port": "fast"'));
  const bad = await runToEnd(['check', '-c', cfg]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BH_CONFIG_REF routes\[1\]\.to\[0\]: no sink named "emonn" \(did you mean "emon"\?\)/);
  assert.match(bad.stderr, /BH_CONFIG_SCHEMA inputs\.devices\.port: must be integer, not string/);
  assert.match(bad.stderr, /2 errors in the config/);
  assert.ok(!bad.stderr.includes(SECRET));

  chmodSync(cred, 0o644);
  writeFileSync(cfg, example);
  const leaky = await runToEnd(['start', '-c', cfg]);
  assert.equal(leaky.code, 1);
  assert.match(leaky.stderr, /BH_SECRET_FILE_MODE secrets: credentials file .* is readable by group or others/);
});

test('start: a broker port already in use fails with the setting to change', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => holder.close(() => r())));
  const port = (holder.address() as { port: number }).port;
  const cfg = join(dir.path, 'b.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, anonymous: true } },
      sinks: { s: { type: 'console' } },
      routes: [{ to: ['s'] }],
    }),
  );
  const r = await runToEnd(['start', '-c', cfg]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`BH_PORT_IN_USE inputs\\.devices\\.port: .*${port}`));
});

test('demo: embedded broker, simulated valves, historian and JSON lines, no external service', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const app = runBackhaul(['demo', '--port', String(port), '--api-port', String(await freePort()), '--data', dir.path, '--devices', '3', '--interval', '100']);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  await until(() => /mosquitto_sub -h 127\.0\.0\.1 -p \d+ -u demo -P \S+ -t 'backhaul\/#' -v/.test(app.output()), { what: 'the demo banner' });
  const password = new RegExp(`-p ${port} -u demo -P (\\S+) -t 'backhaul`).exec(app.output())?.[1];
  assert.ok(password, 'the banner shows the demo login');
  // Anonymous access is off even in the demo; the login it printed works.
  await assert.rejects(mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 }), /Not authorized/i);
  const sub = await subscribe(`mqtt://127.0.0.1:${port}`, ['backhaul/#'], { username: 'demo', password });
  t.after(() => sub.close());
  await sub.waitForCount(6);
  assert.ok(sub.messages.some((m) => /^backhaul\/[0-9a-f]{4}\/temperature$/.test(m.topic)), sub.messages.map((m) => m.topic).join(' '));

  // The dashboard at the URL the banner prints, and the API with the token it prints: the valves, placed and alive.
  const dashboard = /dashboard:\s+(http:\/\/\S+?)\/\s/.exec(app.output())?.[1];
  const token = /API token \(admin\):\s+(bh_\S+)/.exec(app.output())?.[1];
  assert.ok(dashboard && token, 'the banner shows the dashboard URL and a token');
  const page = await fetch(`${dashboard}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<div id="root">/);
  await until(async () => {
    const r = await fetch(`${dashboard}/api/v1/devices`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await r.json()) as { items: Array<{ liveness: string; topics?: { base: string } }> };
    return body.items.length === 3 && body.items.every((d) => d.liveness === 'active' && d.topics?.base.startsWith('demo-house/room-'));
  }, { what: 'three placed, active valves in the API' });
  assert.equal(await app.stop('SIGINT'), 0);
  // The config the demo writes itself (with passwords it just made) draws no warning a newcomer would puzzle over.
  assert.deepEqual(app.logs.filter((l) => /secret written inline/.test(l.msg)).map((l) => l.msg), []);
  const h = Historian.open(join(dir.path, 'history.sqlite'));
  try {
    assert.ok(h.countReadings({ measurement: 'temperature' }) >= 2);
    assert.equal(h.devices().length, 3);
  } finally {
    h.close();
  }
  assert.ok(readFileSync(join(dir.path, 'readings.jsonl'), 'utf8').split('\n').length > 2);
});

test('--version and --help', async () => {
  const v = await runToEnd(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const h = await runToEnd(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /backhaul start -c FILE/);
  const u = await runToEnd(['frobnicate']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /BH_USAGE unknown command "frobnicate"/);
});

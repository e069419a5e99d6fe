// Device bootstrap over HTTP, black-box: a real ApiServer on a free port, a real SQLite registry, real HTTP requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { bootstrapRoutes, type BootstrapOptions } from '../../src/api/bootstrap.js';
import { ApiServer } from '../../src/api/server.js';
import { ManualClock } from '../../src/core/clock.js';
import { BackhaulError } from '../../src/core/errors.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/registry.js';
import { TopicScheme } from '../../src/devices/topics.js';
import { tempDir } from '../helpers/context.js';

const MAC = 'aa:bb:cc:dd:ee:ff';
const CONFIG = { reportIntervalS: 60, measurements: ['temperature', 'co2'] };

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function setup(broker: BootstrapOptions['broker'] = () => ({ host: 'mqtt.example', port: 1883 })) {
  const dir = tempDir('backhaul-api-');
  const clock = new ManualClock(1_700_000_000_000);
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(registryPath(dir.path), { types, clock });
  const logins: string[] = [];
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    plugins: [bootstrapRoutes({ store, scheme: new TopicScheme(types), clock, broker, onLogin: (d) => logins.push(d.id) })],
  });
  await server.start();
  await store.create({ id: MAC, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '301' }, config: CONFIG });
  const get = async (path: string, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(`${server.url}${path}`, { headers });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  const credentials = (mac: string) => get(`/bootstrap/v1/credentials?mac=${encodeURIComponent(mac)}`);
  const config = (login: string, password: string) =>
    get('/bootstrap/v1/config', { authorization: `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}` });
  return {
    server,
    store,
    clock,
    logins,
    get,
    credentials,
    config,
    async close() {
      await server.stop();
      await store.close();
      dir.cleanup();
    },
  };
}

function errorOf(a: Answer): { code: string; message: string; path?: string } {
  return a.body['error'] as { code: string; message: string; path?: string };
}

test('bootstrap: the first call hands out a password that matches the stored hash; the second has all but the password', async () => {
  const t = await setup();
  try {
    const first = await t.credentials('AA:BB:CC:DD:EE:FF');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('cache-control'), 'no-store');
    const password = first.body['password'];
    assert.equal(typeof password, 'string');
    assert.deepEqual(first.body, {
      device: MAC,
      login: MAC,
      password,
      broker: { host: 'mqtt.example', port: 1883 },
      baseTopic: 'u4/301/sensors',
      topics: { status: 'u4/301/sensors/device', command: 'u4/301/sensors/command' },
    });
    const stored = (await t.store.get(MAC))?.credentials;
    assert.equal(stored?.passwordIssued, true);
    assert.equal(stored?.username, MAC);
    assert.match(stored.hash!, /^\$hmac-sha256\$/); // generated: the fast format
    assert.ok(await t.store.logins.verify(password as string, stored.hash!));

    const second = await t.credentials(MAC);
    assert.equal(second.status, 200);
    assert.equal(second.body['password'], undefined);
    const { password: _pw, ...rest } = first.body;
    assert.deepEqual(second.body, rest);
    // The second call changed nothing: the first password still logs in.
    assert.equal((await t.config(MAC, password as string)).status, 200);
  } finally {
    await t.close();
  }
});

test('bootstrap: issuing a password is audited as the device', async () => {
  const t = await setup();
  try {
    await t.credentials(MAC);
    await t.credentials(MAC);
    const audit = await t.store.listAudit({ device: MAC, action: 'credentials.issue' });
    assert.equal(audit.length, 1, 'only the call that issued a password is audited');
    assert.deepEqual(
      { actor: audit[0]!.actor, result: audit[0]!.result, detail: audit[0]!.detail, at: audit[0]!.at },
      { actor: `device:${MAC}`, result: 'ok', detail: { via: 'bootstrap' }, at: t.clock.now() },
    );
  } finally {
    await t.close();
  }
});

test('bootstrap: after resetCredentials the next call issues a new password; the old one stops working', async () => {
  const t = await setup();
  try {
    const old = (await t.credentials(MAC)).body['password'] as string;
    await t.store.resetCredentials(MAC);
    const again = await t.credentials(MAC);
    const fresh = again.body['password'];
    assert.equal(typeof fresh, 'string');
    assert.notEqual(fresh, old);

    const refused = await t.config(MAC, old);
    assert.equal(refused.status, 401);
    assert.equal(errorOf(refused).code, 'BH_BOOTSTRAP_AUTH');
    assert.equal(refused.headers.get('www-authenticate'), 'Basic realm="backhaul"');

    const ok = await t.config(MAC, fresh as string);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, {
      device: MAC,
      type: 'room-sensor',
      config: CONFIG,
      baseTopic: 'u4/301/sensors',
      topics: { status: 'u4/301/sensors/device', command: 'u4/301/sensors/command' },
    });
    assert.deepEqual(t.logins, [MAC], 'onLogin ran for the verified login only');
    assert.equal((await t.store.listAudit({ device: MAC, action: 'credentials.issue' })).length, 2);
  } finally {
    await t.close();
  }
});

test('bootstrap: /config refuses a missing, malformed or wrong login, and a disabled device, with 401', async () => {
  const t = await setup();
  try {
    const password = (await t.credentials(MAC)).body['password'] as string;
    const cases: Array<[string, Record<string, string>]> = [
      ['no header', {}],
      ['not Basic', { authorization: `Bearer ${password}` }],
      ['no colon', { authorization: `Basic ${Buffer.from(MAC).toString('base64')}` }],
      ['unknown login', { authorization: `Basic ${Buffer.from(`11:22:33:44:55:66:${password}`).toString('base64')}` }],
      ['wrong password', { authorization: `Basic ${Buffer.from(`${MAC}:x${password}`).toString('base64')}` }],
    ];
    for (const [what, headers] of cases) {
      const a = await t.get('/bootstrap/v1/config', headers);
      assert.equal(a.status, 401, what);
      assert.equal(errorOf(a).code, 'BH_BOOTSTRAP_AUTH', what);
      assert.equal(a.headers.get('www-authenticate'), 'Basic realm="backhaul"', what);
    }
    await t.store.setEnabled(MAC, false);
    assert.equal((await t.config(MAC, password)).status, 401);
    await t.store.setEnabled(MAC, true);
    await t.store.setState(MAC, 'BLOCKED', 'stolen');
    assert.equal((await t.config(MAC, password)).status, 401);
    await t.store.setState(MAC, 'ACTIVE');
    assert.equal((await t.config(MAC, password)).status, 200);
    assert.equal(t.logins.length, 1);
  } finally {
    await t.close();
  }
});

test('bootstrap: /config takes a MAC login (colons in the user) and a colon-free login with a colon in its password', async () => {
  const t = await setup();
  try {
    const password = (await t.credentials(MAC)).body['password'] as string;
    assert.equal((await t.config(MAC, password)).body['device'], MAC);
    const id = '02:00:00:00:00:03';
    await t.store.create({ id, kind: 'mac', type: 'shutter', location: { building: 'U4', room: '102' } });
    await t.store.setCredentials(id, { username: 'shutter-102', hash: await hashPassword('pa:ss'), passwordIssued: true });
    const a = await t.config('shutter-102', 'pa:ss');
    assert.equal(a.status, 200);
    assert.equal(a.body['device'], id);
  } finally {
    await t.close();
  }
});

test('bootstrap: the MAC may be written in any common form', async () => {
  const t = await setup();
  try {
    for (const mac of ['AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff', 'aabbccddeeff', ' aa:bb:cc:dd:ee:ff ']) {
      const a = await t.credentials(mac);
      assert.equal(a.status, 200, mac);
      assert.equal(a.body['device'], MAC, mac);
    }
  } finally {
    await t.close();
  }
});

test('bootstrap: a bad or missing MAC is 400 naming querystring.mac; an unknown one 404; an unknown route 404', async () => {
  const t = await setup();
  try {
    const bad = await t.credentials('aa:bb:cc:dd:ee');
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad).code, 'BH_DEVICE_ID');
    assert.equal(errorOf(bad).path, 'querystring.mac');

    const missing = await t.get('/bootstrap/v1/credentials');
    assert.equal(missing.status, 400);
    assert.deepEqual(errorOf(missing), { code: 'BH_API_REQUEST', message: 'is required', path: 'querystring.mac' });

    const empty = await t.get('/bootstrap/v1/credentials?mac=');
    assert.equal(empty.status, 400);
    assert.equal(errorOf(empty).code, 'BH_API_REQUEST');
    assert.equal(errorOf(empty).path, 'querystring.mac');

    const unknown = await t.credentials('11:22:33:44:55:66');
    assert.equal(unknown.status, 404);
    assert.equal(errorOf(unknown).code, 'BH_DEVICE_NOT_FOUND');

    const route = await t.get('/bootstrap/v2/credentials?mac=x');
    assert.equal(route.status, 404);
    assert.equal(errorOf(route).code, 'BH_API_NOT_FOUND');
  } finally {
    await t.close();
  }
});

test('bootstrap: a disabled or BLOCKED device is refused with 403, and its password stays pending', async () => {
  const t = await setup();
  try {
    await t.store.setEnabled(MAC, false);
    const disabled = await t.credentials(MAC);
    assert.equal(disabled.status, 403);
    assert.equal(errorOf(disabled).code, 'BH_BOOTSTRAP_REFUSED');
    await t.store.setEnabled(MAC, true);
    await t.store.setState(MAC, 'BLOCKED', 'cloned MAC');
    const blocked = await t.credentials(MAC);
    assert.equal(blocked.status, 403);
    assert.equal(errorOf(blocked).code, 'BH_BOOTSTRAP_REFUSED');
    assert.equal((await t.store.get(MAC))?.credentials, undefined);
    await t.store.setState(MAC, 'INIT');
    assert.equal(typeof (await t.credentials(MAC)).body['password'], 'string');
  } finally {
    await t.close();
  }
});

test('bootstrap: a device without topics gets 409 and keeps its password for after it is placed', async () => {
  const t = await setup();
  try {
    const id = '02:00:00:00:00:01';
    await t.store.create({ id, kind: 'mac', type: 'shutter', location: { building: 'U4' } });
    const unplaced = await t.credentials(id);
    assert.equal(unplaced.status, 409);
    assert.equal(errorOf(unplaced).code, 'BH_BOOTSTRAP_UNPLACED');
    assert.equal((await t.store.get(id))?.credentials, undefined, 'no password consumed');
    await t.store.update(id, { location: { room: '204' } });
    const placed = await t.credentials(id);
    assert.equal(placed.status, 200);
    assert.equal(typeof placed.body['password'], 'string');
    assert.equal(placed.body['baseTopic'], 'u4/204/shutter');
  } finally {
    await t.close();
  }
});

test('bootstrap: of two concurrent first calls exactly one gets the password, and it is the stored one', async () => {
  const t = await setup();
  try {
    const answers = await Promise.all([t.credentials(MAC), t.credentials(MAC), t.credentials(MAC)]);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
    const passwords = answers.map((a) => a.body['password']).filter((p): p is string => typeof p === 'string');
    assert.equal(passwords.length, 1);
    assert.ok(answers.every((a) => a.body['login'] === MAC));
    assert.ok(await t.store.logins.verify(passwords[0]!, (await t.store.get(MAC))!.credentials!.hash!));
    assert.equal((await t.store.listAudit({ action: 'credentials.issue' })).length, 1);
  } finally {
    await t.close();
  }
});

/** A GET with a Host header of our choosing (fetch does not let one set it). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('bootstrap: without a configured broker host, the host the device used (Host header, no port) is returned', async () => {
  const t = await setup(() => ({ port: 8883 }));
  try {
    const a = await getWithHost(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`, 'backhaul.local:8080');
    assert.equal(a.status, 200);
    assert.deepEqual(a.body['broker'], { host: 'backhaul.local', port: 8883 });
    const b = await getWithHost(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`, '[fd00::1]:8080');
    assert.deepEqual(b.body['broker'], { host: 'fd00::1', port: 8883 });
  } finally {
    await t.close();
  }
});

test('bootstrap: with no broker the answer is 503 BH_BOOTSTRAP_NO_BROKER and no password is consumed', async () => {
  let broker: { port: number } | undefined;
  const t = await setup(() => broker);
  try {
    const a = await t.credentials(MAC);
    assert.equal(a.status, 503);
    assert.equal(errorOf(a).code, 'BH_BOOTSTRAP_NO_BROKER');
    assert.equal((await t.store.get(MAC))?.credentials, undefined);
    broker = { port: 1883 };
    const b = await t.credentials(MAC);
    assert.equal(b.status, 200);
    assert.equal(typeof b.body['password'], 'string');
  } finally {
    await t.close();
  }
});

test('bootstrap: a config-file device without a login is refused with 403', async () => {
  const t = await setup();
  try {
    const id = '02:00:00:00:00:02';
    await t.store.replaceConfigDevices([{ id, kind: 'mac', type: 'shutter', location: { building: 'U4', room: '101' } }]);
    const a = await t.credentials(id);
    assert.equal(a.status, 403);
    assert.equal(errorOf(a).code, 'BH_BOOTSTRAP_REFUSED');
  } finally {
    await t.close();
  }
});

test('ApiServer: a port already taken fails start() with BH_PORT_IN_USE', async () => {
  const t = await setup();
  const port = Number(new URL(t.server.url).port);
  const other = new ApiServer({ host: '127.0.0.1', port, logger: silentLogger(), plugins: [] });
  try {
    await assert.rejects(other.start(), (e: unknown) => {
      assert.ok(e instanceof BackhaulError);
      assert.equal(e.code, 'BH_PORT_IN_USE');
      assert.equal(e.path, 'api.port');
      return true;
    });
  } finally {
    await other.stop();
    await t.close();
  }
});

test('ApiServer: requests are logged at debug only, with the path but not the query string', async () => {
  const lines: string[] = [];
  const destination = { write: (s: string) => void lines.push(s) };
  for (const level of ['info', 'debug']) {
    lines.length = 0;
    const server = new ApiServer({ host: '127.0.0.1', port: 0, logger: createLogger({ level, destination }), plugins: [] });
    await server.start();
    try {
      await (await fetch(`${server.url}/nothing?mac=${MAC}`)).text();
    } finally {
      await server.stop();
    }
    const requests = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'api request');
    if (level === 'info') {
      assert.deepEqual(requests, []);
    } else {
      assert.equal(requests.length, 1);
      assert.equal(requests[0]!['path'], '/nothing');
      assert.equal(requests[0]!['status'], 404);
      assert.ok(requests[0]!['reqId'] !== undefined, 'a child logger per request');
      assert.ok(!lines.join('').includes(MAC), 'the query string is not logged');
    }
  }
});

test('ApiServer: a failing handler answers 500 BH_API_INTERNAL; a malformed body keeps its 4xx as BH_API_REQUEST', async () => {
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    plugins: [
      (app) => {
        app.get('/boom', { schema: { response: { 200: { type: 'object' } } } }, () => Promise.reject(new Error('disk on fire')));
        app.post('/echo', { schema: { body: { type: 'object' } } }, (req) => Promise.resolve(req.body));
      },
    ],
  });
  await server.start();
  try {
    const boom = await fetch(`${server.url}/boom`);
    assert.equal(boom.status, 500);
    const body = (await boom.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'BH_API_INTERNAL');
    assert.ok(!body.error.message.includes('disk on fire'), 'internals stay in the log');
    const bad = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'BH_API_REQUEST');
  } finally {
    await server.stop();
  }
});

test('ApiServer: a plugin that fails to load fails start() with its own error', async () => {
  const server = new ApiServer({ host: '127.0.0.1', port: 0, logger: silentLogger(), plugins: [() => Promise.reject(new Error('no routes today'))] });
  await assert.rejects(server.start(), /no routes today/);
  await server.stop();
});

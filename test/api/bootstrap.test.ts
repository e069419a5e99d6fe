// Device bootstrap over HTTP, black-box: a real ApiServer on a free port, a real SQLite registry, real HTTP requests
// (from 127.0.0.1 and, where the client address matters, from a second loopback address, 127.0.0.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { bootstrapRoutes, CLAIMED_TWICE, type BootstrapOptions } from '../../src/api/bootstrap.js';
import { ApiServer } from '../../src/api/server.js';
import { ManualClock } from '../../src/core/clock.js';
import { BackhaulError } from '../../src/core/errors.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { Metrics } from '../../src/core/metrics.js';
import type { RateLimitOptions } from '../../src/core/ratelimit.js';
import type { HubEvent } from '../../src/core/types.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { TopicScheme } from '../../src/devices/topics.js';
import { tempDir } from '../helpers/context.js';

const MAC = 'aa:bb:cc:dd:ee:ff';
const CONFIG = { reportIntervalS: 60, measurements: ['temperature', 'co2'] };
const MINUTE = 60_000;
/** Generous enough that only the rate-limit test meets it. */
const ROOMY: RateLimitOptions = { burst: 1000, perSecond: 1000, failuresBeforeBackoff: 1000, backoffMs: 1000, maxBackoffMs: 1000 };
/** The one answer to every refused credentials call. */
const REFUSAL = { error: { code: 'BH_BOOTSTRAP_REFUSED', message: 'no credentials for this device now; an operator must open its claim window' } };

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A GET from a chosen local address (fetch cannot bind one), optionally with a Host header of our choosing. */
function rawGet(url: string, o: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: o.headers ?? {}, ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve({ status: res.statusCode ?? 0, headers, body: JSON.parse(text) as Record<string, unknown> });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function setup(o: { broker?: BootstrapOptions['broker']; rateLimit?: RateLimitOptions; destination?: { write(s: string): void } } = {}) {
  const broker = o.broker ?? (() => ({ host: 'mqtt.example', port: 1883 }));
  const dir = tempDir('backhaul-api-');
  const clock = new ManualClock(1_700_000_000_000);
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(registryPath(dir.path), { types, clock });
  const logins: string[] = [];
  const events: HubEvent[] = [];
  const metrics = new Metrics();
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: o.destination ? createLogger({ level: 'info', destination: o.destination }) : silentLogger(),
    plugins: [
      bootstrapRoutes({
        store,
        scheme: new TopicScheme(types),
        clock,
        broker,
        metrics,
        rateLimit: o.rateLimit ?? ROOMY,
        raise: (e) => events.push(e),
        onLogin: (d) => logins.push(d.id),
      }),
    ],
  });
  await server.start();
  await store.create({ id: MAC, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '301' }, config: CONFIG });
  const get = async (path: string, headers: Record<string, string> = {}, localAddress?: string): Promise<Answer> =>
    rawGet(`${server.url}${path}`, { headers, ...(localAddress !== undefined ? { localAddress } : {}) });
  const credentials = (mac: string, o: { code?: string; header?: string; from?: string } = {}) =>
    get(
      `/bootstrap/v1/credentials?mac=${encodeURIComponent(mac)}${o.code !== undefined ? `&code=${encodeURIComponent(o.code)}` : ''}`,
      o.header !== undefined ? { 'x-claim-code': o.header } : {},
      o.from,
    );
  const config = (login: string, password: string) =>
    get('/bootstrap/v1/config', { authorization: `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}` });
  /** The operator opens the claim window of these devices for `ms`. */
  const open = (ids: string[] = [MAC], ms = 30 * MINUTE) => store.openClaimWindows(ids, clock.now() + ms);
  await open();
  return {
    server,
    store,
    clock,
    logins,
    events,
    metrics,
    get,
    credentials,
    config,
    open,
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

/** The refusal, exactly: status, body and headers that could tell one case from another. */
function assertRefused(a: Answer, what: string): void {
  assert.equal(a.status, 403, what);
  assert.deepEqual(a.body, REFUSAL, what);
  assert.equal(a.headers.get('cache-control'), 'no-store', what);
  assert.equal(a.headers.get('retry-after'), null, what);
}

test('bootstrap: in an open claim window the first call hands out a password matching the stored hash; the next is refused', async () => {
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
    const stored = await t.store.get(MAC);
    assert.equal(stored?.credentials?.passwordIssued, true);
    assert.equal(stored?.credentials?.username, MAC);
    assert.match(stored.credentials.hash!, /^\$hmac-sha256\$/); // generated: the fast format
    assert.ok(await t.store.logins.verify(password as string, stored.credentials.hash!));
    assert.deepEqual(stored.claim, { claimedAt: t.clock.now(), claimedBy: '127.0.0.1' }, 'the claim closed the window and names the address');

    assertRefused(await t.credentials(MAC), 'a second call');
    // The second call changed nothing: the first password still logs in.
    assert.equal((await t.config(MAC, password as string)).status, 200);
  } finally {
    await t.close();
  }
});

test('bootstrap: issuing a password is audited as the device, with the address that asked', async () => {
  const t = await setup();
  try {
    await t.credentials(MAC, { from: '127.0.0.2' });
    const audit = await t.store.listAudit({ device: MAC, action: 'credentials.issue' });
    assert.equal(audit.length, 1, 'only the call that issued a password is audited');
    assert.deepEqual(
      { actor: audit[0]!.actor, result: audit[0]!.result, detail: audit[0]!.detail, at: audit[0]!.at },
      { actor: `device:${MAC}`, result: 'ok', detail: { via: 'bootstrap', address: '127.0.0.2' }, at: t.clock.now() },
    );
  } finally {
    await t.close();
  }
});

test('bootstrap: every refusal is the same answer: unknown MAC, no window, expired window, claimed, missing or wrong code, disabled, BLOCKED, config device', async () => {
  const t = await setup();
  try {
    const answers: Array<[string, Answer]> = [];
    answers.push(['unknown MAC', await t.credentials('11:22:33:44:55:66')]);
    const closed = '02:00:00:00:00:10';
    await t.store.create({ id: closed, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '310' } });
    answers.push(['no window', await t.credentials(closed)]);
    const expiring = '02:00:00:00:00:11';
    await t.store.create({ id: expiring, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '311' } });
    await t.open([expiring], MINUTE);
    t.clock.advance(MINUTE);
    answers.push(['window expired (at its end exactly)', await t.credentials(expiring)]);
    await t.open([MAC], 30 * MINUTE);
    assert.equal((await t.credentials(MAC)).status, 200);
    answers.push(['password already taken', await t.credentials(MAC)]);
    const coded = '02:00:00:00:00:12';
    await t.store.create({ id: coded, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '312' } });
    await t.store.setClaimCode(coded, await hashPassword('label-1234'));
    await t.open([coded]);
    answers.push(['no claim code', await t.credentials(coded)]);
    answers.push(['wrong claim code', await t.credentials(coded, { code: 'label-9999' })]);
    answers.push(['wrong claim code in the header', await t.credentials(coded, { header: 'label-9999' })]);
    const off = '02:00:00:00:00:13';
    await t.store.create({ id: off, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '313' }, enabled: false });
    await t.open([off]);
    answers.push(['disabled', await t.credentials(off)]);
    const blocked = '02:00:00:00:00:14';
    await t.store.create({ id: blocked, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '314' } });
    await t.open([blocked]);
    await t.store.setState(blocked, 'BLOCKED', 'cloned MAC');
    answers.push(['BLOCKED', await t.credentials(blocked)]);
    const declared = '02:00:00:00:00:15';
    await t.store.replaceConfigDevices([{ id: declared, kind: 'mac', type: 'shutter', location: { building: 'U4', room: '101' } }]);
    answers.push(['config device without a login', await t.credentials(declared)]);

    for (const [what, a] of answers) assertRefused(a, what);
    assert.equal((await t.store.get(coded))?.credentials, undefined, 'the coded device still waits for its password');
    assert.equal((await t.store.get(off))?.credentials, undefined, 'the disabled device too');
    // Counted by reason, which the answer does not tell.
    const reasons = { unknown: 1, no_window: 1, expired: 1, claimed: 1, code: 3, disabled: 2, config: 1 };
    for (const [reason, n] of Object.entries(reasons)) {
      assert.equal(await t.metrics.value('backhaul_bootstrap_refused_total', { reason }), n, reason);
    }
  } finally {
    await t.close();
  }
});

test('bootstrap: the claim window expires: open for 2 minutes, a call after them is refused, and a new window lets it claim', async () => {
  const t = await setup();
  try {
    const id = '02:00:00:00:00:20';
    await t.store.create({ id, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '320' } });
    await t.open([id], 2 * MINUTE);
    t.clock.advance(2 * MINUTE + 1);
    assertRefused(await t.credentials(id), 'after the window');
    assert.equal(await t.metrics.value('backhaul_bootstrap_refused_total', { reason: 'expired' }), 1);
    assert.equal((await t.store.get(id))?.credentials, undefined, 'nothing was issued');
    await t.open([id], 2 * MINUTE);
    t.clock.advance(2 * MINUTE - 1);
    const a = await t.credentials(id);
    assert.equal(a.status, 200);
    assert.equal(typeof a.body['password'], 'string');
  } finally {
    await t.close();
  }
});

test('bootstrap: a device with a claim code gets its password only with it, as query parameter or X-Claim-Code header', async () => {
  const t = await setup();
  try {
    await t.store.setClaimCode(MAC, await hashPassword('K7-QX-93'));
    assertRefused(await t.credentials(MAC, { code: 'K7-QX-94' }), 'wrong code');
    const refusedAudit = await t.store.listAudit({ device: MAC, action: 'credentials.refused' });
    assert.deepEqual(refusedAudit[0]?.detail, { via: 'bootstrap', address: '127.0.0.1', reason: 'wrong claim code' });
    const ok = await t.credentials(MAC, { code: 'K7-QX-93' });
    assert.equal(ok.status, 200);
    assert.equal(typeof ok.body['password'], 'string');

    const id = '02:00:00:00:00:30';
    await t.store.create({ id, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '330' } });
    await t.store.setClaimCode(id, await hashPassword('label-5678'));
    await t.open([id]);
    const viaHeader = await t.credentials(id, { header: 'label-5678' });
    assert.equal(viaHeader.status, 200);
    // A device without a code may send one anyway: the window alone decides.
    const plain = '02:00:00:00:00:31';
    await t.store.create({ id: plain, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '331' } });
    await t.open([plain]);
    assert.equal((await t.credentials(plain, { code: 'anything' })).status, 200);
  } finally {
    await t.close();
  }
});

test('bootstrap: a device whose password was taken raises device.credentials_claimed_twice (critical), logs a warning and audits both addresses', async () => {
  const lines: string[] = [];
  const t = await setup({ destination: { write: (s: string) => void lines.push(s) } });
  try {
    // Someone at 127.0.0.2 who knows the MAC is faster than the device.
    const stolen = await t.credentials(MAC, { from: '127.0.0.2' });
    assert.equal(stolen.status, 200);
    const claimedAt = t.clock.now();
    t.clock.advance(5000);
    // The real device boots: it gets the same refusal as anyone, and the operator hears of it.
    assertRefused(await t.credentials(MAC), 'the real device');
    assert.equal(t.events.length, 1);
    const e = t.events[0]!;
    assert.deepEqual(
      { type: e.type, severity: e.severity, device: e.device, data: e.data, ts: e.ts },
      { type: CLAIMED_TWICE, severity: 'critical', device: MAC, data: { address: '127.0.0.1', claimedBy: '127.0.0.2', claimedAt }, ts: claimedAt + 5000 },
    );
    assert.match(e.message, /127\.0\.0\.2/);
    const audit = await t.store.listAudit({ device: MAC, action: 'credentials.claimed_twice' });
    assert.deepEqual(audit.map((a) => a.detail), [{ address: '127.0.0.1', claimedBy: '127.0.0.2', claimedAt }]);
    const warned = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['level'] === 40 && l['device'] === MAC);
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!['claimedBy'], '127.0.0.2');

    // Repeats within 10 minutes do not flood the event sinks; one after them raises it again.
    assertRefused(await t.credentials(MAC), 'again');
    assert.equal(t.events.length, 1);
    t.clock.advance(10 * MINUTE);
    assertRefused(await t.credentials(MAC), 'later');
    assert.equal(t.events.length, 2);

    // A password the operator printed (not taken by a bootstrap call) raises nothing.
    const printed = '02:00:00:00:00:40';
    await t.store.create({ id: printed, kind: 'mac', type: 'room-sensor', location: { building: 'U4', room: '340' } });
    await t.store.setCredentials(printed, { username: printed, hash: await hashPassword('printed-password'), passwordIssued: true });
    assertRefused(await t.credentials(printed), 'printed password');
    assert.equal(t.events.length, 2);
  } finally {
    await t.close();
  }
});

test('bootstrap: with a claim code, only a caller with the right code raises the double-claim alarm', async () => {
  const t = await setup();
  try {
    await t.store.setClaimCode(MAC, await hashPassword('K7-QX-93'));
    assert.equal((await t.credentials(MAC, { code: 'K7-QX-93', from: '127.0.0.2' })).status, 200);
    assertRefused(await t.credentials(MAC, { code: 'guess-0000' }), 'a wrong code');
    assert.equal(t.events.length, 0, 'someone without the label is not the device');
    assertRefused(await t.credentials(MAC, { code: 'K7-QX-93' }), 'the right code');
    assert.equal(t.events.length, 1);
  } finally {
    await t.close();
  }
});

test('bootstrap: calls are rate limited per client address (429, Retry-After, counted); another address is not held back', async () => {
  const t = await setup({ rateLimit: { burst: 3, perSecond: 0.1, failuresBeforeBackoff: 100, backoffMs: 1000, maxBackoffMs: 1000 } });
  try {
    for (let i = 0; i < 3; i++) assertRefused(await t.credentials('11:22:33:44:55:66', { from: '127.0.0.2' }), `attempt ${i}`);
    const limited = await t.credentials('11:22:33:44:55:66', { from: '127.0.0.2' });
    assert.equal(limited.status, 429);
    assert.equal(errorOf(limited).code, 'BH_API_RATE_LIMITED');
    assert.equal(limited.headers.get('retry-after'), '10');
    // Even a right answer is held back for that address.
    assert.equal((await t.credentials(MAC, { from: '127.0.0.2' })).status, 429);
    assert.equal(await t.metrics.value('backhaul_api_rate_limited_total', { limit: 'bootstrap' }), 2);
    // The real device at another address is not locked out.
    const real = await t.credentials(MAC, { from: '127.0.0.1' });
    assert.equal(real.status, 200);
    assert.equal(typeof real.body['password'], 'string');
    // The bucket refills with time.
    t.clock.advance(10_000);
    assertRefused(await t.credentials('11:22:33:44:55:66', { from: '127.0.0.2' }), 'after the wait');
  } finally {
    await t.close();
  }
});

test('bootstrap: refusals back an address off exponentially, and /config logins count too', async () => {
  const t = await setup({ rateLimit: { burst: 100, perSecond: 100, failuresBeforeBackoff: 2, backoffMs: 1000, maxBackoffMs: 8000 } });
  try {
    assertRefused(await t.credentials('11:22:33:44:55:66', { from: '127.0.0.2' }), 'first');
    assertRefused(await t.credentials('11:22:33:44:55:67', { from: '127.0.0.2' }), 'second: backed off after it');
    const held = await t.credentials(MAC, { from: '127.0.0.2' });
    assert.equal(held.status, 429);
    assert.equal(held.headers.get('retry-after'), '1');
    t.clock.advance(1000);
    assertRefused(await t.credentials('11:22:33:44:55:68', { from: '127.0.0.2' }), 'third');
    assert.equal((await t.credentials(MAC, { from: '127.0.0.2' })).headers.get('retry-after'), '2', 'doubled');
    // Wrong /config logins from 127.0.0.1 back that address off as well.
    const wrong = () => t.get('/bootstrap/v1/config', { authorization: `Basic ${Buffer.from(`${MAC}:nope`).toString('base64')}` });
    assert.equal((await wrong()).status, 401);
    assert.equal((await wrong()).status, 401);
    assert.equal((await wrong()).status, 429);
  } finally {
    await t.close();
  }
});

test('bootstrap: after resetCredentials and a new window the next call issues a new password; the old one stops working', async () => {
  const t = await setup();
  try {
    const old = (await t.credentials(MAC)).body['password'] as string;
    await t.store.resetCredentials(MAC);
    assert.equal((await t.store.get(MAC))?.claim, undefined, 'the reset forgets the last claim');
    assertRefused(await t.credentials(MAC), 'reset, but no window yet');
    assert.equal(t.events.length, 0, 'a reset device asking again is no alarm');
    await t.open();
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
      await t.store.resetCredentials(MAC);
      await t.open();
      const a = await t.credentials(mac);
      assert.equal(a.status, 200, mac);
      assert.equal(a.body['device'], MAC, mac);
    }
  } finally {
    await t.close();
  }
});

test('bootstrap: a bad or missing MAC is 400 naming querystring.mac; an unknown one is the refusal; an unknown route 404', async () => {
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

    assertRefused(await t.credentials('11:22:33:44:55:66'), 'an unknown MAC');

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
    assertRefused(await t.credentials(id), 'no window: the caller learns nothing, not even that it is unplaced');
    await t.open([id]);
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

test('bootstrap: of concurrent first calls exactly one gets the password, the stored one; the others are refused and raise the alarm', async () => {
  const t = await setup();
  try {
    const answers = await Promise.all([t.credentials(MAC), t.credentials(MAC), t.credentials(MAC)]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 403, 403]);
    const won = answers.find((a) => a.status === 200)!;
    for (const a of answers.filter((x) => x !== won)) assertRefused(a, 'a losing call');
    assert.equal(won.body['login'], MAC);
    assert.ok(await t.store.logins.verify(won.body['password'] as string, (await t.store.get(MAC))!.credentials!.hash!));
    assert.equal((await t.store.listAudit({ action: 'credentials.issue' })).length, 1);
    // Two callers at once for one first password: one of them may be the real device.
    assert.deepEqual(t.events.map((e) => e.type), [CLAIMED_TWICE]);
  } finally {
    await t.close();
  }
});

test('bootstrap: without a configured broker host, the host the device used (Host header, no port) is returned', async () => {
  const t = await setup({ broker: () => ({ port: 8883 }) });
  try {
    const a = await rawGet(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`, { headers: { host: 'backhaul.local:8080' } });
    assert.equal(a.status, 200);
    assert.deepEqual(a.body['broker'], { host: 'backhaul.local', port: 8883 });
    await t.store.resetCredentials(MAC);
    await t.open();
    const b = await rawGet(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`, { headers: { host: '[fd00::1]:8080' } });
    assert.deepEqual(b.body['broker'], { host: 'fd00::1', port: 8883 });
  } finally {
    await t.close();
  }
});

test('bootstrap: with no broker the answer is 503 BH_BOOTSTRAP_NO_BROKER and no password is consumed', async () => {
  let broker: { port: number } | undefined;
  const t = await setup({ broker: () => broker });
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
    assertRefused(await t.credentials(id), 'a config device');
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

test('bootstrap: a broker serving TLS is announced with it (tls on the port, or tlsPort beside a plain port)', async () => {
  let where: { port: number; tls?: boolean; tlsPort?: number } = { port: 8883, tls: true };
  const t = await setup({ broker: () => ({ host: 'mqtt.example', ...where }) });
  try {
    const a = await rawGet(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`);
    assert.deepEqual(a.body['broker'], { host: 'mqtt.example', port: 8883, tls: true });
    where = { port: 1883, tlsPort: 8883 };
    await t.store.resetCredentials(MAC);
    await t.open();
    const b = await rawGet(`${t.server.url}/bootstrap/v1/credentials?mac=${MAC}`);
    assert.deepEqual(b.body['broker'], { host: 'mqtt.example', port: 1883, tlsPort: 8883 });
  } finally {
    await t.close();
  }
});

// A client id belongs to one login: through the real hub, its registry and the embedded broker, with mqtt.js
// clients. Device A, logged in with its own password, cannot take device B's client id (so cannot kick B nor receive
// the order queued in B's session), and a service account's session is not resumed by another login.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
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
import { RawClient } from '../helpers/mqtt-raw.js';

const A = 'aa:bb:cc:00:04:01';
const B = 'aa:bb:cc:00:04:02';
const A_PASSWORD = 'shutter-a-password';
const B_PASSWORD = 'shutter-b-password';
const B_COMMAND = 'u4/402/shutter/command';

async function setup(t: TestContext, brokerExtra: Record<string, unknown> = {}): Promise<{ hub: Hub; url: string; port: number; refused: (reason: string) => Promise<number> }> {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: A, type: 'shutter', location: { building: 'u4', room: '401' } });
  await s.setCredentials(A, { username: A, hash: await hashPassword(A_PASSWORD), passwordIssued: true });
  await s.create({ id: B, type: 'shutter', location: { building: 'u4', room: '402' } });
  await s.setCredentials(B, { username: B, hash: await hashPassword(B_PASSWORD), passwordIssued: true });
  await s.close();
  const port = await freePort();
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop', refreshMs: 100, commandTimeoutMs: 60_000 },
      inputs: {
        devices: {
          type: 'broker',
          host: '127.0.0.1',
          port,
          decoder: 'json',
          users: [
            { username: 'dashboard', password: 'dashboard-secret', publish: [], subscribe: ['backhaul/#'] },
            { username: 'bridge', password: 'bridge-secret', publish: ['backhaul/#'], subscribe: ['backhaul/#'] },
          ],
          ...brokerExtra,
        },
      },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  return {
    hub,
    url: `mqtt://127.0.0.1:${port}`,
    port,
    refused: (reason) => hub.metrics.value('backhaul_broker_refused_total', { input: 'devices', reason }),
  };
}

async function connect(t: TestContext, url: string, o: IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...o });
  t.after(() => c.endAsync(true));
  return c;
}

test('device A with its own password cannot take device B\'s client id: CONNACK 2, B is not kicked, B\'s queued order stays B\'s', async (t) => {
  const { url, hub, refused } = await setup(t);
  // B keeps a session (clean 0) subscribed to its command topic, then goes away.
  const b = await connect(t, url, { clientId: B, clean: false, username: B, password: B_PASSWORD });
  await b.subscribeAsync(B_COMMAND, { qos: 1 });
  await b.endAsync();
  const sent = await hub.sendCommand({ device: B, order: 'down', params: { position: 0 }, actor: 'cli:test' });
  assert.equal(sent.status, 'sent');

  // A resuming B's session would receive that order: refused, whatever clean session it asks for.
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: false, username: A, password: A_PASSWORD }), /Identifier rejected/i);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: true, username: A, password: A_PASSWORD }), /Identifier rejected/i);
  // Nor anonymously, nor as a service account.
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: false }), /Identifier rejected|Not authorized/i);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: false, username: 'bridge', password: 'bridge-secret' }), /Identifier rejected/i);

  // B comes back to its session and gets the order, with its parameters.
  const received: Array<Record<string, unknown>> = [];
  const back = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: false, username: B, password: B_PASSWORD });
  t.after(() => back.endAsync(true));
  back.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as Record<string, unknown>));
  await until(() => received.length === 1, { what: 'B receives its queued order' });
  assert.equal(received[0]!['id'], sent.id);
  assert.deepEqual(received[0]!['params'], { position: 0 });

  // While B is connected, A's attempt neither kicks it nor gets in.
  let bClosed = false;
  back.on('close', () => (bClosed = true));
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: B, clean: false, username: A, password: A_PASSWORD }), /Identifier rejected/i);
  await back.publishAsync('u4/402/shutter/data', JSON.stringify({ device: B, position: 0 }), { qos: 1 });
  assert.equal(bClosed, false);
  assert.equal(back.connected, true);
  assert.equal(await refused('client_id_taken'), 4);

  // A uses its own client ids as it likes.
  const a = await connect(t, url, { clientId: 'a-own-id', username: A, password: A_PASSWORD });
  assert.equal(a.connected, true);
});

test('a service account\'s session (clean 0) is resumed only by that account: another login gets CONNACK 2', async (t) => {
  const { url, refused } = await setup(t);
  const dash = await connect(t, url, { clientId: 'dash-1', clean: false, username: 'dashboard', password: 'dashboard-secret' });
  await dash.subscribeAsync('backhaul/#', { qos: 1 });
  await dash.endAsync();
  // A reading for the dashboard, queued in its session while it is away.
  const bridge = await connect(t, url, { clientId: 'bridge-1', username: 'bridge', password: 'bridge-secret' });
  await bridge.publishAsync('backhaul/u4/401/temperature', '21.5', { qos: 1 });

  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'dash-1', clean: false, username: 'bridge', password: 'bridge-secret' }), /Identifier rejected/i);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'dash-1', clean: false, username: A, password: A_PASSWORD }), /Identifier rejected/i);
  assert.equal(await refused('client_id_taken'), 2);

  const got: string[] = [];
  const back = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'dash-1', clean: false, username: 'dashboard', password: 'dashboard-secret' });
  t.after(() => back.endAsync(true));
  back.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await until(() => got.length === 1, { what: 'the queued reading reaches the dashboard' });
  assert.deepEqual(got, ['backhaul/u4/401/temperature 21.5']);
});

test('a clean session frees its client id when it ends: another login may use it afterwards', async (t) => {
  const { url } = await setup(t);
  const a = await connect(t, url, { clientId: 'shared-name', clean: true, username: A, password: A_PASSWORD });
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'shared-name', username: B, password: B_PASSWORD }), /Identifier rejected/i);
  await a.endAsync();
  await until(async () => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'shared-name', username: B, password: B_PASSWORD }).catch(() => undefined);
    await c?.endAsync();
    return c !== undefined;
  }, { what: 'B may use the freed id' });
  // The same device may always take its own id over (a reconnect while the old connection is half-open).
  const first = await connect(t, url, { clientId: A, username: A, password: A_PASSWORD });
  const closed = new Promise<void>((r) => first.once('close', () => r()));
  const second = await connect(t, url, { clientId: A, username: A, password: A_PASSWORD });
  await closed;
  assert.equal(second.connected, true);
});

test('an attacker failing logins for device B from their address is backed off there; the real B still logs in from its own', async (t) => {
  const { url, port, refused } = await setup(t, { loginLimit: { failuresBeforeBackoff: 3, backoffMs: 60_000 } });
  const codes: number[] = [];
  for (let i = 0; i < 6; i++) {
    const attacker = await RawClient.open(port, { localAddress: '127.0.0.2' });
    t.after(() => attacker.end());
    codes.push(await attacker.login({ clientId: `guess-${i}`, username: B, password: `guess-${i}` }));
    attacker.end();
  }
  // Wrong passwords get CONNACK 4 until the address is backed off, then CONNACK 3 without a password check.
  assert.deepEqual(codes, [4, 4, 4, 3, 3, 3]);
  const right = await RawClient.open(port, { localAddress: '127.0.0.2' });
  t.after(() => right.end());
  assert.equal(await right.login({ clientId: 'guess-right', username: B, password: B_PASSWORD }), 3, 'the backed-off address stays refused');
  // The real B, from 127.0.0.1, is not locked out.
  const b = await connect(t, url, { clientId: B, username: B, password: B_PASSWORD });
  assert.equal(b.connected, true);
  assert.equal(await refused('bad_login'), 3);
  assert.equal(await refused('login_backoff'), 4);
});

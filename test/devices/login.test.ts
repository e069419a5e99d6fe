// Device logins at the real embedded broker, with mqtt.js clients, on a real registry file: generated passwords in
// the fast keyed format, old scrypt hashes of generated passwords migrated on their next login (and still valid
// after it), a person's passwords (declared devices) kept in scrypt, and the stored format deciding the check.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { generatePassword, hashPassword, LoginHasher } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { addDevice } from '../../src/devices/provision.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { tryPublish } from '../helpers/mqtt-client.js';

const FAST = /^\$hmac-sha256\$k=[0-9a-f]{12}\$/;
const BAD_LOGIN = /Bad username or password/i;

interface Setup {
  dir: string;
  url: string;
  start(): Promise<Hub>;
  store(): SqliteDeviceStore;
  lines(): Array<Record<string, unknown>>;
}

function setup(t: TestContext, devices: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Promise<Setup> {
  const d = tempDir();
  // Hubs stop and stores close before the folder goes (after hooks run in the order they were added).
  const closers: Array<() => unknown> = [];
  t.after(async () => {
    for (const close of closers.reverse()) await close();
    d.cleanup();
  });
  return freePort().then((port) => {
    const config = () =>
      buildConfig(
        {
          data: d.path,
          devices: { unknown: 'drop', refreshMs: 100, ...devices },
          inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
          sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') } },
          routes: [{ to: ['out'] }],
        },
        { source: 'test', dir: d.path },
        { registry: builtinRegistry(), env },
      );
    return {
      dir: d.path,
      url: `mqtt://127.0.0.1:${port}`,
      async start() {
        const hub = new Hub({ config: config(), logger: silentLogger() });
        await hub.start();
        closers.push(() => hub.stop());
        return hub;
      },
      store() {
        const st = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
        closers.push(() => st.close());
        return st;
      },
      lines() {
        const f = join(d.path, 'out.jsonl');
        return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
      },
    };
  });
}

async function connect(t: TestContext, url: string, username: string, password: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username, password });
  t.after(() => c.endAsync(true));
  return c;
}

function refused(url: string, username: string, password: string): Promise<void> {
  return assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, username, password }), BAD_LOGIN);
}


async function hashOf(s: SqliteDeviceStore, id: string): Promise<string | undefined> {
  return (await s.get(id))?.credentials?.hash;
}

test('a generated password, as `devices add` makes it, is stored in the fast format and logs in; a wrong one does not, nor one hashed with another key', async (t) => {
  const s = await setup(t);
  const reg = s.store();
  const added = await addDevice(reg, { id: 'aa:bb:cc:00:04:01', type: 'shutter', location: { building: 'u4', room: '401' } }, { bootstrap: false, actor: 'cli:test' });
  const password = added.password!;
  assert.match((await hashOf(reg, 'aa:bb:cc:00:04:01'))!, FAST);
  assert.equal(reg.logins.keyOf((await hashOf(reg, 'aa:bb:cc:00:04:01'))!), reg.logins.keyId);
  // A device whose fast hash was made with some other registry's key (a replaced registry.key): never accepted.
  const foreign = generatePassword();
  await reg.create({ id: 'aa:bb:cc:00:04:02', type: 'shutter', location: { building: 'u4', room: '402' } });
  await reg.setCredentials('aa:bb:cc:00:04:02', { username: 'aa:bb:cc:00:04:02', hash: LoginHasher.random().hash(foreign), passwordIssued: true });
  await s.start();

  const dev = await connect(t, s.url, 'aa:bb:cc:00:04:01', password);
  assert.equal(await tryPublish(dev, 'u4/401/shutter/data', JSON.stringify({ device: 'aa:bb:cc:00:04:01', position: 10 })), true);
  await until(() => s.lines().length === 1, { what: 'the reading' });
  assert.equal(s.lines()[0]!['authenticated'], true);
  await refused(s.url, 'aa:bb:cc:00:04:01', `${password}x`);
  await refused(s.url, 'aa:bb:cc:00:04:01', generatePassword());
  await refused(s.url, 'aa:bb:cc:00:04:01', '');
  await refused(s.url, 'aa:bb:cc:00:04:02', foreign);
  await refused(s.url, 'no-such-device', password);
});

test('a registry with an old scrypt hash of a generated password: the login works, moves the hash to the fast format, keeps its rights, and logs in again', async (t) => {
  const s = await setup(t);
  const reg = s.store();
  const id = 'aa:bb:cc:00:04:03';
  const password = generatePassword();
  await reg.create({ id, type: 'shutter', location: { building: 'u4', room: '403' } });
  const old = await hashPassword(password); // what Backhaul stored before the fast format
  await reg.setCredentials(id, { username: id, hash: old, passwordIssued: true });
  const setAt = (await reg.get(id))?.credentials?.updatedAt;
  const hub = await s.start();

  await refused(s.url, id, `${password}x`);
  assert.equal(await hashOf(reg, id), old, 'a failed login changes nothing');
  const first = await connect(t, s.url, id, password);
  await until(async () => FAST.test((await hashOf(reg, id)) ?? ''), { what: 'the fast hash stored after the login' });
  const migrated = (await hashOf(reg, id))!;
  assert.equal(reg.logins.keyOf(migrated), reg.logins.keyId);
  assert.equal(await reg.logins.verify(password, migrated), true);
  assert.equal((await reg.get(id))?.credentials?.updatedAt, setAt, 'the login keeps its time');
  // The connection opened with the old hash keeps its rights across registry refreshes (refreshMs is 100).
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await tryPublish(first, 'u4/403/shutter/data', JSON.stringify({ device: id, position: 1 })), true);
  await until(() => s.lines().length === 1, { what: 'the reading' });
  assert.equal(s.lines()[0]!['authenticated'], true);

  // Again, now against the fast hash; a wrong password still fails; nothing changes any more.
  const second = await connect(t, s.url, id, password);
  assert.equal(await tryPublish(second, 'u4/403/shutter/data', JSON.stringify({ device: id, position: 2 })), true);
  await refused(s.url, id, `${password}x`);
  await refused(s.url, id, old);
  assert.equal(await hashOf(reg, id), migrated);

  // And after a restart: the key is the registry's (its file in the data folder), so the migrated hash still works.
  await first.endAsync(true);
  await second.endAsync(true);
  await hub.stop();
  await s.start();
  await connect(t, s.url, id, password);
  assert.equal(await hashOf(reg, id), migrated);
});

test('a person\'s passwords keep scrypt: a declared device (even with a generated-looking secret) and a registry password that cannot be a generated one', async (t) => {
  const declaredPassword = generatePassword();
  const s = await setup(
    t,
    { declared: [{ id: 'AA-BB-CC-00-04-09', type: 'room-sensor', building: 'u4', room: '409', password: { secret: 'sensor_409' } }] },
    { BACKHAUL_SECRET_SENSOR_409: declaredPassword },
  );
  const reg = s.store();
  const person = 'aa:bb:cc:00:04:05';
  await reg.create({ id: person, type: 'shutter', location: { building: 'u4', room: '405' } });
  await reg.setCredentials(person, { username: person, hash: await hashPassword('shutter-405-pw'), passwordIssued: true });
  const old = 'aa:bb:cc:00:04:06';
  const oldPassword = generatePassword();
  await reg.create({ id: old, type: 'shutter', location: { building: 'u4', room: '406' } });
  await reg.setCredentials(old, { username: old, hash: await hashPassword(oldPassword), passwordIssued: true });
  await s.start();
  const declaredHash = (await hashOf(reg, 'aa:bb:cc:00:04:09'))!;
  const personHash = (await hashOf(reg, person))!;
  assert.match(declaredHash, /^\$scrypt\$/);

  const sensor = await connect(t, s.url, 'aa:bb:cc:00:04:09', declaredPassword);
  assert.equal(await tryPublish(sensor, 'u4/409/sensors/data', JSON.stringify({ device: 'aa:bb:cc:00:04:09', temperature: 20 })), true);
  await connect(t, s.url, person, 'shutter-405-pw');
  // A generated password logging in after them: once its migration is stored, theirs would have been too.
  await connect(t, s.url, old, oldPassword);
  await until(async () => FAST.test((await hashOf(reg, old)) ?? ''), { what: 'the generated one migrated' });
  assert.equal(await hashOf(reg, 'aa:bb:cc:00:04:09'), declaredHash);
  assert.equal(await hashOf(reg, person), personHash);
  // Both still log in with scrypt.
  await connect(t, s.url, 'aa:bb:cc:00:04:09', declaredPassword);
  await connect(t, s.url, person, 'shutter-405-pw');
  await refused(s.url, 'aa:bb:cc:00:04:09', `${declaredPassword}x`);
});

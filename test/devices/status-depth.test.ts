// Issue 11, item 9: a 100,000-deep JSON on a device's status topic made the registry's batched last-seen write fail,
// and with it every other device's last seen of that batch. Through the real hub, the embedded broker and two real
// device logins: the deep status is refused (coded, counted), the batch is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';

const A = 'aa:bb:cc:00:03:01';
const B = 'aa:bb:cc:00:03:02';

test('a 100,000-deep JSON status is refused with BH_DECODE_DEPTH; the other devices\' last seen of the same batch is written', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  await s.create({ id: A, type: 'shutter', location: { building: 'u4', room: '301' } });
  await s.setCredentials(A, { username: A, hash: await hashPassword('password-of-a'), passwordIssued: true });
  await s.create({ id: B, type: 'shutter', location: { building: 'u4', room: '302' } });
  await s.setCredentials(B, { username: B, hash: await hashPassword('password-of-b'), passwordIssued: true });
  await s.close();

  const config = buildConfig(
    {
      data: d.path,
      // A long refresh keeps the gate's batch open (it is written every 5 s, and at stop): both devices land in one.
      devices: { unknown: 'drop', refreshMs: 60_000 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port: 0, decoder: 'json' } },
      sinks: { out: { type: 'console' } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const url = String(hub.inputStatus()[0]?.info['url']);

  const a = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: A, password: 'password-of-a' });
  t.after(() => a.endAsync(true));
  const b = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: B, password: 'password-of-b' });
  t.after(() => b.endAsync(true));

  const before = Date.now();
  await b.publishAsync('u4/302/shutter/device', JSON.stringify({ uptime: 7 }), { qos: 1 });
  await a.publishAsync('u4/301/shutter/device', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, { qos: 1 });
  await a.endAsync(true);
  await b.endAsync(true);
  await hub.stop(); // writes the batch

  const st = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  t.after(() => st.close());
  const devB = await st.get(B);
  assert.ok((devB?.lastSeen ?? 0) >= before, 'B\'s last seen is written');
  assert.deepEqual(devB?.lastStatus, { uptime: 7 });
  const devA = await st.get(A);
  assert.ok((devA?.lastSeen ?? 0) >= before, 'A, which logged in and spoke, was seen');
  assert.equal(devA?.lastStatus, undefined, 'the deep status is not kept');
  assert.equal(await hub.metrics.value('backhaul_decode_errors_total', { input: 'devices', reason: 'BH_DECODE_DEPTH' }), 1);
});

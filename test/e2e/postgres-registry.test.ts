// The device registry in PostgreSQL (`"store": {"type": "postgres"}`), shared by two real hubs: a device added with
// the real CLI (`backhaul devices add -c FILE`) logs in to either instance's broker with the password it printed;
// disabled through one instance's REST API, it is refused by the other within a second (LISTEN/NOTIFY: both hubs'
// refresh interval is a minute, so no periodic look explains it); orders recorded by one are listed by the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { teardown } from '../helpers/context.js';
import { pgCluster } from '../helpers/pg-cluster.js';
import { freshSchema, postgresSkip } from '../helpers/postgres.js';
import { runToEnd } from '../helpers/process.js';
import { until } from '../helpers/until.js';

const skip = await postgresSkip();
const DEV = 'aa:bb:cc:dd:18:01';

test('registry in PostgreSQL: one device for two instances; a change through one reaches the other within a second', { skip, timeout: 90_000 }, async (t) => {
  const later = teardown(t);
  const schema = freshSchema('bh_reg');
  later(() => schema.drop());
  const instances = await pgCluster(later, schema.name, 2, () => ({
    devices: { unknown: 'drop', refreshMs: 60_000 },
    api: { host: '127.0.0.1', port: 0 },
    sinks: { out: { type: 'file', path: 'out.jsonl' } },
    routes: [{ to: ['out'] }],
  }));
  // The tokens follow the store: only the first hub makes a first admin, and it works on both.
  const admin = instances[0]?.admin ?? '';
  const [north, south] = instances as [(typeof instances)[0], (typeof instances)[0]];

  const added = await runToEnd(['devices', 'add', DEV, '--type', 'shutter', '--building', 'u4', '--room', '701', '-c', north.file, '--json']);
  assert.equal(added.code, 0, added.stderr);
  const password = (JSON.parse(added.stdout) as { password: string }).password;
  const login = (port: number) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: DEV, password, reconnectPeriod: 0, connectTimeout: 3000 });
  // Both brokers take the login at once: a login reads the registry itself.
  for (const { port } of instances) await (await login(port)).endAsync();
  const listed = await runToEnd(['devices', 'list', '-c', south.file, '--json']);
  assert.deepEqual((JSON.parse(listed.stdout) as Array<{ id: string }>).map((d) => d.id), [DEV], 'the CLI on the other instance\'s config sees the same registry');

  // A session open on south; the device disabled through north's API.
  const open = await login(south.port);
  later(() => open.endAsync(true));
  const disabled = await fetch(`${north.hub.apiUrl() ?? ''}/api/v1/devices/${encodeURIComponent(DEV)}/disable`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
  assert.equal(disabled.status, 200);
  const refused = async () => {
    const c = await login(south.port).catch(() => undefined);
    await c?.endAsync(true);
    return c === undefined;
  };
  // A new login reads the registry itself; the open session is judged by south's view of the registry, which only
  // the change notice can have renewed within the second (its periodic look is a minute away).
  await new Promise((r) => setTimeout(r, 1000));
  const closed = new Promise<boolean>((res) => {
    open.once('close', () => res(true));
    open.publish('u4/701/shutter/data', JSON.stringify({ device: DEV, position: 1 }), { qos: 1 }, (err) => res(err !== undefined && err !== null));
  });
  assert.equal(await closed, true, 'the open session lost its rights within a second: its publish closed it');
  assert.equal(await refused(), true, 'and a new login is refused');

  // Orders: recorded through south's hub (forced: the device is disabled, so refused; enable it first), listed by north's CLI.
  const enabled = await fetch(`${south.hub.apiUrl() ?? ''}/api/v1/devices/${encodeURIComponent(DEV)}/enable`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
  assert.equal(enabled.status, 200);
  await until(async () => !(await refused()), { what: 'south to take the login again', timeoutMs: 5000, everyMs: 50 });
  const dev = await login(south.port);
  later(() => dev.endAsync(true));
  const sent = await south.hub.sendCommand({ device: DEV, order: 'reboot', actor: 'test' });
  const orders = await runToEnd(['devices', 'commands', DEV, '-c', north.file, '--json']);
  assert.equal(orders.code, 0, orders.stderr);
  assert.ok((JSON.parse(orders.stdout) as Array<{ id: string }>).some((o) => o.id === sent.id), 'the order south sent is in the shared registry');
});

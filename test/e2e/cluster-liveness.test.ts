// Liveness across a cluster: two real hubs on one PostgreSQL registry. A device heard only by the second is not
// called silent by the first (which holds the liveness lease); once it falls silent, exactly one device.offline is
// raised across both, and exactly one device.online when it speaks again. When the lease holder stops, the other
// takes the lease over and judges from then on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { teardown } from '../helpers/context.js';
import { pgCluster } from '../helpers/pg-cluster.js';
import { freshSchema, postgresSkip } from '../helpers/postgres.js';
import { runToEnd } from '../helpers/process.js';
import { until } from '../helpers/until.js';

const skip = await postgresSkip();
const DEV = 'aa:bb:cc:dd:18:02';

test('cluster liveness: one device.offline and one device.online across two instances, judged by the lease holder from every instance\'s last-seen', { skip, timeout: 120_000 }, async (t) => {
  const later = teardown(t);
  const schema = freshSchema('bh_live');
  later(() => schema.drop());
  const nodes = (
    await pgCluster(later, schema.name, 2, () => ({
      devices: { unknown: 'drop', learn: { enabled: false } },
      sinks: { events: { type: 'file', path: 'events.jsonl' } },
      routes: [{ match: { kind: 'event', events: ['device.offline', 'device.online'] }, to: ['events'] }],
    }))
  ).map((n) => {
    const path = join(n.dir, 'events.jsonl'); // relative to the config file
    return { ...n, hub: n.hub, events: () => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []) };
  });
  const [first, second] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const added = await runToEnd(['devices', 'add', DEV, '--type', 'shutter', '--building', 'u4', '--room', '801', '--max-silent', '8s', '-c', first.file, '--json']);
  assert.equal(added.code, 0, added.stderr);
  const password = (JSON.parse(added.stdout) as { password: string }).password;
  const all = (type: string) => nodes.flatMap((n, i) => n.events().filter((e) => e['event'] === type && e['device'] === DEV).map(() => i));

  // Heard only by the second instance, every second for 16 s: twice its threshold, so the first (the lease holder)
  // would call it silent if it judged by what it hears itself.
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${second.port}`, { username: DEV, password, reconnectPeriod: 0 });
  later(() => dev.endAsync(true));
  for (let k = 0; k < 16; k++) {
    await dev.publishAsync('u4/801/shutter/data', JSON.stringify({ device: DEV, position: k }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.deepEqual(all('device.offline'), [], 'no instance called it silent while the cluster heard it');

  await until(() => all('device.offline').length > 0, { what: 'device.offline once it fell silent', timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 6000)); // another tick of both instances
  assert.deepEqual(all('device.offline'), [0], 'exactly one device.offline, from the lease holder');

  // It speaks again, and keeps speaking (through the second instance) while the holder stops.
  let talking = true;
  const talk = (async () => {
    for (let k = 100; talking; k++) {
      await dev.publishAsync('u4/801/shutter/data', JSON.stringify({ device: DEV, position: k }), { qos: 1 });
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  await until(() => all('device.online').length > 0, { what: 'device.online once it spoke again', timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 6000));
  assert.deepEqual(all('device.online'), [0], 'exactly one device.online');
  assert.deepEqual(all('device.offline'), [0], 'and no new device.offline while it speaks');

  // The holder stops: the second takes the lease over and raises the next device.offline itself.
  await first.hub.stop();
  await new Promise((r) => setTimeout(r, 4000));
  talking = false;
  await talk;
  await until(() => all('device.offline').length === 2, { what: 'the next device.offline, by the instance that took over', timeoutMs: 40_000 });
  assert.deepEqual(all('device.offline'), [0, 1]);
});

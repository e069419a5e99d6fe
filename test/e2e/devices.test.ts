// Devices, black box: the real `backhaul` program running, the CLI in other processes, and a real MQTT client as the
// device. An operator registers a device, the device logs in with the printed password, and an order sent with
// `backhaul devices command` reaches it and is acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';

test('devices command: an order reaches a real device client with dest, is acknowledged, and is listed with its outcome', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      devices: { unknown: 'drop', refreshMs: 200 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
    }),
  );

  // Not running yet: the order cannot be sent, and the CLI says why.
  const add = await runToEnd(['devices', 'add', 'AA:BB:CC:DD:00:01', '--type', 'shutter', '--building', 'u4', '--room', '301', '-c', cfg, '--json']);
  assert.equal(add.code, 0, add.stderr);
  const { password } = JSON.parse(add.stdout) as { password: string };
  const early = await runToEnd(['devices', 'command', 'aa-bb-cc-dd-00-01', 'reboot', '-c', cfg]);
  assert.equal(early.code, 1);
  assert.match(early.stderr, /^BH_NOT_RUNNING /m);

  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');

  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: 'aa:bb:cc:dd:00:01', password });
  t.after(() => device.endAsync(true));
  await device.subscribeAsync('u4/301/shutter/command', { qos: 1 });
  const orders: Array<Record<string, unknown>> = [];
  device.on('message', (_topic, payload) => {
    const order = JSON.parse(payload.toString()) as Record<string, unknown>;
    orders.push(order);
    // The device does what it is told and says so on its status topic.
    void device.publishAsync('u4/301/shutter/device', JSON.stringify({ ack: order['id'], result: 'ok', position: 0 }), { qos: 1 });
  });

  const r = await runToEnd(['devices', 'command', 'AA-BB-CC-DD-00-01', 'down', '--param', 'position=0', '--param', 'note=kitchen', '--wait', '10s', '-c', cfg]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /down sent to aa:bb:cc:dd:00:01 on u4\/301\/shutter\/command/);
  assert.match(r.stdout, /^acknowledged: \{"ack":/m);
  assert.equal(orders.length, 1);
  assert.equal(orders[0]!['dest'], 'aa:bb:cc:dd:00:01');
  assert.equal(orders[0]!['order'], 'down');
  assert.deepEqual(orders[0]!['params'], { position: 0, note: 'kitchen' });

  const list = await runToEnd(['devices', 'commands', 'aa:bb:cc:dd:00:01', '-c', cfg, '--json']);
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as Array<{ order: string; status: string; actor: string }>;
  assert.deepEqual(rows.map((x) => [x.order, x.status]), [['down', 'acknowledged']]);
  assert.match(rows[0]!.actor, /^cli/);

  // A refused order gives its code and exit 1.
  const bad = await runToEnd(['devices', 'command', 'aa:bb:cc:dd:00:01', 'no good', '-c', cfg]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^BH_COMMAND_ORDER order: /m);
  assert.equal(await app.stop('SIGINT'), 0);
});

// Whose readings a login carries, black box: the real `backhaul` program, devices registered with the CLI, real MQTT
// clients logging in with the printed passwords. Device A's readings naming device B are refused and logged with
// their code, B's last seen does not move, A's own readings pass; `backhaul check` validates `devices.gateways`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

const A = 'aa:bb:cc:dd:10:01';
const B = 'aa:bb:cc:dd:10:02';

test('the real program: a device\'s spoofed readings for another device are refused and logged, its own pass, the other\'s last seen stays', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      devices: { unknown: 'register', refreshMs: 200 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
    }),
  );
  const add = async (id: string, room: string) => {
    const r = await runToEnd(['devices', 'add', id, '--type', 'shutter', '--building', 'u4', '--room', room, '-c', cfg, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { password: string }).password;
  };
  const passwordA = await add(A, '501');
  await add(B, '502');

  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const a = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: A, password: passwordA });
  t.after(() => a.endAsync(true));
  await a.publishAsync('u4/501/shutter/data', JSON.stringify({ device: B, temperature: 77.7 }), { qos: 1 });
  await a.publishAsync('u4/501/shutter/data', JSON.stringify([{ device: A, position: 40 }, { device: 'AA-BB-CC-DD-10-02', position: 1 }, { device: 'made-up', t: 1 }]), { qos: 1 });
  const out = () =>
    existsSync(join(dir.path, 'out.jsonl'))
      ? readFileSync(join(dir.path, 'out.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  await until(() => out().length === 1, { what: "A's own reading delivered" });
  const line = await app.waitFor((l) => l['code'] === 'BH_DEVICE_FOREIGN');
  assert.equal(line['login'], A);
  assert.equal(line['device'], B);
  await a.endAsync(true);
  assert.equal(await app.stop('SIGINT'), 0);
  assert.deepEqual(out().map((r) => [r['device'], r['authenticated']]), [[A, true]]);
  assert.equal(app.logs.filter((l) => l['code'] === 'BH_DEVICE_FOREIGN').length, 1, 'three refusals, one line for the minute');

  const show = async (id: string) => {
    const r = await runToEnd(['devices', 'show', id, '-c', cfg, '--json']);
    return { code: r.code, device: r.code === 0 ? (JSON.parse(r.stdout) as { lastSeen?: unknown }) : undefined };
  };
  assert.equal((await show(B)).device?.lastSeen, undefined, "B's last seen did not move");
  assert.notEqual((await show(A)).device?.lastSeen, undefined);
  assert.equal((await show('made-up')).code, 1, 'the made-up id was not registered');
});

test('backhaul check: devices.gateways is validated with paths, a catch-all glob is warned about, and the summary lists the gateways', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const cfg = join(dir.path, 'backhaul.json');
  const write = (gateways: unknown) =>
    writeFileSync(
      cfg,
      JSON.stringify({
        data: 'data',
        devices: { gateways },
        inputs: { devices: { type: 'broker', host: '127.0.0.1', port: 0 } },
        sinks: { out: { type: 'file', path: 'out.jsonl' } },
        routes: [{ to: ['out'] }],
      }),
    );
  write([
    { login: 'hub-u4', devices: ['0d*', 'not an id'] },
    { login: 'hub-u4', devices: ['81*'] },
    { login: 'lora-gw', devices: [] },
  ]);
  const bad = await runToEnd(['check', '-c', cfg]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BH_CONFIG_SCHEMA devices\.gateways\[2\]\.devices: /);
  // The checks JSON Schema cannot express, each at its path.
  write([
    { login: 'hub-u4', devices: ['0d*', 'not an id'] },
    { login: 'hub-u4', devices: ['81*'] },
  ]);
  const bad2 = await runToEnd(['check', '-c', cfg]);
  assert.equal(bad2.code, 1);
  assert.match(bad2.stderr, /BH_CONFIG_SCHEMA devices\.gateways\[0\]\.devices\[1\]: "not an id" is not a device id or glob/);
  assert.match(bad2.stderr, /BH_CONFIG_SCHEMA devices\.gateways\[1\]\.login: the login "hub-u4" is declared a gateway twice/);

  write([
    { login: 'hub-u4', devices: ['0d*', '819c'] },
    { login: 'bridge', devices: ['*'] },
  ]);
  const ok = await runToEnd(['check', '-c', cfg]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /gateways hub-u4 \(0d\*,819c\); bridge \(\*\)/);
  assert.match(ok.stdout, /devices\.gateways\[1\]\.devices\[0\]: "\*" lets the login "bridge" carry readings for every device/);
});

// brokerSync against a real Mosquitto 2 with its dynamic-security plugin (a private one on a free port, initialised by
// `mosquitto_ctrl dynsec init`), driven by the real program: devices registered with the CLI log in to Mosquitto with
// the printed password and may publish only under their own base topic; a disabled device is cut off at once; a reset
// password works and the old one does not; `sync-broker` is idempotent; a running instance resyncs at start and its
// readings arrive through an `mqtt` input on that Mosquitto; 1,000 devices sync in one go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort, subscribe } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { dynsecSkip, startDynsecMosquitto, type DynsecMosquitto } from '../helpers/mosquitto-dynsec.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { generatePassword } from '../../src/devices/credentials.js';
import { silentLogger } from '../../src/core/logger.js';
import { buildConfig } from '../../src/runtime/config.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';

const skip = dynsecSkip();
const A = 'aa:bb:cc:dd:16:01';
const B = 'aa:bb:cc:dd:16:02';

function setup(m: DynsecMosquitto, dir: string, extra: Record<string, unknown> = {}): { cfg: string; env: NodeJS.ProcessEnv } {
  const cfg = join(dir, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      devices: { refreshMs: 200 },
      brokerSync: { type: 'mosquitto-dynsec', url: m.url, username: m.admin.username, password: { secret: 'DYNSEC' } },
      inputs: {},
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
      ...extra,
    }),
  );
  return { cfg, env: { BACKHAUL_SECRET_DYNSEC: m.admin.password } };
}

async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runToEnd(args, env);
}

function login(url: string, username: string, password: string, protocolVersion: 4 | 5 = 5): Promise<MqttClient> {
  return mqtt.connectAsync(url, { username, password, reconnectPeriod: 0, protocolVersion, clientId: `t-${username}-${Math.random().toString(36).slice(2)}` });
}

test('brokerSync through the CLI: own topic only, disable cuts the session, reset password, sync-broker idempotent', { skip }, async (t) => {
  const m = await startDynsecMosquitto();
  t.after(() => m.stop());
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const { cfg, env } = setup(m, dir.path);
  const add = async (id: string, room: string) => {
    const r = await cli(['devices', 'add', id, '--type', 'shutter', '--building', 'u4', '--room', room, '-c', cfg, '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { password: string }).password;
  };
  const pwA = await add(A, '501');
  const pwB = await add(B, '502');

  const watcher = await subscribe(m.url, ['u4/#'], m.admin);
  t.after(() => watcher.close());

  // MQTT 5: a refused publish is answered with PUBACK 0x87 (not authorized).
  const a = await login(m.url, A, pwA, 5);
  t.after(() => a.endAsync(true));
  await a.publishAsync('u4/501/shutter/data', '{"position":40}', { qos: 1 });
  await assert.rejects(a.publishAsync('u4/502/shutter/data', '{"position":1}', { qos: 1 }), (e: Error & { code?: number }) => e.code === 135);
  await assert.rejects(a.publishAsync('u4/501/shutter/command', '{"order":"open"}', { qos: 1 }), (e: Error & { code?: number }) => e.code === 135, 'not its own command topic either');
  assert.deepEqual((await a.subscribeAsync('u4/501/shutter/command', { qos: 1 })).map((g) => g.qos), [1], 'its own command topic');
  await assert.rejects(a.subscribeAsync('u4/#', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 135, 'nothing else');

  // MQTT 3.1.1 has no refusal code: Mosquitto acknowledges and drops the message.
  const b = await login(m.url, B, pwB, 4);
  t.after(() => b.endAsync(true));
  await b.publishAsync('u4/501/shutter/data', '{"spoofed":1}', { qos: 1 });
  await b.publishAsync('u4/502/shutter/data', '{"position":7}', { qos: 1 });
  await watcher.waitForCount(2);
  assert.deepEqual(watcher.messages.map((x) => x.topic), ['u4/501/shutter/data', 'u4/502/shutter/data']);

  // Disabling A in the registry cuts its session at once (the CLI resyncs after every change).
  const closed = new Promise<void>((r) => a.once('close', () => r()));
  const dis = await cli(['devices', 'disable', A, '-c', cfg], env);
  assert.equal(dis.code, 0, dis.stderr);
  await closed;
  await assert.rejects(login(m.url, A, pwA), 'a disabled device cannot log in');
  assert.equal((await cli(['devices', 'enable', A, '-c', cfg], env)).code, 0);
  (await login(m.url, A, pwA)).end(true);

  // A reset: the new password works, the old one does not.
  const reset = await cli(['devices', 'reset-credentials', A, '-c', cfg, '--json'], env);
  assert.equal(reset.code, 0, reset.stderr);
  const newA = (JSON.parse(reset.stdout) as { password: string }).password;
  await assert.rejects(login(m.url, A, pwA), 'the old password no longer works');
  const a2 = await login(m.url, A, newA);
  const a2closed = new Promise<void>((r) => a2.once('close', () => r()));
  // A reset for bootstrap makes no password here, so none reaches Mosquitto: the resync finds the fingerprint changed
  // and overwrites the password with one nobody knows (which also closes the session).
  assert.equal((await cli(['devices', 'reset-credentials', A, '--bootstrap', '-c', cfg], env)).code, 0);
  await a2closed;
  await assert.rejects(login(m.url, A, newA), 'the password of before the reset no longer works');

  // Someone deleted B's client by hand: sync-broker makes it again (without a password: only hashes are kept, so B
  // needs a reset), and a second run changes nothing.
  const del = await m.control([{ command: 'deleteClient', username: B }]);
  assert.equal(del[0]?.error, undefined);
  const first = await cli(['devices', 'sync-broker', '-c', cfg], env);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`^create\\s+${B}\\s+without a password`, 'm'));
  const second = await cli(['devices', 'sync-broker', '-c', cfg], env);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /2 device login\(s\): in step, nothing changed/);
  await assert.rejects(login(m.url, B, pwB), 'a client made by a resync has no password');

  // Moving a device: its role's ACLs follow.
  assert.equal((await cli(['devices', 'set', B, '--room', '503', '-c', cfg], env)).code, 0);
  const role = await m.control([{ command: 'getRole', rolename: `backhaul-device-${B}` }]);
  const acls = (role[0]?.data?.['role'] as { acls: Array<{ acltype: string; topic: string; allow: boolean }> }).acls;
  assert.deepEqual(
    acls.map((x) => `${x.acltype} ${x.topic} ${x.allow}`).sort(),
    ['publishClientSend u4/503/shutter/# true', 'publishClientSend u4/503/shutter/command/# false', 'subscribeLiteral u4/503/shutter/command true'],
  );

});

test('brokerSync in the running program: a full resync at start, a registry change followed, readings through an mqtt input on that Mosquitto', { skip }, async (t) => {
  const m = await startDynsecMosquitto();
  t.after(() => m.stop());
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const apiPort = await freePort();
  const { cfg, env } = setup(m, dir.path, {
    api: { host: '127.0.0.1', port: apiPort },
    inputs: { mosq: { type: 'mqtt', url: m.url, topics: ['u4/#'], username: m.admin.username, password: { secret: 'DYNSEC' }, decoder: 'json', trustTopics: true } },
  });
  const r = await cli(['devices', 'add', A, '--type', 'shutter', '--building', 'u4', '--room', '601', '-c', cfg, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const pwA = (JSON.parse(r.stdout) as { password: string }).password;
  // Out of step before the start: A's client disabled by hand, a stray managed client left over.
  await m.control([
    { command: 'disableClient', username: A },
    { command: 'createClient', username: 'gone-device', textdescription: 'backhaul device gone-device login none' },
  ]);

  const app = runBackhaul(['start', '-c', cfg], env);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  await app.waitFor((l) => l.msg === 'brokerSync: Mosquitto brought in step with the registry');
  const clients = await m.control([{ command: 'listClients', verbose: true }]);
  const listed = (clients[0]?.data?.['clients'] as Array<{ username: string; disabled?: boolean }>).map((c) => [c.username, c.disabled === true]);
  assert.deepEqual(listed.sort(), [['admin', false], [A, false]].sort(), 'A enabled again, the stray client deleted, the admin untouched');

  const a = await login(m.url, A, pwA);
  t.after(() => a.endAsync(true));
  await a.publishAsync('u4/601/shutter/data', JSON.stringify({ device: A, position: 55 }), { qos: 1 });
  const out = () =>
    existsSync(join(dir.path, 'out.jsonl'))
      ? readFileSync(join(dir.path, 'out.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  await until(() => out().some((x) => x['device'] === A), { what: "A's reading through the mqtt input" });
  // Only A may publish under u4/601/shutter (trustTopics): its reading is authenticated; one it sends naming B is not.
  assert.equal(out().find((x) => x['device'] === A)?.['authenticated'], true);
  await a.publishAsync('u4/601/shutter/data', JSON.stringify({ device: B, position: 1 }), { qos: 1 });
  await until(() => out().some((x) => x['device'] === B), { what: 'the reading A sent naming B' });
  assert.equal(out().find((x) => x['device'] === B)?.['authenticated'], false);

  // Blocked through the registry by another process: the running instance notices the change and cuts A off.
  const closed = new Promise<void>((res) => a.once('close', () => res()));
  const store = SqliteDeviceStore.open(registryPath(join(dir.path, 'data')), { types: new DeviceTypes() });
  await store.setState(A, 'BLOCKED', 'test');
  await store.close();
  await closed;

  // A device bootstrapping through the running instance: its password reaches Mosquitto before it is handed out, and
  // the answer names Mosquitto (there is no embedded broker).
  const C = 'aa:bb:cc:dd:16:03';
  assert.equal((await cli(['devices', 'add', C, '--type', 'shutter', '--building', 'u4', '--room', '602', '--bootstrap', '-c', cfg], env)).code, 0);
  assert.equal((await cli(['devices', 'claim', 'open', C, '-c', cfg], env)).code, 0);
  const res = await fetch(`http://127.0.0.1:${apiPort}/bootstrap/v1/credentials?mac=${encodeURIComponent(C)}`);
  const issued = (await res.json()) as { login: string; password: string; broker: { host: string; port: number } };
  assert.equal(res.status, 200, JSON.stringify(issued));
  assert.deepEqual(issued.broker, { host: '127.0.0.1', port: m.port });
  const c = await login(m.url, issued.login, issued.password);
  await c.publishAsync('u4/602/shutter/data', JSON.stringify({ device: C, position: 3 }), { qos: 1 });
  await c.endAsync(true);
  await until(() => out().some((x) => x['device'] === C), { what: "C's reading through the mqtt input" });

  // `backhaul status` shows brokerSync: connected, the last sync; once Mosquitto is gone, not connected.
  const st = await cli(['status', '-c', cfg], env);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, new RegExp(`brokerSync: mqtt://127\\.0\\.0\\.1:${m.port}/? connected; last sync \\S+: \\d+ device login\\(s\\)`));
  const json = JSON.parse((await cli(['status', '-c', cfg, '--json'], env)).stdout) as { brokerSync?: { connected: boolean; lastSync?: { devices: number } } };
  assert.equal(json.brokerSync?.connected, true);
  assert.ok((json.brokerSync?.lastSync?.devices ?? 0) >= 2);
  await m.stop();
  await until(async () => /brokerSync: \S+ NOT CONNECTED/.test((await cli(['status', '-c', cfg], env)).stdout), { what: 'status to show Mosquitto gone' });
  assert.equal(await app.stop('SIGINT'), 0);
});

test('brokerSync: 1,000 devices synced in one go, and a second sync changes nothing', { skip }, async (t) => {
  const m = await startDynsecMosquitto();
  t.after(() => m.stop());
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const { cfg, env } = setup(m, dir.path);
  const store = SqliteDeviceStore.open(registryPath(join(dir.path, 'data')), { types: new DeviceTypes() });
  const n = 1000;
  for (let i = 0; i < n; i++) {
    const id = `dev-${String(i).padStart(4, '0')}`;
    await store.create({ id, kind: 'other', type: 'room-sensor', location: { building: 'b1', room: `r${i}` } });
    await store.setCredentials(id, { username: id, hash: store.logins.hash(generatePassword()), passwordIssued: true });
  }
  await store.close();
  const first = await cli(['devices', 'sync-broker', '-c', cfg, '--json'], env);
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout) as { devices: number; changes: Array<{ action: string }>; ms: number };
  assert.equal(r1.devices, n);
  assert.equal(r1.changes.filter((c) => c.action === 'create').length, n);
  console.log(`# 1,000 devices: first sync ${r1.ms} ms`);
  const listed = await m.control([{ command: 'listClients', count: -1 }]);
  assert.equal(listed[0]?.data?.['totalCount'], n + 1, 'every device a client, plus the admin');
  const second = await cli(['devices', 'sync-broker', '-c', cfg, '--json'], env);
  const r2 = JSON.parse(second.stdout) as { changes: unknown[]; commands: number; ms: number };
  assert.deepEqual([r2.changes.length, r2.commands], [0, 0]);
  console.log(`# 1,000 devices: second sync (nothing to do) ${r2.ms} ms`);
});

test('brokerSync in a Hub: passwords made through the REST API reach Mosquitto, a block through the API cuts the session at once', { skip }, async (t) => {
  const m = await startDynsecMosquitto();
  t.after(() => m.stop());
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const config = buildConfig(
    {
      data: dir.path,
      devices: { refreshMs: 60_000 }, // the API's changes must not wait for the next look at the registry
      api: { host: '127.0.0.1', port: 0 },
      brokerSync: { type: 'mosquitto-dynsec', url: m.url, username: m.admin.username, password: { secret: 'DYNSEC' } },
      inputs: {},
      sinks: { out: { type: 'file', path: join(dir.path, 'out.jsonl') } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: dir.path },
    { registry: builtinRegistry(), env: { BACKHAUL_SECRET_DYNSEC: m.admin.password } },
  );
  let admin = '';
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  await hub.start();
  t.after(() => hub.stop());
  await until(async () => (await hub.syncBroker().then(() => true, () => false)), { what: 'the first sync' });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${hub.apiUrl()!}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const D = 'aa:bb:cc:dd:16:09';
  const created = await call('POST', '/api/v1/devices', { id: D, type: 'shutter', location: { building: 'u5', room: '101' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const pw1 = created.body['password'] as string;
  (await login(m.url, D, pw1)).end(true);
  const reset = await call('POST', `/api/v1/devices/${encodeURIComponent(D)}/reset-credentials`, {});
  assert.equal(reset.status, 200, JSON.stringify(reset.body));
  const pw2 = reset.body['password'] as string;
  await assert.rejects(login(m.url, D, pw1), 'the old password no longer works');
  const d = await login(m.url, D, pw2);
  const closed = new Promise<void>((r) => d.once('close', () => r()));
  assert.equal((await call('POST', `/api/v1/devices/${encodeURIComponent(D)}/block`, { reason: 'test' })).status, 200);
  await closed;
  assert.equal(await hub.metrics.value('backhaul_broker_sync_changes_total', { action: 'password' }), 2);
  // Mosquitto closes the session before its answer to disableClient reaches us, and the change is counted on the answer.
  await until(async () => (await hub.metrics.value('backhaul_broker_sync_changes_total', { action: 'disable' })) === 1, { what: 'the disable counted' });
});

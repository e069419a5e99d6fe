// Devices logging in with X.509 client certificates at the embedded broker's mqtts and wss listeners: certificates
// made by the real `backhaul certs`, registered with the real `backhaul devices certificate`, used by Mosquitto's
// mosquitto_pub and by mqtt.js. The id comes from the certificate and must be a registered, enabled device holding
// that very certificate; a certificate of an unregistered device, of another CA, of a disabled device, or one the
// registry replaced is refused or loses its rights; readings of a certificate login are `authenticated`.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions } from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { teardown, tempDir } from '../helpers/context.js';
import { tryPublish } from '../helpers/mqtt-client.js';
import { runToEnd } from '../helpers/process.js';
import { makePki, opensslSkip, type TestPki } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

const run = promisify(execFile);
const skip = opensslSkip();
const SHUTTER = 'aa:bb:cc:00:04:01';
const OTHER = 'aa:bb:cc:00:04:02';

interface Site {
  readonly hub: Hub;
  readonly pki: TestPki;
  readonly dir: string;
  readonly mqtts: string;
  readonly wss: string;
  readonly cli: (...args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;
  readonly lines: () => Array<Record<string, unknown>>;
}

async function site(t: TestContext): Promise<Site> {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  mkdirSync(join(d.path, 'pki'));
  const pki = makePki(join(d.path, 'pki'));
  const data = join(d.path, 'data');
  const cli = (...args: string[]) => runToEnd(['devices', ...args, '--data', data]);
  // Registered by the CLI as an operator would: a device with a location (so a base topic), then its certificate.
  for (const [id, room] of [[SHUTTER, '401'], [OTHER, '402']] as const) {
    const added = await cli('add', id, '--type', 'shutter', '--building', 'u4', '--room', room, '--bootstrap');
    assert.equal(added.code, 0, added.stderr);
  }
  const config = buildConfig(
    {
      data,
      devices: { unknown: 'drop', refreshMs: 100 },
      inputs: {
        devices: {
          type: 'broker',
          host: '127.0.0.1',
          port: 0,
          tls: { cert: pki.cert, key: pki.key, ca: pki.ca },
          tlsPort: 0,
          wssPort: 0,
          certificateId: 'san-uri',
          decoder: 'json',
        },
      },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') } },
      routes: [{ match: { kind: 'reading' }, to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  later(() => hub.stop());
  const info = hub.inputStatus().find((i) => i.id === 'devices')?.info ?? {};
  const out = join(d.path, 'out.jsonl');
  const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
  return { hub, pki, dir: d.path, mqtts: String(info['mqtts'] ?? info['url']), wss: String(info['wss']), cli, lines };
}

function tlsOptions(s: Site, cert: { cert: string; key: string }): IClientOptions {
  return { ca: readFileSync(s.pki.ca), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000 };
}

async function connect(t: TestContext, url: string, opts: IClientOptions) {
  const c = await mqtt.connectAsync(url.replace('127.0.0.1', 'localhost'), opts);
  t.after(() => c.endAsync(true));
  return c;
}

test('device certificates: a registered device logs in with its certificate alone (mosquitto_pub on mqtts, mqtt.js on wss), its readings authenticated', { skip, timeout: 60_000 }, async (t) => {
  const s = await site(t);
  const cert = s.pki.client(SHUTTER, 'mac');
  const set = await s.cli('certificate', SHUTTER, cert.cert);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /logs in with the certificate [0-9a-f]{64}/);
  const shown = JSON.parse((await s.cli('show', SHUTTER, '--json')).stdout) as { certificate?: { fingerprint: string } };
  assert.match(shown.certificate?.fingerprint ?? '', /^[0-9a-f]{64}$/, 'the registry keeps the fingerprint');

  // Mosquitto's own client, no username nor password: the certificate is the login.
  const port = new URL(s.mqtts).port;
  await run('mosquitto_pub', ['-h', 'localhost', '-p', port, '--cafile', s.pki.ca, '--cert', cert.cert, '--key', cert.key, '-V', 'mqttv311', '-q', '1', '-i', 'shutter-401', '-t', 'u4/401/shutter/data', '-m', JSON.stringify({ device: SHUTTER, position: 10 })]);
  await until(() => s.lines().length === 1, { what: 'the reading sent with mosquitto_pub' });
  assert.deepEqual([s.lines()[0]!['device'], s.lines()[0]!['authenticated']], [SHUTTER, true]);

  // mqtt.js over wss, naming itself by the id its certificate carries.
  const ws = await connect(t, s.wss, { ...tlsOptions(s, cert), username: SHUTTER });
  assert.equal(await tryPublish(ws, 'u4/401/shutter/data', JSON.stringify({ device: SHUTTER, position: 20 })), true);
  await until(() => s.lines().length === 2, { what: 'the reading over wss' });
  assert.equal(s.lines()[1]!['authenticated'], true);
  // Its ACL is the device's: another room's topic closes the connection, and is not ingested.
  assert.equal(await tryPublish(ws, 'u4/402/shutter/data', JSON.stringify({ device: OTHER, position: 1 })), false);
  assert.equal(s.lines().length, 2);
});

test('device certificates refused: an unregistered device\'s, another CA\'s, a username that is not the certificate\'s id, a disabled device\'s; a replaced certificate loses its rights', { skip, timeout: 60_000 }, async (t) => {
  const s = await site(t);
  const shutter = s.pki.client(SHUTTER, 'mac');
  const other = s.pki.client(OTHER, 'mac');
  assert.equal((await s.cli('certificate', SHUTTER, shutter.cert)).code, 0);
  const refused = /Not authorized/i;

  // OTHER is registered, but the registry holds no certificate for it.
  await assert.rejects(mqtt.connectAsync(s.mqtts.replace('127.0.0.1', 'localhost'), tlsOptions(s, other)), refused);
  // A certificate for the same id from a CA the broker does not trust.
  mkdirSync(join(s.dir, 'rogue'));
  const rogue = makePki(join(s.dir, 'rogue')).client(SHUTTER, 'mac');
  await assert.rejects(mqtt.connectAsync(s.mqtts.replace('127.0.0.1', 'localhost'), { ...tlsOptions(s, rogue) }), refused);
  // The right certificate, claiming to be another device.
  await assert.rejects(mqtt.connectAsync(s.mqtts.replace('127.0.0.1', 'localhost'), { ...tlsOptions(s, shutter), username: OTHER }), refused);
  assert.ok((await s.hub.metrics.value('backhaul_broker_refused_total', { input: 'devices', reason: 'bad_certificate' })) >= 3, 'each refusal counted');

  // Connected, then disabled: its rights go at the next refresh (as a password login's), and it cannot log in again.
  const dev = await connect(t, s.mqtts, tlsOptions(s, shutter));
  assert.equal(await tryPublish(dev, 'u4/401/shutter/data', JSON.stringify({ device: SHUTTER, position: 1 })), true);
  assert.equal((await s.cli('disable', SHUTTER)).code, 0);
  await new Promise((r) => setTimeout(r, 400)); // refreshMs is 100
  assert.equal(await tryPublish(dev, 'u4/401/shutter/data', JSON.stringify({ device: SHUTTER, position: 2 })), false);
  await assert.rejects(mqtt.connectAsync(s.mqtts.replace('127.0.0.1', 'localhost'), tlsOptions(s, shutter)), refused);

  // Enabled again and given a renewed certificate: a session of the old one loses its rights, the new one logs in.
  assert.equal((await s.cli('enable', SHUTTER)).code, 0);
  await until(async () => {
    const c = await mqtt.connectAsync(s.mqtts.replace('127.0.0.1', 'localhost'), tlsOptions(s, shutter)).catch(() => undefined);
    await c?.endAsync(true);
    return c !== undefined;
  }, { what: 'the old certificate to log in again once enabled' });
  const old = await connect(t, s.mqtts, tlsOptions(s, shutter));
  const renewed = s.pki.client(SHUTTER, 'mac'); // `certs device` again: a new key and certificate in the same files
  assert.equal((await s.cli('certificate', SHUTTER, renewed.cert)).code, 0);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await tryPublish(old, 'u4/401/shutter/data', JSON.stringify({ device: SHUTTER, position: 3 })), false);
  const fresh = await connect(t, s.mqtts, tlsOptions(s, renewed));
  assert.equal(await tryPublish(fresh, 'u4/401/shutter/data', JSON.stringify({ device: SHUTTER, position: 4 })), true);
  await until(() => s.lines().some((l) => (l['values'] as Record<string, unknown>)['position'] === 4), { what: 'the renewed certificate\'s reading' });
  assert.ok(!s.lines().some((l) => [2, 3].includes((l['values'] as Record<string, number>)['position']!)), 'nothing of the refused sessions was ingested');

  // Bad input to the CLI is a coded error naming what is wrong.
  const bad = await s.cli('certificate', SHUTTER, '--fingerprint', 'abc');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BH_DEVICE_CERTIFICATE --fingerprint/);
  const key = await s.cli('certificate', SHUTTER, renewed.key);
  assert.match(key.stderr, /BH_DEVICE_CERTIFICATE FILE/);
  const removed = await s.cli('certificate', SHUTTER, '--remove');
  assert.equal(removed.code, 0);
  assert.match(removed.stdout, /removed/);
});

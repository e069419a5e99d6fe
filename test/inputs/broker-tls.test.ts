// The embedded broker's TLS and WebSocket listeners, with real certificates (openssl) and real clients: mqtt.js over
// mqtts, ws and wss, Mosquitto's own mosquitto_pub and mosquitto_sub over mqtts, and `openssl s_client` for the TLS
// versions refused. A certificate renewed on disk is served to new connections while an open one stays up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { connectPacket } from '../helpers/mqtt-raw.js';
import { brokerInput } from '../../src/inputs/broker/index.js';
import { isBackhaulError } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext, tempDir } from '../helpers/context.js';
import { createWithDefaults } from '../helpers/options.js';
import { makePki, OPENSSL, opensslSkip, type TestPki } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

const run = promisify(execFile);
const text = (p: Frame['payload']) => (typeof p === 'string' ? p : new TextDecoder().decode(p));
const skip = opensslSkip();

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is served. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca), servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

async function startBroker(pki: TestPki, extra: Record<string, unknown> = {}) {
  const ctx = inputContext({ id: 'devices' });
  const input = createWithDefaults(
    brokerInput,
    {
      host: '127.0.0.1',
      port: 0,
      anonymous: true,
      tls: { cert: pki.cert, key: pki.key, minVersion: 'TLSv1.2', watchMs: 100 },
      tlsPort: 0,
      wsPort: 0,
      wssPort: 0,
      ...extra,
    },
    ctx,
  );
  await input.start();
  return { ctx, input, info: input.info?.() ?? {} };
}

test('broker over TLS and WebSocket: mqtt.js on mqtts, ws and wss; every listener in info()', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const { ctx, input, info } = await startBroker(pki);
  t.after(() => input.stop());
  assert.match(String(info['url']), /^mqtt:\/\/127\.0\.0\.1:\d+$/);
  assert.match(String(info['mqtts']), /^mqtts:\/\/127\.0\.0\.1:\d+$/);
  assert.match(String(info['ws']), /^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
  assert.match(String(info['wss']), /^wss:\/\/127\.0\.0\.1:\d+\/mqtt$/);

  const ca = readFileSync(pki.ca);
  for (const scheme of ['mqtts', 'ws', 'wss'] as const) {
    const c = await mqtt.connectAsync(String(info[scheme]), { ca, servername: 'localhost', clientId: `c-${scheme}`, reconnectPeriod: 0 });
    await c.publishAsync(`home/${scheme}/temp`, '{"v":1}', { qos: 1 });
    await c.endAsync();
  }
  assert.deepEqual(
    ctx.frames.map((f) => [f.topic, text(f.payload)]),
    [
      ['home/mqtts/temp', '{"v":1}'],
      ['home/ws/temp', '{"v":1}'],
      ['home/wss/temp', '{"v":1}'],
    ],
  );
  // Devices are told the plain port, and the TLS one beside it (the bootstrap answer).
  assert.deepEqual(input.broker?.address(), { port: portOf(String(info['url'])), tlsPort: portOf(String(info['mqtts'])) });
  // The WebSocket clients' address reaches the frame as a socket's does.
  assert.equal(ctx.frames[1]?.identity?.remoteAddress, '127.0.0.1');

  // Without the CA, the server's certificate is not trusted: the client refuses it.
  await assert.rejects(mqtt.connectAsync(String(info['mqtts']), { reconnectPeriod: 0, connectTimeout: 5000 }), /self[- ]signed|unable to (get|verify)/i);
});

test('broker over TLS: mosquitto_pub and mosquitto_sub on mqtts with --cafile', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const { ctx, input, info } = await startBroker(pki);
  t.after(() => input.stop());
  const port = String(portOf(String(info['mqtts'])));
  const tlsArgs = ['-h', 'localhost', '-p', port, '--cafile', pki.ca, '-V', 'mqttv311'];

  const sub = spawn('mosquitto_sub', [...tlsArgs, '-t', 'home/#', '-C', '1', '-i', 'mosq-sub'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  sub.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => sub.once('exit', r));
  t.after(() => sub.kill());
  // Publish until the subscriber got one (its SUBSCRIBE may land after the first).
  await until(
    async () => {
      await run('mosquitto_pub', [...tlsArgs, '-t', 'home/kitchen/temp', '-m', '{"t":21.5}', '-q', '1', '-i', 'mosq-pub']);
      return out.includes('{"t":21.5}');
    },
    { what: 'mosquitto_sub to receive the publish over mqtts' },
  );
  assert.equal(await exited, 0);
  assert.ok(ctx.frames.some((f) => f.topic === 'home/kitchen/temp' && text(f.payload) === '{"t":21.5}'));

  // mosquitto_pub without the CA refuses the certificate and fails.
  await assert.rejects(run('mosquitto_pub', ['-h', 'localhost', '-p', port, '--capath', dir.path, '-t', 'x', '-m', 'y']));
});

test('broker over TLS: a renewed certificate is served to new connections, open ones stay up; a bad renewal keeps the old', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const { ctx, input, info } = await startBroker(pki, { tcp: false });
  t.after(() => input.stop());
  // No plain listener: the first is mqtts.
  assert.match(String(info['url']), /^mqtts:/);
  assert.equal(info['mqtts'], undefined);
  const port = portOf(String(info['url']));
  // With `tcp: false` the TLS port is the one devices are told, and that it speaks TLS.
  assert.deepEqual(input.broker?.address(), { port, tls: true });
  const first = pki.fingerprint();
  assert.equal(await servedFingerprint(port, pki.ca), first);

  const open = await mqtt.connectAsync(String(info['url']), { ca: readFileSync(pki.ca), servername: 'localhost', clientId: 'stays', reconnectPeriod: 0 });
  t.after(() => open.endAsync(true));
  let closed = false;
  open.on('close', () => (closed = true));

  pki.renewServer();
  const second = pki.fingerprint();
  assert.notEqual(second, first);
  // Picked up by the file poll (watchMs), without a restart or a signal.
  await until(async () => (await servedFingerprint(port, pki.ca)) === second, { what: 'the renewed certificate on a new connection' });
  await open.publishAsync('home/after/renewal', 'still here', { qos: 1 });
  assert.equal(closed, false);
  assert.ok(ctx.frames.some((f) => f.topic === 'home/after/renewal'));

  // A broken renewal (not PEM) is refused: the certificate in use stays, and reloading says so.
  writeFileSync(pki.cert, 'not a certificate\n');
  assert.equal(input.reloadCertificates?.(), false);
  assert.equal(await servedFingerprint(port, pki.ca), second);
  await open.publishAsync('home/after/bad', 'still here', { qos: 1 });
  assert.equal(closed, false);

  // Fixed on disk, and reloaded at once (what SIGHUP does).
  pki.renewServer();
  assert.equal(input.reloadCertificates?.(), true);
  assert.equal(await servedFingerprint(port, pki.ca), pki.fingerprint());
});

test('broker over TLS: openssl s_client is refused TLS 1.0 and 1.1, served TLS 1.2 and 1.3', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const { input, info } = await startBroker(pki, { wsPort: undefined, wssPort: undefined });
  t.after(() => input.stop());

  // SECLEVEL=0 lets the client itself offer the old versions, so a refusal is the server's.
  const sClient = (port: number, version: string): Promise<boolean> =>
    new Promise((resolve) => {
      // stdin at EOF: s_client handshakes, then ends; its exit status says whether the handshake worked.
      const p = spawn(OPENSSL, ['s_client', '-connect', `127.0.0.1:${port}`, `-${version}`, '-cipher', 'DEFAULT@SECLEVEL=0', '-CAfile', pki.ca, '-verify_return_error'], {
        stdio: ['ignore', 'ignore', 'ignore'],
        timeout: 10_000,
      });
      p.once('exit', (code) => resolve(code === 0));
    });
  // The control: a server that allows TLS 1.1 is reached with it, so a refusal below means something.
  const old = createTlsServer({ cert: readFileSync(pki.cert), key: readFileSync(pki.key), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
  await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
  t.after(() => old.close());
  const oldPort = (old.address() as { port: number }).port;
  const controlOk = await sClient(oldPort, 'tls1_1');

  const port = portOf(String(info['mqtts']));
  assert.equal(await sClient(port, 'tls1_2'), true, 'TLS 1.2 is served');
  assert.equal(await sClient(port, 'tls1_3'), true, 'TLS 1.3 is served');
  assert.equal(await sClient(port, 'tls1_1'), false, 'TLS 1.1 is refused');
  assert.equal(await sClient(port, 'tls1'), false, 'TLS 1.0 is refused');
  if (!controlOk) t.diagnostic('this OpenSSL build cannot speak TLS 1.1 at all; the refusals above are the client\'s too');
});

test('broker over TLS: a missing certificate file fails start with BH_TLS_FILE at its config path', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const ctx = inputContext({ id: 'devices' });
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, tls: { cert: `${pki.cert}.missing`, key: pki.key, minVersion: 'TLSv1.2', watchMs: 0 }, tlsPort: 0 }, ctx);
  await assert.rejects(input.start(), (e: unknown) => isBackhaulError(e) && e.code === 'BH_TLS_FILE' && e.path === 'inputs.devices.tls.cert' && /ENOENT/.test(e.message));
  // Nothing was left listening: a start with a good file works on the same input.
  const good = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, tls: { cert: pki.cert, key: pki.caKey, minVersion: 'TLSv1.2', watchMs: 0 }, tlsPort: 0 }, ctx);
  await assert.rejects(good.start(), (e: unknown) => isBackhaulError(e) && e.code === 'BH_TLS_FILE' && e.path === 'inputs.devices.tls.key');
});

/** A raw WebSocket with subprotocol mqtt, once open (or refused before: `opened` false); `closed` once it closed. */
async function rawWs(url: string): Promise<{ ws: WebSocket; opened: boolean; closed: Promise<void> }> {
  const ws = new WebSocket(url, 'mqtt');
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  ws.on('error', () => undefined); // a refused socket also errors; `closed` is what is checked
  const opened = await Promise.race([new Promise<boolean>((r) => ws.once('open', () => r(true))), closed.then(() => false)]);
  return { ws, opened, closed };
}

test('broker over WebSocket: the packet guard, the per-address cap and the connect timeout hold as on TCP', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const { ctx, input, info } = await startBroker(pki, { maxConnectBytes: 512, maxConnectionsPerAddress: 2, connectTimeoutMs: 300 });
  t.after(() => input.stop());
  const refused = (reason: string) => ctx.metrics.value('backhaul_broker_refused_total', { input: ctx.id, reason });
  const url = String(info['ws']);

  // A CONNECT over maxConnectBytes: closed at its header, never parsed.
  const big = await rawWs(url);
  assert.equal(big.opened, true);
  big.ws.send(connectPacket({ clientId: 'x'.repeat(600) }));
  await big.closed;
  assert.equal(await refused('connect_too_large'), 1);

  // Two open connections from 127.0.0.1 (one plain, one over wss: the cap counts every listener), a third is closed.
  const c1 = await mqtt.connectAsync(String(info['mqtts']), { ca: readFileSync(pki.ca), servername: 'localhost', clientId: 'one', reconnectPeriod: 0 });
  t.after(() => c1.endAsync(true));
  const c2 = await mqtt.connectAsync(String(info['wss']), { ca: readFileSync(pki.ca), servername: 'localhost', clientId: 'two', reconnectPeriod: 0 });
  t.after(() => c2.endAsync(true));
  // Refused on the raw socket, before the upgrade is even read.
  const third = await rawWs(url);
  assert.equal(third.opened, false);
  await third.closed;
  assert.equal(await refused('max_connections_per_address'), 1);
  await c1.endAsync();

  // A WebSocket that never sends CONNECT is closed by the connect timeout.
  const idle = await rawWs(url);
  assert.equal(idle.opened, true);
  await idle.closed;
  assert.equal(await refused('connect_timeout'), 1);
  await c2.publishAsync('home/ws/ok', 'fine', { qos: 1 });
  assert.ok(ctx.frames.some((f) => f.topic === 'home/ws/ok'));
});

test('broker over TLS with client CAs: a device with a client certificate and one without both connect (passwords stay the login)', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  const device = pki.client('dev-1');
  const { ctx, input, info } = await startBroker(pki, { tls: { cert: pki.cert, key: pki.key, ca: pki.ca, minVersion: 'TLSv1.2', watchMs: 0 } });
  t.after(() => input.stop());
  const ca = readFileSync(pki.ca);
  const withCert = await mqtt.connectAsync(String(info['mqtts']), {
    ca,
    cert: readFileSync(device.cert),
    key: readFileSync(device.key),
    servername: 'localhost',
    reconnectPeriod: 0,
  });
  await withCert.publishAsync('home/cert/on', '1', { qos: 1 });
  await withCert.endAsync();
  const without = await mqtt.connectAsync(String(info['mqtts']), { ca, servername: 'localhost', reconnectPeriod: 0 });
  await without.publishAsync('home/cert/off', '1', { qos: 1 });
  await without.endAsync();
  assert.deepEqual(ctx.frames.map((f) => f.topic), ['home/cert/on', 'home/cert/off']);
});

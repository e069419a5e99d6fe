// The mqtt sink against a real Mosquitto 2 with a TLS listener that requires a client certificate (the machine's
// /usr/sbin/mosquitto, a private instance on a free port, certificates made by openssl): with `tls.cert`/`tls.key`
// every reading arrives (read back by a subscriber that also logs in by certificate); without them Mosquitto refuses
// the handshake, coded BH_TLS_HANDSHAKE in the sink's status, nothing lost from its queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { silentLogger } from '../../src/core/logger.js';
import { buildConfig } from '../../src/runtime/config.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { requireServices, tcpReachable } from '../helpers/services.js';
import { makeTestPki } from '../helpers/tls-client.js';
import { until } from '../helpers/until.js';

const MOSQUITTO_BIN = process.env['BACKHAUL_MOSQUITTO'] ?? '/usr/sbin/mosquitto';

function mosquittoSkip(): string | false {
  if (existsSync(MOSQUITTO_BIN)) return false;
  if (requireServices) throw new Error(`Mosquitto (${MOSQUITTO_BIN}) is required (BACKHAUL_REQUIRE_SERVICES=1) but is not installed`);
  return `needs Mosquitto (${MOSQUITTO_BIN}); set BACKHAUL_REQUIRE_SERVICES=1 in CI to make this a failure`;
}

const N = 25;

test('mqtt sink to Mosquitto over mutual TLS: a client certificate delivers everything; none is refused with BH_TLS_HANDSHAKE', { skip: mosquittoSkip(), timeout: 60_000 }, async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const d = tempDir();
  t.after(() => d.cleanup());
  const port = await freePort();
  const conf = join(d.path, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      `cafile ${pki.ca}`,
      `certfile ${pki.server.cert}`,
      `keyfile ${pki.server.key}`,
      'require_certificate true',
      'use_identity_as_username true',
      'allow_anonymous false',
      // Run as root, Mosquitto would switch to the `mosquitto` user, which cannot read the test's temp folder.
      `user ${userInfo().username}`,
      'log_dest stderr',
      'log_type error',
      '',
    ].join('\n'),
  );
  const proc = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  t.after(async () => {
    proc.kill('SIGTERM');
    await exited;
  });
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited at start: ${log}`);
      return tcpReachable('127.0.0.1', port, 200);
    },
    { what: `mosquitto on port ${port}`, timeoutMs: 10_000 },
  );
  const url = `mqtts://127.0.0.1:${port}`;

  const seqs: number[] = [];
  const sub = await mqtt.connectAsync(url, { ca: pki.read(pki.ca), cert: pki.read(pki.client.cert), key: pki.read(pki.client.key), reconnectPeriod: 200 });
  t.after(() => sub.endAsync(true));
  sub.on('message', (_topic, payload) => seqs.push((JSON.parse(payload.toString()) as { seq: number }).seq));
  await sub.subscribeAsync('b/#', { qos: 1 });

  const lines = join(d.path, 'readings.jsonl');
  writeFileSync(lines, Array.from({ length: N }, (_v, i) => JSON.stringify({ device: 'm1', n: i, seq: i })).join('\n') + '\n');
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      inputs: { feed: { type: 'lines', path: lines, decoder: { type: 'json', seq: 'seq' } } },
      sinks: {
        mtls: { type: 'mqtt', url, topic: 'b/{device}', tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } },
        anon: { type: 'mqtt', url, topic: 'b/{device}', tls: { ca: pki.ca }, outbox: { retryMinMs: 200, retryMaxMs: 1000 } },
      },
      routes: [{ to: ['mtls', 'anon'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());

  await until(() => new Set(seqs).size === N, { what: 'every reading through Mosquitto', timeoutMs: 20_000 });
  assert.deepEqual([...new Set(seqs)].sort((a, b) => a - b), Array.from({ length: N }, (_v, i) => i));
  const anon = () => hub.sinkStatus().find((s) => s.id === 'anon')?.lastError?.message ?? '';
  await until(() => anon().startsWith('BH_TLS_HANDSHAKE'), { what: 'the sink without a certificate refused', timeoutMs: 20_000 });
  assert.match(anon(), /^BH_TLS_HANDSHAKE sink anon: the TLS handshake with mqtts:\/\/127\.0\.0\.1:\d+ failed: client certificate refused/);
  assert.equal(await hub.metrics.value('backhaul_sink_backlog_items', { sink: 'anon' }), N);
});

// TLS on what Backhaul connects to (issue 16): a real Hub whose mqtt sinks publish to aedes brokers behind real TLS
// listeners (node:tls, certificates made by openssl in test/helpers/tls-client.ts). A broker whose certificate is
// for another host, expired, or from a CA the sink does not trust is refused with BH_TLS_VERIFY and the reason, in
// the sink's status and in backhaul_tls_failures_total, and nothing reaches it; once the right CA file is on disk,
// the next reconnect reads it and every reading arrives, none lost. The last test runs the real program and reads
// the refusal in `backhaul status`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { makeTestPki, startTlsBroker } from '../helpers/tls-client.js';
import { until } from '../helpers/until.js';

const N = 40;

test('mqtt sinks refuse a broker certificate for another host, an expired one and one from an unknown CA; the right CA file then delivers every reading', { timeout: 60_000 }, async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const d = tempDir();
  t.after(() => d.cleanup());
  const good = await startTlsBroker(pki, pki.server);
  t.after(() => good.close());
  const wrongHost = await startTlsBroker(pki, pki.otherHost);
  t.after(() => wrongHost.close());
  const expired = await startTlsBroker(pki, pki.expired);
  t.after(() => expired.close());
  // Another broker with the other.example certificate, which `servername` makes right.
  const named = await startTlsBroker(pki, pki.otherHost);
  t.after(() => named.close());

  // The CA file the `cloud` sink trusts starts as the wrong CA; the test replaces it while Backhaul runs.
  const caFile = join(d.path, 'broker-ca.pem');
  copyFileSync(pki.otherCa, caFile);
  const lines = join(d.path, 'readings.jsonl');
  writeFileSync(lines, Array.from({ length: N }, (_v, i) => JSON.stringify({ device: 'm1', n: i, seq: i })).join('\n') + '\n');

  const mqttSink = (url: string, ca: string, servername?: string) => ({
    type: 'mqtt',
    url,
    topic: 'b/{device}',
    tls: { ca, ...(servername ? { servername } : {}) },
    outbox: { retryMinMs: 200, retryMaxMs: 1000 },
  });
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      inputs: { feed: { type: 'lines', path: lines, decoder: { type: 'json', seq: 'seq' } } },
      sinks: {
        cloud: mqttSink(good.url, caFile),
        wrong: mqttSink(wrongHost.url, pki.ca),
        old: mqttSink(expired.url, pki.ca),
        named: mqttSink(named.url, pki.ca, 'other.example'),
      },
      routes: [{ to: ['cloud', 'wrong', 'old', 'named'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());

  const status = (id: string) => hub.sinkStatus().find((s) => s.id === id);
  const m = hub.metrics;
  await until(async () => (await m.value('backhaul_readings_total', { input: 'feed' })) === N, { what: 'all readings taken in' });
  await until(() => ['cloud', 'wrong', 'old'].every((id) => (status(id)?.lastError?.message ?? '').startsWith('BH_TLS_VERIFY')), {
    what: 'a TLS error in every sink status',
    timeoutMs: 20_000,
  });
  const msg = (id: string) => status(id)?.lastError?.message ?? '';
  assert.match(msg('cloud'), /^BH_TLS_VERIFY sink cloud: the certificate of mqtts:\/\/127\.0\.0\.1:\d+ is not accepted: unknown CA \(/);
  assert.match(msg('wrong'), /^BH_TLS_VERIFY sink wrong: .* wrong host \(/);
  assert.match(msg('old'), /^BH_TLS_VERIFY sink old: .* expired \(/);
  assert.ok((await m.value('backhaul_tls_failures_total', { client: 'sinks.cloud', reason: 'unknown CA' })) >= 1);
  assert.ok((await m.value('backhaul_tls_failures_total', { client: 'sinks.wrong', reason: 'wrong host' })) >= 1);
  assert.ok((await m.value('backhaul_tls_failures_total', { client: 'sinks.old', reason: 'expired' })) >= 1);
  // Nothing got through, and everything is kept.
  assert.deepEqual([good.seqs.length, wrongHost.seqs.length, expired.seqs.length], [0, 0, 0]);
  for (const id of ['cloud', 'wrong', 'old']) assert.equal(await m.value('backhaul_sink_backlog_items', { sink: id }), N);

  // The right CA, written over the file the sink names: the next reconnect reads it (no restart).
  copyFileSync(pki.ca, caFile);
  await until(() => new Set(good.seqs).size === N, { what: 'every reading at the broker once the CA is right', timeoutMs: 20_000 });
  await until(async () => (await m.value('backhaul_sink_backlog_items', { sink: 'cloud' })) === 0, { what: 'cloud backlog empty' });
  assert.deepEqual([...new Set(good.seqs)].sort((a, b) => a - b), Array.from({ length: N }, (_v, i) => i));
  assert.equal(status('cloud')?.state, 'up');
  // The others still refuse: verification is never bypassed.
  assert.deepEqual([wrongHost.seqs.length, expired.seqs.length], [0, 0]);
  assert.equal(await m.value('backhaul_sink_backlog_items', { sink: 'wrong' }), N);
  // servername: the same certificate for other.example is right when that is the name asked for (SNI and check).
  await until(() => new Set(named.seqs).size === N, { what: 'every reading at the broker reached with servername' });
});

test('mqtt sink with a client certificate (mutual TLS) delivers; without one the broker refuses it, coded BH_TLS_HANDSHAKE', { timeout: 60_000 }, async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const d = tempDir();
  t.after(() => d.cleanup());
  const broker = await startTlsBroker(pki, pki.server, true);
  t.after(() => broker.close());
  const lines = join(d.path, 'readings.jsonl');
  writeFileSync(lines, Array.from({ length: 5 }, (_v, i) => JSON.stringify({ device: 'm1', n: i, seq: i })).join('\n') + '\n');
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      inputs: { feed: { type: 'lines', path: lines, decoder: { type: 'json', seq: 'seq' } } },
      sinks: {
        mtls: { type: 'mqtt', url: broker.url, topic: 'b/{device}', tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } },
        anon: { type: 'mqtt', url: broker.url, topic: 'b/{device}', tls: { ca: pki.ca }, outbox: { retryMinMs: 200, retryMaxMs: 1000 } },
      },
      routes: [{ to: ['mtls', 'anon'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const m = hub.metrics;
  await until(async () => (await m.value('backhaul_sink_delivered_total', { sink: 'mtls' })) === 5, { what: 'mutual TLS delivery', timeoutMs: 20_000 });
  assert.deepEqual([...new Set(broker.seqs)].sort(), [0, 1, 2, 3, 4]);
  assert.ok(broker.clientCerts.includes('client'));
  const anon = () => hub.sinkStatus().find((s) => s.id === 'anon')?.lastError?.message ?? '';
  await until(() => anon().startsWith('BH_TLS_'), { what: 'the anonymous sink refused', timeoutMs: 20_000 });
  assert.match(anon(), /^BH_TLS_HANDSHAKE sink anon: the TLS handshake with mqtts:\/\/127\.0\.0\.1:\d+ failed: client certificate refused/);
  assert.equal(await m.value('backhaul_sink_backlog_items', { sink: 'anon' }), 5);
});

test('the real program: `backhaul status` shows the mqtt sink\'s BH_TLS_VERIFY unknown CA; the right CA file on disk then delivers every reading', { timeout: 90_000 }, async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const d = tempDir();
  t.after(() => d.cleanup());
  const broker = await startTlsBroker(pki, pki.server);
  t.after(() => broker.close());
  const caFile = join(d.path, 'broker-ca.pem');
  copyFileSync(pki.otherCa, caFile);
  writeFileSync(join(d.path, 'readings.jsonl'), Array.from({ length: N }, (_v, i) => JSON.stringify({ device: 'm1', n: i, seq: i })).join('\n') + '\n');
  const cfg = join(d.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      inputs: { feed: { type: 'lines', path: 'readings.jsonl', decoder: { type: 'json', seq: 'seq' } } },
      // Relative to the config file, as a person writes it.
      sinks: { cloud: { type: 'mqtt', url: broker.url, topic: 'b/{device}', tls: { ca: 'broker-ca.pem' }, outbox: { retryMinMs: 200, retryMaxMs: 1000 } } },
      routes: [{ to: ['cloud'] }],
    }),
  );
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop('SIGKILL'));
  await app.waitFor((l) => l.msg === 'backhaul running', 20_000);

  const cloudLine = async () => {
    const r = await runToEnd(['status', '-c', cfg]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').find((l) => /^\s+cloud\s/.test(l)) ?? '';
  };
  let line = '';
  await until(
    async () => {
      line = await cloudLine();
      return line.includes('BH_TLS_VERIFY');
    },
    { what: 'BH_TLS_VERIFY in backhaul status', timeoutMs: 20_000 },
  );
  t.diagnostic(line);
  assert.match(line, new RegExp(`^\\s+cloud\\s+mqtt\\s+retrying\\s+${N}\\s.*BH_TLS_VERIFY sink cloud: the certificate of mqtts://127\\.0\\.0\\.1:\\d+ is not accepted: unknown CA`));
  assert.equal(broker.seqs.length, 0);

  copyFileSync(pki.ca, caFile);
  await until(() => new Set(broker.seqs).size === N, { what: 'every reading at the broker', timeoutMs: 20_000 });
  await until(async () => /^\s+cloud\s+mqtt\s+up\s+0\s/.test(await cloudLine()), { what: 'the sink up with an empty backlog in status', timeoutMs: 10_000 });
  assert.deepEqual([...new Set(broker.seqs)].sort((a, b) => a - b), Array.from({ length: N }, (_v, i) => i));
  assert.equal(await app.stop(), 0);
});

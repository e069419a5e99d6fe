// The nats sink against a real NATS server with JetStream (a private nats-server on a free port): subjects and
// message ids, a batch delivered twice stored once (Nats-Msg-Id), and through a real hub a missing stream as a
// retryable outage shown in the sink's status, then every reading delivered once the stream exists. Over TLS (a
// nats-server with `--tls` and certificates made by `backhaul certs`): delivery with `tls.ca`; a server whose
// certificate is from a CA the sink does not trust refused with BH_TLS_VERIFY naming "unknown CA" (counted, retryable,
// in the hub's sink status), then everything delivered once the right CA is written over the `tls.ca` file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import { SinkError } from '../../src/core/driver.js';
import { Metrics } from '../../src/core/metrics.js';
import { natsMessages, natsSink } from '../../src/sinks/nats/index.js';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { makeEvent } from '../../src/core/events.js';
import type { Reading } from '../../src/core/types.js';
import { driverContext, teardown, tempDir } from '../helpers/context.js';
import { createWithDefaults } from '../helpers/options.js';
import { freePort } from '../helpers/servers.js';
import { natsServerSkip, startNats } from '../helpers/nats.js';
import { makePki } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

const skip = natsServerSkip();
const reading = (seq: number, values: Record<string, number> = { n: seq }): Reading => ({
  kind: 'reading',
  device: 'aa:bb:cc:dd:ee:01',
  ts: Date.UTC(2026, 11, 3) + seq * 1000,
  seq,
  values,
  authenticated: true,
  source: { input: 'devices', decoder: 'json' },
});

test('nats messages: one per reading (or per value with {measurement}), a value\'s dots and wildcards made one token, stable ids', () => {
  const o = { subject: 'bh.r.{device}', eventSubject: 'bh.e.{type}', payload: 'json' as const };
  const [one] = natsMessages(reading(1), o);
  assert.equal(one!.subject, 'bh.r.aa:bb:cc:dd:ee:01');
  assert.equal((JSON.parse(one!.body) as { seq: number }).seq, 1);
  assert.equal(natsMessages(reading(1), o)[0]!.id, one!.id, 'the same reading always has the same Nats-Msg-Id');
  assert.notEqual(natsMessages(reading(2), o)[0]!.id, one!.id);
  const per = natsMessages(reading(3, { 'env.temperature': 21.5, 'a>b*': 1 }), { ...o, subject: 'bh.v.{device}.{measurement}' });
  assert.deepEqual(per.map((m) => m.subject), ['bh.v.aa:bb:cc:dd:ee:01.env_temperature', 'bh.v.aa:bb:cc:dd:ee:01.a_b_']);
  const ev = makeEvent('device.offline', { lastSeen: 0, silentMs: 1, threshold: 1 }, { ts: 1, device: 'x.y', message: 'silent' });
  assert.equal(natsMessages(ev, o)[0]!.subject, 'bh.e.device_offline');
  const problems = natsSink.check!(createWithDefaults({ options: natsSink.options, create: (x: unknown) => x }, { subject: 'bh.*.{device}', eventSubject: 'bh..{type}' }) as never);
  assert.deepEqual(problems.map((p) => p.path), ['subject', 'eventSubject']);
});

test('nats sink: every message acknowledged by the stream; a batch written again is stored once (Nats-Msg-Id)', { skip, timeout: 30_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const server = await startNats(mkdtempSync(join(d.path, 'nats-')));
  later(() => server.stop());
  const nc = await connect({ servers: server.url });
  later(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'BH', subjects: ['bh.>'] });
  const sink = createWithDefaults(natsSink, { servers: server.url, subject: 'bh.r.{device}', eventSubject: 'bh.e.{type}' }, driverContext());
  await sink.open();
  later(() => sink.close());
  const batch = [reading(1), reading(2), reading(3)];
  await sink.write(batch);
  assert.equal((await jsm.streams.info('BH')).state.messages, 3, 'acknowledged means stored');
  await sink.write(batch); // the outbox sends it again after a crash
  await sink.write([reading(4)]);
  const info = await jsm.streams.info('BH');
  assert.equal(info.state.messages, 4, 'the repeated batch was stored once');
  const stored: number[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage('BH', { seq });
    stored.push((JSON.parse(new TextDecoder().decode(m.data)) as { seq: number }).seq);
    assert.equal(m.header.get('Nats-Msg-Id').length, 32);
  }
  assert.deepEqual(stored, [1, 2, 3, 4]);
});

test('nats sink in a hub: no stream yet is a retryable outage in the sink\'s status; once the stream exists every reading arrives once', { skip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const server = await startNats(mkdtempSync(join(d.path, 'nats-')));
  later(() => server.stop());
  const httpPort = await freePort();
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      devices: { unknown: 'register' },
      inputs: { http: { type: 'http', host: '127.0.0.1', port: httpPort, path: '/in', decoder: 'json' } },
      sinks: { bus: { type: 'nats', servers: server.url, subject: 'city.readings.{device}', timeoutMs: 1000, outbox: { retryMinMs: 100, retryMaxMs: 500 } } },
      routes: [{ to: ['bus'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), drainMs: 500 });
  await hub.start();
  later(() => hub.stop());
  const N = 50;
  for (let i = 1; i <= N; i++) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: `dev-${i % 5}`, n: i }) });
    assert.equal(res.status, 202);
  }
  await until(() => /no JetStream stream captures subject city\.readings\./.test(hub.sinkStatus().find((s) => s.id === 'bus')?.lastError?.message ?? ''), { what: 'the missing stream in the sink status' });
  const nc = await connect({ servers: server.url });
  later(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'CITY', subjects: ['city.>'] });
  await until(async () => (await jsm.streams.info('CITY')).state.messages === N, { what: `all ${N} readings in the stream`, timeoutMs: 20_000 });
  const info = await jsm.streams.info('CITY');
  const seqs = new Set<number>();
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    seqs.add((JSON.parse(new TextDecoder().decode((await jsm.streams.getMessage('CITY', { seq })).data)) as { values: { n: number } }).values.n);
  }
  assert.equal(seqs.size, N, 'each reading once');
  await until(() => (hub.sinkStatus().find((s) => s.id === 'bus')?.backlog ?? -1) === 0, { what: 'the outbox empty' });
});

test('nats sink: close() while its server answers nothing ends within timeoutMs (the drain is not waited on for ever)', { skip, timeout: 15_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const server = await startNats(mkdtempSync(join(d.path, 'nats-')));
  later(() => server.stop());
  const sink = createWithDefaults(natsSink, { servers: server.url, timeoutMs: 1000 }, driverContext());
  await sink.open();
  // A hung host: the socket stays open, so the client sees no disconnect, and a drain's flush gets no answer.
  server.freeze();
  later(() => server.thaw());
  const started = Date.now();
  await sink.close();
  const took = Date.now() - started;
  // Usually the drain waits its timeoutMs (1000) and then the connection is closed; the server may still answer the
  // drain's flush in the instant before SIGSTOP lands, so only the end is asserted: close() never hangs.
  assert.ok(took < 5000, `close() ended: took ${took} ms`);
});

/** A CA and a server certificate for 127.0.0.1 (`backhaul certs`) in a folder of its own under `dir`. */
function pkiIn(dir: string, name: string): ReturnType<typeof makePki> {
  const at = join(dir, name);
  mkdirSync(at);
  return makePki(at);
}

test('nats sink over TLS: delivers with tls.ca (nats:// or tls://); no CA, or a CA that did not sign the server\'s certificate, is BH_TLS_VERIFY "unknown CA", retryable and counted', { skip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const pki = pkiIn(d.path, 'pki');
  const other = pkiIn(d.path, 'other');
  const server = await startNats(mkdtempSync(join(d.path, 'nats-')), { tls: { cert: pki.cert, key: pki.key } });
  later(() => server.stop());
  const nc = await connect({ servers: server.url, tls: { caFile: pki.ca } });
  later(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'BH', subjects: ['bh.>'] });

  const metrics = new Metrics();
  const open = async (options: Record<string, unknown>) => {
    const sink = createWithDefaults(natsSink, { subject: 'bh.r.{device}', timeoutMs: 2000, ...options }, driverContext({ id: 'bus', metrics }));
    await sink.open();
    later(() => sink.close());
    return sink;
  };
  const tlsUrl = server.url.replace(/^nats:/, 'tls:');
  await (await open({ servers: server.url, tls: { ca: pki.ca } })).write([reading(1), reading(2)]);
  await (await open({ servers: tlsUrl, tls: { ca: pki.ca } })).write([reading(3)]);
  assert.equal((await jsm.streams.info('BH')).state.messages, 3, 'delivered over TLS and acknowledged');

  const refused = (e: unknown): boolean => {
    assert.ok(e instanceof SinkError, `a SinkError: ${String(e)}`);
    assert.equal(e.code, 'BH_TLS_VERIFY');
    assert.equal(e.retryable, true, 'a renewed CA or certificate mends it: retried, readings kept');
    assert.match(e.message, /^sink bus: the certificate of nats:\/\/127\.0\.0\.1:\d+ is not accepted: unknown CA \(/);
    return true;
  };
  await assert.rejects(open({ servers: server.url, tls: { ca: other.ca } }), refused);
  // Without tls.ca the system's CAs, which do not know the test CA: a tls:// server, and a nats:// one whose server
  // requires TLS (nats.js then upgrades by itself) are both verified.
  await assert.rejects(open({ servers: server.url }), refused);
  await assert.rejects(open({ servers: server.url.replace(/^nats:/, 'tls:') }), (e: unknown) => {
    assert.ok(e instanceof SinkError && e.code === 'BH_TLS_VERIFY' && /unknown CA/.test(e.message), String(e));
    return true;
  });
  assert.equal(await metrics.value('backhaul_tls_failures_total', { client: 'sinks.bus', reason: 'unknown CA' }), 3);
  // insecure: no verification at all (a lab's last resort), so the unknown CA connects.
  await (await open({ servers: server.url, tls: { ca: other.ca, insecure: true } })).write([reading(4)]);
  assert.equal((await jsm.streams.info('BH')).state.messages, 4);
});

test('nats sink: tls problems are reported by check (cert without key, key without cert); an unreadable tls.ca is BH_TLS_FILE at open, not retried; a server without TLS is refused', { skip, timeout: 15_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const check = (tls: Record<string, unknown>) =>
    natsSink.check!(createWithDefaults({ options: natsSink.options, create: (x: unknown) => x }, { tls }) as never).map((p) => `${p.path}: ${p.message}`);
  assert.deepEqual(check({ cert: 'c.pem' }), ['tls.key: a client certificate (cert) needs its key']);
  assert.deepEqual(check({ key: 'k.pem' }), ['tls.cert: a key needs its client certificate (cert)']);
  assert.deepEqual(check({ ca: 'ca.pem' }), [], 'tls with a nats:// server is right: the server offers TLS on its port');
  const options: Record<string, unknown> = { tls: { ca: join(d.path, 'missing.pem') } }; // tls's defaults: createWithDefaults
  const sink = createWithDefaults(natsSink, { ...options }, driverContext({ id: 'bus' }));
  await assert.rejects(sink.open(), (e: unknown) => {
    assert.ok(e instanceof SinkError, String(e));
    assert.equal(e.code, 'BH_TLS_FILE');
    assert.equal(e.retryable, false);
    assert.match(e.message, /cannot read the ca file .*missing\.pem/);
    return true;
  });
  // tls given, but the server has none: refused (not sent in the clear), retryable, and says so.
  const plain = await startNats(mkdtempSync(join(d.path, 'nats-')));
  later(() => plain.stop());
  const strictOptions: Record<string, unknown> = { servers: plain.url, timeoutMs: 2000, tls: { insecure: true } };
  const strict = createWithDefaults(natsSink, { ...strictOptions }, driverContext({ id: 'bus' }));
  await assert.rejects(strict.open(), (e: unknown) => {
    assert.ok(e instanceof SinkError && e.retryable, String(e));
    assert.match(e.message, /tls: the server offers no TLS/);
    return true;
  });
});

test('nats sink over TLS in a hub: a server certificate from an unknown CA is refused, named in the sink status; once the right CA is written over tls.ca every reading arrives once', { skip, timeout: 90_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const pki = pkiIn(d.path, 'pki');
  const other = pkiIn(d.path, 'other');
  // The sink trusts `other`'s CA; the server's certificate is from `pki`.
  const caFile = join(d.path, 'bus-ca.pem');
  copyFileSync(other.ca, caFile);
  const server = await startNats(mkdtempSync(join(d.path, 'nats-')), { tls: { cert: pki.cert, key: pki.key } });
  later(() => server.stop());
  const nc = await connect({ servers: server.url, tls: { caFile: pki.ca } });
  later(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'CITY', subjects: ['city.>'] });
  const httpPort = await freePort();
  const config = buildConfig(
    {
      data: join(d.path, 'data'),
      devices: { unknown: 'register' },
      inputs: { http: { type: 'http', host: '127.0.0.1', port: httpPort, path: '/in', decoder: 'json' } },
      sinks: {
        bus: { type: 'nats', servers: server.url, subject: 'city.readings.{device}', timeoutMs: 1000, tls: { ca: 'bus-ca.pem' }, outbox: { retryMinMs: 100, retryMaxMs: 500 } },
      },
      routes: [{ to: ['bus'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), drainMs: 500 });
  await hub.start();
  later(() => hub.stop());
  const N = 30;
  for (let i = 1; i <= N; i++) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: `dev-${i % 3}`, n: i }) });
    assert.equal(res.status, 202);
  }
  const lastError = () => hub.sinkStatus().find((s) => s.id === 'bus')?.lastError?.message ?? '';
  await until(() => /unknown CA/.test(lastError()), { what: 'the unknown CA in the sink status', timeoutMs: 20_000 });
  // The runner records an open() failure as BH_SINK_OPEN; the text is the TLS refusal's, naming the sink and the reason.
  assert.match(lastError(), /^BH_SINK_OPEN sink bus: the certificate of nats:\/\/127\.0\.0\.1:\d+ is not accepted: unknown CA \(/);
  assert.equal((await jsm.streams.info('CITY')).state.messages, 0);
  assert.ok((hub.sinkStatus().find((s) => s.id === 'bus')?.backlog ?? 0) > 0, 'the readings wait in the outbox');

  // The right CA, written and renamed over the configured file: the next open reads it.
  copyFileSync(pki.ca, `${caFile}.new`);
  renameSync(`${caFile}.new`, caFile);
  await until(async () => (await jsm.streams.info('CITY')).state.messages === N, { what: `all ${N} readings in the stream`, timeoutMs: 20_000 });
  const info = await jsm.streams.info('CITY');
  const ns = new Set<number>();
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    ns.add((JSON.parse(new TextDecoder().decode((await jsm.streams.getMessage('CITY', { seq })).data)) as { values: { n: number } }).values.n);
  }
  assert.equal(ns.size, N, 'each reading once, none lost');
  await until(() => (hub.sinkStatus().find((s) => s.id === 'bus')?.backlog ?? -1) === 0, { what: 'the outbox empty' });
});

test('nats sink over TLS: nats.js\'s own reconnect reads the tls files again (a server back with a certificate from a new CA, the new CA written over tls.ca: delivery resumes without a new open)', { skip, timeout: 60_000 }, async (t) => {
  const later = teardown(t);
  const d = tempDir();
  later(() => d.cleanup());
  const pki = pkiIn(d.path, 'pki');
  const renewed = pkiIn(d.path, 'renewed');
  const caFile = join(d.path, 'bus-ca.pem');
  copyFileSync(pki.ca, caFile);
  const first = await startNats(mkdtempSync(join(d.path, 'nats-')), { tls: { cert: pki.cert, key: pki.key } });
  later(() => first.stop());
  const addStream = async (caPath: string) => {
    const nc = await connect({ servers: first.url, tls: { caFile: caPath } });
    later(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'BH', subjects: ['bh.>'] });
    return jsm;
  };
  await addStream(pki.ca);
  const sink = createWithDefaults(natsSink, { servers: first.url, subject: 'bh.r.{device}', timeoutMs: 2000, tls: { ca: caFile, insecure: false, minVersion: 'TLSv1.2' } }, driverContext({ id: 'bus' }));
  let readies = 0;
  sink.onReady?.(() => readies++);
  await sink.open();
  later(() => sink.close());
  await sink.write([reading(1)]);

  // The server goes; it comes back on the same port with a certificate from another CA, and that CA is installed.
  await first.stop();
  copyFileSync(renewed.ca, `${caFile}.new`);
  renameSync(`${caFile}.new`, caFile);
  const second = await startNats(mkdtempSync(join(d.path, 'nats-')), { tls: { cert: renewed.cert, key: renewed.key }, port: first.port });
  later(() => second.stop());
  const jsm = await addStream(renewed.ca);
  await until(() => readies > 0, { what: 'the sink reconnected (nats.js read the new CA file)', timeoutMs: 20_000 });
  await sink.write([reading(2), reading(3)]);
  assert.equal((await jsm.streams.info('BH')).state.messages, 2);
});

// The nats sink against a real NATS server with JetStream (a private nats-server on a free port): subjects and
// message ids, a batch delivered twice stored once (Nats-Msg-Id), and through a real hub a missing stream as a
// retryable outage shown in the sink's status, then every reading delivered once the stream exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
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
  assert.ok(took >= 900 && took < 5000, `close gave the drain its timeoutMs (1000) and then closed: took ${took} ms`);
});

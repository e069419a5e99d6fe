// The mqtt input over real TLS (aedes behind node:tls, certificates made by openssl): a broker the input's CA does not
// vouch for fails start() with BH_TLS_VERIFY and its reason; with the right CA it subscribes and takes messages; its
// CA file is read again at every reconnect (a file changed under it changes what the next connection accepts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { BackhaulError } from '../../src/core/errors.js';
import { Metrics } from '../../src/core/metrics.js';
import type { TlsClientConfig } from '../../src/core/tls-client.js';
import { mqttInput } from '../../src/inputs/mqtt/index.js';
import { inputContext, teardown } from '../helpers/context.js';
import { createWithDefaults } from '../helpers/options.js';
import { makeTestPki, startTlsBroker, startWssBroker } from '../helpers/tls-client.js';
import { until } from '../helpers/until.js';

/** `tls` options as a config gives them; createWithDefaults fills in the schema's defaults (insecure, minVersion). */
const tls = (o: Partial<TlsClientConfig>): TlsClientConfig => o as TlsClientConfig;

test('mqtt input: an unknown CA or a certificate for another host fails start() with BH_TLS_VERIFY and the reason, counted', async (t) => {
  const later = teardown(t); // in reverse: clients stop before the broker they reconnect to closes
  const pki = makeTestPki();
  later(() => pki.cleanup());
  const broker = await startTlsBroker(pki, pki.server);
  later(() => broker.close());
  const other = await startTlsBroker(pki, pki.otherHost);
  later(() => other.close());
  const metrics = new Metrics();
  const start = (url: string, ca: string) =>
    createWithDefaults(mqttInput, { url, topics: ['t/#'], connectTimeoutMs: 1500, reconnectMinMs: 100, reconnectMaxMs: 200, tls: tls({ ca }) }, inputContext({ id: 'up', metrics })).start();
  const refused = (reason: string) => (e: unknown) => {
    assert.ok(e instanceof BackhaulError, String(e));
    assert.equal(e.code, 'BH_TLS_VERIFY');
    assert.equal(e.path, 'inputs.up.tls');
    assert.match(e.message, new RegExp(`^inputs\\.up\\.tls: input up: the certificate of mqtts://127\\.0\\.0\\.1:\\d+ is not accepted: ${reason} \\(`));
    return true;
  };
  await assert.rejects(start(broker.url, pki.otherCa), refused('unknown CA'));
  await assert.rejects(start(other.url, pki.ca), refused('wrong host'));
  assert.ok((await metrics.value('backhaul_tls_failures_total', { client: 'inputs.up', reason: 'unknown CA' })) >= 1);
  assert.ok((await metrics.value('backhaul_tls_failures_total', { client: 'inputs.up', reason: 'wrong host' })) >= 1);
});

test('mqtt input: the CA file is read again at every reconnect', { timeout: 30_000 }, async (t) => {
  const later = teardown(t); // in reverse: clients stop before the broker they reconnect to closes
  const pki = makeTestPki();
  later(() => pki.cleanup());
  const broker = await startTlsBroker(pki, pki.server);
  later(() => broker.close());
  const caFile = join(pki.dir, 'trusted.pem');
  copyFileSync(pki.ca, caFile);
  const metrics = new Metrics();
  const ctx = inputContext({ id: 'up', metrics });
  const input = createWithDefaults(
    mqttInput,
    { url: broker.url, topics: ['t/#'], connectTimeoutMs: 3000, reconnectMinMs: 100, reconnectMaxMs: 300, tls: tls({ ca: caFile }) },
    ctx,
  );
  await input.start();
  later(() => input.stop());
  const pub = await mqtt.connectAsync(broker.url, { ca: pki.read(pki.ca), reconnectPeriod: 100 });
  later(() => pub.endAsync(true));
  await pub.publishAsync('t/a', JSON.stringify({ seq: 1 }), { qos: 1 });
  await until(() => ctx.frames.length === 1, { what: 'first message' });

  // The file now names another CA: the next connection must refuse the same broker.
  copyFileSync(pki.otherCa, caFile);
  broker.dropClients();
  await until(async () => (await metrics.value('backhaul_tls_failures_total', { client: 'inputs.up', reason: 'unknown CA' })) >= 1, {
    what: 'the reconnect refused under the new CA file',
  });
  // And the right one again: the input reconnects, resubscribes and takes messages.
  copyFileSync(pki.ca, caFile);
  await until(
    async () => {
      await pub.publishAsync('t/a', JSON.stringify({ seq: 2 }), { qos: 1 });
      return ctx.frames.length >= 2;
    },
    { what: 'a message after the CA file was put right', timeoutMs: 15_000 },
  );
  // Clients first, then the broker (the after hooks): a client still reconnecting must not hold the broker's close.
  await pub.endAsync(true);
  await input.stop();
});

test('mqtt input over wss://: the CA is used and read again at every reconnect (mqtt.js copies it to the WebSocket options only once)', { timeout: 30_000 }, async (t) => {
  const later = teardown(t); // in reverse: clients stop before the broker they reconnect to closes
  const pki = makeTestPki();
  later(() => pki.cleanup());
  const broker = await startWssBroker(pki, pki.server);
  later(() => broker.close());
  const caFile = join(pki.dir, 'trusted.pem');
  copyFileSync(pki.otherCa, caFile);
  const metrics = new Metrics();
  const make = () => {
    const ctx = inputContext({ id: 'ws', metrics });
    const input = createWithDefaults(mqttInput, { url: broker.url, topics: ['t/#'], connectTimeoutMs: 1500, reconnectMinMs: 100, reconnectMaxMs: 300, tls: tls({ ca: caFile }) }, ctx);
    return { ctx, input };
  };
  const refused = make();
  await assert.rejects(refused.input.start(), (e: unknown) => e instanceof BackhaulError && e.code === 'BH_TLS_VERIFY' && /unknown CA/.test(e.message));

  copyFileSync(pki.ca, caFile);
  const { ctx, input } = make();
  await input.start();
  later(() => input.stop());
  const pub = await mqtt.connectAsync(broker.url, { ca: pki.read(pki.ca), reconnectPeriod: 100 });
  later(() => pub.endAsync(true));
  await pub.publishAsync('t/a', JSON.stringify({ seq: 1 }), { qos: 1 });
  await until(() => ctx.frames.length === 1, { what: 'a message over wss' });

  const before = await metrics.value('backhaul_tls_failures_total', { client: 'inputs.ws', reason: 'unknown CA' });
  copyFileSync(pki.otherCa, caFile);
  broker.dropClients();
  await until(async () => (await metrics.value('backhaul_tls_failures_total', { client: 'inputs.ws', reason: 'unknown CA' })) > before, {
    what: 'the wss reconnect refused under the new CA file',
  });
  // Clients first, then the broker (the after hooks): a client still reconnecting must not hold the broker's close.
  await pub.endAsync(true);
  await input.stop();
});

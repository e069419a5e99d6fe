// Frames made to hurt, through the real hub: the real `http` input (Fastify) and the embedded broker, the real
// decoders, a file sink. A SenML pack repeating one name (issue 11, item 1: 54 s of blocked event loop before), packs
// past the record cap, JSON nested 100,000 deep, and a self-referencing CBOR value (item 9: 503 "retry later" over
// HTTP, "internal" over MQTT before). Each gets its coded answer; the process carries on.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

interface Setup {
  hub: Hub;
  url: (input: string) => string;
  lines: () => Array<{ device: string; values: Record<string, unknown> }>;
}

async function setup(t: TestContext): Promise<Setup> {
  const d = tempDir();
  t.after(() => d.cleanup());
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register' },
      inputs: {
        // The default cap (10,000 records), and one raised to 20,000.
        web: { type: 'http', host: '127.0.0.1', port: 0, path: '/ingest', decoder: 'senml' },
        big: { type: 'http', host: '127.0.0.1', port: 0, path: '/ingest', decoder: { type: 'senml', maxRecords: 20_000 } },
        mq: { type: 'broker', host: '127.0.0.1', port: 0, anonymous: true, decoder: 'senml' },
      },
      sinks: { out: { type: 'file', path: join(d.path, 'out.jsonl') } },
      routes: [{ to: ['out'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger() });
  await hub.start();
  t.after(() => hub.stop());
  const url = (id: string) => String(hub.inputStatus().find((i) => i.id === id)?.info['url']);
  const file = join(d.path, 'out.jsonl');
  const lines = () =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { device: string; values: Record<string, unknown> })
      : [];
  return { hub, url, lines };
}

/** The pack: one base name, then `n` records all named `t`, at one time (so one reading). */
function repeatedName(mac: string, n: number): string {
  return `[{"bn":"urn:dev:mac:${mac}:","n":"t","v":1}${',{"n":"t","v":1}'.repeat(n - 1)}]`;
}

async function post(url: string, type: string, body: string | Uint8Array): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('a 20,000-record SenML pack repeating one name: refused with BH_DECODE_TOO_MANY past the cap, decoded in full under it', async (t) => {
  const { hub, url, lines } = await setup(t);

  const over = await post(url('web'), 'application/senml+json', repeatedName('00000000ffff', 20_000));
  assert.equal(over.status, 400);
  assert.deepEqual(over.body['error'], {
    code: 'BH_DECODE_TOO_MANY',
    message: 'the pack holds 20000 records, more than maxRecords (10000)',
    path: '$',
  });
  assert.equal(await hub.metrics.value('backhaul_decode_errors_total', { input: 'web', reason: 'BH_DECODE_TOO_MANY' }), 1);

  // At the default cap exactly, and 20,000 where the cap is 20,000: every record is there, suffixed in order.
  const atCap = await post(url('web'), 'application/senml+json', repeatedName('00000000fffe', 10_000));
  assert.deepEqual(atCap, { status: 202, body: { accepted: 1 } });
  const under = await post(url('big'), 'application/senml+json', repeatedName('00000000fffd', 20_000));
  assert.deepEqual(under, { status: 202, body: { accepted: 1 } });
  const past = await post(url('big'), 'application/senml+json', repeatedName('00000000fffc', 20_001));
  assert.equal(past.status, 400);
  assert.equal((past.body['error'] as { code: string }).code, 'BH_DECODE_TOO_MANY');

  await until(() => lines().length === 2, { what: 'both readings in the sink' });
  const [ten, twenty] = lines();
  assert.equal(ten?.device, 'urn:dev:mac:00000000fffe');
  assert.equal(Object.keys(ten?.values ?? {}).length, 10_000);
  assert.equal(twenty?.device, 'urn:dev:mac:00000000fffd');
  const names = Object.keys(twenty?.values ?? {});
  assert.equal(names.length, 20_000);
  assert.deepEqual(names.slice(0, 3), ['t', 't_2', 't_3']);
  assert.equal(names[19_999], 't_20000');
  assert.ok(Object.values(twenty?.values ?? {}).every((v) => v === 1));
});

test('JSON nested 100,000 deep over HTTP: 400 BH_DECODE_DEPTH naming the limit', async (t) => {
  const { hub, url } = await setup(t);
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const r = await post(url('web'), 'application/senml+json', deep);
  assert.equal(r.status, 400);
  const err = r.body['error'] as { code: string; message: string };
  assert.equal(err.code, 'BH_DECODE_DEPTH');
  assert.match(err.message, /deeper than 64 levels/);
  // The same nesting inside a string is no nesting: it reaches the SenML checks.
  const inString = await post(url('web'), 'application/senml+json', `[{"n":"a","vs":${JSON.stringify('['.repeat(1000))}}]`);
  assert.deepEqual(inString, { status: 202, body: { accepted: 1 } });
  assert.equal(await hub.metrics.value('backhaul_decode_errors_total', { input: 'web', reason: 'BH_DECODE_DEPTH' }), 1);
});

test('a self-referencing CBOR value (tags 28/29): 400 BH_DECODE_CBOR_TAG over HTTP, a counted decode error over MQTT', async (t) => {
  const { hub, url } = await setup(t);
  const selfRef = Buffer.from('d81c81d81d00', 'hex');

  const r = await post(url('web'), 'application/senml+cbor', selfRef);
  assert.equal(r.status, 400);
  const err = r.body['error'] as { code: string; message: string };
  assert.equal(err.code, 'BH_DECODE_CBOR_TAG');
  assert.match(err.message, /tag 28 \(a shared reference\)/);
  // Another tag cbor-x would act on (27 builds an Error or a RegExp): refused the same way.
  const generic = await post(url('web'), 'application/cbor', Buffer.from('d81b83634572726161a0', 'hex'));
  assert.equal((generic.body['error'] as { code: string }).code, 'BH_DECODE_CBOR_TAG');

  const c = await mqtt.connectAsync(url('mq'), { reconnectPeriod: 0 });
  t.after(() => c.endAsync(true));
  await c.publishAsync('senml/x', selfRef, { qos: 1 });
  await until(
    async () => (await hub.metrics.value('backhaul_decode_errors_total', { input: 'mq', reason: 'BH_DECODE_CBOR_TAG' })) === 1,
    { what: 'the MQTT frame counted as a CBOR tag decode error' },
  );
  assert.equal(await hub.metrics.value('backhaul_decode_errors_total', { reason: 'internal' }), 0);
  // And the data path still takes a good pack on both.
  const ok = new Uint8Array([0x81, 0xa3, 0x21, 0x6a, ...Buffer.from('urn:dev:x:'), 0x00, 0x61, 0x74, 0x02, 0x18, 0x17]);
  assert.deepEqual(await post(url('web'), 'application/senml+cbor', ok), { status: 202, body: { accepted: 1 } });
  await c.publishAsync('senml/x', Buffer.from(ok), { qos: 1 });
  await until(async () => (await hub.metrics.value('backhaul_readings_total', { input: 'mq' })) === 1, { what: 'the good pack over MQTT' });
});

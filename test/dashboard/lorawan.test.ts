// A LoRaWAN device in the dashboard, in a real browser (Debian's Chromium) against a real hub reading ChirpStack's
// integration from a real MQTT broker (aedes, started here): the card shows its signal and battery from the registry's
// network side, the page its network server, signal, battery and last uplink; the order form takes downlink bytes
// and an fPort, the downlink arrives on ChirpStack's command topic, and ChirpStack's ack settles the order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { fixture } from '../helpers/fixtures.js';
import { startAedes } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { launchChromium, loginWithToken } from '../helpers/browser.js';
import { chromiumSkip } from '../helpers/services.js';

const APP = '17c82e96-be03-4f38-aef3-f83d48582d97';
const DEV = '0101010101010101';
const read = (name: string) => JSON.parse(readFileSync(fixture(`lorawan/${name}`), 'utf8')) as Record<string, unknown>;

test('dashboard: a LoRaWAN device\'s signal and battery, and an order sent as downlink bytes settled by ChirpStack\'s ack', { skip: chromiumSkip(), timeout: 90_000 }, async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const broker = await startAedes();
  t.after(() => broker.close());
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'register', refreshMs: 200 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { chirpstack: { type: 'mqtt', url: broker.url, topics: ['application/+/device/+/event/+'], decoder: 'chirpstack' } },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok), drainMs: 200 });
  await hub.start();
  t.after(() => hub.stop());
  const ns = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  t.after(() => ns.endAsync());
  const downlinks: Array<Record<string, unknown>> = [];
  await ns.subscribeAsync(`application/${APP}/device/${DEV}/command/down`, { qos: 1 });
  ns.on('message', (_topic, payload) => downlinks.push(JSON.parse(payload.toString()) as Record<string, unknown>));
  const event = (kind: string, body: object) => ns.publishAsync(`application/${APP}/device/${DEV}/event/${kind}`, JSON.stringify(body), { qos: 1 });
  // The fixture's uplink (no NS codec: its byte is kept raw) and status (battery 88.3 %, margin 10 dB).
  await event('up', { ...read('chirpstack-v4-up.json'), fCnt: 5, time: new Date().toISOString() });
  await event('status', { ...read('chirpstack-v4-status.json'), time: new Date().toISOString() });

  const browser = await launchChromium(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => assert.fail(`the page threw: ${e.message}`));
  await loginWithToken(page, hub.apiUrl() ?? '', admin, DEV);
  const card = page.getByTestId(`device-${DEV}`);
  await until(async () => /88\.3%/.test((await card.getByTestId('battery').textContent().catch(() => '')) ?? ''), { what: `the battery on the card: ${await card.textContent()}`, timeoutMs: 15_000 });
  assert.equal(await card.getByTestId('signal').textContent(), '-36 dBm, SNR 10.5 dB, SF11, 1 gateway');

  await card.click();
  await page.getByTestId('lorawan-signal').waitFor({ timeout: 15_000 });
  assert.equal(await page.getByTestId('lorawan-signal').textContent(), '-36 dBm, SNR 10.5 dB, SF11, 1 gateway');
  assert.match((await page.getByTestId('lorawan-battery').textContent()) ?? '', /^88\.3%, link margin 10 dB$/);
  assert.match((await page.getByTestId('lorawan-ns').textContent()) ?? '', new RegExp(`chirpstack via input chirpstack, application ${APP}`));
  // A downlink: no reboot / reinstall buttons; bytes and a port instead.
  assert.equal(await page.getByTestId('order-reboot').count(), 0);
  await page.getByTestId('order-name').fill('interval');
  await page.getByTestId('order-hex').fill('01 0f');
  await page.getByTestId('order-custom').click();
  assert.match((await page.getByRole('alert').textContent()) ?? '', /fPort from 1 to 223/, 'bytes without a port are refused in the form');
  await page.getByTestId('order-fport').fill('10');
  await page.getByTestId('order-custom').click();
  await page.getByTestId('confirm').click();
  await page.getByTestId('order-result').waitFor({ timeout: 15_000 });
  await until(() => downlinks.length === 1, { what: 'the downlink on ChirpStack\'s command topic' });
  assert.equal(downlinks[0]!['fPort'], 10);
  assert.equal(downlinks[0]!['data'], Buffer.from([0x01, 0x0f]).toString('base64'));
  assert.equal(downlinks[0]!['confirmed'], true);

  await event('ack', { ...read('chirpstack-v4-ack.json'), deviceInfo: { ...(read('chirpstack-v4-ack.json')['deviceInfo'] as object), devEui: DEV }, queueItemId: downlinks[0]!['id'] });
  await until(async () => (await page.locator('[data-testid="command"][data-status="acknowledged"]').count()) === 1, { what: 'the order shown acknowledged', timeoutMs: 20_000 });
  assert.match((await page.getByTestId('command').first().textContent()) ?? '', /interval/);
});

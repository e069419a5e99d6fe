// The device list and page in a real browser (Debian's Chromium via playwright-core) against a real hub: units as
// people write them with the SenML code in a tooltip, battery red under its floor, signal and key values on the card,
// grouped by building; a chart whose range fits minutes of data; a device that reports WARNING and then an invalid
// self-description shows its mode, BLOCKED with the reason, and no order form (the reason instead) until unblocked.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { buildConfig } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { launchChromium, loginWithToken } from '../helpers/browser.js';
import { chromiumSkip } from '../helpers/services.js';

const VALVE = '0d49';
const PASSWORD = 'valve-0d49-password';

async function setup(t: TestContext) {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  // opentrv-valve: battery floor 2.4 V by its type.
  await s.create({ id: VALVE, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, description: 'big radiator' });
  await s.setCredentials(VALVE, { username: VALVE, hash: await hashPassword(PASSWORD), passwordIssued: true });
  await s.close();
  const port = await freePort();
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop', refreshMs: 200 },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: { type: 'json', time: 'time', units: { temperature: 'Cel', battery: 'V', rssi: 'dBm' } } } },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: VALVE, password: PASSWORD });
  t.after(() => device.endAsync(true));
  // Five minutes of readings, one a minute, ending now: the battery under its floor on the last one.
  const now = Date.now();
  for (let i = 0; i < 6; i++) {
    const body = { device: VALVE, time: now - (5 - i) * 60_000, temperature: 20 + i / 10, battery: i === 5 ? 2.2 : 2.9, rssi: -71 };
    await device.publishAsync('u4/302/valve/data', JSON.stringify(body), { qos: 1 });
  }
  return { base: hub.apiUrl() ?? '', admin, now, device };
}

const launch = (t: TestContext) => launchChromium(t);

const login = (page: Page, base: string, token: string) => loginWithToken(page, base, token, VALVE);

test('dashboard device views: battery red under its floor, signal and values with people\'s units, a chart fitting minutes of data, orders refused with a reason', { skip: chromiumSkip(), timeout: 90_000 }, async (t) => {
  const { base, admin, device } = await setup(t);
  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => assert.fail(`the page threw: ${e.message}`));
  await login(page, base, admin);

  const card = page.getByTestId(`device-${VALVE}`);
  const battery = card.getByTestId('battery');
  await battery.waitFor({ timeout: 15_000 });
  await until(async () => ((await battery.textContent()) ?? '').includes('2.2'), { what: 'the latest battery value on the card', timeoutMs: 15_000 });
  assert.equal(await battery.getAttribute('data-low'), 'true');
  assert.match((await battery.textContent()) ?? '', /2\.2 V low \(floor 2\.4 V\)/);
  assert.match((await card.getByTestId('signal').textContent()) ?? '', /rssi -71 dBm/);
  assert.match((await card.textContent()) ?? '', /temperature\s*20\.5 °C/);
  // Grouped under its building, its room on the card.
  assert.match((await page.locator('.group-title').first().textContent()) ?? '', /u4/);
  assert.match((await card.textContent()) ?? '', /Room\s*302/);

  // Before it says anything of itself: INIT, no mode row, the order form offered (it is logged in).
  await card.click();
  await page.getByTestId('order-reboot').waitFor({ timeout: 15_000 });
  assert.equal(await page.getByTestId('device-mode').count(), 0, 'no mode row when the device reports none');
  // It reports WARNING, then a self-description its type's schema refuses: BLOCKED with the reason, no order form.
  await device.publishAsync('u4/302/valve/device', JSON.stringify({ mode: 'WARNING' }), { qos: 1 });
  await device.publishAsync('u4/302/valve/device', JSON.stringify({ hardware: 'OpenTRV REV7', sensors: 'temperature' }), { qos: 1 });
  const api = (path: string, method = 'GET') => fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${admin}` } });
  await until(async () => ((await (await api(`/api/v1/devices/${VALVE}`)).json()) as { state: string }).state === 'BLOCKED', { what: 'the valve BLOCKED' });
  await page.reload();
  const refused = page.getByTestId('orders-refused');
  await refused.waitFor({ timeout: 15_000 });
  assert.match((await refused.textContent()) ?? '', /takes no orders: it is BLOCKED/);
  assert.equal(await page.getByTestId('order-reboot').count(), 0, 'no order form for a device that takes none');
  assert.match((await page.getByTestId('device-state').textContent()) ?? '', /BLOCKED\s*invalid self-description: description\.sensors/);
  assert.match((await page.getByTestId('device-mode').textContent()) ?? '', /WARNING/);

  // Latest values: the unit as people write it, the SenML code in the tooltip; the battery flagged.
  const temp = page.getByTestId('latest-temperature');
  await temp.waitFor({ timeout: 10_000 });
  assert.equal((await temp.textContent())?.trim(), '20.5 °C');
  assert.equal(await temp.getAttribute('title'), 'SenML unit: Cel');
  assert.match((await page.getByTestId('latest-battery').textContent()) ?? '', /2\.2 V \(under its 2\.4 V floor\)/);

  // The temperature chart's default range fits the five minutes of data, not 24 hours: its time ticks are seconds apart.
  const chart = page.locator('figure.chart').filter({ hasText: 'temperature (°C)' });
  await chart.locator('path.line').waitFor({ timeout: 15_000 });
  const ticks = await chart.locator('g.axis text[text-anchor="middle"]').allTextContents();
  const times = ticks.filter((x) => /^\d\d:\d\d(:\d\d)?$/.test(x));
  assert.ok(times.length >= 3, `several time ticks across five minutes: ${JSON.stringify(ticks)}`);
  const box = await chart.locator('path.line').boundingBox();
  const svg = await chart.locator('svg').boundingBox();
  assert.ok(box && svg && box.width > svg.width * 0.7, `the line spans the chart (${box?.width ?? 0} of ${svg?.width ?? 0} px)`);

  // Unblocked by an operator: INIT again, and orders are offered again.
  assert.equal((await api(`/api/v1/devices/${VALVE}/unblock`, 'POST')).status, 200);
  await page.reload();
  await page.getByTestId('order-reboot').waitFor({ timeout: 15_000 });
  assert.match((await page.getByTestId('device-state').textContent()) ?? '', /INIT/);
});

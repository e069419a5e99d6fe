// The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real hub: log in, watch a
// device turn red after it falls silent, send an order that a real MQTT client receives, and check that a viewer is
// offered no orders. Screenshots go to test-artifacts/dashboard/ (look at them: they are the evidence a person reads).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
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
import { launchChromium, loginWithToken, screenshotTo } from '../helpers/browser.js';
import { chromiumSkip } from '../helpers/services.js';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'dashboard');
const VALVE = '0d49';
const PASSWORD = 'valve-0d49-password';
const SHUTTER = 'aa:bb:cc:dd:ee:01';

async function setup(t: TestContext) {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  // A short threshold, so the device goes red within the test.
  await s.create({ id: VALVE, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, description: 'big radiator', thresholds: { maxSilentMs: 3000 } });
  await s.setCredentials(VALVE, { username: VALVE, hash: await hashPassword(PASSWORD), passwordIssued: true });
  await s.create({ id: SHUTTER, type: 'shutter', location: { building: 'u4', room: '301' } });
  await s.close();
  const port = await freePort();
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      // The valve's login stands in for a hub relaying the shutter's radio frames: those readings pass, unauthenticated.
      devices: { unknown: 'drop', refreshMs: 200, gateways: [{ login: VALVE, devices: [SHUTTER] }] },
      api: { host: '127.0.0.1', port: 0 },
      inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
      sinks: { history: { type: 'sqlite' } },
      routes: [{ to: ['history'] }, { match: { kind: 'event' }, to: ['history'] }],
    },
    { source: 'test', dir: d.path },
    { registry: builtinRegistry() },
  );
  const hub = new Hub({ config, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  const base = hub.apiUrl()!;
  const token = async (role: 'viewer' | 'operator') => {
    const r = await fetch(`${base}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `${role}-browser`, role }),
    });
    return ((await r.json()) as { token: string }).token;
  };
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: VALVE, password: PASSWORD });
  t.after(() => device.endAsync(true));
  return { hub, base, token, device };
}

const launch = (t: TestContext) => launchChromium(t);

const login = (page: Page, base: string, token: string) => loginWithToken(page, base, token, VALVE);

const shot = (page: Page, name: string) => screenshotTo(ARTIFACTS, page, name);

const skip = chromiumSkip();

test('dashboard: log in, see a device turn red after it falls silent, send an order a real device receives', { skip, timeout: 90_000 }, async (t) => {
  const { base, token, device } = await setup(t);
  const operator = await token('operator');
  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => assert.fail(`the page threw: ${e.message}`));

  // The token is refused when wrong, and the page says so.
  await page.goto(`${base}/`);
  await page.getByTestId('token').fill('bh_00000000_not-a-real-token-at-all-xxxxx');
  await page.getByTestId('login').click();
  await page.getByText(/BH_API_UNAUTHENTICATED/).waitFor({ timeout: 10_000 });
  await shot(page, '01-login-refused');

  await login(page, base, operator);
  const card = page.getByTestId(`device-${VALVE}`);
  // Heard from every half second: green (the page polls every 5 s, so it keeps talking until the page shows it). Its
  // login counts as a sign of life already, so the first reading goes out before the wait.
  const say = () => device.publishAsync('u4/302/valve/data', JSON.stringify({ device: VALVE, temperature: 19.5, battery: 3.1 }), { qos: 1 });
  await say();
  const talking = setInterval(() => {
    say().catch(() => undefined);
  }, 500);
  try {
    await until(async () => (await card.getAttribute('data-liveness')) === 'active', { what: 'the valve active (green) on the dashboard', timeoutMs: 20_000 });
    await shot(page, '02-devices-active');
  } finally {
    clearInterval(talking);
  }
  // Silent past its 3 s threshold: red, without reloading the page.
  await until(async () => (await card.getAttribute('data-liveness')) === 'outdated', { what: 'the valve outdated (red) on the dashboard', timeoutMs: 30_000 });
  await shot(page, '03-devices-outdated');
  const words = (await card.textContent()) ?? '';
  assert.match(words, /outdated|silent|offline/i, `the card says it in words too, not only in colour: ${words}`);

  // The device page: send a reboot, confirmed; the device's MQTT client receives it.
  const received: Array<{ order: string; dest: string; id: string }> = [];
  await device.subscribeAsync('u4/302/valve/command', { qos: 1 });
  device.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as { order: string; dest: string; id: string }));
  await card.click();
  // Its latest values came over its own login: marked authenticated, in words.
  const own = page.getByTestId('latest').locator('td[data-authenticated="true"]');
  await own.first().waitFor({ timeout: 15_000 });
  assert.match((await own.first().textContent()) ?? '', /authenticated/);
  assert.equal(await page.getByTestId('latest').locator('td[data-authenticated="false"]').count(), 0);
  await page.getByTestId('order-reboot').click();
  await page.getByTestId('confirm').click();
  await until(() => received.length === 1, { what: 'the reboot order reaches the device', timeoutMs: 15_000 });
  assert.equal(received[0]!.order, 'reboot');
  assert.equal(received[0]!.dest, VALVE);
  await device.publishAsync('u4/302/valve/device', JSON.stringify({ ack: received[0]!.id, result: 'ok', uptime: 3 }), { qos: 1 });
  await page.getByText(/acknowledged/).first().waitFor({ timeout: 20_000 });
  await shot(page, '04-device-order-acknowledged');

  // On a phone.
  await page.setViewportSize({ width: 375, height: 800 });
  await shot(page, '05-device-phone');
  const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'));
  assert.ok(overflow <= 1, `no sideways scrolling at 375 px (overflow ${overflow} px)`);
});

test('dashboard: a viewer sees devices but is offered no orders or edits; a forwarded value is shown as not authenticated', { skip, timeout: 60_000 }, async (t) => {
  const { base, token, device } = await setup(t);
  const viewer = await token('viewer');
  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await login(page, base, viewer);
  await page.getByTestId(`device-${VALVE}`).click();
  await page.getByText('big radiator').first().waitFor({ timeout: 10_000 });
  for (const id of ['order-reboot', 'order-reinstall', 'order-custom']) {
    const el = page.getByTestId(id);
    const usable = (await el.count()) > 0 && (await el.isVisible()) && (await el.isEnabled());
    assert.equal(usable, false, `${id} is hidden or disabled for a viewer`);
  }
  await shot(page, '06-device-viewer');
  // And the API refuses anyway, with the session cookie the page holds.
  const status = await page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/devices/${id}/commands`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ order: 'reboot' }) });
    return r.status;
  }, VALVE);
  assert.equal(status, 403);

  // The valve forwards a reading for the shutter (declared its gateway): stored, shown as not authenticated.
  await device.publishAsync('u4/302/valve/data', JSON.stringify({ device: SHUTTER, position: 40 }), { qos: 1 });
  await page.goto(`${base}/#/devices/${encodeURIComponent(SHUTTER)}`);
  const forwarded = page.getByTestId('latest').locator('td[data-authenticated="false"]');
  await forwarded.first().waitFor({ timeout: 20_000 });
  assert.match((await forwarded.first().textContent()) ?? '', /not authenticated/);
  await shot(page, '07-device-forwarded-value');
});

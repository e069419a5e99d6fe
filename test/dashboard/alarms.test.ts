// The alarms page in a real browser (Debian's Chromium via playwright-core) against a real hub: a valve falls silent,
// its offline alarm shows on the alarms page and in the header's count on every page; an operator acknowledges it
// with a note in the browser (the page and the API say acknowledged, by whom, with the note); the valve talks again
// and the alarm is cleared, in the history. A viewer sees the alarm but no buttons. Screenshots go to
// test-artifacts/dashboard/.
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
const NOTE = 'radio checked, battery on order';

interface AlarmView {
  readonly id: string;
  readonly kind: string;
  readonly subject: string;
  readonly state: string;
  readonly note?: string;
  readonly acknowledgedBy?: string;
  readonly clearedBy?: string;
}

async function setup(t: TestContext) {
  const d = tempDir();
  t.after(() => d.cleanup());
  const s = SqliteDeviceStore.open(registryPath(d.path), { types: new DeviceTypes() });
  // A short threshold, so the valve's offline alarm is raised within the test.
  await s.create({ id: VALVE, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, description: 'big radiator', thresholds: { maxSilentMs: 2000 } });
  await s.setCredentials(VALVE, { username: VALVE, hash: await hashPassword(PASSWORD), passwordIssued: true });
  await s.close();
  const port = await freePort();
  let admin = '';
  const config = buildConfig(
    {
      data: d.path,
      devices: { unknown: 'drop', refreshMs: 200 },
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
  const base = hub.apiUrl() ?? '';
  const api = async <T>(path: string, token = admin): Promise<T> => {
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, `GET ${path}`);
    return (await r.json()) as T;
  };
  const token = async (role: 'viewer' | 'operator', name: string) => {
    const r = await fetch(`${base}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, role }),
    });
    return ((await r.json()) as { token: string }).token;
  };
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: VALVE, password: PASSWORD });
  t.after(() => device.endAsync(true));
  const say = () => device.publishAsync('u4/302/valve/data', JSON.stringify({ device: VALVE, temperature: 19.5, battery: 3.1 }), { qos: 1 });
  return { base, api, token, say };
}

const launch = (t: TestContext) => launchChromium(t);

const login = (page: Page, base: string, token: string) => loginWithToken(page, base, token, VALVE);

const shot = (page: Page, name: string) => screenshotTo(ARTIFACTS, page, name);

const skip = chromiumSkip();

test('dashboard alarms: a silent valve\'s alarm in the list and the header, acknowledged with a note in the browser, cleared when it talks again; a viewer gets no buttons', { skip, timeout: 120_000 }, async (t) => {
  const { base, api, token, say } = await setup(t);
  const operator = await token('operator', 'olga');
  const viewer = await token('viewer', 'victor');
  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => assert.fail(`the page threw: ${e.message}`));
  // Heard from every 300 ms until the page shows no alarm, then silent.
  const talking = setInterval(() => void say().catch(() => undefined), 300);
  const badge = page.getByTestId('alarm-count');
  try {
    await say();
    await login(page, base, operator);
    await until(async () => (await badge.textContent())?.includes('no alarms') === true, { what: 'the header says no alarms while the valve talks' });
  } finally {
    clearInterval(talking);
  }

  // Silent past its 2 s threshold: the offline alarm is raised, and the header of the page on screen counts it.
  await until(async () => (await api<{ items: AlarmView[] }>('/api/v1/alarms?state=open')).items.some((a) => a.kind === 'offline' && a.subject === VALVE), { what: 'the offline alarm raised', timeoutMs: 20_000 });
  await until(async () => (await badge.textContent())?.trim() === '1 open', { what: 'the devices page header counts 1 open alarm', timeoutMs: 15_000 });
  assert.equal(await badge.getAttribute('data-raised'), '1');
  assert.match((await badge.getAttribute('class')) ?? '', /tone-bad/, 'red while unacknowledged');

  // The alarms page: the open alarm with its kind, subject (a link to the device page) and state.
  await badge.click();
  const alarm = page.getByTestId('alarm').filter({ has: page.locator(`[data-testid="alarm-subject"]`, { hasText: VALVE }) });
  await alarm.waitFor({ timeout: 10_000 });
  assert.equal(await alarm.getAttribute('data-state'), 'raised');
  assert.equal(await alarm.getAttribute('data-kind'), 'offline');
  assert.match((await alarm.textContent()) ?? '', /Offline/);
  assert.equal(await alarm.getByTestId('alarm-subject').getAttribute('href'), `#/devices/${VALVE}`);
  await shot(page, '10-alarms-raised');

  // Acknowledged with a note, in the browser.
  await alarm.getByTestId('alarm-note-input').fill(NOTE);
  await alarm.getByTestId('alarm-ack-button').click();
  await until(async () => (await alarm.getAttribute('data-state')) === 'acknowledged', { what: 'the page shows the alarm acknowledged' });
  assert.equal((await alarm.getByTestId('alarm-note').textContent())?.includes(NOTE), true);
  assert.match((await alarm.getByTestId('alarm-ack').textContent()) ?? '', /acknowledged by olga/);
  const [acked] = (await api<{ items: AlarmView[] }>(`/api/v1/alarms?state=open&subject=${VALVE}`)).items;
  assert.equal(acked?.state, 'acknowledged', 'and the API says so');
  assert.equal(acked?.note, NOTE);
  assert.equal(acked?.acknowledgedBy, 'api:olga', 'the token named olga');
  await until(async () => (await badge.getAttribute('data-raised')) === '0' && (await badge.textContent())?.trim() === '1 open', { what: 'the header: 1 open, none unacknowledged' });
  assert.match((await badge.getAttribute('class')) ?? '', /tone-warn/, 'amber once acknowledged');
  assert.equal(await alarm.getByTestId('alarm-ack-button').count(), 0, 'no second acknowledge');
  await shot(page, '11-alarms-acknowledged');

  // A viewer sees the alarm, without buttons.
  const vpage = await browser.newPage({ viewport: { width: 375, height: 800 } });
  await login(vpage, base, viewer);
  await vpage.goto(`${base}/#/alarms`);
  const valarm = vpage.getByTestId('alarm').first();
  await valarm.waitFor({ timeout: 10_000 });
  assert.equal(await valarm.getAttribute('data-state'), 'acknowledged');
  for (const id of ['alarm-ack-button', 'alarm-clear-button', 'alarm-note-input']) assert.equal(await vpage.getByTestId(id).count(), 0, `${id} is not offered to a viewer`);
  await shot(vpage, '12-alarms-viewer-phone');
  const overflow = Number(await vpage.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'));
  assert.ok(overflow <= 1, `no sideways scrolling at 375 px (overflow ${overflow} px)`);
  await vpage.close();

  // The valve talks again (and keeps talking, or its 2 s threshold would raise a new alarm): the alarm clears by
  // itself and moves to the history.
  const again = setInterval(() => void say().catch(() => undefined), 300);
  t.after(() => clearInterval(again));
  await say();
  await until(async () => (await api<{ items: AlarmView[] }>(`/api/v1/alarms?state=cleared&subject=${VALVE}`)).items.length === 1, { what: 'the alarm cleared in the API', timeoutMs: 15_000 });
  const cleared = page.getByTestId('cleared-alarm').filter({ hasText: VALVE });
  await cleared.waitFor({ timeout: 15_000 });
  assert.match((await cleared.textContent()) ?? '', /Offline/);
  assert.match((await cleared.textContent()) ?? '', /olga/, 'who acknowledged it, kept in the history');
  await until(async () => (await page.getByTestId('alarm').count()) === 0, { what: 'no open alarm left on the page' });
  await until(async () => (await badge.textContent())?.trim() === 'no alarms', { what: 'the header: no alarms' });
  const [done] = (await api<{ items: AlarmView[] }>(`/api/v1/alarms?state=cleared&subject=${VALVE}`)).items;
  assert.equal(done?.clearedBy, 'condition');
  await shot(page, '13-alarms-cleared-history');
});

#!/usr/bin/env node
// `npm run screenshots`: every dashboard page at 1280 and 375 px wide, from the real demo, into docs/screenshots/.
// Starts `backhaul demo` (built: run `npm run build` first) on free ports with a throw-away data folder, waits for its
// scripted trouble (src/cli/demo.ts: a valve silent from 30 s, a low battery from 45 s), acknowledges the offline alarm
// with a note as an operator would, waits until that valve talks again (its alarm cleared, in the history) while the
// battery alarm is still open, then drives Debian's Chromium (playwright-core, /usr/bin/chromium) through the pages.
// About two minutes. Look at the pictures: they are what a newcomer sees.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';
/* global fetch, document */

const OUT = join(process.cwd(), 'docs', 'screenshots');
const WIDTHS = [1280, 375];
const CHROMIUM = '/usr/bin/chromium';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

async function until(what, predicate, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(500);
  }
}

const data = mkdtempSync(join(tmpdir(), 'backhaul-screenshots-'));
const [mqttPort, apiPort] = [await freePort(), await freePort()];
const demo = spawn(process.execPath, ['bin/backhaul.js', 'demo', '--data', data, '--port', String(mqttPort), '--api-port', String(apiPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
demo.stdout.on('data', (b) => (out += b.toString()));
let browser;
try {
  await until('the demo to print its token', () => /API token \(admin\):\s+(bh_\S+)/.test(out), 30_000);
  const token = /API token \(admin\):\s+(bh_\S+)/.exec(out)[1];
  const base = `http://127.0.0.1:${apiPort}`;
  const api = async (method, path, body) => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return r.json();
  };
  const alarms = async (q) => (await api('GET', `/api/v1/alarms?${q}`)).items;
  console.log('screenshots: waiting for the demo\'s scripted alarms (about 50 s)…');
  await until('the offline and battery_low alarms', async () => {
    const open = await alarms('state=open');
    return open.some((a) => a.kind === 'offline') && open.some((a) => a.kind === 'battery_low');
  }, 120_000);
  const offline = (await alarms('state=open&kind=offline'))[0];
  await api('POST', `/api/v1/alarms/${offline.id}/ack`, { note: 'checked the radio, it was moved' });
  console.log('screenshots: offline alarm acknowledged; waiting for the valve to talk again (about 40 s)…');
  await until('the offline alarm cleared', async () => (await alarms('state=cleared&kind=offline')).length > 0, 120_000);
  const lowDevice = (await alarms('state=open&kind=battery_low'))[0]?.subject;

  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  // The alarms page first, both widths at once: the battery alarm clears about 15 s after the offline one.
  const pages = [
    ['alarms', '#/alarms', '[data-testid="alarm"]'],
    ['device', `#/devices/${encodeURIComponent(lowDevice ?? '')}`, 'figure.chart svg'],
    ['devices', '#/devices', '[data-testid="device-list"]'],
    ['events', '#/events', '[data-testid="event"]'],
    ['sinks', '#/sinks', 'main h1'],
  ];
  const tabs = [];
  for (const width of WIDTHS) {
    const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`screenshots: the page threw: ${e.message}`));
    await page.goto(`${base}/`);
    await page.getByTestId('token').waitFor();
    await page.screenshot({ path: join(OUT, `login-${width}.png`) });
    await page.getByTestId('token').fill(token);
    await page.getByTestId('login').click();
    await page.getByTestId('alarm-count').waitFor();
    tabs.push({ width, page });
  }
  for (const [name, hash, ready] of pages) {
    await Promise.all(
      tabs.map(async ({ width, page }) => {
        await page.goto(`${base}/${hash}`);
        await page.locator(ready).first().waitFor({ timeout: 20_000 });
        await page.waitForTimeout(1500); // the polled parts (latest values, charts) settle
        await page.screenshot({ path: join(OUT, `${name}-${width}.png`), fullPage: true });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        if (overflow > 1) console.error(`screenshots: ${name} at ${width} px scrolls sideways by ${overflow} px`);
      }),
    );
  }
  console.log(`screenshots: ${WIDTHS.length * (pages.length + 1)} files in ${OUT}`);
} finally {
  await browser?.close();
  demo.kill('SIGINT');
  await new Promise((r) => demo.once('exit', r));
  rmSync(data, { recursive: true, force: true });
}

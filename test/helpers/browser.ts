// The dashboard tests' browser: Debian's Chromium driven by playwright-core, logged in the way a person does it.
import type { TestContext } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM } from './services.js';

/** A headless Chromium, closed when the test ends. */
export async function launchChromium(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.after(() => browser.close());
  return browser;
}

/** Log in with an API token, then wait until the device list shows `device`. */
export async function loginWithToken(page: Page, base: string, token: string, device: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByTestId('token').fill(token);
  await page.getByTestId('login').click();
  await page.getByTestId(`device-${device}`).waitFor({ timeout: 15_000 });
}

/** A full-page screenshot into `dir` (test-artifacts/…): the evidence a person looks at. */
export function screenshotTo(dir: string, page: Page, name: string): Promise<Buffer> {
  mkdirSync(dir, { recursive: true });
  return page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

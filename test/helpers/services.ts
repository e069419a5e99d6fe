// External services (Mosquitto, PostgreSQL, ...). On a newcomer's machine without them the test skips with a message
// naming the service; in CI (`BACKHAUL_REQUIRE_SERVICES=1`) a missing service fails the run.
import { accessSync, constants } from 'node:fs';
import { createConnection } from 'node:net';

export const requireServices = process.env['BACKHAUL_REQUIRE_SERVICES'] === '1';

export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export const MOSQUITTO = { host: '127.0.0.1', port: 1883, url: 'mqtt://127.0.0.1:1883', name: 'Mosquitto on 127.0.0.1:1883' };

const POSTGRES_URL = process.env['BACKHAUL_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const postgresAt = new URL(POSTGRES_URL);

/**
 * PostgreSQL with a database `test` the user `postgres` may use without a password (trust auth), as the machines
 * have it; BACKHAUL_TEST_POSTGRES_URL points the tests at another (its host and port are what serviceSkip checks).
 */
export const POSTGRES = {
  host: postgresAt.hostname || '127.0.0.1',
  port: Number(postgresAt.port || 5432),
  url: POSTGRES_URL,
  name: `PostgreSQL on ${postgresAt.hostname || '127.0.0.1'}:${postgresAt.port || 5432}`,
};

/**
 * Returns `false` when the test should run, or a skip message. Throws when the service is required (CI).
 * Use: `const skip = await serviceSkip(MOSQUITTO); test('...', { skip }, ...)` or `if (skip) return t.skip(skip)`.
 */
export async function serviceSkip(svc: { host: string; port: number; name: string }): Promise<string | false> {
  if (await tcpReachable(svc.host, svc.port)) return false;
  if (requireServices) throw new Error(`${svc.name} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not reachable`);
  return `needs ${svc.name}; start it or set BACKHAUL_REQUIRE_SERVICES=1 in CI`;
}

/** Debian's Chromium, which the dashboard's browser tests drive with playwright-core (`apt-get install -y chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/** Like serviceSkip, for the browser. */
export function chromiumSkip(): string | false {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return false;
  } catch {
    if (requireServices) throw new Error(`Chromium at ${CHROMIUM} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not there`);
    return `needs Debian's Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
  }
}

/** Prometheus's promtool (Debian's `prometheus` package), which checks the /metrics exposition. */
export const PROMTOOL = '/usr/bin/promtool';

/** Like chromiumSkip, for promtool. */
export function promtoolSkip(): string | false {
  try {
    accessSync(PROMTOOL, constants.X_OK);
    return false;
  } catch {
    if (requireServices) throw new Error(`promtool at ${PROMTOOL} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not there`);
    return `needs promtool at ${PROMTOOL} (apt-get install -y prometheus)`;
  }
}

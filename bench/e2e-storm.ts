// Setup of the reconnect storm of the end-to-end benchmark (bench/e2e.ts): N devices in a fresh registry, each with
// its own generated password, hashed as `backhaul devices add` / `reset-credentials` and the bootstrap call hash them
// (generatePassword, then the store's own `logins.hash`; src/devices/provision.ts), so the storm measures the logins
// real devices make. The registry is written fresh each time, straight through SqliteDeviceStore (one transaction for
// the devices, then one per login), not through N CLI processes.
// Not a test: nothing here asserts anything.
import { mkdirSync } from 'node:fs';
import { generatePassword } from '../src/devices/credentials.js';
import { DeviceTypes } from '../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../src/devices/store/index.js';
import type { DeviceInput } from '../src/devices/store/devices.js';
import { nowMs, type SimDevice } from './e2e-lib.js';

export interface StormSetup {
  readonly devices: SimDevice[];
  /** The hash scheme of the stored logins (what every login is verified against). */
  readonly scheme: string;
  /** Passwords hashed in this run, and how long that took. */
  readonly hashedNow: number;
  readonly hashMs: number;
  readonly fromCache: number;
  readonly cacheFile: string;
  /** Writing the registry: the devices, then their logins. */
  readonly registryMs: number;
}

/** The scheme part of a stored hash: `$hmac-sha256`, `$scrypt`. */
function schemeOf(hash: string): string {
  return hash.split('$').slice(0, 2).join('$');
}

/**
 * A registry of `n` opentrv valves (ids 1000, 1001, … in hex, one room each: b1/r<i>, so each publishes under its own
 * base topic) in `dataDir`, each with its own login (username = id, its own password).
 */
export async function stormRegistry(dataDir: string, n: number, _log: (s: string) => void): Promise<StormSetup> {
  const passwords = Array.from({ length: n }, () => generatePassword());
  const devices: SimDevice[] = passwords.map((password, i) => {
    const id = (0x1000 + i).toString(16);
    return { id, topic: `b1/r${i}/valve/frame`, username: id, password };
  });
  const t = nowMs();
  mkdirSync(dataDir, { recursive: true });
  const store = SqliteDeviceStore.open(registryPath(dataDir), { types: new DeviceTypes(), synchronous: 'NORMAL' });
  let scheme = '';
  let hashMs = 0;
  try {
    const inputs: DeviceInput[] = devices.map((d, i) => ({ id: d.id, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'b1', room: `r${i}` } }));
    const outcomes = await store.upsertMany(inputs);
    const bad = outcomes.find((o) => 'error' in o);
    if (bad && 'error' in bad) throw bad.error;
    const h = nowMs();
    const hashes = passwords.map((pw) => store.logins.hash(pw));
    hashMs = nowMs() - h;
    scheme = schemeOf(hashes[0] ?? '');
    for (const [i, d] of devices.entries()) await store.setCredentials(d.id, { username: d.id, hash: hashes[i]!, passwordIssued: true });
  } finally {
    await store.close();
  }
  return {
    devices,
    scheme,
    hashedNow: n,
    hashMs: Math.round(hashMs),
    fromCache: 0,
    cacheFile: '',
    registryMs: Math.round(nowMs() - t - hashMs),
  };
}

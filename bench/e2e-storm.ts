// Setup of the reconnect storm of the end-to-end benchmark (bench/e2e.ts): N devices in a fresh registry, each with
// its own generated password, as `backhaul devices add` / `reset-credentials` and the bootstrap call give them
// (generatePassword, then hashPassword at the default cost; src/devices/provision.ts).
//
// Hashing 10,000 passwords at the default cost takes minutes of CPU, so the pairs (password, hash) are kept in
// bench/.cache/storm/ and reused by later runs; the file is named after the hash scheme (`$scrypt$ln=14,r=8,p=1`),
// so a change of the default hash makes new ones. The registry itself is written fresh each time, straight through
// SqliteDeviceStore (one transaction for the devices, then one per login), not through N CLI processes.
// Not a test: nothing here asserts anything.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePassword, hashPassword } from '../src/devices/credentials.js';
import { DeviceTypes } from '../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore, type DeviceInput } from '../src/devices/registry.js';
import { nowMs, ROOT, type SimDevice } from './e2e-lib.js';

interface CacheFile {
  readonly scheme: string;
  /** [password, hash] pairs; device i gets pair i. */
  readonly pairs: Array<[string, string]>;
}

export interface StormSetup {
  readonly devices: SimDevice[];
  /** The hash scheme of the stored logins (what every login is verified against). */
  readonly scheme: string;
  /** Passwords hashed in this run, and how long that took (0 when all came from the cache). */
  readonly hashedNow: number;
  readonly hashMs: number;
  readonly fromCache: number;
  readonly cacheFile: string;
  /** Writing the registry: the devices, then their logins. */
  readonly registryMs: number;
}

/** The scheme part of a hash: `$scrypt$ln=14,r=8,p=1`. */
function schemeOf(hash: string): string {
  return hash.split('$').slice(0, 3).join('$');
}

/** `n` (password, hash) pairs at the default hash cost, from the cache where it has them, the rest made now. */
async function credentials(n: number, log: (s: string) => void): Promise<{ pairs: Array<[string, string]>; scheme: string; hashedNow: number; hashMs: number; file: string }> {
  const scheme = schemeOf(await hashPassword(generatePassword()));
  const dir = join(ROOT, 'bench', '.cache', 'storm');
  const file = join(dir, `credentials-${createHash('sha256').update(scheme).digest('hex').slice(0, 12)}.json`);
  let pairs: Array<[string, string]> = [];
  if (existsSync(file)) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
      if (c.scheme === scheme && Array.isArray(c.pairs)) pairs = c.pairs.filter((p) => schemeOf(p[1]) === scheme);
    } catch {
      pairs = []; // a damaged cache is made again
    }
  }
  const missing = Math.max(0, n - pairs.length);
  const t = nowMs();
  if (missing > 0) {
    log(`  hashing ${missing.toLocaleString('en-US')} new device passwords (${scheme}; kept in ${file} for later runs)…`);
    // Eight at a time: enough to keep libuv's thread pool (4 threads) busy, few enough to show progress.
    let last = nowMs();
    for (let made = 0; made < missing; ) {
      const batch = Math.min(8, missing - made);
      const got = await Promise.all(
        Array.from({ length: batch }, async () => {
          const pw = generatePassword();
          return [pw, await hashPassword(pw)] as [string, string];
        }),
      );
      pairs.push(...got);
      made += batch;
      if (nowMs() - last > 15_000) {
        last = nowMs();
        log(`    ${made.toLocaleString('en-US')} of ${missing.toLocaleString('en-US')}`);
      }
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, JSON.stringify({ scheme, pairs } satisfies CacheFile), { mode: 0o600 });
  }
  return { pairs: pairs.slice(0, n), scheme, hashedNow: missing, hashMs: Math.round(nowMs() - t), file };
}

/**
 * A registry of `n` opentrv valves (ids 1000, 1001, … in hex, one room each: b1/r<i>, so each publishes under its own
 * base topic) in `dataDir`, each with its own login (username = id, its own password).
 */
export async function stormRegistry(dataDir: string, n: number, log: (s: string) => void): Promise<StormSetup> {
  const c = await credentials(n, log);
  const devices: SimDevice[] = c.pairs.map(([password], i) => {
    const id = (0x1000 + i).toString(16);
    return { id, topic: `b1/r${i}/valve/frame`, username: id, password };
  });
  const t = nowMs();
  mkdirSync(dataDir, { recursive: true });
  const store = SqliteDeviceStore.open(registryPath(dataDir), { types: new DeviceTypes(), synchronous: 'NORMAL' });
  try {
    const inputs: DeviceInput[] = devices.map((d, i) => ({ id: d.id, kind: 'opentrv', type: 'opentrv-valve', location: { building: 'b1', room: `r${i}` } }));
    const outcomes = await store.upsertMany(inputs);
    const bad = outcomes.find((o) => 'error' in o);
    if (bad && 'error' in bad) throw bad.error;
    for (const [i, d] of devices.entries()) await store.setCredentials(d.id, { username: d.id, hash: c.pairs[i]![1], passwordIssued: true });
  } finally {
    await store.close();
  }
  return {
    devices,
    scheme: c.scheme,
    hashedNow: c.hashedNow,
    hashMs: c.hashMs,
    fromCache: n - c.hashedNow,
    cacheFile: c.file,
    registryMs: Math.round(nowMs() - t),
  };
}

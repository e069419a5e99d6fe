// The CLI's side of brokerSync: `devices add` and `reset-credentials` run in their own process on the registry file,
// so they give the password they just made to the external Mosquitto themselves (Backhaul keeps only its hash, so
// nobody could later), and every command that changed the registry runs a full resync, so a disabled device is cut
// off now rather than at the running instance's next look. Only when the config has `brokerSync`; the whole config
// is loaded then (for its secrets), and only then.
import { readFileSync } from 'node:fs';
import { parse as parseJsonc } from 'jsonc-parser';
import { silentLogger } from '../../core/logger.js';
import { systemClock } from '../../core/clock.js';
import type { DeviceStore } from '../../devices/store/index.js';
import { findDevice } from '../../devices/store/rules.js';
import type { TopicScheme } from '../../devices/topics.js';
import type { Device } from '../../devices/types.js';
import { loadConfigFile } from '../../runtime/config.js';
import { BrokerSync, type SyncReport } from '../../runtime/dynsec.js';
import { builtinRegistry } from '../../runtime/registry.js';

export interface CliBroker {
  /** True when the config has `brokerSync`. */
  readonly configured: boolean;
  passwordIssued(d: Device, password: string): Promise<void>;
  resync(): Promise<SyncReport>;
  close(): Promise<void>;
}

export function cliBroker(configFile: string | undefined, store: DeviceStore, scheme: TopicScheme): CliBroker {
  let configured = false;
  if (configFile !== undefined) {
    try {
      const raw = parseJsonc(readFileSync(configFile, 'utf8'), [], { allowTrailingComma: true }) as { brokerSync?: unknown } | undefined;
      configured = raw?.brokerSync !== undefined;
    } catch {
      configured = false; // the caller reports an unreadable config
    }
  }
  let sync: Promise<BrokerSync> | undefined;
  const open = (): Promise<BrokerSync> =>
    (sync ??= (async () => {
      const config = loadConfigFile(configFile!, { registry: builtinRegistry() });
      const passwords = new Map<string, string>();
      for (const dd of config.devices.declared) {
        if (typeof dd.password !== 'string') continue;
        const d = await findDevice(store, dd.id, dd.kind).catch(() => undefined);
        if (d?.credentials) passwords.set(d.credentials.username, dd.password);
      }
      const s = new BrokerSync({ config: config.brokerSync!, store, scheme, logger: silentLogger(), clock: systemClock, refreshMs: 0, passwords });
      await s.open();
      return s;
    })());
  return {
    configured,
    passwordIssued: async (d, password) => {
      if (configured) await (await open()).passwordIssued(d, password);
    },
    resync: async () => (await open()).resync(),
    close: async () => {
      if (sync) await (await sync.catch(() => undefined))?.stop();
    },
  };
}

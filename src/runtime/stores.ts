// The device registry the config's `store` names: SQLite in the data folder (the default) or a shared PostgreSQL.
// Used by the hub and by the CLI commands that work on the registry, so both open the same one.
import type { Clock } from '../core/clock.js';
import type { StoreConfig } from '../core/config/store.js';
import type { DeviceTypes } from '../devices/device-types.js';
import { registryPath, SqliteDeviceStore, type DeviceStore } from '../devices/store/index.js';
import { PostgresDeviceStore } from '../devices/store/postgres.js';

export async function openDeviceStore(store: StoreConfig, dataDir: string, opts: { readonly types: DeviceTypes; readonly clock?: Clock }): Promise<DeviceStore> {
  if (store.type === 'postgres' && store.url !== undefined) {
    return PostgresDeviceStore.open({
      url: store.url,
      schema: store.schema,
      types: opts.types,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(store.password !== undefined ? { password: store.password } : {}),
    });
  }
  return SqliteDeviceStore.open(registryPath(dataDir), { types: opts.types, ...(opts.clock ? { clock: opts.clock } : {}) });
}

// The device registry and the API tokens the config's `store` names: SQLite in the data folder (the default) or a
// shared PostgreSQL. Used by the hub and by the CLI commands that work on them, so both open the same ones.
import type { Clock } from '../core/clock.js';
import type { StoreConfig } from '../core/config/store.js';
import type { DeviceTypes } from '../devices/device-types.js';
import { registryPath, SqliteDeviceStore, type DeviceStore } from '../devices/store/index.js';
import { PostgresDeviceStore } from '../devices/store/postgres.js';
import { SqliteTokenStore, tokensPath, type TokenStore } from '../api/tokens.js';
import { PostgresTokenStore } from '../api/tokens-postgres.js';

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

/** The API tokens: `<data>/tokens.sqlite` (the default), or the `api_tokens` table of the PostgreSQL `store`. */
export async function openTokenStore(store: StoreConfig, dataDir: string, opts: { readonly clock?: Clock } = {}): Promise<TokenStore> {
  if (store.type === 'postgres' && store.url !== undefined) {
    return PostgresTokenStore.open({
      url: store.url,
      schema: store.schema,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(store.password !== undefined ? { password: store.password } : {}),
    });
  }
  return SqliteTokenStore.open(tokensPath(dataDir), { ...(opts.clock ? { clock: opts.clock } : {}) });
}

// Devices declared in the config file (`devices.declared`), for small sites that keep everything in one file. They
// are checked when the config loads (so `backhaul check` reports a bad one with its path), and at start the registry
// is made to hold exactly them as read-only entries (replaceConfigDevices). Passwords come from secrets; only their
// scrypt hash is stored, and a stored hash that still matches is kept, so a restart changes nothing.
import type { Static } from '@sinclair/typebox';
import { BackhaulError } from '../core/errors.js';
import type { DeclaredDevice } from '../core/config/schema.js';
import { durationMs } from '../core/duration.js';
import { hashPassword, verifyPassword } from './credentials.js';
import type { DeviceTypes } from './device-types.js';
import type { DeviceStore } from './store/index.js';
import { identify, planDevice } from './store/rules.js';
import type { ConfigDeviceInput, ConfigSyncResult, DeviceInput } from './store/devices.js';

/** A declared device with its secrets resolved (the password is the password itself). */
export type DeclaredDeviceConfig = Omit<Static<typeof DeclaredDevice>, 'password'> & { readonly password?: string };

const DURATION = /^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$/;

/** The registry input for a declared device (without credentials). Throws BackhaulErrors with paths inside it. */
export function declaredInput(d: DeclaredDeviceConfig): DeviceInput {
  if (d.maxSilent !== undefined && !DURATION.test(d.maxSilent)) {
    throw new BackhaulError('BH_CONFIG_SCHEMA', `${JSON.stringify(d.maxSilent)} is not a duration: write e.g. "30m", "2h", "1d"`, { path: 'maxSilent' });
  }
  const location = {
    ...(d.site !== undefined ? { site: d.site } : {}),
    ...(d.building !== undefined ? { building: d.building } : {}),
    ...(d.room !== undefined ? { room: d.room } : {}),
  };
  return {
    id: d.id,
    ...(d.kind !== undefined ? { kind: d.kind } : {}),
    type: d.type,
    location,
    description: d.description ?? '',
    tags: d.tags ?? [],
    enabled: d.enabled ?? true,
    thresholds: {
      maxSilentMs: d.maxSilent !== undefined ? durationMs(d.maxSilent) : null,
      batteryFloor: d.batteryFloor ?? null,
    },
    config: d.config ?? {},
  };
}

/** Every problem with the declared devices, with paths from `base` (`devices.declared`): for config load. */
/** `skip(i)`: entries the config schema already found malformed, not looked at again. */
export function declaredProblems(
  list: readonly DeclaredDeviceConfig[],
  types: DeviceTypes,
  base: string,
  skip: (index: number) => boolean = () => false,
): BackhaulError[] {
  const errs: BackhaulError[] = [];
  const ids = new Map<string, number>();
  const usernames = new Map<string, number>();
  list.forEach((d, i) => {
    if (skip(i)) return;
    const at = (e: unknown) => {
      if (e instanceof BackhaulError) errs.push(new BackhaulError(e.code, e.detail, { path: `${base}[${i}]${e.path ? `.${e.path}` : ''}` }));
      else throw e;
    };
    try {
      const input = declaredInput(d);
      const { id, kind } = identify(input);
      planDevice(undefined, id, kind, input, types, 0);
      const twice = ids.get(id);
      if (twice !== undefined) throw new BackhaulError('BH_DEVICE_EXISTS', `device ${id} is declared twice (also at ${base}[${twice}])`, { path: 'id' });
      ids.set(id, i);
      if (d.username !== undefined && d.password === undefined) {
        throw new BackhaulError('BH_CONFIG_SCHEMA', 'a username without a password: give `password` (a secret), or leave both out', { path: 'password' });
      }
      const username = d.username ?? (d.password !== undefined ? id : undefined);
      if (username !== undefined) {
        const other = usernames.get(username);
        if (other !== undefined) throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${username} is also used at ${base}[${other}]`, { path: 'username' });
        usernames.set(username, i);
      }
    } catch (e) {
      at(e);
    }
  });
  return errs;
}

/**
 * Make the registry's config devices exactly `list`. A device whose stored hash still matches its password keeps
 * that hash (hashing again would change it at every start, and invalidate nothing).
 */
export async function syncDeclared(store: DeviceStore, list: readonly DeclaredDeviceConfig[]): Promise<ConfigSyncResult> {
  const inputs: ConfigDeviceInput[] = [];
  for (const d of list) {
    const input = declaredInput(d);
    if (d.password === undefined) {
      inputs.push(input);
      continue;
    }
    const { id } = identify(input);
    const username = d.username ?? id;
    const existing = await store.get(id);
    const old = existing?.source === 'config' && existing.credentials?.username === username ? existing.credentials.hash : undefined;
    const hash = old !== undefined && (await verifyPassword(d.password, old)) ? old : await hashPassword(d.password);
    inputs.push({ ...input, credentials: { username, hash } });
  }
  return store.replaceConfigDevices(inputs);
}

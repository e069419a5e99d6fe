// Adding a device, resetting its login and opening its claim window, shared by the CLI and the REST API: the same
// rules, the same audit entries.
import { BackhaulError } from '../core/errors.js';
import { durationMs } from '../core/duration.js';
import { generatePassword, hashPassword } from './credentials.js';
import type { DeviceStore } from './store/index.js';
import type { DeviceInput } from './store/devices.js';
import type { Device } from './types.js';

export interface Issued {
  readonly device: Device;
  readonly username: string;
  /** The new password, to show once; absent when the device's next bootstrap call is to receive it. */
  readonly password?: string;
}

/** Create a device with a login: a password now, or (`bootstrap`) one left for its first bootstrap call. Audited. */
export async function addDevice(store: DeviceStore, input: DeviceInput, o: { readonly bootstrap: boolean; readonly actor: string }): Promise<Issued> {
  const created = await store.create(input);
  let password: string | undefined;
  if (o.bootstrap) {
    await store.resetCredentials(created.id);
  } else {
    password = generatePassword();
    await store.setCredentials(created.id, { username: created.id, hash: store.logins.hash(password), passwordIssued: true });
  }
  const device = (await store.get(created.id)) ?? created;
  await store.appendAudit({ actor: o.actor, action: 'device.add', device: device.id, detail: { type: device.type, bootstrap: o.bootstrap }, result: 'ok' });
  return { device, username: device.credentials?.username ?? device.id, ...(password !== undefined ? { password } : {}) };
}

/**
 * A new login for a device: the old password stops working at once. With `bootstrap`, no password is made here; the
 * device's next bootstrap call receives one. Config-declared devices are refused (BH_DEVICE_READ_ONLY). Audited.
 */
export async function resetDeviceCredentials(store: DeviceStore, d: Device, o: { readonly bootstrap: boolean; readonly actor: string }): Promise<Issued> {
  const username = d.credentials?.username ?? d.id;
  if (o.bootstrap || d.source === 'config') await store.resetCredentials(d.id); // throws BH_DEVICE_READ_ONLY for config devices
  let password: string | undefined;
  if (!o.bootstrap) {
    password = generatePassword();
    await store.setCredentials(d.id, { username, hash: store.logins.hash(password), passwordIssued: true });
  }
  await store.appendAudit({ actor: o.actor, action: 'credentials.reset', device: d.id, detail: { bootstrap: o.bootstrap }, result: 'ok' });
  const device = (await store.get(d.id)) ?? d;
  return { device, username, ...(password !== undefined ? { password } : {}) };
}

/** How long a claim window stays open unless told otherwise, and the longest one may be. */
export const CLAIM_WINDOW_DEFAULT_MS = 30 * 60_000;
export const CLAIM_WINDOW_MAX_MS = 30 * 24 * 60 * 60_000;

/** A claim window's length: a duration (`30m`, `2h`, `1d`) or ms; BH_DEVICE_FIELD at `path` when it is not one. */
export function claimWindowMs(v: string | number | undefined, path = 'for'): number {
  if (v === undefined) return CLAIM_WINDOW_DEFAULT_MS;
  let ms: number;
  try {
    ms = typeof v === 'number' ? v : durationMs(v);
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms < 1000 || ms > CLAIM_WINDOW_MAX_MS) {
    throw new BackhaulError('BH_DEVICE_FIELD', `${JSON.stringify(v)} is not a claim window from 1s to 30d: write e.g. "30m", "2h", "1d"`, { path });
  }
  return Math.round(ms);
}

export interface ClaimWindow {
  readonly devices: readonly string[];
  /** When the windows close (ms). */
  readonly until: number;
}

/**
 * Open the claim window of devices (or every one whose password is still pending) for `forMs`: until then, a
 * bootstrap call for one of them (with its claim code, when it has one) receives its first password. Audited per
 * device as `claim.open`.
 */
export async function openClaimWindows(
  store: DeviceStore,
  target: readonly Device[] | 'unclaimed',
  o: { readonly forMs: number; readonly actor: string; readonly now: number; readonly via?: string },
): Promise<ClaimWindow> {
  const until = o.now + o.forMs;
  const devices = await store.openClaimWindows(target === 'unclaimed' ? 'unclaimed' : target.map((d) => d.id), until);
  if (devices.length > 0) {
    await store.appendAuditMany(
      devices.map((id) => ({
        actor: o.actor,
        action: 'claim.open',
        device: id,
        detail: { until, forMs: o.forMs, ...(o.via !== undefined ? { via: o.via } : {}) },
        result: 'ok',
      })),
    );
  }
  return { devices, until };
}

/** Close claim windows (these devices, or every open one). Audited per device as `claim.close`. */
export async function closeClaimWindows(store: DeviceStore, target: readonly Device[] | 'all', o: { readonly actor: string }): Promise<readonly string[]> {
  const devices = await store.closeClaimWindows(target === 'all' ? 'all' : target.map((d) => d.id));
  if (devices.length > 0) await store.appendAuditMany(devices.map((id) => ({ actor: o.actor, action: 'claim.close', device: id, result: 'ok' })));
  return devices;
}

/** Claim codes as printed on labels: 4 to 128 printable characters, compared exactly after trimming. */
export function checkClaimCode(code: string, path = 'claimCode'): string {
  const c = code.trim();
  if (!/^[\x21-\x7e]{4,128}$/.test(c)) {
    throw new BackhaulError('BH_DEVICE_FIELD', 'a claim code is 4 to 128 printable characters without spaces', { path });
  }
  return c;
}

/**
 * Set (or, with an empty code, remove) the claim code a device must give with its bootstrap call; only its scrypt hash
 * is kept, and the audit entry (`claim.code`) never holds the code.
 */
export async function setClaimCode(store: DeviceStore, d: Device, code: string, o: { readonly actor: string }): Promise<Device> {
  const c = code.trim();
  const after = await store.setClaimCode(d.id, c === '' ? undefined : await hashPassword(checkClaimCode(c)));
  await store.appendAudit({ actor: o.actor, action: 'claim.code', device: d.id, detail: { set: c !== '' }, result: 'ok' });
  return after;
}

// Adding a device and resetting its login, shared by the CLI and the REST API: the same rules, the same audit entries.
import { generatePassword } from './credentials.js';
import type { DeviceInput, DeviceStore } from './registry.js';
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

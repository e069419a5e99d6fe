// Mosquitto's dynamic-security plugin as the registry wants it: what each device's client and role should be, and the
// commands that take the broker's current state there. Pure: no MQTT here (src/runtime/dynsec.ts sends the commands),
// so the plan can be checked against any state.
//
// Each device with a login gets a client named by its username, holding one role `<prefix><username>` whose ACLs are
// the embedded broker's (topics.ts): publish on `<base>/#` except `<base>/command/#`, subscribe to exactly
// `<base>/command`, nothing else (the plugin's default ACL access, as `dynsec init` leaves it, denies the rest).
// A disabled or BLOCKED device's client is disabled (which also closes its session). Backhaul keeps only password
// hashes, so no sync can restore a password: a client is created without one, and the client's `textdescription`
// carries a fingerprint of the registry's hash (a digest of the hash, which tells nothing of the password). When the
// fingerprint differs, the registry's password was reset or replaced since Mosquitto last learnt it, so the client's
// password is overwritten with a random one nobody knows (the old one stops working) until a new one is pushed.
import { createHash } from 'node:crypto';
import { COMMAND_LEVEL, type TopicScheme } from './topics.js';
import type { Device } from './types.js';

/** Marks the clients Backhaul manages (textdescription); other clients (the admin, a person's) are never touched. */
export const MANAGED_MARK = 'backhaul device ';

export interface DynsecAcl {
  readonly acltype: string;
  readonly topic: string;
  readonly priority: number;
  readonly allow: boolean;
}

export interface DynsecClient {
  readonly username: string;
  readonly textdescription?: string;
  readonly disabled: boolean;
  readonly roles: readonly string[];
}

export interface DynsecRole {
  readonly rolename: string;
  readonly acls: readonly DynsecAcl[];
}

/** What the plugin holds (from listClients and listRoles, verbose). */
export interface DynsecState {
  readonly clients: ReadonlyMap<string, DynsecClient>;
  readonly roles: ReadonlyMap<string, DynsecRole>;
}

/** One plugin command, as sent in `{"commands": [...]}`. */
export type DynsecCommand = { readonly command: string } & Readonly<Record<string, unknown>>;

export type SyncAction = 'create' | 'acl' | 'roles' | 'disable' | 'enable' | 'revoke' | 'password' | 'delete' | 'conflict';

/** One change a sync made (or would make), for the CLI's report and the log. */
export interface SyncChange {
  readonly action: SyncAction;
  readonly username: string;
  readonly device?: string;
  readonly detail?: string;
}

export interface DesiredDevice {
  readonly device: string;
  readonly username: string;
  readonly role: string;
  readonly acls: readonly DynsecAcl[];
  readonly disabled: boolean;
  readonly textdescription: string;
  /** A password Backhaul may set (a device declared in the config file with one); generated ones are never known. */
  readonly password?: string;
}

/** A digest of the stored hash: changes whenever the password does, and tells nothing about it. */
export function credentialMark(hash: string | undefined): string {
  if (hash === undefined) return 'none';
  return createHash('sha256').update('backhaul dynsec\0').update(hash).digest('hex').slice(0, 16);
}

/** The ACLs of a device's role: the same rights the embedded broker gives it (topics.ts mayPublish / maySubscribe). */
export function deviceAcls(base: string | undefined): DynsecAcl[] {
  if (base === undefined) return [];
  const command = `${base}/${COMMAND_LEVEL}`;
  return [
    // `#` matches its parent level too, so `<base>/#` covers the base topic itself; the deny outranks it.
    { acltype: 'publishClientSend', topic: `${base}/#`, priority: 0, allow: true },
    { acltype: 'publishClientSend', topic: `${command}/#`, priority: 10, allow: false },
    { acltype: 'subscribeLiteral', topic: command, priority: 0, allow: true },
  ];
}

/** What the registry wants at the broker: one entry per device that has a login. */
export function desiredDevices(
  devices: readonly Device[],
  scheme: TopicScheme,
  o: { readonly rolePrefix: string; readonly passwords?: ReadonlyMap<string, string> },
): DesiredDevice[] {
  const out: DesiredDevice[] = [];
  for (const d of devices) {
    const username = d.credentials?.username;
    if (username === undefined) continue;
    const password = o.passwords?.get(username);
    out.push({
      device: d.id,
      username,
      role: `${o.rolePrefix}${username}`,
      acls: deviceAcls(scheme.baseTopic(d)),
      disabled: !d.enabled || d.state === 'BLOCKED',
      textdescription: `${MANAGED_MARK}${d.id} login ${credentialMark(d.credentials?.hash)}`,
      ...(password !== undefined ? { password } : {}),
    });
  }
  return out;
}

function aclKey(a: DynsecAcl): string {
  return `${a.acltype}\0${a.topic}\0${a.priority}\0${a.allow ? 1 : 0}`;
}

function sameAcls(a: readonly DynsecAcl[], b: readonly DynsecAcl[]): boolean {
  if (a.length !== b.length) return false;
  const keys = new Set(a.map(aclKey));
  return b.every((x) => keys.has(aclKey(x)));
}

export interface SyncPlan {
  readonly commands: DynsecCommand[];
  readonly changes: SyncChange[];
}

/**
 * The commands that make `state` what `desired` says, in an order the plugin accepts (a role before a client that
 * holds it; a client deleted before its role). Idempotent: a state already in step gives no commands.
 * `randomPassword` makes the throw-away passwords of revoked logins.
 */
export function planSync(
  state: DynsecState,
  desired: readonly DesiredDevice[],
  o: { readonly rolePrefix: string; readonly randomPassword: () => string },
): SyncPlan {
  const commands: DynsecCommand[] = [];
  const changes: SyncChange[] = [];
  const wantedRoles = new Set<string>();
  const wantedClients = new Set<string>();
  for (const w of desired) {
    const existing = state.clients.get(w.username);
    if (existing && !existing.textdescription?.startsWith(MANAGED_MARK)) {
      // A client someone else made (the admin itself, a service account): never taken over.
      changes.push({ action: 'conflict', username: w.username, device: w.device, detail: 'a client of that name exists and is not managed by Backhaul; left alone' });
      continue;
    }
    wantedRoles.add(w.role);
    wantedClients.add(w.username);
    const role = state.roles.get(w.role);
    const acls = w.acls.map((a) => ({ ...a }));
    if (!role) {
      commands.push({ command: 'createRole', rolename: w.role, textdescription: `${MANAGED_MARK}${w.device}`, acls });
    } else if (!sameAcls(role.acls, w.acls)) {
      commands.push({ command: 'modifyRole', rolename: w.role, acls });
      changes.push({ action: 'acl', username: w.username, device: w.device, detail: w.acls[0]?.topic ?? 'no topics' });
    }
    if (!existing) {
      commands.push({
        command: 'createClient',
        username: w.username,
        textdescription: w.textdescription,
        roles: [{ rolename: w.role }],
        ...(w.password !== undefined ? { password: w.password } : {}),
      });
      if (w.disabled) commands.push({ command: 'disableClient', username: w.username });
      changes.push({ action: 'create', username: w.username, device: w.device, detail: w.password !== undefined ? 'with its password from the config' : 'without a password' });
      continue;
    }
    if (existing.textdescription !== w.textdescription) {
      commands.push({ command: 'setClientPassword', username: w.username, password: w.password ?? o.randomPassword() });
      commands.push({ command: 'modifyClient', username: w.username, textdescription: w.textdescription });
      changes.push({ action: w.password !== undefined ? 'password' : 'revoke', username: w.username, device: w.device });
    }
    if (existing.roles.length !== 1 || existing.roles[0] !== w.role) {
      commands.push({ command: 'modifyClient', username: w.username, roles: [{ rolename: w.role }] });
      changes.push({ action: 'roles', username: w.username, device: w.device });
    }
    if (existing.disabled !== w.disabled) {
      commands.push({ command: w.disabled ? 'disableClient' : 'enableClient', username: w.username });
      changes.push({ action: w.disabled ? 'disable' : 'enable', username: w.username, device: w.device });
    }
  }
  // Devices removed from the registry, or no longer with a login: their clients go (closing their sessions), then roles.
  for (const c of state.clients.values()) {
    if (wantedClients.has(c.username) || !c.textdescription?.startsWith(MANAGED_MARK)) continue;
    commands.push({ command: 'deleteClient', username: c.username });
    changes.push({ action: 'delete', username: c.username });
  }
  for (const r of state.roles.keys()) {
    if (r.startsWith(o.rolePrefix) && !wantedRoles.has(r)) commands.push({ command: 'deleteRole', rolename: r });
  }
  return { commands, changes };
}

/**
 * Commands that give one device's client a password just generated: made (with its role) when missing, the password
 * set (which also closes a session logged in with the old one), and its fingerprint recorded so a later sync leaves it.
 */
export function planPassword(state: DynsecState, w: DesiredDevice, password: string): SyncPlan {
  const existing = state.clients.get(w.username);
  if (existing && !existing.textdescription?.startsWith(MANAGED_MARK)) {
    return { commands: [], changes: [{ action: 'conflict', username: w.username, device: w.device, detail: 'a client of that name exists and is not managed by Backhaul; left alone' }] };
  }
  const commands: DynsecCommand[] = [];
  const acls = w.acls.map((a) => ({ ...a }));
  if (!state.roles.has(w.role)) commands.push({ command: 'createRole', rolename: w.role, textdescription: `${MANAGED_MARK}${w.device}`, acls });
  else commands.push({ command: 'modifyRole', rolename: w.role, acls });
  if (!existing) {
    commands.push({ command: 'createClient', username: w.username, password, textdescription: w.textdescription, roles: [{ rolename: w.role }] });
    if (w.disabled) commands.push({ command: 'disableClient', username: w.username });
  } else {
    commands.push({ command: 'setClientPassword', username: w.username, password });
    commands.push({ command: 'modifyClient', username: w.username, textdescription: w.textdescription, roles: [{ rolename: w.role }] });
    commands.push({ command: w.disabled ? 'disableClient' : 'enableClient', username: w.username });
  }
  return { commands, changes: [{ action: 'password', username: w.username, device: w.device }] };
}

// The dynamic-security plan (src/devices/dynsec.ts), pure: a state that is what the plan asked for gives no commands,
// clients Backhaul did not make are never touched, and each registry change gives its one command. The real plugin
// is test/e2e/dynsec.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { credentialMark, desiredDevices, planSync, type DynsecClient, type DynsecCommand, type DynsecRole, type DynsecState } from '../../src/devices/dynsec.js';
import { TopicScheme } from '../../src/devices/topics.js';
import type { Device } from '../../src/devices/types.js';

const scheme = new TopicScheme(new DeviceTypes());
const O = { rolePrefix: 'bh-', randomPassword: () => 'random-password-000000' };

function device(id: string, room: string, more: Partial<Device> = {}): Device {
  return {
    id,
    kind: 'other',
    type: 'shutter',
    location: { building: 'u4', room },
    tags: [],
    enabled: true,
    state: 'ACTIVE',
    thresholds: {},
    config: {},
    credentials: { username: id, hash: `hash-of-${id}`, passwordIssued: true, updatedAt: 1 },
    createdAt: 1,
    updatedAt: 1,
    source: 'registry',
    ...more,
  } as Device;
}

/** What the plugin would hold after running `commands` on `state` (enough of its semantics for the plan's commands). */
function apply(state: DynsecState, commands: readonly DynsecCommand[]): DynsecState {
  const clients = new Map<string, DynsecClient>(state.clients);
  const roles = new Map<string, DynsecRole>(state.roles);
  for (const c of commands) {
    const u = c['username'] as string;
    const old = clients.get(u);
    switch (c.command) {
      case 'createRole':
      case 'modifyRole':
        roles.set(c['rolename'] as string, { rolename: c['rolename'] as string, acls: (c['acls'] as DynsecRole['acls'] | undefined) ?? [] });
        break;
      case 'createClient':
        clients.set(u, { username: u, textdescription: c['textdescription'] as string, disabled: false, roles: (c['roles'] as Array<{ rolename: string }>).map((r) => r.rolename) });
        break;
      case 'modifyClient':
        clients.set(u, {
          ...old!,
          ...(c['textdescription'] !== undefined ? { textdescription: c['textdescription'] as string } : {}),
          ...(c['roles'] !== undefined ? { roles: (c['roles'] as Array<{ rolename: string }>).map((r) => r.rolename) } : {}),
        });
        break;
      case 'disableClient':
      case 'enableClient':
        clients.set(u, { ...old!, disabled: c.command === 'disableClient' });
        break;
      case 'deleteClient':
        clients.delete(u);
        break;
      case 'deleteRole':
        roles.delete(c['rolename'] as string);
        break;
      case 'setClientPassword':
        break;
      default:
        throw new Error(`unexpected ${c.command}`);
    }
  }
  return { clients, roles };
}

const admin: DynsecClient = { username: 'admin', disabled: false, roles: ['admin'] };
const empty: DynsecState = { clients: new Map([['admin', admin]]), roles: new Map([['admin', { rolename: 'admin', acls: [] }]]) };

test('from nothing, then in step: a role before its client, and a second plan has no commands', () => {
  const devices = [device('a', '301'), device('b', '302', { enabled: false }), device('c', '303', { credentials: undefined })];
  const desired = desiredDevices(devices, scheme, O);
  assert.deepEqual(desired.map((d) => d.username), ['a', 'b'], 'a device without a login has no client');
  const first = planSync(empty, desired, O);
  assert.deepEqual(first.commands.map((c) => `${c.command} ${String(c['username'] ?? c['rolename'])}`), [
    'createRole bh-a',
    'createClient a',
    'createRole bh-b',
    'createClient b',
    'disableClient b',
  ]);
  assert.equal(first.commands.some((c) => 'password' in c), false, 'no password is known for generated logins');
  const after = apply(empty, first.commands);
  assert.deepEqual(planSync(after, desired, O).commands, []);
  assert.deepEqual(after.roles.get('bh-a')?.acls.map((x) => `${x.acltype} ${x.topic} ${x.allow}`), [
    'publishClientSend u4/301/shutter/# true',
    'publishClientSend u4/301/shutter/command/# false',
    'subscribeLiteral u4/301/shutter/command true',
  ]);
});

test('each registry change gives its command; removed devices are deleted; other clients are never touched', () => {
  const before = [device('a', '301'), device('b', '302'), device('gone', '309')];
  const state = apply({ ...empty, clients: new Map([...empty.clients, ['person', { username: 'person', disabled: false, roles: [] }]]) }, planSync(empty, desiredDevices(before, scheme, O), O).commands);
  const now = [
    device('a', '305'), // moved
    device('b', '302', { state: 'BLOCKED', credentials: { username: 'b', hash: 'a-new-hash', passwordIssued: true, updatedAt: 2 } }), // blocked, reset
    device('person', '306'), // a device whose username is a client nobody gave Backhaul
  ];
  const plan = planSync(state, desiredDevices(now, scheme, O), O);
  assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.username}`), ['acl a', 'revoke b', 'disable b', 'conflict person', 'delete gone']);
  const commands = plan.commands.map((c) => `${c.command} ${String(c['username'] ?? c['rolename'])}`);
  assert.deepEqual(commands, ['modifyRole bh-a', 'setClientPassword b', 'modifyClient b', 'disableClient b', 'deleteClient gone', 'deleteRole bh-gone']);
  assert.equal(plan.commands.find((c) => c.command === 'setClientPassword')?.['password'], 'random-password-000000');
  const after = apply(state, plan.commands);
  assert.deepEqual(planSync(after, desiredDevices(now, scheme, O), O).commands, []);
  assert.ok(after.clients.has('person') && after.clients.has('admin'));
});

test('the fingerprint tells hashes apart and holds nothing of them', () => {
  const h = '$hmac-sha256$k=0123456789ab$c2FsdHNhbHRzYWx0c2FsdA==$bWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWE=';
  assert.match(credentialMark(h), /^[0-9a-f]{16}$/);
  assert.notEqual(credentialMark(h), credentialMark(`${h}x`));
  assert.equal(credentialMark(undefined), 'none');
});

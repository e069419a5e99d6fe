// `backhaul devices add ID --type T`: register a device and print its password once (or none, with --bootstrap).
import { addDevice, checkClaimCode, setClaimCode } from '../../devices/provision.js';
import { json, UsageError } from '../io.js';
import { actor, locationText, needId, patchFrom, publicDevice, type Ctx } from './shared.js';

export async function add(c: Ctx): Promise<number> {
  const raw = needId(c.args, 'add');
  if (c.v.type === undefined) throw new UsageError('add needs --type (see `backhaul devices types`)');
  if (c.v.enabled) throw new UsageError('devices are added enabled; --disabled adds one disabled');
  const patch = patchFrom(c.v);
  const code = c.v['claim-code'];
  if (code !== undefined) checkClaimCode(code, 'claim-code');
  const { device: added, password } = await addDevice(
    c.store,
    { ...patch, id: raw, ...(c.v.kind !== undefined ? { kind: c.v.kind } : {}), ...(c.v.disabled ? { enabled: false } : {}) },
    { bootstrap: c.v.bootstrap ?? false, actor: actor() },
  );
  const d = code !== undefined ? await setClaimCode(c.store, added, code, { actor: actor() }) : added;
  const topic = c.scheme.baseTopic(d);
  // Before it is printed: a password Mosquitto refused would be no use to the device (and is still in the registry).
  if (password !== undefined) await c.broker?.passwordIssued(d, password);
  if (c.v.json) {
    c.io.out(json({ device: publicDevice(d, c.scheme, c.types), username: d.credentials?.username ?? d.id, password: password ?? null }));
    return 0;
  }
  c.io.out(`added ${d.id} (${d.kind}, ${d.type}) at ${locationText(d)}, topic ${topic ?? '- (no building and room yet)'}`);
  c.io.out(`username: ${d.credentials?.username ?? d.id}`);
  if (password !== undefined) {
    c.io.out(`password: ${password}`);
    c.io.out('The password is shown this once; only its hash is kept. `backhaul devices reset-credentials` makes a new one.');
  } else {
    c.io.out('password: none yet; the device\'s first bootstrap call receives one once its claim window is open (backhaul devices claim open).');
  }
  return 0;
}

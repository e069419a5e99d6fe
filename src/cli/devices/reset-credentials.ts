// `backhaul devices reset-credentials ID`: a new password printed once (or none, with --bootstrap); the old one stops working.
import { resetDeviceCredentials } from '../../devices/provision.js';
import { json } from '../io.js';
import { actor, lookup, needId, type Ctx } from './shared.js';

export async function resetCredentials(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'reset-credentials'), c.v.kind);
  const { username, password, device } = await resetDeviceCredentials(c.store, d, { bootstrap: c.v.bootstrap ?? false, actor: actor() });
  if (password !== undefined) await c.broker?.passwordIssued(device, password);
  if (c.v.json) {
    c.io.out(json({ id: d.id, username, password: password ?? null }));
    return 0;
  }
  if (password === undefined) {
    c.io.out(`${d.id}: the old password no longer works; the device's next bootstrap call receives a new one.`);
    return 0;
  }
  c.io.out(`${d.id}: new credentials; the old password no longer works.`);
  c.io.out(`username: ${username}`);
  c.io.out(`password: ${password}`);
  c.io.out('The password is shown this once; only its hash is kept.');
  return 0;
}

// `backhaul devices set ID [options]`: change a device's attributes, audited when something changed.
import { json, UsageError } from '../io.js';
import { actor, lookup, needId, patchFrom, publicDevice, type Ctx } from './shared.js';

export async function set(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'set'), c.v.kind);
  const patch = patchFrom(c.v);
  if (Object.keys(patch).length === 0) throw new UsageError('set needs something to change (--room 301, --tags "a;b", ...)');
  const r = await c.store.update(d.id, patch);
  if (r.change === 'updated') {
    await c.store.appendAudit({ actor: actor(), action: 'device.set', device: d.id, detail: { changed: [...r.changed] }, result: 'ok' });
  }
  if (c.v.json) c.io.out(json({ change: r.change, changed: r.changed, device: publicDevice(r.device, c.scheme, c.types) }));
  else c.io.out(r.change === 'updated' ? `updated ${d.id}: ${r.changed.join(', ')}` : `${d.id} unchanged`);
  return 0;
}

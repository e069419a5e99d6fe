// `backhaul devices enable ID` and `disable ID`.
import { json } from '../io.js';
import { actor, lookup, needId, type Ctx } from './shared.js';

export async function enable(c: Ctx, on: boolean): Promise<number> {
  const d = await lookup(c.store, needId(c.args, on ? 'enable' : 'disable'), c.v.kind);
  const after = await c.store.setEnabled(d.id, on);
  if (after.enabled !== d.enabled) {
    await c.store.appendAudit({ actor: actor(), action: on ? 'device.enable' : 'device.disable', device: d.id, result: 'ok' });
  }
  const word = on ? 'enabled' : 'disabled';
  if (c.v.json) c.io.out(json({ id: d.id, enabled: after.enabled, changed: after.enabled !== d.enabled }));
  else c.io.out(after.enabled !== d.enabled ? `${d.id} ${word}` : `${d.id} was already ${word}`);
  return 0;
}

// `backhaul devices block ID [--reason TEXT]` and `unblock ID`: the running hub sees the change at its next registry
// refresh (`devices.refreshMs`), raises device.blocked / device.unblocked, and its blocked alarm follows.
import { BackhaulError } from '../../core/errors.js';
import { json } from '../io.js';
import { actor, lookup, needId, type Ctx } from './shared.js';

export async function block(c: Ctx, on: boolean): Promise<number> {
  const d = await lookup(c.store, needId(c.args, on ? 'block' : 'unblock'), c.v.kind);
  if (!on && d.state !== 'BLOCKED') throw new BackhaulError('BH_DEVICE_STATE', `device ${d.id} is ${d.state}, not BLOCKED`, { path: 'id' });
  const reason = on ? (c.v.reason?.trim() || `blocked by ${actor()}`) : undefined;
  const after = await c.store.setState(d.id, on ? 'BLOCKED' : 'INIT', reason);
  await c.store.appendAudit({
    actor: actor(),
    action: on ? 'device.block' : 'device.unblock',
    device: d.id,
    detail: on ? { reason: reason ?? '' } : { was: d.blockedReason ?? 'blocked' },
    result: 'ok',
  });
  if (c.v.json) c.io.out(json({ id: d.id, state: after.state, ...(after.blockedReason !== undefined ? { blockedReason: after.blockedReason } : {}) }));
  else c.io.out(on ? `${d.id} BLOCKED: ${reason ?? ''}` : `${d.id} unblocked (INIT until its next self-description)`);
  return 0;
}

// `backhaul devices claim open|close|code`: the claim windows in which a device's bootstrap call may take its password.
import { claimWindowMs, closeClaimWindows, openClaimWindows, setClaimCode } from '../../devices/provision.js';
import { formatDuration } from '../../core/duration.js';
import { iso, json, UsageError } from '../io.js';
import { actor, lookup, type Ctx } from './shared.js';

export async function claim(c: Ctx): Promise<number> {
  const [sub, ...rest] = c.args;
  const now = Date.now();
  if (sub === 'open') {
    if (c.v['all-unclaimed'] ? rest.length > 0 : rest.length !== 1) throw new UsageError('claim open takes one device id, or --all-unclaimed');
    const forMs = claimWindowMs(c.v.for, 'for');
    const target = c.v['all-unclaimed'] ? 'unclaimed' : [await lookup(c.store, rest[0]!, c.v.kind)];
    const w = await openClaimWindows(c.store, target, { forMs, actor: actor(), now });
    if (c.v.json) c.io.out(json(w));
    else if (w.devices.length === 0) c.io.out('no device is waiting for its first password');
    else c.io.out(`claim window open until ${iso(w.until)} (${formatDuration(forMs)}) for ${w.devices.join(', ')}`);
    return 0;
  }
  if (sub === 'close') {
    if (c.v.all ? rest.length > 0 : rest.length !== 1) throw new UsageError('claim close takes one device id, or --all');
    const closed = await closeClaimWindows(c.store, c.v.all ? 'all' : [await lookup(c.store, rest[0]!, c.v.kind)], { actor: actor() });
    if (c.v.json) c.io.out(json({ devices: closed }));
    else c.io.out(closed.length === 0 ? 'no claim window was open' : `claim window closed for ${closed.join(', ')}`);
    return 0;
  }
  if (sub === 'code') {
    const [raw, code, ...more] = rest;
    if (raw === undefined || code === undefined || more.length > 0) throw new UsageError("claim code takes a device id and a CODE ('' removes it)");
    const d = await setClaimCode(c.store, await lookup(c.store, raw, c.v.kind), code, { actor: actor() });
    if (c.v.json) c.io.out(json({ id: d.id, code: d.claim?.codeHash !== undefined }));
    else c.io.out(code.trim() === '' ? `${d.id}: no claim code` : `${d.id}: claim code set (only its hash is kept)`);
    return 0;
  }
  throw new UsageError('claim takes open, close or code');
}

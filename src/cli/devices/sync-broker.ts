// `backhaul devices sync-broker`: a full, idempotent resync of the external Mosquitto (config `brokerSync`), printing
// what it changed; a second run right after prints that nothing changed.
import { BackhaulError } from '../../core/errors.js';
import { json } from '../io.js';
import type { Ctx } from './shared.js';

export async function syncBroker(c: Ctx): Promise<number> {
  if (!c.broker?.configured) throw new BackhaulError('BH_BROKER_SYNC', 'the config has no brokerSync section (give -c FILE with one)', { path: 'brokerSync' });
  const r = await c.broker.resync();
  if (c.v.json) {
    c.io.out(json(r));
    return 0;
  }
  for (const ch of r.changes) c.io.out(`${ch.action.padEnd(8)} ${ch.username}${ch.device !== undefined && ch.device !== ch.username ? ` (${ch.device})` : ''}${ch.detail !== undefined ? `  ${ch.detail}` : ''}`);
  const done = r.changes.filter((ch) => ch.action !== 'conflict').length;
  c.io.out(done === 0 && r.commands === 0 ? `${r.devices} device login(s): in step, nothing changed (${r.ms} ms)` : `${r.devices} device login(s): ${done} change(s), ${r.commands} command(s) (${r.ms} ms)`);
  return 0;
}

// `backhaul devices commands [ID]`: recent orders and what became of them.
import { json, table, UsageError } from '../io.js';
import { commandRow, lookup, type Ctx } from './shared.js';

export async function commandsCmd(c: Ctx): Promise<number> {
  if (c.args.length > 1) throw new UsageError('commands takes at most one device id');
  const raw = c.args[0];
  const device = raw !== undefined ? (await lookup(c.store, raw, c.v.kind)).id : undefined;
  const limit = c.v.limit !== undefined ? Number(c.v.limit) : 20;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit takes a whole number above 0');
  const list = await c.store.listCommands({ ...(device !== undefined ? { device } : {}), limit });
  if (c.v.json) c.io.out(json(list));
  else if (list.length === 0) c.io.out('no orders yet');
  else c.io.out(table([['SENT', 'DEVICE', 'ORDER', 'STATUS', 'SETTLED', 'BY', 'ID'], ...list.map(commandRow)]));
  return 0;
}

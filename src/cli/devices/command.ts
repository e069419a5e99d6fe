// `backhaul devices command ID ORDER`: the running Backhaul publishes the order (over its control socket); --wait
// follows it in the registry until the device answers.
import { BackhaulError } from '../../core/errors.js';
import type { JsonObject, JsonValue } from '../../devices/types.js';
import { durationMs } from '../../core/duration.js';
import { sendCommandTo } from '../../runtime/control.js';
import { json, UsageError } from '../io.js';
import { actor, lookup, type Ctx } from './shared.js';

/** `--param k=v` → `{k: v}`; v is JSON when it parses (`3`, `true`, `{"a":1}`), else the text. */
export function paramsFrom(list: readonly string[] | undefined): JsonObject {
  const out: JsonObject = {};
  for (const p of list ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new BackhaulError('BH_COMMAND_ORDER', `a parameter is written k=v, not ${JSON.stringify(p)}`, { path: '--param' });
    const v = p.slice(eq + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(v) as JsonValue;
    } catch {
      value = v;
    }
    out[p.slice(0, eq)] = value;
  }
  return out;
}

export async function command(c: Ctx): Promise<number> {
  const [raw, order, ...rest] = c.args;
  if (raw === undefined || order === undefined || rest.length > 0) {
    throw new UsageError('command takes a device id and an ORDER: backhaul devices command ID ORDER [--param k=v]');
  }
  const d = await lookup(c.store, raw, c.v.kind);
  let waitMs: number | undefined;
  try {
    waitMs = c.v.wait !== undefined ? durationMs(c.v.wait) : undefined;
  } catch {
    throw new UsageError(`--wait takes a duration such as 30s or 2m, not ${JSON.stringify(c.v.wait)}`);
  }
  const sent = await sendCommandTo(c.dataDir, { device: d.id, order, params: paramsFrom(c.v.param), actor: actor(), ...(c.v.force === true ? { force: true } : {}) });
  let last = sent;
  if (waitMs !== undefined) {
    const until = Date.now() + waitMs;
    while (last.status === 'sent' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      last = (await c.store.getCommand(sent.id)) ?? last;
    }
  }
  if (c.v.json) c.io.out(json(last));
  else {
    c.io.out(`${order} sent to ${d.id} on ${sent.topic} (order ${sent.id})`);
    if (waitMs === undefined) c.io.out('Its acknowledgement is recorded when the device reports back: backhaul devices commands ' + d.id);
    else if (last.status === 'sent') c.io.out(`no acknowledgement within ${c.v.wait}`);
    else c.io.out(`${last.status}${last.result !== undefined ? `: ${JSON.stringify(last.result)}` : ''}`);
  }
  if (waitMs !== undefined && last.status !== 'acknowledged') return 1;
  return 0;
}

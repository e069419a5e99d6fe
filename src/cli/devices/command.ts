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

/** `--hex` / `--base64` with `--fport`: a LoRaWAN downlink's bytes as given. */
function downlinkFrom(hex: string | undefined, base64: string | undefined, fport: string | undefined): { hex?: string; base64?: string; fPort: number } | undefined {
  if (hex === undefined && base64 === undefined) {
    if (fport !== undefined) throw new UsageError('--fport goes with --hex or --base64 (the bytes of a LoRaWAN downlink)');
    return undefined;
  }
  if (hex !== undefined && base64 !== undefined) throw new UsageError('give the bytes once: --hex or --base64');
  if (fport === undefined || !/^\d{1,3}$/.test(fport)) throw new UsageError('--hex and --base64 need --fport N (the application port, 1..223)');
  return { ...(hex !== undefined ? { hex } : { base64: base64! }), fPort: Number(fport) };
}

export async function command(c: Ctx): Promise<number> {
  const [raw, order, ...rest] = c.args;
  if (raw === undefined || order === undefined || rest.length > 0) {
    throw new UsageError('command takes a device id and an ORDER: backhaul devices command ID ORDER [--param k=v] [--hex BYTES|--base64 BYTES --fport N]');
  }
  const d = await lookup(c.store, raw, c.v.kind);
  let waitMs: number | undefined;
  try {
    waitMs = c.v.wait !== undefined ? durationMs(c.v.wait) : undefined;
  } catch {
    throw new UsageError(`--wait takes a duration such as 30s or 2m, not ${JSON.stringify(c.v.wait)}`);
  }
  const downlink = downlinkFrom(c.v.hex, c.v.base64, c.v.fport);
  const sent = await sendCommandTo(c.dataDir, { device: d.id, order, params: paramsFrom(c.v.param), actor: actor(), ...(c.v.force === true ? { force: true } : {}), ...(downlink ? { downlink } : {}) });
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

// `backhaul devices list`: every device (filtered by the options), as a table or JSON.
import type { DeviceFilter } from '../../devices/store/devices.js';
import { DEVICE_STATES, type DeviceState } from '../../devices/types.js';
import { json, table, UsageError } from '../io.js';
import { locationText, publicDevice, seenText, type Ctx, type Values } from './shared.js';

function filterFrom(v: Values): DeviceFilter {
  if (v.enabled && v.disabled) throw new UsageError('--enabled and --disabled together match nothing');
  let state: DeviceState | undefined;
  if (v.state !== undefined) {
    const s = v.state.toUpperCase();
    if (!(DEVICE_STATES as readonly string[]).includes(s)) throw new UsageError(`--state must be one of ${DEVICE_STATES.join(', ')}`);
    state = s as DeviceState;
  }
  return {
    ...(v.site !== undefined ? { site: v.site } : {}),
    ...(v.building !== undefined ? { building: v.building } : {}),
    ...(v.room !== undefined ? { room: v.room } : {}),
    ...(v.type !== undefined ? { type: v.type } : {}),
    ...(state !== undefined ? { state } : {}),
    ...(v.tag !== undefined ? { tag: v.tag } : {}),
    ...(v.search !== undefined ? { search: v.search } : {}),
    ...(v.enabled ? { enabled: true } : v.disabled ? { enabled: false } : {}),
  };
}

export async function list(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('list takes no arguments (filters are options: --room 301)');
  const devices = await c.store.list(filterFrom(c.v));
  if (c.v.json) {
    c.io.out(json(devices.map((d) => publicDevice(d, c.scheme, c.types))));
    return 0;
  }
  if (devices.length === 0) {
    c.io.out('no devices');
    return 0;
  }
  const now = Date.now();
  c.io.out(
    table([
      ['ID', 'TYPE', 'LOCATION', 'STATE', 'ENABLED', 'LAST SEEN', 'TOPIC', 'TAGS'],
      ...devices.map((d) => [
        d.id,
        d.type,
        locationText(d),
        d.state,
        d.enabled ? 'yes' : 'no',
        seenText(d, now),
        c.scheme.baseTopic(d) ?? '-',
        d.tags.join(';'),
      ]),
    ]),
  );
  c.io.out(`${devices.length} device${devices.length === 1 ? '' : 's'}`);
  return 0;
}

// `backhaul devices types`: the device types and their defaults (needs no registry).
import { formatDuration } from '../../core/duration.js';
import { json, table } from '../io.js';
import type { Ctx } from './shared.js';

export function typesCmd(c: Pick<Ctx, 'types' | 'v' | 'io'>): number {
  const list = c.types.list();
  if (c.v.json) {
    c.io.out(json(list.map((t) => ({ name: t.name, topicName: t.topicName, description: t.description, defaults: t.defaults, config: t.config }))));
    return 0;
  }
  c.io.out(
    table([
      ['TYPE', 'TOPIC', 'MAX SILENT', 'BATTERY FLOOR', 'DESCRIPTION'],
      ...list.map((t) => [
        t.name,
        t.topicName,
        t.defaults.maxSilentMs !== undefined ? formatDuration(t.defaults.maxSilentMs) : '-',
        t.defaults.batteryFloor !== undefined ? `${t.defaults.batteryFloor} V` : '-',
        t.description,
      ]),
    ]),
  );
  return 0;
}

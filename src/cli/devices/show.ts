// `backhaul devices show ID`: one device with its topics, thresholds, login, claim window, recent orders and changes.
import { effectiveThresholds } from '../../devices/device-types.js';
import { orderReach } from '../../devices/commands.js';
import type { Device, LorawanState } from '../../devices/types.js';
import { formatDuration } from '../../core/duration.js';
import { iso, json, table } from '../io.js';
import { commandRow, lookup, needId, publicDevice, seenText, type Ctx } from './shared.js';

function passwordText(d: Device): string {
  const c = d.credentials;
  if (!c) return 'none (the first bootstrap call in its claim window creates one)';
  if (c.hash === undefined) return 'waiting: the next bootstrap call in its claim window delivers a new one';
  return c.passwordIssued ? `set ${iso(c.updatedAt)}, delivered` : `set ${iso(c.updatedAt)}, not yet delivered`;
}

function claimText(d: Device, now: number): string {
  const c = d.claim ?? {};
  const parts: string[] = [];
  if (c.until !== undefined) parts.push(c.until > now ? `window open until ${iso(c.until)}` : `window closed ${iso(c.until)}`);
  else parts.push('window closed');
  parts.push(c.codeHash !== undefined ? 'claim code set' : 'no claim code');
  if (c.claimedAt !== undefined) parts.push(`password taken ${iso(c.claimedAt)} from ${c.claimedBy ?? '?'}`);
  return parts.join(', ');
}

/** A LoRaWAN device's network side as the registry keeps it (written by the running hub every few seconds). */
function lorawanRows(l: LorawanState): string[][] {
  const app = [l.applicationId, l.tenant].filter((x) => x !== undefined).join('@');
  const signal = [l.rssi !== undefined ? `${l.rssi} dBm` : '', l.snr !== undefined ? `SNR ${l.snr} dB` : '', l.sf !== undefined ? `SF${l.sf}` : '', l.gateways !== undefined ? `${l.gateways} gateway(s)` : '']
    .filter((x) => x !== '')
    .join(', ');
  return [
    ['network server', `${l.ns} via input ${l.input}${app ? `, application ${app}` : ''}${l.deviceId !== undefined ? `, device ${l.deviceId}` : ''}`],
    ['last uplink', `${iso(l.at)}${l.fCnt !== undefined ? `, frame ${l.fCnt}` : ''}${l.fPort !== undefined ? ` on port ${l.fPort}` : ''}`],
    ['signal', signal || '-'],
    ['battery', `${l.battery !== undefined ? `${l.battery} %` : '- (not reported, or external power)'}${l.margin !== undefined ? `, link margin ${l.margin} dB` : ''}`],
  ];
}

export async function show(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'show'), c.v.kind);
  const audit = await c.store.listAudit({ device: d.id, limit: 10 });
  if (c.v.json) {
    c.io.out(json({ ...publicDevice(d, c.scheme, c.types), audit }));
    return 0;
  }
  const type = c.types.get(d.type);
  const t = effectiveThresholds(d, c.types);
  const own = (k: 'maxSilentMs' | 'batteryFloor') =>
    d.thresholds[k] !== undefined ? '' : k === 'maxSilentMs' && d.learnedSilentMs !== undefined ? ' (learned from its cadence)' : ' (type default)';
  const reach = orderReach(d, c.types, c.scheme);
  const topics = c.scheme.topics(d);
  const rows: string[][] = [
    ['id', `${d.id} (${d.kind})`],
    ['type', type ? `${d.type}: ${type.description}` : `${d.type} (unknown type)`],
    ['location', `site ${d.location.site ?? '-'}, building ${d.location.building ?? '-'}, room ${d.location.room ?? '-'}`],
    ['description', d.description || '-'],
    ['tags', d.tags.length ? d.tags.join(', ') : '-'],
    ['enabled', d.enabled ? 'yes' : 'no'],
    ['state', d.state === 'BLOCKED' ? `BLOCKED: ${d.blockedReason ?? ''}` : d.state],
    ['mode', d.mode ?? '-'],
    ['orders', reach.accepted ? `accepted, over ${reach.via ?? 'mqtt'}` : `refused: ${reach.reason ?? ''}${reach.forceable === true ? ' (--force sends anyway)' : ''}`],
    ['topics', topics ? `base ${topics.base}` : 'none: the location needs a building and a room (or building "outside" and an area)'],
    ...(topics ? [['', `status ${topics.status}`], ['', `command ${topics.command}`]] : []),
    [
      'thresholds',
      `max silent ${t.maxSilentMs !== undefined ? formatDuration(t.maxSilentMs) : '-'}${t.maxSilentMs !== undefined ? own('maxSilentMs') : ''}, ` +
        `battery floor ${t.batteryFloor !== undefined ? `${t.batteryFloor} V` : '-'}${t.batteryFloor !== undefined ? own('batteryFloor') : ''}`,
    ],
    ['last seen', d.lastSeen === undefined ? 'never' : `${iso(d.lastSeen)} (${seenText(d, Date.now())})`],
    ['login', d.credentials ? `username ${d.credentials.username}` : 'none yet'],
    ['password', passwordText(d)],
    ['certificate', d.certificate ? `SHA-256 ${d.certificate.fingerprint} (set ${iso(d.certificate.updatedAt)})` : 'none'],
    ['claim', claimText(d, Date.now())],
    ['source', d.source === 'config' ? 'config file (read-only here)' : 'registry'],
    ['created', iso(d.createdAt)],
    ['updated', iso(d.updatedAt)],
    ['config', JSON.stringify(d.config)],
    ['last status', d.lastStatus === undefined ? '-' : JSON.stringify(d.lastStatus)],
    ...(d.lorawan ? lorawanRows(d.lorawan) : []),
  ];
  c.io.out(table(rows));
  const orders = await c.store.listCommands({ device: d.id, limit: 5 });
  if (orders.length > 0) {
    c.io.out('');
    c.io.out('recent orders:');
    c.io.out(table(orders.map((r) => ['  ' + commandRow(r)[0]!, ...commandRow(r).slice(2)])));
  }
  if (audit.length > 0) {
    c.io.out('');
    c.io.out('recent changes:');
    c.io.out(table(audit.map((a) => [`  ${iso(a.at)}`, a.actor, a.action, a.result ?? '', a.detail ? JSON.stringify(a.detail) : ''])));
  }
  return 0;
}

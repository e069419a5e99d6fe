// What the `backhaul devices` subcommands share: the options they parse, the context each runs in, and the helpers
// more than one of them uses (who is acting, how a device is printed, a patch from the options, an order's row).
import { userInfo } from 'node:os';
import type { parseArgs } from 'node:util';
import { BackhaulError } from '../../core/errors.js';
import { durationMs, humanDuration } from '../../core/duration.js';
import { effectiveThresholds, type DeviceTypes } from '../../devices/device-types.js';
import type { DeviceStore } from '../../devices/store/index.js';
import { findDevice } from '../../devices/store/rules.js';
import type { DevicePatch } from '../../devices/store/devices.js';
import type { CommandRecord } from '../../devices/store/orders.js';
import type { TopicScheme } from '../../devices/topics.js';
import type { Device } from '../../devices/types.js';
import { DATA_OPTIONS, iso, UsageError, type Out } from '../io.js';
import type { CliBroker } from './broker.js';

export const OPTIONS = {
  ...DATA_OPTIONS,
  kind: { type: 'string' },
  type: { type: 'string' },
  site: { type: 'string' },
  building: { type: 'string' },
  room: { type: 'string' },
  description: { type: 'string' },
  tags: { type: 'string' },
  tag: { type: 'string' },
  state: { type: 'string' },
  search: { type: 'string' },
  enabled: { type: 'boolean' },
  disabled: { type: 'boolean' },
  'max-silent': { type: 'string' },
  'battery-floor': { type: 'string' },
  'device-config': { type: 'string' },
  bootstrap: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  format: { type: 'string' },
  param: { type: 'string', multiple: true },
  wait: { type: 'string' },
  limit: { type: 'string' },
  for: { type: 'string' },
  'all-unclaimed': { type: 'boolean' },
  all: { type: 'boolean' },
  'claim-code': { type: 'string' },
  'claim-window': { type: 'string' },
  reason: { type: 'string' },
  force: { type: 'boolean' },
  hex: { type: 'string' },
  base64: { type: 'string' },
  fport: { type: 'string' },
  fingerprint: { type: 'string' },
  remove: { type: 'boolean' },
} as const;

export type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>>['values'];

export interface Ctx {
  readonly store: DeviceStore;
  readonly types: DeviceTypes;
  readonly scheme: TopicScheme;
  readonly v: Values;
  readonly args: readonly string[];
  readonly io: Out;
  readonly dataDir: string;
  /** The external Mosquitto (config `brokerSync`), when the config has one: passwords go there as they are made. */
  readonly broker?: CliBroker;
}

export function needId(args: readonly string[], cmd: string): string {
  const id = args[0];
  if (id === undefined || args.length > 1) throw new UsageError(`${cmd} takes one device id`);
  return id;
}

export function actor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export function locationText(d: Device): string {
  const { site, building, room } = d.location;
  const place = [building, room].filter((x) => x !== undefined).join('/');
  if (site === undefined) return place || '-';
  return place ? `${site}:${place}` : `${site}:`;
}

export function seenText(d: Device, now: number): string {
  return d.lastSeen === undefined ? 'never' : `${humanDuration(Math.max(0, now - d.lastSeen))} ago`;
}

/** The device as printed by --json: the password hash never leaves the registry. */
export function publicDevice(d: Device, scheme: TopicScheme, types: DeviceTypes): Record<string, unknown> {
  const { credentials, claim, ...rest } = d;
  return {
    ...rest,
    claim: {
      until: claim?.until ?? null,
      code: claim?.codeHash !== undefined,
      claimedAt: claim?.claimedAt ?? null,
      claimedBy: claim?.claimedBy ?? null,
    },
    topics: scheme.topics(d) ?? null,
    effectiveThresholds: effectiveThresholds(d, types),
    credentials: credentials
      ? { username: credentials.username, hasPassword: credentials.hash !== undefined, passwordIssued: credentials.passwordIssued, updatedAt: credentials.updatedAt }
      : null,
  };
}

export const lookup = findDevice;

export function patchFrom(v: Values): DevicePatch {
  const patch: {
    type?: string;
    location?: { site?: string; building?: string; room?: string };
    description?: string;
    tags?: string[];
    thresholds?: { maxSilentMs?: number | null; batteryFloor?: number | null };
    config?: unknown;
  } = {};
  if (v.type !== undefined) patch.type = v.type;
  const location: { site?: string; building?: string; room?: string } = {};
  for (const k of ['site', 'building', 'room'] as const) if (v[k] !== undefined) location[k] = v[k];
  if (Object.keys(location).length > 0) patch.location = location;
  if (v.description !== undefined) patch.description = v.description;
  if (v.tags !== undefined) patch.tags = v.tags === '' ? [] : v.tags.split(';');
  const thresholds: { maxSilentMs?: number | null; batteryFloor?: number | null } = {};
  const silent = v['max-silent'];
  if (silent !== undefined) {
    if (silent === '') thresholds.maxSilentMs = null;
    else {
      try {
        thresholds.maxSilentMs = durationMs(silent);
      } catch {
        throw new BackhaulError('BH_DEVICE_FIELD', `${JSON.stringify(silent)} is not a duration: write e.g. "30m", "90s", "2h"`, { path: 'max-silent' });
      }
    }
  }
  const floor = v['battery-floor'];
  if (floor !== undefined) {
    if (floor === '') thresholds.batteryFloor = null;
    else if (/^[0-9]+(\.[0-9]+)?$/.test(floor)) thresholds.batteryFloor = Number(floor);
    else throw new BackhaulError('BH_DEVICE_FIELD', `${JSON.stringify(floor)} is not a number of volts (e.g. 2.4)`, { path: 'battery-floor' });
  }
  if (Object.keys(thresholds).length > 0) patch.thresholds = thresholds;
  const cfg = v['device-config'];
  if (cfg !== undefined) {
    try {
      patch.config = cfg === '' ? {} : (JSON.parse(cfg) as unknown);
    } catch {
      throw new BackhaulError('BH_DEVICE_CONFIG', 'is not valid JSON', { path: 'device-config' });
    }
  }
  return patch;
}

export function commandRow(r: CommandRecord): string[] {
  return [iso(r.sentAt), r.device, r.order, r.status, r.doneAt !== undefined ? iso(r.doneAt) : '-', r.actor, r.id];
}

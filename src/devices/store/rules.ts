// The rules every device store shares: the validation and merge of what is set on a device (`planDevice`), canonical
// ids, finding a device from an id as a person typed it, and the errors for a missing or read-only device. Every
// store uses these, so all refuse the same input with the same codes and paths.
import { stableJson } from '../../core/json.js';
import { BackhaulError, shown } from '../../core/errors.js';
import type { DeviceTypes } from '../device-types.js';
import {
  checkDescription,
  checkLocation,
  checkTags,
  checkThresholds,
  guessIdKind,
  ID_KINDS,
  normaliseId,
  resolveIdKind,
  type Device,
  type IdKind,
  type Location,
  type Thresholds,
} from '../types.js';
import type { Change, DeviceInput, DevicePatch, DeviceRecords } from './devices.js';


function mergeLocation(old: Location, patch: DevicePatch['location']): Location {
  if (patch === undefined) return old;
  const merged: { site?: string; building?: string; room?: string } = {};
  for (const key of ['site', 'building', 'room'] as const) {
    const v = key in patch ? patch[key] : old[key];
    if (v !== undefined && v !== '') merged[key] = v;
  }
  return checkLocation(merged);
}

function mergeThresholds(old: Thresholds, patch: DevicePatch['thresholds']): Thresholds {
  if (patch === undefined) return old;
  const pick = <K extends keyof Thresholds>(k: K): number | undefined => {
    if (!(k in patch)) return old[k];
    const v = patch[k];
    return v === null ? undefined : v;
  };
  const maxSilentMs = pick('maxSilentMs');
  const batteryFloor = pick('batteryFloor');
  return checkThresholds({ ...(maxSilentMs !== undefined ? { maxSilentMs } : {}), ...(batteryFloor !== undefined ? { batteryFloor } : {}) });
}

const COMPARED = ['kind', 'type', 'location', 'description', 'tags', 'enabled', 'thresholds', 'config'] as const;

/**
 * The device after applying `patch` to `existing` (or creating it), validated, and what changed. Pure; every store
 * uses it so all refuse the same input with the same codes and paths (`location.room`, `config.targetC`).
 */
export function planDevice(
  existing: Device | undefined,
  id: string,
  kind: IdKind,
  patch: DevicePatch,
  types: DeviceTypes,
  now: number,
): { device: Device; change: Change; changed: string[] } {
  if (existing === undefined && (patch.type === undefined || patch.type === '')) {
    throw new BackhaulError('BH_DEVICE_TYPE', `a new device needs a type; known: ${types.names().join(', ')}`, { path: 'type' });
  }
  const typeName = patch.type === undefined || patch.type === '' ? existing!.type : patch.type;
  types.require(typeName, 'type');
  const location = mergeLocation(existing?.location ?? {}, patch.location);
  const description = patch.description === undefined ? (existing?.description ?? '') : checkDescription(patch.description);
  const tags = patch.tags === undefined ? (existing?.tags ?? []) : checkTags(patch.tags);
  const enabled = patch.enabled ?? existing?.enabled ?? true;
  const thresholds = mergeThresholds(existing?.thresholds ?? {}, patch.thresholds);
  // The config is checked against the final type even when only the type changed.
  const config = types.validateConfig(typeName, patch.config === undefined ? (existing?.config ?? {}) : patch.config === null ? {} : patch.config);
  const base = {
    id,
    kind,
    type: typeName,
    location,
    description,
    tags,
    enabled,
    thresholds,
    config,
  };
  if (existing === undefined) {
    return { device: { ...base, state: 'INIT', createdAt: now, updatedAt: now, source: 'registry' }, change: 'created', changed: [] };
  }
  const changed = COMPARED.filter((k) => stableJson(existing[k]) !== stableJson(base[k]));
  if (changed.length === 0) return { device: existing, change: 'unchanged', changed: [] };
  return { device: { ...existing, ...base, updatedAt: now }, change: 'updated', changed: [...changed] };
}

/**
 * Find a device from an id as a person typed it (CLI, API): as is, then made canonical for each kind that accepts it.
 * BH_DEVICE_NOT_FOUND at `path` when none matches.
 */
export async function findDevice(store: Pick<DeviceRecords, 'get'>, raw: string, kind?: string, path = 'id'): Promise<Device> {
  const candidates = new Set<string>([raw.trim()]);
  const kinds = kind !== undefined ? [kind] : [guessIdKind(raw), ...ID_KINDS].filter((k) => k !== undefined);
  for (const k of kinds) {
    try {
      candidates.add(normaliseId(k as IdKind, raw));
    } catch {
      /* not that kind */
    }
  }
  for (const id of candidates) {
    const d = await store.get(id);
    if (d) return d;
  }
  throw new BackhaulError('BH_DEVICE_NOT_FOUND', `no device ${JSON.stringify(raw)} in the registry`, { path });
}

/** Canonical id and kind of an input (BH_DEVICE_ID at `id` or `kind`). */
export function identify(input: Pick<DeviceInput, 'id' | 'kind'>): { id: string; kind: IdKind } {
  const kind = resolveIdKind(input.id, input.kind);
  return { id: normaliseId(kind, input.id), kind };
}

export function notFound(id: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_NOT_FOUND', `no device ${shown(id)} in the registry`, { path: 'id' });
}

export function readOnly(id: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_READ_ONLY', `device ${shown(id)} is declared in the config file; change it there`, { path: 'id' });
}

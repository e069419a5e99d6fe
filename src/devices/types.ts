// The Device model: who a device is (a canonical id and the kind of that id), what it is (a type from
// device-types.ts), where it is (a location, from which its MQTT topics are derived: topics.ts), whether it may be
// believed (enabled, state), what to expect of it (thresholds) and what it last said (lastSeen, lastStatus).
//
// Ids are made canonical before anything else touches them, so `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and
// `aa:bb:cc:dd:ee:ff` are one device, and a Reading's `device` can be looked up directly.
import { BackhaulError, shown } from '../core/errors.js';

export { ID_KINDS, guessIdKind, isIdKind, normaliseDevEui, normaliseId, normaliseMac, normaliseOpenTrv, normaliseOther, normaliseUuid, resolveIdKind, type IdKind } from '../core/ids.js';
import type { IdKind } from '../core/ids.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export const DEVICE_STATES = ['INIT', 'ACTIVE', 'BLOCKED'] as const;
/** INIT: known but not yet validated; ACTIVE: validated; BLOCKED: refused (see `blockedReason`). */
export type DeviceState = (typeof DEVICE_STATES)[number];

export const DEVICE_MODES = ['NORMAL', 'WARNING', 'DANGER'] as const;
/** The severity mode a device reports of itself (`"mode"` in a status on `<base>/device`). */
export type DeviceMode = (typeof DEVICE_MODES)[number];

export function isDeviceMode(v: unknown): v is DeviceMode {
  return typeof v === 'string' && (DEVICE_MODES as readonly string[]).includes(v);
}

/** Where a device comes from: declared in the config file (read-only here) or added by CLI, API or manifest. */
export type DeviceSource = 'config' | 'registry';

/**
 * Where a device is. `site` is left empty for the concentrator's own site and names a remote one otherwise;
 * `building: "outside"` marks an outdoor device, whose `room` then names the outdoor area (`parking-north`).
 * See topics.ts for how this becomes a topic.
 */
export interface Location {
  readonly site?: string;
  readonly building?: string;
  readonly room?: string;
}

/** The `building` value of outdoor devices. */
export const OUTSIDE = 'outside';

export interface Thresholds {
  /** A device silent longer than this is offline (ms). */
  readonly maxSilentMs?: number;
  /** Battery below this (volts) is low. */
  readonly batteryFloor?: number;
}

/** A device's broker login. Only the scrypt hash of the password is ever stored (credentials.ts). */
export interface DeviceCredentials {
  readonly username: string;
  /** `$scrypt$...` (credentials.ts); absent while a new password waits to be delivered. */
  readonly hash?: string;
  /**
   * True once the current password was handed out (printed by the CLI, or returned by the bootstrap call). While
   * false, the next bootstrap call creates a password, stores its hash and returns it, once.
   */
  readonly passwordIssued: boolean;
  /** When the password was last set or reset (ms). */
  readonly updatedAt: number;
}

/** A device's client certificate as the registry knows it: by fingerprint, never the certificate or its key. */
export interface DeviceCertificate {
  /** SHA-256 of the certificate's DER bytes, 64 lower-case hex digits (core/pki.ts fingerprintOfDer). */
  readonly fingerprint: string;
  /** When it was set (ms): a login made with an earlier certificate loses its rights. */
  readonly updatedAt: number;
}

/**
 * How a device may claim its first password over bootstrap (src/api/bootstrap.ts): only while an operator has opened
 * its claim window, with the code printed on its label when it has one.
 */
export interface DeviceClaim {
  /** The claim window is open until then (ms); absent: closed. */
  readonly until?: number;
  /** scrypt hash of the claim code on the device's label (credentials.ts); absent: the window alone decides. */
  readonly codeHash?: string;
  /** When a bootstrap call last took the device's password, and the client address it came from. */
  readonly claimedAt?: number;
  readonly claimedBy?: string;
}

export interface Device {
  /** Canonical id (normaliseId). */
  readonly id: string;
  readonly kind: IdKind;
  /** Device type name (device-types.ts). */
  readonly type: string;
  readonly location: Location;
  readonly description: string;
  /** Sorted, unique. */
  readonly tags: readonly string[];
  readonly enabled: boolean;
  readonly state: DeviceState;
  readonly blockedReason?: string;
  /** This device's own thresholds; the type's defaults apply where absent (effectiveThresholds). */
  readonly thresholds: Thresholds;
  /**
   * The silence threshold the hub learned from the device's own report interval (`devices.learn`); used while the
   * device sets no `maxSilentMs` of its own, before its type's default.
   */
  readonly learnedSilentMs?: number;
  /** The severity mode it last reported; absent until it reports one. */
  readonly mode?: DeviceMode;
  /** A LoRaWAN device's network side, learned from its uplinks: what a downlink needs, its signal and battery. */
  readonly lorawan?: LorawanState;
  /** When a message from the device was last accepted (ms). */
  readonly lastSeen?: number;
  /** The device's own status JSON, kept as sent. */
  readonly lastStatus?: JsonValue;
  /** Per-device config, valid against its type's schema. */
  readonly config: JsonObject;
  readonly credentials?: DeviceCredentials;
  /** Absent when no window, code or claim was ever recorded. */
  readonly claim?: DeviceClaim;
  /** The client certificate it may log in with instead of a password (the broker's TLS listeners). */
  readonly certificate?: DeviceCertificate;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly source: DeviceSource;
}

/** What the registry keeps of a LoRaWAN device's network server side, from its last uplinks. */
export interface LorawanState {
  /** The decoder that read it (`chirpstack`, `tts`): it knows how that network server takes a downlink. */
  readonly ns: string;
  /** The input it came on, whose connection to the NS's broker carries its downlinks. */
  readonly input: string;
  readonly applicationId?: string;
  readonly tenant?: string;
  readonly deviceId?: string;
  /** The last frame counter, so a restart still tells a repeat from a new uplink. */
  readonly fCnt?: number;
  readonly fPort?: number;
  /** The best gateway's RSSI (dBm) and SNR (dB) of the last uplink. */
  readonly rssi?: number;
  readonly snr?: number;
  readonly gateways?: number;
  readonly sf?: number;
  /** Battery (%) and link margin (dB) from its last status. */
  readonly battery?: number;
  readonly margin?: number;
  /** When the last uplink was received (ms). */
  readonly at: number;
}

/** A LorawanState read back from the registry's JSON column, or undefined when it is not one. */
export function asLorawanState(v: unknown): LorawanState | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o['ns'] !== 'string' || typeof o['input'] !== 'string' || typeof o['at'] !== 'number') return undefined;
  return o as unknown as LorawanState;
}

// ---------------------------------------------------------------- attributes

const LEVEL_MAX = 64;

/**
 * Check one location field (site, building, room): it becomes an MQTT topic level, so it must not be empty, hold
 * `/`, `+`, `#`, control characters, start with `$`, or exceed 64 characters. Returns it trimmed.
 */
export function checkLocationLevel(value: string, path: string): string {
  const v = value.trim();
  const bad = (why: string) => new BackhaulError('BH_DEVICE_LOCATION', `${shown(value)} ${why}`, { path });
  if (v === '') throw bad('is empty');
  if (v.length > LEVEL_MAX) throw bad(`is longer than ${LEVEL_MAX} characters`);
  if (/[/+#]/.test(v)) throw bad('must not contain "/", "+" or "#" (it becomes an MQTT topic level)');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(v)) throw bad('must not contain control characters');
  if (v.startsWith('$')) throw bad('must not start with "$" (reserved for broker topics)');
  return v;
}

/** The reserved first topic level of remote sites; a local building may not be called that. */
export const ABROAD = 'abroad';

/** A location with every field checked (BH_DEVICE_LOCATION); empty strings mean "not set". */
export function checkLocation(loc: { site?: string | undefined; building?: string | undefined; room?: string | undefined }, path = 'location'): Location {
  const out: { site?: string; building?: string; room?: string } = {};
  for (const key of ['site', 'building', 'room'] as const) {
    const v = loc[key];
    if (v === undefined || v.trim() === '') continue;
    out[key] = checkLocationLevel(v, path ? `${path}.${key}` : key);
  }
  if (out.building !== undefined && out.building.toLowerCase() === ABROAD) {
    throw new BackhaulError('BH_DEVICE_LOCATION', `"${ABROAD}" is reserved for remote sites' topics; set site instead`, {
      path: path ? `${path}.building` : 'building',
    });
  }
  return out;
}

/** Tags: trimmed, non-empty, at most 64 characters without `;` or `,`, de-duplicated and sorted. */
export function checkTags(tags: readonly string[], path = 'tags'): string[] {
  const out = new Set<string>();
  for (const t of tags) {
    const v = t.trim();
    if (v === '') continue;
    // eslint-disable-next-line no-control-regex
    if (v.length > 64 || /[;,\x00-\x1f\x7f]/.test(v)) {
      throw new BackhaulError('BH_DEVICE_FIELD', `tag ${shown(t)} must be at most 64 characters without ";", "," or control characters`, { path });
    }
    out.add(v);
  }
  return [...out].sort();
}

export function checkThresholds(t: Thresholds, path = 'thresholds'): Thresholds {
  const out: { maxSilentMs?: number; batteryFloor?: number } = {};
  if (t.maxSilentMs !== undefined) {
    if (!Number.isInteger(t.maxSilentMs) || t.maxSilentMs < 1000) {
      throw new BackhaulError('BH_DEVICE_FIELD', 'the max silent interval must be at least 1s', { path: `${path}.maxSilentMs` });
    }
    out.maxSilentMs = t.maxSilentMs;
  }
  if (t.batteryFloor !== undefined) {
    if (!Number.isFinite(t.batteryFloor) || t.batteryFloor <= 0 || t.batteryFloor >= 100) {
      throw new BackhaulError('BH_DEVICE_FIELD', 'the battery floor is in volts: more than 0 and less than 100', { path: `${path}.batteryFloor` });
    }
    out.batteryFloor = t.batteryFloor;
  }
  return out;
}

export function checkDescription(d: string, path = 'description'): string {
  const v = d.trim();
  if (v.length > 1000) throw new BackhaulError('BH_DEVICE_FIELD', 'the description is longer than 1000 characters', { path });
  return v;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

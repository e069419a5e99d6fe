// The Device model: who a device is (a canonical id and the kind of that id), what it is (a type from
// device-types.ts), where it is (a location, from which its MQTT topics are derived: topics.ts), whether it may be
// believed (enabled, state), what to expect of it (thresholds) and what it last said (lastSeen, lastStatus).
//
// Ids are made canonical before anything else touches them, so `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and
// `aa:bb:cc:dd:ee:ff` are one device, and a Reading's `device` can be looked up directly.
import { canonicalNodeId } from '../decoders/opentrv/index.js';
import { BackhaulError } from '../core/errors.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** What kind of identity a device id is. */
export const ID_KINDS = ['mac', 'deveui', 'uuid', 'opentrv', 'other'] as const;
export type IdKind = (typeof ID_KINDS)[number];

export const DEVICE_STATES = ['INIT', 'ACTIVE', 'BLOCKED'] as const;
/** INIT: known but not yet validated; ACTIVE: validated; BLOCKED: refused (see `blockedReason`). */
export type DeviceState = (typeof DEVICE_STATES)[number];

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
  /** When a message from the device was last accepted (ms). */
  readonly lastSeen?: number;
  /** The device's own status JSON, kept as sent. */
  readonly lastStatus?: JsonValue;
  /** Per-device config, valid against its type's schema. */
  readonly config: JsonObject;
  readonly credentials?: DeviceCredentials;
  /** Absent when no window, code or claim was ever recorded. */
  readonly claim?: DeviceClaim;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly source: DeviceSource;
}

// ---------------------------------------------------------------- identity

const HEX = /^[0-9a-f]+$/;

function hexPairs(s: string): string[] {
  return s.match(/../g) ?? [];
}

/** Strip a `0x` prefix and the separators `:`, `-`, `.`, ` ` when they are used consistently (every `step` digits). */
function compactHex(raw: string, groupSizes: readonly number[]): string | undefined {
  let s = raw.trim().toLowerCase();
  if (s.startsWith('0x')) s = s.slice(2);
  if (HEX.test(s)) return s;
  for (const sep of [':', '-', '.', ' ']) {
    if (!s.includes(sep)) continue;
    const parts = s.split(sep);
    if (!parts.every((p) => HEX.test(p))) return undefined;
    const size = parts[0]!.length;
    if (!groupSizes.includes(size) || !parts.every((p) => p.length === size)) return undefined;
    return parts.join('');
  }
  return undefined;
}

/** `aa:bb:cc:dd:ee:ff` from `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff`, `aabbccddeeff`, `AA:BB:...`. */
export function normaliseMac(raw: string): string | undefined {
  const s = compactHex(raw, [2, 4]);
  if (s === undefined || s.length !== 12) return undefined;
  return hexPairs(s).join(':');
}

/** 16 lower-case hex digits from `70B3D57ED0001234`, `70-b3-d5-7e-d0-00-12-34`, `0x70b3...`. */
export function normaliseDevEui(raw: string): string | undefined {
  const s = compactHex(raw, [2, 4]);
  return s !== undefined && s.length === 16 ? s : undefined;
}

/** Lower-case `8-4-4-4-12` from any case, with or without hyphens, braces or a `urn:uuid:` prefix. */
export function normaliseUuid(raw: string): string | undefined {
  let s = raw.trim().toLowerCase();
  if (s.startsWith('urn:uuid:')) s = s.slice(9);
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  const m = /^([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})$/.exec(s);
  if (!m) return undefined;
  // Hyphens all or none: `12345678-12341234...` is a typo, not a UUID.
  const hyphens = (s.match(/-/g) ?? []).length;
  if (hyphens !== 0 && hyphens !== 4) return undefined;
  return m.slice(1).join('-');
}

/** The OpenTRV decoder's rule: lower-case hex, padded to an even number of digits and at least 4; 2 to 8 bytes. */
export function normaliseOpenTrv(raw: string): string | undefined {
  let s = raw.trim();
  if (/^0x/i.test(s)) s = s.slice(2);
  return canonicalNodeId(s);
}

/** Any other id: 1 to 128 printable ASCII characters without spaces, kept as written (case matters). */
export function normaliseOther(raw: string): string | undefined {
  const s = raw.trim();
  return /^[\x21-\x7e]{1,128}$/.test(s) ? s : undefined;
}

const NORMALISERS: Readonly<Record<IdKind, (raw: string) => string | undefined>> = {
  mac: normaliseMac,
  deveui: normaliseDevEui,
  uuid: normaliseUuid,
  opentrv: normaliseOpenTrv,
  other: normaliseOther,
};

const EXPECTED: Readonly<Record<IdKind, string>> = {
  mac: 'a MAC address of 6 bytes (aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff or aabbccddeeff)',
  deveui: 'a LoRaWAN DevEUI of 16 hex digits',
  uuid: 'a UUID (8-4-4-4-12 hex digits)',
  opentrv: 'an OpenTRV node id of 2 to 8 bytes of hex',
  other: '1 to 128 printable characters without spaces',
};

export function isIdKind(s: string): s is IdKind {
  return (ID_KINDS as readonly string[]).includes(s);
}

/** A short, printable excerpt of a bad value for messages. */
export function shown(s: string, max = 40): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > max ? `${clean.slice(0, max)}...` : clean);
}

/** The canonical id of `raw` as a `kind`; BH_DEVICE_ID (at `path`) when it is not one. */
export function normaliseId(kind: IdKind, raw: string, path = 'id'): string {
  const id = NORMALISERS[kind](raw);
  if (id === undefined) throw new BackhaulError('BH_DEVICE_ID', `${shown(raw)} is not ${EXPECTED[kind]}`, { path });
  return id;
}

/**
 * The kind of an id written in a form only one kind uses: a UUID with hyphens, a MAC or DevEUI with separators.
 * Bare hex is ambiguous (12 digits may be a MAC or a 6-byte OpenTRV id), so undefined: the kind must be given.
 */
export function guessIdKind(raw: string): IdKind | undefined {
  const s = raw.trim();
  if (/^(urn:uuid:)?\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?$/i.test(s)) return 'uuid';
  if (/[:\-. ]/.test(s)) {
    if (normaliseMac(s) !== undefined) return 'mac';
    if (normaliseDevEui(s) !== undefined) return 'deveui';
  }
  return undefined;
}

/** `kind` given, or guessed from the id's form; BH_DEVICE_ID when neither. */
export function resolveIdKind(raw: string, kind: string | undefined, path = 'kind'): IdKind {
  if (kind !== undefined && kind !== '') {
    if (!isIdKind(kind)) throw new BackhaulError('BH_DEVICE_ID', `unknown id kind ${shown(kind)}; kinds: ${ID_KINDS.join(', ')}`, { path });
    return kind;
  }
  const guessed = guessIdKind(raw);
  if (guessed === undefined) {
    throw new BackhaulError('BH_DEVICE_ID', `cannot tell what kind of id ${shown(raw)} is; give its kind (${ID_KINDS.join(', ')})`, { path });
  }
  return guessed;
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

// Device ids: the kinds of identity a device id can be, and each kind's canonical form. Shared by the decoders (which
// emit ids: an OpenTRV node id, later a LoRaWAN DevEUI) and the device registry (which keys devices by them), so
// `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and `aa:bb:cc:dd:ee:ff` are one device. Pure functions, no I/O.
import { BackhaulError, shown } from './errors.js';

/** What kind of identity a device id is. */
export const ID_KINDS = ['mac', 'deveui', 'uuid', 'opentrv', 'other'] as const;
export type IdKind = (typeof ID_KINDS)[number];

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

/**
 * Canonical OpenTRV node id as the radio sends it (no `0x`): lower-case hex, left-padded with `0` to an even number
 * of digits and at least 4, so `D49` and `0d49` are the same device. Undefined when `raw` is not 2 to 8 bytes of hex.
 */
export function canonicalNodeId(raw: string): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(raw)) return undefined;
  let id = raw.toLowerCase();
  if (id.length % 2 === 1) id = `0${id}`;
  if (id.length < 4) id = id.padStart(4, '0');
  return id.length <= 16 ? id : undefined;
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

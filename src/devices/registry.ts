// The device registry: the DeviceStore interface every store implements (SQLite here; PostgreSQL later, held to the
// same test/devices/store-conformance.ts), the validation and merge rules all stores share (`planDevice`), and
// SqliteDeviceStore, the default: one file `<data>/registry.sqlite`, WAL mode, prepared statements, schema version in
// `user_version`.
//
// Stores validate what they are given (id normalised by kind, known type, location levels, tags, thresholds, config
// against its type's schema) with the same function, so every store refuses the same things with the same codes.
// Devices declared in the config file are kept in the same table with `source: 'config'` (replaceConfigDevices);
// operators cannot change or remove them here (BH_DEVICE_READ_ONLY), while what the hub records about them (last
// seen, status, state) is stored as for any other device. Stores do not write the audit log themselves: the CLI, the
// API and the manifest importer append who did what (appendAudit).
import { basename, dirname, extname, join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSchemaFile, StatementCache } from '../core/sqlite.js';
import { systemClock, type Clock } from '../core/clock.js';
import { BackhaulError } from '../core/errors.js';
import { whereClause } from '../core/sql.js';
import { LoginHasher } from './credentials.js';
import type { DeviceTypes } from './device-types.js';
import { shown } from '../core/errors.js';
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
  type DeviceClaim,
  type DeviceCredentials,
  type DeviceSource,
  type DeviceState,
  type IdKind,
  type JsonObject,
  type JsonValue,
  type Location,
  type Thresholds,
} from './types.js';

// ---------------------------------------------------------------- interface

/**
 * What to set on a device. An absent field is left as it is (or defaulted on creation); an empty string, empty
 * array or `null` clears it. `type` is required to create a device.
 */
export interface DevicePatch {
  readonly type?: string;
  readonly location?: { readonly site?: string; readonly building?: string; readonly room?: string };
  readonly description?: string;
  readonly tags?: readonly string[];
  readonly enabled?: boolean;
  readonly thresholds?: { readonly maxSilentMs?: number | null; readonly batteryFloor?: number | null };
  /** Replaces the whole config; validated against the (new) type's schema. */
  readonly config?: unknown;
}

export interface DeviceInput extends DevicePatch {
  /** As written; made canonical for its kind. */
  readonly id: string;
  /** Guessed from the id's form when absent (guessIdKind). */
  readonly kind?: string;
}

export type Change = 'created' | 'updated' | 'unchanged';

export interface UpsertResult {
  readonly device: Device;
  readonly change: Change;
  /** Fields that differ from before (empty when created or unchanged). */
  readonly changed: readonly string[];
}

export type UpsertOutcome = { readonly ok: UpsertResult } | { readonly error: BackhaulError };

export interface DeviceFilter {
  /** Location fields compare without regard to case. */
  readonly site?: string;
  readonly building?: string;
  readonly room?: string;
  readonly type?: string;
  readonly state?: DeviceState;
  readonly enabled?: boolean;
  readonly tag?: string;
  /** Substring (any case) of the id, description, location or a tag. */
  readonly search?: string;
  readonly source?: DeviceSource;
  readonly limit?: number;
  readonly offset?: number;
}

export interface NewCredentials {
  readonly username: string;
  /** Its hash (`logins.hash` of a generated password, credentials.ts); absent to leave one pending for the bootstrap call. */
  readonly hash?: string;
  readonly passwordIssued: boolean;
}

export interface TouchItem {
  readonly id: string;
  readonly at: number;
  /** The device's status JSON; left as it was when absent. */
  readonly status?: JsonValue;
}

export interface TouchManyResult {
  /** How many items named a device the registry has (and were written). */
  readonly known: number;
  /** Items refused one by one (BH_DEVICE_FIELD), by index in the batch; nothing of them was written. */
  readonly rejected: ReadonlyArray<{ readonly index: number; readonly error: BackhaulError }>;
}

export interface AuditInput {
  /** Who: `cli:alice`, `api:bob`, `hub`, `device:<id>`. */
  readonly actor: string;
  /** What: `device.add`, `device.set`, `device.enable`, `device.import`, `credentials.reset`, `command.reboot`. */
  readonly action: string;
  readonly device?: string;
  readonly detail?: JsonObject;
  /** `ok`, `error: ...`, `acknowledged`, ... */
  readonly result?: string;
  /** Default: the store's clock. */
  readonly at?: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly device?: string;
  readonly detail?: JsonObject;
  readonly result?: string;
}

export interface AuditQuery {
  readonly device?: string;
  readonly action?: string;
  /** Inclusive, ms. */
  readonly since?: number;
  readonly limit?: number;
}

/** What becomes of an order: sent, then acknowledged or failed by the device, or expired without an answer. */
export const COMMAND_STATUSES = ['sent', 'acknowledged', 'failed', 'expired'] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export interface CommandInput {
  /** Unique; carried in the published order so the device's acknowledgement can name it. */
  readonly id: string;
  readonly device: string;
  readonly order: string;
  readonly params: JsonObject;
  /** Who sent it: `cli:alice`, `api:bob`, `route:<name>`. */
  readonly actor: string;
  /** The command topic it was published on, and its `dest`. */
  readonly topic: string;
  readonly dest: string;
  /** Default: the store's clock. */
  readonly at?: number;
}

export interface CommandRecord extends Omit<CommandInput, 'at'> {
  readonly sentAt: number;
  readonly status: CommandStatus;
  /** When it was acknowledged, failed or expired. */
  readonly doneAt?: number;
  /** What the device answered (its status message), or why it expired. */
  readonly result?: JsonValue;
}

export interface CommandQuery {
  readonly device?: string;
  readonly status?: CommandStatus;
  readonly limit?: number;
}

/** A device the config file declares, with optional credentials from a secret (hashed by the caller). */
export interface ConfigDeviceInput extends DeviceInput {
  readonly credentials?: { readonly username: string; readonly hash: string };
}

export interface ConfigSyncResult {
  readonly created: readonly string[];
  readonly updated: readonly string[];
  readonly unchanged: readonly string[];
  /** Config devices no longer in the config, removed. */
  readonly removed: readonly string[];
  /** Registry devices the config now declares: they became read-only config entries. */
  readonly adopted: readonly string[];
}

/**
 * A place devices are kept. Every method validates like `planDevice` and throws BackhaulErrors: BH_DEVICE_NOT_FOUND,
 * BH_DEVICE_EXISTS, BH_DEVICE_READ_ONLY, and the validation codes (BH_DEVICE_ID, _TYPE, _LOCATION, _FIELD, _CONFIG).
 * Ids passed to lookups are canonical ids (normaliseId), as Readings carry them.
 */
export interface DeviceStore {
  readonly types: DeviceTypes;
  /** Hashes generated passwords and verifies stored ones with this registry's own key (credentials.ts). */
  readonly logins: LoginHasher;
  get(id: string): Promise<Device | undefined>;
  getByUsername(username: string): Promise<Device | undefined>;
  /** Sorted by id. */
  list(filter?: DeviceFilter): Promise<Device[]>;
  /**
   * A value that changes whenever a device was added, removed or changed in anything but its last-seen time and
   * status, through this store or any other (the CLI in another process): a view made from `list()` is still
   * current while this is unchanged, so a periodic re-read can skip the list.
   */
  changeToken(): Promise<string>;
  count(filter?: DeviceFilter): Promise<number>;
  /** A new device (state INIT, no password yet); BH_DEVICE_EXISTS when the id is taken. */
  create(input: DeviceInput): Promise<Device>;
  /** Create or change; `dryRun` reports what would happen and changes nothing. */
  upsert(input: DeviceInput, opts?: { readonly dryRun?: boolean }): Promise<UpsertResult>;
  /** Many upserts at once (one transaction where the store has them); a bad item fails alone. */
  upsertMany(inputs: readonly DeviceInput[], opts?: { readonly dryRun?: boolean }): Promise<UpsertOutcome[]>;
  /** Change an existing device; BH_DEVICE_NOT_FOUND otherwise. */
  update(id: string, patch: DevicePatch): Promise<UpsertResult>;
  setEnabled(id: string, enabled: boolean): Promise<Device>;
  /** BLOCKED keeps `reason`; INIT and ACTIVE clear it. Allowed on config devices (the hub sets it). */
  setState(id: string, state: DeviceState, reason?: string): Promise<Device>;
  /** Record a message from the device. Never moves lastSeen back. False when the device is unknown. */
  touch(id: string, at: number, status?: JsonValue): Promise<boolean>;
  /**
   * `touch` for many devices in one go (the hub flushes last-seen times in batches). An item that cannot be stored
   * (a time that is not a finite number, a status that does not serialise) is rejected alone and the rest are
   * written; the batch as a whole fails only when the store itself does.
   */
  touchMany(items: readonly TouchItem[]): Promise<TouchManyResult>;
  /**
   * Set a device's login. With `onlyIfPending`, only when its password has not been handed out yet (the bootstrap
   * call: two concurrent calls must not both deliver one); returns false when that condition failed.
   */
  setCredentials(id: string, creds: NewCredentials, opts?: { readonly onlyIfPending?: boolean }): Promise<boolean>;
  /**
   * Invalidate the password: the old one stops working, and the next bootstrap call in an open claim window delivers
   * a new one. Forgets the last claim (when and by whom).
   */
  resetCredentials(id: string): Promise<Device>;
  /**
   * Open the claim window of these devices (canonical ids), or of every registry device whose password is still
   * pending (`'unclaimed'`), until `until` (ms). Refused for a device whose password was handed out already
   * (BH_DEVICE_CLAIMED: reset its credentials first) and for config devices (BH_DEVICE_READ_ONLY). Returns the ids.
   */
  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]>;
  /** Close the windows of these devices, or every open one (`'all'`); returns the ids that had one open. */
  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]>;
  /** Set the claim code's scrypt hash, or remove it (undefined). BH_DEVICE_READ_ONLY for config devices. */
  setClaimCode(id: string, codeHash: string | undefined): Promise<Device>;
  /**
   * The bootstrap claim, atomic: only while the password is pending and the claim window is open at `at` (default
   * now), store the login as issued, record when and by whom (a client address), and close the window. False when a
   * condition failed (another call claimed it first, or the window is closed).
   */
  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean>;
  /** False when there was no such device. */
  remove(id: string): Promise<boolean>;
  /** Make the config-declared devices exactly these (source `config`), keeping what the hub recorded about them. */
  replaceConfigDevices(inputs: readonly ConfigDeviceInput[]): Promise<ConfigSyncResult>;
  appendAudit(entry: AuditInput): Promise<AuditEntry>;
  /** Several entries in one go (one transaction where the store has them); returns how many. */
  appendAuditMany(entries: readonly AuditInput[]): Promise<number>;
  /** Newest first. */
  listAudit(q?: AuditQuery): Promise<AuditEntry[]>;
  /** Record an order as sent. BH_DEVICE_EXISTS when its id is taken. */
  recordCommand(c: CommandInput): Promise<CommandRecord>;
  /**
   * Close a sent order: acknowledged, failed or expired, with what the device answered. Only a `sent` order changes
   * (an acknowledgement arriving twice, or after expiry, changes nothing); returns the record as it now is, undefined
   * when there is no such order.
   */
  settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined>;
  getCommand(id: string): Promise<CommandRecord | undefined>;
  /** Newest first. */
  listCommands(q?: CommandQuery): Promise<CommandRecord[]>;
  /**
   * Replace password hashes in place (a generated password moved from scrypt to the fast format on a successful
   * login): each only while the registry device still has exactly `from`, so a reset or a new password since wins, and
   * without changing when its login was set (connections made with it keep their rights). Config devices are never
   * changed: their passwords are a person's. Returns how many changed; one transaction where the store has them.
   */
  rehashCredentials(items: readonly RehashItem[]): Promise<number>;
  close(): Promise<void>;
}

export interface RehashItem {
  readonly id: string;
  readonly from: string;
  readonly to: string;
}

// ---------------------------------------------------------------- shared rules

/** JSON with sorted keys, for comparing configs and statuses. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

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
export async function findDevice(store: DeviceStore, raw: string, kind?: string, path = 'id'): Promise<Device> {
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

function notFound(id: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_NOT_FOUND', `no device ${shown(id)} in the registry`, { path: 'id' });
}

function readOnly(id: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_READ_ONLY', `device ${shown(id)} is declared in the config file; change it there`, { path: 'id' });
}

// ---------------------------------------------------------------- SQLite

// 2: claim windows and codes (claim_until, claim_code_hash, claimed_at, claimed_by), added to version-1 files by
// `migrate`.
const SCHEMA_VERSION = 2;

const CLAIM_COLUMNS = ['claim_until INTEGER', 'claim_code_hash TEXT', 'claimed_at INTEGER', 'claimed_by TEXT'] as const;

function migrate(db: Database.Database, from: number): void {
  if (from < 2) for (const c of CLAIM_COLUMNS) db.exec(`ALTER TABLE devices ADD COLUMN ${c}`);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id               TEXT PRIMARY KEY,
  kind             TEXT    NOT NULL,
  type             TEXT    NOT NULL,
  site             TEXT,
  building         TEXT,
  room             TEXT,
  description      TEXT    NOT NULL DEFAULT '',
  tags             TEXT    NOT NULL DEFAULT '[]',
  enabled          INTEGER NOT NULL DEFAULT 1,
  state            TEXT    NOT NULL DEFAULT 'INIT',
  blocked_reason   TEXT,
  max_silent_ms    INTEGER,
  battery_floor    REAL,
  last_seen        INTEGER,
  last_status      TEXT,
  config           TEXT    NOT NULL DEFAULT '{}',
  username         TEXT,
  password_hash    TEXT,
  password_issued  INTEGER NOT NULL DEFAULT 0,
  credentials_at   INTEGER,
  claim_until      INTEGER,
  claim_code_hash  TEXT,
  claimed_at       INTEGER,
  claimed_by       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  source           TEXT    NOT NULL DEFAULT 'registry'
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_username ON devices (username) WHERE username IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_location ON devices (building COLLATE NOCASE, room COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS devices_type ON devices (type);
CREATE TABLE IF NOT EXISTS audit (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  actor   TEXT    NOT NULL,
  action  TEXT    NOT NULL,
  device  TEXT,
  detail  TEXT,
  result  TEXT
);
CREATE INDEX IF NOT EXISTS audit_device_at ON audit (device, at);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS commands (
  id        TEXT PRIMARY KEY,
  device    TEXT    NOT NULL,
  name      TEXT    NOT NULL,
  params    TEXT    NOT NULL DEFAULT '{}',
  actor     TEXT    NOT NULL,
  topic     TEXT    NOT NULL,
  dest      TEXT    NOT NULL,
  sent_at   INTEGER NOT NULL,
  status    TEXT    NOT NULL DEFAULT 'sent',
  done_at   INTEGER,
  result    TEXT
);
CREATE INDEX IF NOT EXISTS commands_device_sent ON commands (device, sent_at);
CREATE INDEX IF NOT EXISTS commands_sent ON commands (sent_at);
`;

interface CommandRow {
  id: string;
  device: string;
  name: string;
  params: string;
  actor: string;
  topic: string;
  dest: string;
  sent_at: number;
  status: string;
  done_at: number | null;
  result: string | null;
}

function toCommand(r: CommandRow): CommandRecord {
  return {
    id: r.id,
    device: r.device,
    order: r.name,
    params: parseJson<JsonObject>(r.params, {}),
    actor: r.actor,
    topic: r.topic,
    dest: r.dest,
    sentAt: r.sent_at,
    status: (COMMAND_STATUSES as readonly string[]).includes(r.status) ? (r.status as CommandStatus) : 'sent',
    ...(r.done_at !== null ? { doneAt: r.done_at } : {}),
    ...(r.result !== null ? { result: parseJson<JsonValue>(r.result, null) } : {}),
  };
}

interface DeviceRow {
  id: string;
  kind: string;
  type: string;
  site: string | null;
  building: string | null;
  room: string | null;
  description: string;
  tags: string;
  enabled: number;
  state: string;
  blocked_reason: string | null;
  max_silent_ms: number | null;
  battery_floor: number | null;
  last_seen: number | null;
  last_status: string | null;
  config: string;
  username: string | null;
  password_hash: string | null;
  password_issued: number;
  credentials_at: number | null;
  claim_until: number | null;
  claim_code_hash: string | null;
  claimed_at: number | null;
  claimed_by: string | null;
  created_at: number;
  updated_at: number;
  source: string;
}

interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  device: string | null;
  detail: string | null;
  result: string | null;
}

function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** Columns that change with every message of a device, not with what it is: they do not move changeToken. */
const RUNTIME_COLUMNS = new Set(['last_seen', 'last_status']);

/**
 * Counts, in a temp table of this connection, its own changes to devices (SQLite's data_version counts only other
 * connections'). The column list is read from the table itself, so a column added later is counted too.
 */
function countDeviceChanges(db: Database.Database): void {
  const columns = (db.pragma('table_info(devices)') as Array<{ name: string }>).map((c) => c.name).filter((c) => !RUNTIME_COLUMNS.has(c));
  // A trigger names the table it changes unqualified; a TEMP trigger's finds the temp one.
  const bump = 'BEGIN UPDATE device_changes SET n = n + 1; END';
  db.exec(`
    CREATE TEMP TABLE IF NOT EXISTS device_changes (n INTEGER NOT NULL);
    INSERT INTO temp.device_changes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM temp.device_changes);
    CREATE TEMP TRIGGER IF NOT EXISTS device_changes_insert AFTER INSERT ON main.devices ${bump};
    CREATE TEMP TRIGGER IF NOT EXISTS device_changes_delete AFTER DELETE ON main.devices ${bump};
    CREATE TEMP TRIGGER IF NOT EXISTS device_changes_update AFTER UPDATE OF ${columns.map((c) => `"${c}"`).join(', ')} ON main.devices ${bump};
  `);
}

function toDevice(r: DeviceRow): Device {
  const location: { site?: string; building?: string; room?: string } = {};
  if (r.site !== null) location.site = r.site;
  if (r.building !== null) location.building = r.building;
  if (r.room !== null) location.room = r.room;
  const thresholds: { maxSilentMs?: number; batteryFloor?: number } = {};
  if (r.max_silent_ms !== null) thresholds.maxSilentMs = r.max_silent_ms;
  if (r.battery_floor !== null) thresholds.batteryFloor = r.battery_floor;
  const credentials: DeviceCredentials | undefined =
    r.username === null
      ? undefined
      : {
          username: r.username,
          ...(r.password_hash !== null ? { hash: r.password_hash } : {}),
          passwordIssued: r.password_issued !== 0,
          updatedAt: r.credentials_at ?? r.updated_at,
        };
  const claim: DeviceClaim = {
    ...(r.claim_until !== null ? { until: r.claim_until } : {}),
    ...(r.claim_code_hash !== null ? { codeHash: r.claim_code_hash } : {}),
    ...(r.claimed_at !== null ? { claimedAt: r.claimed_at } : {}),
    ...(r.claimed_by !== null ? { claimedBy: r.claimed_by } : {}),
  };
  return {
    id: r.id,
    kind: r.kind as IdKind,
    type: r.type,
    location,
    description: r.description,
    tags: parseJson<string[]>(r.tags, []),
    enabled: r.enabled !== 0,
    state: r.state as DeviceState,
    ...(r.blocked_reason !== null ? { blockedReason: r.blocked_reason } : {}),
    thresholds,
    ...(r.last_seen !== null ? { lastSeen: r.last_seen } : {}),
    ...(r.last_status !== null ? { lastStatus: parseJson<JsonValue>(r.last_status, null) } : {}),
    config: parseJson<JsonObject>(r.config, {}),
    ...(credentials ? { credentials } : {}),
    ...(Object.keys(claim).length > 0 ? { claim } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    source: r.source === 'config' ? 'config' : 'registry',
  };
}

/** The columns an upsert writes (attributes; never runtime fields or credentials). */
function attributeParams(d: Device): Record<string, string | number | null> {
  return {
    id: d.id,
    kind: d.kind,
    type: d.type,
    site: d.location.site ?? null,
    building: d.location.building ?? null,
    room: d.location.room ?? null,
    description: d.description,
    tags: JSON.stringify(d.tags),
    enabled: d.enabled ? 1 : 0,
    max_silent_ms: d.thresholds.maxSilentMs ?? null,
    battery_floor: d.thresholds.batteryFloor ?? null,
    config: JSON.stringify(d.config),
    created_at: d.createdAt,
    updated_at: d.updatedAt,
    source: d.source,
  };
}

type Params = Record<string, string | number | null>;

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function whereOf(f: DeviceFilter): { sql: string; params: Params } {
  const clauses: string[] = [];
  const params: Params = {};
  for (const key of ['site', 'building', 'room'] as const) {
    const v = f[key];
    if (v !== undefined) {
      clauses.push(`${key} = @${key} COLLATE NOCASE`);
      params[key] = v;
    }
  }
  for (const key of ['type', 'state', 'source'] as const) {
    const v = f[key];
    if (v !== undefined) {
      clauses.push(`${key} = @${key}`);
      params[key] = v;
    }
  }
  if (f.enabled !== undefined) {
    clauses.push('enabled = @enabled');
    params['enabled'] = f.enabled ? 1 : 0;
  }
  if (f.tag !== undefined) {
    clauses.push('EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE json_each.value = @tag)');
    params['tag'] = f.tag;
  }
  if (f.search !== undefined && f.search !== '') {
    clauses.push(
      `(id LIKE @search ESCAPE '\\' OR description LIKE @search ESCAPE '\\' OR site LIKE @search ESCAPE '\\'
        OR building LIKE @search ESCAPE '\\' OR room LIKE @search ESCAPE '\\' OR tags LIKE @search ESCAPE '\\')`,
    );
    params['search'] = `%${likeEscape(f.search)}%`;
  }
  return { sql: clauses.length > 0 ? ` WHERE ${clauses.join(' AND ')}` : '', params };
}

export interface SqliteDeviceStoreOptions {
  readonly types: DeviceTypes;
  readonly clock?: Clock;
  /** `FULL` (default): every change survives a power cut. */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Default: the key in loginKeyPath(path), made when missing (a random one for `:memory:`). */
  readonly logins?: LoginHasher;
}

/** The registry file in a data folder. */
export function registryPath(dataDir: string): string {
  return join(dataDir, 'registry.sqlite');
}

/**
 * The login key of a registry file: beside it, never in it, so a copy of the registry alone cannot test passwords
 * (`<data>/registry.key` for `<data>/registry.sqlite`).
 */
export function loginKeyPath(registryFile: string): string {
  return join(dirname(registryFile), `${basename(registryFile, extname(registryFile))}.key`);
}

export class SqliteDeviceStore implements DeviceStore {
  readonly types: DeviceTypes;
  readonly logins: LoginHasher;
  private readonly clock: Clock;
  private readonly cache: StatementCache;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    opts: SqliteDeviceStoreOptions & { readonly logins: LoginHasher },
  ) {
    this.types = opts.types;
    this.logins = opts.logins;
    this.clock = opts.clock ?? systemClock;
    this.cache = new StatementCache(db);
  }

  /** Open (and create) a registry file; `:memory:` for a throw-away one. BH_REGISTRY_OPEN when it cannot be used. */
  static open(path: string, opts: SqliteDeviceStoreOptions): SqliteDeviceStore {
    const db = openSchemaFile(path, {
      schema: SCHEMA,
      version: SCHEMA_VERSION,
      code: 'BH_REGISTRY_OPEN',
      what: 'device registry',
      synchronous: opts.synchronous ?? 'FULL',
      foreignKeys: true,
      migrate,
    });
    let logins: LoginHasher;
    try {
      countDeviceChanges(db);
      logins = opts.logins ?? (path === ':memory:' ? LoginHasher.random() : LoginHasher.load(loginKeyPath(path)));
    } catch (e) {
      db.close();
      throw e;
    }
    return new SqliteDeviceStore(db, path, { ...opts, logins });
  }

  private stmt(sql: string): Database.Statement {
    return this.cache.get(sql);
  }

  private row(id: string): DeviceRow | undefined {
    return this.stmt('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
  }

  private getSync(id: string): Device | undefined {
    const r = this.row(id);
    return r ? toDevice(r) : undefined;
  }

  private mustGet(id: string): Device {
    const d = this.getSync(id);
    if (!d) throw notFound(id);
    return d;
  }

  private mustBeWritable(id: string): Device {
    const d = this.mustGet(id);
    if (d.source === 'config') throw readOnly(id);
    return d;
  }

  private writeAttributes(d: Device, insert: boolean): void {
    const p = attributeParams(d);
    if (insert) {
      this.stmt(
        `INSERT INTO devices (id, kind, type, site, building, room, description, tags, enabled, max_silent_ms, battery_floor,
           config, created_at, updated_at, source, state)
         VALUES (@id, @kind, @type, @site, @building, @room, @description, @tags, @enabled, @max_silent_ms, @battery_floor,
           @config, @created_at, @updated_at, @source, 'INIT')`,
      ).run(p);
    } else {
      this.stmt(
        `UPDATE devices SET kind = @kind, type = @type, site = @site, building = @building, room = @room,
           description = @description, tags = @tags, enabled = @enabled, max_silent_ms = @max_silent_ms,
           battery_floor = @battery_floor, config = @config, updated_at = @updated_at, source = @source
         WHERE id = @id`,
      ).run(p);
    }
  }

  private upsertSync(input: DeviceInput, dryRun: boolean): UpsertResult {
    const { id, kind } = identify(input);
    const existing = this.getSync(id);
    if (existing?.source === 'config') throw readOnly(id);
    const plan = planDevice(existing, id, kind, input, this.types, this.clock.now());
    if (!dryRun && plan.change !== 'unchanged') this.writeAttributes(plan.device, plan.change === 'created');
    return plan;
  }

  get(id: string): Promise<Device | undefined> {
    return this.read(() => this.getSync(id));
  }

  getByUsername(username: string): Promise<Device | undefined> {
    return this.read(() => {
      const r = this.stmt('SELECT * FROM devices WHERE username = ?').get(username) as DeviceRow | undefined;
      return r ? toDevice(r) : undefined;
    });
  }

  list(filter: DeviceFilter = {}): Promise<Device[]> {
    return this.read(() => this.listSync(filter));
  }

  private listSync(filter: DeviceFilter): Device[] {
    const { sql, params } = whereOf(filter);
    let page = '';
    if (filter.limit !== undefined) {
      page = ' LIMIT @limit OFFSET @offset';
      params['limit'] = Math.max(0, Math.floor(filter.limit));
      params['offset'] = Math.max(0, Math.floor(filter.offset ?? 0));
    } else if (filter.offset !== undefined) {
      page = ' LIMIT -1 OFFSET @offset';
      params['offset'] = Math.max(0, Math.floor(filter.offset));
    }
    const rows = this.stmt(`SELECT * FROM devices${sql} ORDER BY id${page}`).all(params) as DeviceRow[];
    return rows.map(toDevice);
  }

  changeToken(): Promise<string> {
    return this.read(() => {
      // data_version moves with every commit of another connection; the temp counter with this one's own changes.
      const others = this.db.pragma('data_version', { simple: true }) as number;
      const own = (this.stmt('SELECT n FROM temp.device_changes').get() as { n: number }).n;
      return `${others}.${own}`;
    });
  }

  count(filter: DeviceFilter = {}): Promise<number> {
    return this.read(() => {
      const { sql, params } = whereOf(filter);
      return (this.stmt(`SELECT count(*) AS n FROM devices${sql}`).get(params) as { n: number }).n;
    });
  }

  create(input: DeviceInput): Promise<Device> {
    return this.tx(() => {
      const { id } = identify(input);
      if (this.row(id)) throw new BackhaulError('BH_DEVICE_EXISTS', `device ${shown(id)} is already in the registry`, { path: 'id' });
      return this.upsertSync(input, false).device;
    });
  }

  upsert(input: DeviceInput, opts: { readonly dryRun?: boolean } = {}): Promise<UpsertResult> {
    return this.tx(() => this.upsertSync(input, opts.dryRun ?? false));
  }

  upsertMany(inputs: readonly DeviceInput[], opts: { readonly dryRun?: boolean } = {}): Promise<UpsertOutcome[]> {
    const dryRun = opts.dryRun ?? false;
    // One transaction for the lot (one fsync, not one per device); each item in a savepoint, so a bad one fails alone.
    const one = this.db.transaction((input: DeviceInput) => this.upsertSync(input, dryRun));
    return this.tx(() =>
      inputs.map((input): UpsertOutcome => {
        try {
          return { ok: one(input) };
        } catch (e) {
          if (e instanceof BackhaulError) return { error: e };
          throw e;
        }
      }),
    );
  }

  update(id: string, patch: DevicePatch): Promise<UpsertResult> {
    return this.tx(() => {
      const existing = this.mustBeWritable(id);
      return this.upsertSync({ ...patch, id: existing.id, kind: existing.kind }, false);
    });
  }

  setEnabled(id: string, enabled: boolean): Promise<Device> {
    return this.update(id, { enabled }).then((r) => r.device);
  }

  setState(id: string, state: DeviceState, reason?: string): Promise<Device> {
    return this.tx(() => {
      this.mustGet(id);
      const why = state === 'BLOCKED' ? (reason ?? 'blocked') : null;
      this.stmt('UPDATE devices SET state = ?, blocked_reason = ?, updated_at = ? WHERE id = ?').run(state, why, this.clock.now(), id);
      return this.mustGet(id);
    });
  }

  /** What `touchSync` binds, checked: BH_DEVICE_FIELD for an item that cannot be stored, before any SQL runs. */
  private touchArgs(item: TouchItem): { id: string; at: number; status: string | null } {
    if (typeof item.at !== 'number' || !Number.isFinite(item.at)) {
      // NaN would bind as NULL, and max(last_seen, NULL) is NULL: the device's last-seen time would be wiped.
      throw new BackhaulError('BH_DEVICE_FIELD', 'a last-seen time must be a finite number of ms', { path: 'lastSeen' });
    }
    let status: string | null = null;
    if (item.status !== undefined) {
      try {
        status = JSON.stringify(item.status) ?? null;
      } catch (e) {
        // A status the gate let through and still cannot be written (nested too deep for the stack, a cycle).
        throw new BackhaulError('BH_DEVICE_FIELD', `the status cannot be stored (${e instanceof Error ? e.message : String(e)})`, {
          path: 'lastStatus',
          cause: e,
        });
      }
    }
    return { id: item.id, at: Math.round(item.at), status };
  }

  private touchSync(args: { id: string; at: number; status: string | null }): boolean {
    // Every expression sees the row as it was, so the status is taken only from a message newer than the last one.
    const r = this.stmt(
      `UPDATE devices SET
         last_status = CASE WHEN @status IS NOT NULL AND @at >= ifnull(last_seen, 0) THEN @status ELSE last_status END,
         last_seen = max(ifnull(last_seen, 0), @at)
       WHERE id = @id`,
    ).run(args);
    return r.changes > 0;
  }

  touch(id: string, at: number, status?: JsonValue): Promise<boolean> {
    return this.read(() => this.touchSync(this.touchArgs(status === undefined ? { id, at } : { id, at, status })));
  }

  touchMany(items: readonly TouchItem[]): Promise<TouchManyResult> {
    // Items are checked before the transaction, so a bad one is rejected alone; an SQL failure (disk full, a locked
    // file) still fails the whole batch, which the caller keeps and retries.
    const rejected: Array<{ index: number; error: BackhaulError }> = [];
    const good: Array<{ id: string; at: number; status: string | null }> = [];
    items.forEach((item, index) => {
      try {
        good.push(this.touchArgs(item));
      } catch (e) {
        rejected.push({ index, error: e instanceof BackhaulError ? e : new BackhaulError('BH_DEVICE_FIELD', String(e)) });
      }
    });
    return this.tx(() => ({ known: good.reduce((n, args) => n + (this.touchSync(args) ? 1 : 0), 0), rejected }));
  }

  setCredentials(id: string, creds: NewCredentials, opts: { readonly onlyIfPending?: boolean } = {}): Promise<boolean> {
    return this.tx(() => {
      const d = this.mustBeWritable(id);
      if (opts.onlyIfPending && d.credentials?.passwordIssued) return false;
      const owner = this.stmt('SELECT id FROM devices WHERE username = ?').pluck().get(creds.username) as string | undefined;
      if (owner !== undefined && owner !== id) {
        throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(creds.username)} belongs to device ${shown(owner)}`, { path: 'username' });
      }
      this.stmt('UPDATE devices SET username = ?, password_hash = ?, password_issued = ?, credentials_at = ? WHERE id = ?').run(
        creds.username,
        creds.hash ?? null,
        creds.passwordIssued ? 1 : 0,
        this.clock.now(),
        id,
      );
      return true;
    });
  }

  resetCredentials(id: string): Promise<Device> {
    return this.tx(() => {
      const d = this.mustBeWritable(id);
      this.stmt(
        'UPDATE devices SET username = ?, password_hash = NULL, password_issued = 0, credentials_at = ?, claimed_at = NULL, claimed_by = NULL WHERE id = ?',
      ).run(d.credentials?.username ?? d.id, this.clock.now(), id);
      return this.mustGet(id);
    });
  }

  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]> {
    return this.tx(() => {
      let ids: string[];
      if (target === 'unclaimed') {
        ids = this.stmt("SELECT id FROM devices WHERE source = 'registry' AND password_issued = 0 ORDER BY id").pluck().all() as string[];
      } else {
        ids = [...new Set(target)];
        for (const id of ids) {
          const d = this.mustBeWritable(id);
          if (d.credentials?.passwordIssued) {
            throw new BackhaulError('BH_DEVICE_CLAIMED', `device ${shown(id)} has had its password already; reset its credentials for bootstrap first`, {
              path: 'id',
            });
          }
        }
      }
      const set = this.stmt('UPDATE devices SET claim_until = ? WHERE id = ?');
      for (const id of ids) set.run(Math.round(until), id);
      return ids;
    });
  }

  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]> {
    return this.tx(() => {
      const open = this.stmt('SELECT id FROM devices WHERE claim_until IS NOT NULL ORDER BY id').pluck().all() as string[];
      const ids = target === 'all' ? open : open.filter((id) => target.includes(id));
      const clear = this.stmt('UPDATE devices SET claim_until = NULL WHERE id = ?');
      for (const id of ids) clear.run(id);
      return ids;
    });
  }

  setClaimCode(id: string, codeHash: string | undefined): Promise<Device> {
    return this.tx(() => {
      this.mustBeWritable(id);
      this.stmt('UPDATE devices SET claim_code_hash = ? WHERE id = ?').run(codeHash ?? null, id);
      return this.mustGet(id);
    });
  }

  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean> {
    return this.tx(() => {
      const now = at ?? this.clock.now();
      const owner = this.stmt('SELECT id FROM devices WHERE username = ?').pluck().get(creds.username) as string | undefined;
      if (owner !== undefined && owner !== id) {
        throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(creds.username)} belongs to device ${shown(owner)}`, { path: 'username' });
      }
      const r = this.stmt(
        `UPDATE devices SET username = @username, password_hash = @hash, password_issued = 1, credentials_at = @now,
           claimed_at = @now, claimed_by = @by, claim_until = NULL
         WHERE id = @id AND source = 'registry' AND password_issued = 0 AND claim_until IS NOT NULL AND claim_until > @now`,
      ).run({ id, username: creds.username, hash: creds.hash, now, by });
      return r.changes > 0;
    });
  }

  remove(id: string): Promise<boolean> {
    return this.tx(() => {
      const d = this.getSync(id);
      if (!d) return false;
      if (d.source === 'config') throw readOnly(id);
      this.stmt('DELETE FROM devices WHERE id = ?').run(id);
      return true;
    });
  }

  replaceConfigDevices(inputs: readonly ConfigDeviceInput[]): Promise<ConfigSyncResult> {
    return this.tx(() => {
      const now = this.clock.now();
      const created: string[] = [];
      const updated: string[] = [];
      const unchanged: string[] = [];
      const adopted: string[] = [];
      const seen = new Set<string>();
      inputs.forEach((input, i) => {
        const at = (e: unknown): never => {
          if (e instanceof BackhaulError) throw new BackhaulError(e.code, e.detail, { path: `devices[${i}]${e.path ? `.${e.path}` : ''}` });
          throw e;
        };
        let ident: { id: string; kind: IdKind };
        let existing: Device | undefined;
        let plan: ReturnType<typeof planDevice>;
        try {
          ident = identify(input);
          if (seen.has(ident.id)) throw new BackhaulError('BH_DEVICE_EXISTS', `device ${shown(ident.id)} is declared twice`, { path: 'id' });
          seen.add(ident.id);
          existing = this.getSync(ident.id);
          plan = planDevice(existing, ident.id, ident.kind, input, this.types, now);
          const c = input.credentials;
          const owner = c && (this.stmt('SELECT id FROM devices WHERE username = ?').pluck().get(c.username) as string | undefined);
          if (owner && owner !== ident.id) {
            throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(c.username)} belongs to device ${shown(owner)}`, { path: 'credentials.username' });
          }
        } catch (e) {
          return at(e);
        }
        if (existing?.source === 'registry') adopted.push(ident.id);
        if (plan.change !== 'unchanged' || existing?.source !== 'config') this.writeAttributes({ ...plan.device, source: 'config' }, plan.change === 'created');
        // A config device's login is the config's: set from it, or none.
        const c = input.credentials;
        this.stmt('UPDATE devices SET username = ?, password_hash = ?, password_issued = ?, credentials_at = ? WHERE id = ?').run(
          c?.username ?? null,
          c?.hash ?? null,
          c ? 1 : 0,
          c ? (existing?.credentials?.hash === c.hash ? existing.credentials.updatedAt : now) : null,
          ident.id,
        );
        (plan.change === 'created' ? created : plan.change === 'updated' ? updated : unchanged).push(ident.id);
      });
      const removed: string[] = [];
      for (const id of this.stmt("SELECT id FROM devices WHERE source = 'config' ORDER BY id").pluck().all() as string[]) {
        if (!seen.has(id)) {
          this.stmt('DELETE FROM devices WHERE id = ?').run(id);
          removed.push(id);
        }
      }
      return { created, updated, unchanged, removed, adopted };
    });
  }

  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return this.read(() => this.appendAuditSync(entry));
  }

  appendAuditMany(entries: readonly AuditInput[]): Promise<number> {
    return this.tx(() => {
      for (const e of entries) this.appendAuditSync(e);
      return entries.length;
    });
  }

  private appendAuditSync(entry: AuditInput): AuditEntry {
    const at = entry.at ?? this.clock.now();
    const r = this.stmt('INSERT INTO audit (at, actor, action, device, detail, result) VALUES (?, ?, ?, ?, ?, ?)').run(
      at,
      entry.actor,
      entry.action,
      entry.device ?? null,
      entry.detail === undefined ? null : JSON.stringify(entry.detail),
      entry.result ?? null,
    );
    return {
      seq: Number(r.lastInsertRowid),
      at,
      actor: entry.actor,
      action: entry.action,
      ...(entry.device !== undefined ? { device: entry.device } : {}),
      ...(entry.detail !== undefined ? { detail: entry.detail } : {}),
      ...(entry.result !== undefined ? { result: entry.result } : {}),
    };
  }

  listAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.read(() => this.listAuditSync(q));
  }

  private listAuditSync(q: AuditQuery): AuditEntry[] {
    const { sql: where, params } = whereClause([
      ['device = @device', 'device', q.device],
      ['action = @action', 'action', q.action],
      ['at >= @since', 'since', q.since],
    ]);
    params['limit'] = q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit));
    const rows = this.stmt(`SELECT * FROM audit${where} ORDER BY seq DESC LIMIT @limit`).all(params) as AuditRow[];
    return rows.map((r) => ({
        seq: r.seq,
        at: r.at,
        actor: r.actor,
        action: r.action,
        ...(r.device !== null ? { device: r.device } : {}),
        ...(r.detail !== null ? { detail: parseJson<JsonObject>(r.detail, {}) } : {}),
        ...(r.result !== null ? { result: r.result } : {}),
      }));
  }

  recordCommand(c: CommandInput): Promise<CommandRecord> {
    return this.read(() => {
      const at = c.at ?? this.clock.now();
      try {
        this.stmt('INSERT INTO commands (id, device, name, params, actor, topic, dest, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
          c.id,
          c.device,
          c.order,
          JSON.stringify(c.params),
          c.actor,
          c.topic,
          c.dest,
          at,
        );
      } catch (e) {
        if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new BackhaulError('BH_DEVICE_EXISTS', `an order with id ${shown(c.id)} exists already`, { path: 'id' });
        }
        throw e;
      }
      return this.commandSync(c.id)!;
    });
  }

  settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined> {
    return this.read(() => {
      this.stmt("UPDATE commands SET status = ?, done_at = ?, result = ? WHERE id = ? AND status = 'sent'").run(
        status,
        at ?? this.clock.now(),
        result === undefined ? null : JSON.stringify(result),
        id,
      );
      return this.commandSync(id);
    });
  }

  getCommand(id: string): Promise<CommandRecord | undefined> {
    return this.read(() => this.commandSync(id));
  }

  private commandSync(id: string): CommandRecord | undefined {
    const r = this.stmt('SELECT * FROM commands WHERE id = ?').get(id) as CommandRow | undefined;
    return r ? toCommand(r) : undefined;
  }

  listCommands(q: CommandQuery = {}): Promise<CommandRecord[]> {
    return this.read(() => {
      const { sql: where, params } = whereClause([
        ['device = @device', 'device', q.device],
        ['status = @status', 'status', q.status],
      ]);
      params['limit'] = q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit));
      const rows = this.stmt(`SELECT * FROM commands${where} ORDER BY sent_at DESC, rowid DESC LIMIT @limit`).all(params) as CommandRow[];
      return rows.map(toCommand);
    });
  }

  rehashCredentials(items: readonly RehashItem[]): Promise<number> {
    return this.tx(() => {
      const set = this.stmt("UPDATE devices SET password_hash = @to WHERE id = @id AND password_hash = @from AND source = 'registry'");
      return items.reduce((n, i) => n + set.run({ id: i.id, from: i.from, to: i.to }).changes, 0);
    });
  }

  close(): Promise<void> {
    if (this.db.open) this.db.close();
    return Promise.resolve();
  }

  /** Run `fn` in a transaction; what it throws becomes a rejected promise. */
  private tx<T>(fn: () => T): Promise<T> {
    return this.read(() => this.db.transaction(fn)());
  }

  /** Run `fn` (one statement, or reads); what it throws becomes a rejected promise. */
  private read<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

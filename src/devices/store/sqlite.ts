// What the SQLite parts of the device store share: one connection to the registry file with its prepared statements
// and clock (each part extends SqlitePart over the same ones, so a transaction of one part sees the others' writes),
// the devices table's row form (device records and credentials both read it), and JSON columns read back leniently.
import type Database from 'better-sqlite3';
import type { StatementCache } from '../../core/sqlite.js';
import type { Clock } from '../../core/clock.js';
import { asLorawanState, isDeviceMode, type Device, type LorawanState, type DeviceClaim, type DeviceCredentials, type DeviceState, type IdKind, type JsonObject, type JsonValue } from '../types.js';
import { notFound, readOnly } from './rules.js';

export interface DeviceRow {
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
  learned_silent_ms: number | null;
  mode: string | null;
  lorawan: string | null;
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
  cert_fingerprint: string | null;
  cert_at: number | null;
  created_at: number;
  updated_at: number;
  source: string;
}

export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function lorawanOf(text: string | null): { lorawan?: LorawanState } {
  const l = asLorawanState(parseJson<unknown>(text, undefined));
  return l ? { lorawan: l } : {};
}

export function toDevice(r: DeviceRow): Device {
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
    ...(r.learned_silent_ms !== null ? { learnedSilentMs: r.learned_silent_ms } : {}),
    ...(isDeviceMode(r.mode) ? { mode: r.mode } : {}),
    ...lorawanOf(r.lorawan),
    ...(r.last_seen !== null ? { lastSeen: r.last_seen } : {}),
    ...(r.last_status !== null ? { lastStatus: parseJson<JsonValue>(r.last_status, null) } : {}),
    config: parseJson<JsonObject>(r.config, {}),
    ...(credentials ? { credentials } : {}),
    ...(Object.keys(claim).length > 0 ? { claim } : {}),
    ...(r.cert_fingerprint !== null ? { certificate: { fingerprint: r.cert_fingerprint, updatedAt: r.cert_at ?? r.updated_at } } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    source: r.source === 'config' ? 'config' : 'registry',
  };
}

/** One open registry file as its parts share it. */
export interface RegistryConnection {
  readonly db: Database.Database;
  readonly statements: StatementCache;
  readonly clock: Clock;
}

/** A part of the SQLite store: the helpers every part uses, over the shared connection. */
export abstract class SqlitePart {
  protected readonly db: Database.Database;
  protected readonly clock: Clock;
  private readonly cache: StatementCache;

  constructor(conn: RegistryConnection) {
    this.db = conn.db;
    this.clock = conn.clock;
    this.cache = conn.statements;
  }

  protected stmt(sql: string): Database.Statement {
    return this.cache.get(sql);
  }

  protected row(id: string): DeviceRow | undefined {
    return this.stmt('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
  }

  protected getSync(id: string): Device | undefined {
    const r = this.row(id);
    return r ? toDevice(r) : undefined;
  }

  protected mustGet(id: string): Device {
    const d = this.getSync(id);
    if (!d) throw notFound(id);
    return d;
  }

  protected mustBeWritable(id: string): Device {
    const d = this.mustGet(id);
    if (d.source === 'config') throw readOnly(id);
    return d;
  }

  /** Run `fn` in a transaction; what it throws becomes a rejected promise. */
  protected tx<T>(fn: () => T): Promise<T> {
    return this.read(() => this.db.transaction(fn)());
  }

  /** Run `fn` (one statement, or reads); what it throws becomes a rejected promise. */
  protected read<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

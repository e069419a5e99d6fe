// The device registry: the DeviceStore every store implements (SQLite here; PostgreSQL later, held to the same
// test/devices/store-conformance.ts), composed of four parts each with its own interface, so a store can implement
// them one by one:
//
//   devices.ts      DeviceRecords    what a device is, what the hub records about it, the config's devices
//   credentials.ts  CredentialStore  logins (username and password hash), claim windows and codes
//   audit.ts        AuditLog         who did what
//   orders.ts       OrderLog         orders sent to devices and what became of them
//
// rules.ts holds the validation and merge rules all stores share (`planDevice`), so every store refuses the same
// things with the same codes. SqliteDeviceStore, the default, is one file `<data>/registry.sqlite` (WAL mode,
// prepared statements, schema version in `user_version`), opened here; its parts share one connection (sqlite.ts).
import { basename, dirname, extname, join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSchemaFile, StatementCache } from '../../core/sqlite.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { LoginHasher } from '../credentials.js';
import type { DeviceTypes } from '../device-types.js';
import type { Device, DeviceState, JsonValue } from '../types.js';
import { SqliteAuditLog, type AuditEntry, type AuditInput, type AuditLog, type AuditQuery } from './audit.js';
import { SqliteCredentialStore, type CredentialStore, type NewCredentials, type RehashItem } from './credentials.js';
import {
  countDeviceChanges,
  SqliteDeviceRecords,
  type ConfigDeviceInput,
  type ConfigSyncResult,
  type DeviceFilter,
  type DeviceInput,
  type DevicePatch,
  type DeviceRecords,
  type TouchItem,
  type ObservedItem,
  type TouchManyResult,
  type UpsertOutcome,
  type UpsertResult,
} from './devices.js';
import { ALARMS_SCHEMA, SqliteAlarmRecords } from './alarms.js';
import type { AlarmRecords } from '../alarm-types.js';
import { SqliteOrderLog, type CommandQuery, type CommandInput, type CommandRecord, type CommandStatus, type OrderLog } from './orders.js';
import type { RegistryConnection } from './sqlite.js';

/**
 * A place devices are kept: the four parts together, which is what callers hold (each part's interface says what its
 * methods throw). Ids passed to lookups are canonical ids (normaliseId), as Readings carry them.
 */
export interface DeviceStore extends DeviceRecords, CredentialStore, AuditLog, OrderLog {
  /** The alarms (alarms.ts), kept in the registry so they outlive a restart. */
  readonly alarms: AlarmRecords;
  /**
   * Stores shared by several instances: call `listener` soon after any of them changed what a device is, so a gate
   * refreshes at once rather than at its next look. Resolves with what stops it.
   */
  onChange?(listener: () => void): Promise<() => Promise<void>>;
  /**
   * Stores shared by several instances: a lease only one of them holds at a time (`name` tells leases apart), so
   * that what must happen once for the whole cluster (device.offline) is done by one. Taken over by another within
   * seconds when its holder stops or dies.
   */
  lease?(name: string): Promise<Lease>;
  /** Shared stores: the devices whose last-seen time is later than `since` (ms), as any instance wrote it. */
  seenSince?(since: number): Promise<Array<{ readonly id: string; readonly lastSeen: number }>>;
  close(): Promise<void>;
}

export interface Lease {
  /** True while this instance holds it. */
  readonly held: boolean;
  /** Give it up (and stop trying to take it). */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- SQLite

// 2: claim windows and codes (claim_until, claim_code_hash, claimed_at, claimed_by), added to version-1 files by
// `migrate`.
// 3: learned_silent_ms, mode. 4: lorawan (JSON: a LoRaWAN device's network side). 5: cert_fingerprint, cert_at (the
// client certificate a device may log in with).
const SCHEMA_VERSION = 5;

const CLAIM_COLUMNS = ['claim_until INTEGER', 'claim_code_hash TEXT', 'claimed_at INTEGER', 'claimed_by TEXT'] as const;

const OBSERVED_COLUMNS = ['learned_silent_ms INTEGER', 'mode TEXT'] as const;

const CERT_COLUMNS = ['cert_fingerprint TEXT', 'cert_at INTEGER'] as const;

function migrate(db: Database.Database, from: number): void {
  if (from < 2) for (const c of CLAIM_COLUMNS) db.exec(`ALTER TABLE devices ADD COLUMN ${c}`);
  if (from < 3) for (const c of OBSERVED_COLUMNS) db.exec(`ALTER TABLE devices ADD COLUMN ${c}`);
  if (from < 4) db.exec('ALTER TABLE devices ADD COLUMN lorawan TEXT');
  if (from < 5) for (const c of CERT_COLUMNS) db.exec(`ALTER TABLE devices ADD COLUMN ${c}`);
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
  learned_silent_ms INTEGER,
  mode             TEXT,
  lorawan          TEXT,
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
  cert_fingerprint TEXT,
  cert_at          INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  source           TEXT    NOT NULL DEFAULT 'registry'
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_username ON devices (username) WHERE username IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS devices_cert ON devices (cert_fingerprint) WHERE cert_fingerprint IS NOT NULL;
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

/** The four SQLite parts over one connection to the registry file; each method is the part's own. */
export class SqliteDeviceStore implements DeviceStore {
  readonly types: DeviceTypes;
  readonly logins: LoginHasher;
  private readonly devices: SqliteDeviceRecords;
  private readonly credentials: SqliteCredentialStore;
  private readonly audit: SqliteAuditLog;
  private readonly orders: SqliteOrderLog;
  readonly alarms: AlarmRecords;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    opts: SqliteDeviceStoreOptions & { readonly logins: LoginHasher },
  ) {
    this.types = opts.types;
    this.logins = opts.logins;
    const conn: RegistryConnection = { db, statements: new StatementCache(db), clock: opts.clock ?? systemClock };
    this.devices = new SqliteDeviceRecords(conn, opts.types);
    this.credentials = new SqliteCredentialStore(conn, opts.logins);
    this.audit = new SqliteAuditLog(conn);
    this.orders = new SqliteOrderLog(conn);
    this.alarms = new SqliteAlarmRecords(conn);
  }

  /** Open (and create) a registry file; `:memory:` for a throw-away one. BH_REGISTRY_OPEN when it cannot be used. */
  static open(path: string, opts: SqliteDeviceStoreOptions): SqliteDeviceStore {
    const db = openSchemaFile(path, {
      schema: SCHEMA + ALARMS_SCHEMA,
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

  // ------------------------------------------------ device records

  get(id: string): Promise<Device | undefined> {
    return this.devices.get(id);
  }

  list(filter?: DeviceFilter): Promise<Device[]> {
    return this.devices.list(filter);
  }

  changeToken(): Promise<string> {
    return this.devices.changeToken();
  }

  count(filter?: DeviceFilter): Promise<number> {
    return this.devices.count(filter);
  }

  create(input: DeviceInput): Promise<Device> {
    return this.devices.create(input);
  }

  upsert(input: DeviceInput, opts?: { readonly dryRun?: boolean }): Promise<UpsertResult> {
    return this.devices.upsert(input, opts);
  }

  upsertMany(inputs: readonly DeviceInput[], opts?: { readonly dryRun?: boolean }): Promise<UpsertOutcome[]> {
    return this.devices.upsertMany(inputs, opts);
  }

  update(id: string, patch: DevicePatch): Promise<UpsertResult> {
    return this.devices.update(id, patch);
  }

  setEnabled(id: string, enabled: boolean): Promise<Device> {
    return this.devices.setEnabled(id, enabled);
  }

  setState(id: string, state: DeviceState, reason?: string): Promise<Device> {
    return this.devices.setState(id, state, reason);
  }

  setObserved(items: readonly ObservedItem[]): Promise<number> {
    return this.devices.setObserved(items);
  }

  touch(id: string, at: number, status?: JsonValue): Promise<boolean> {
    return this.devices.touch(id, at, status);
  }

  touchMany(items: readonly TouchItem[]): Promise<TouchManyResult> {
    return this.devices.touchMany(items);
  }

  remove(id: string): Promise<boolean> {
    return this.devices.remove(id);
  }

  replaceConfigDevices(inputs: readonly ConfigDeviceInput[]): Promise<ConfigSyncResult> {
    return this.devices.replaceConfigDevices(inputs);
  }

  // ------------------------------------------------ credentials

  getByUsername(username: string): Promise<Device | undefined> {
    return this.credentials.getByUsername(username);
  }

  setCredentials(id: string, creds: NewCredentials, opts?: { readonly onlyIfPending?: boolean }): Promise<boolean> {
    return this.credentials.setCredentials(id, creds, opts);
  }

  resetCredentials(id: string): Promise<Device> {
    return this.credentials.resetCredentials(id);
  }

  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]> {
    return this.credentials.openClaimWindows(target, until);
  }

  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]> {
    return this.credentials.closeClaimWindows(target);
  }

  setClaimCode(id: string, codeHash: string | undefined): Promise<Device> {
    return this.credentials.setClaimCode(id, codeHash);
  }

  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean> {
    return this.credentials.claimCredentials(id, creds, by, at);
  }

  rehashCredentials(items: readonly RehashItem[]): Promise<number> {
    return this.credentials.rehashCredentials(items);
  }

  setCertificate(id: string, fingerprint: string | undefined): Promise<Device> {
    return this.credentials.setCertificate(id, fingerprint);
  }

  getByCertificate(fingerprint: string): Promise<Device | undefined> {
    return this.credentials.getByCertificate(fingerprint);
  }

  // ------------------------------------------------ audit log

  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return this.audit.appendAudit(entry);
  }

  appendAuditMany(entries: readonly AuditInput[]): Promise<number> {
    return this.audit.appendAuditMany(entries);
  }

  listAudit(q?: AuditQuery): Promise<AuditEntry[]> {
    return this.audit.listAudit(q);
  }

  // ------------------------------------------------ orders

  recordCommand(c: CommandInput): Promise<CommandRecord> {
    return this.orders.recordCommand(c);
  }

  settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined> {
    return this.orders.settleCommand(id, status, result, at);
  }

  getCommand(id: string): Promise<CommandRecord | undefined> {
    return this.orders.getCommand(id);
  }

  listCommands(q?: CommandQuery): Promise<CommandRecord[]> {
    return this.orders.listCommands(q);
  }

  close(): Promise<void> {
    if (this.db.open) this.db.close();
    return Promise.resolve();
  }
}

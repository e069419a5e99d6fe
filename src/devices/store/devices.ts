// Device records: what a device is (id, type, location, tags, thresholds, config, enabled), what the hub records
// about it (last seen, status, state), the devices declared in the config file, and the interface every store's part
// for them implements (DeviceRecords), with its SQLite implementation.
//
// Devices declared in the config file are kept in the same table with `source: 'config'` (replaceConfigDevices);
// operators cannot change or remove them here (BH_DEVICE_READ_ONLY), while what the hub records about them (last
// seen, status, state) is stored as for any other device.
import { BackhaulError, errorText, shown } from '../../core/errors.js';
import { whereClause } from '../../core/sql.js';
import type Database from 'better-sqlite3';
import type { DeviceTypes } from '../device-types.js';
import type { Device, DeviceMode, DeviceSource, DeviceState, IdKind, JsonValue, LorawanState } from '../types.js';
import { identify, planDevice, readOnly } from './rules.js';
import { SqlitePart, toDevice, type DeviceRow, type RegistryConnection } from './sqlite.js';

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

export interface TouchItem {
  readonly id: string;
  readonly at: number;
  /** The device's status JSON; left as it was when absent. */
  readonly status?: JsonValue;
}

export interface ObservedItem {
  readonly id: string;
  readonly learnedSilentMs?: number | null;
  readonly mode?: DeviceMode | null;
  /** A LoRaWAN device's network side, replacing what was kept. */
  readonly lorawan?: LorawanState;
}

export interface TouchManyResult {
  /** How many items named a device the registry has (and were written). */
  readonly known: number;
  /** Items refused one by one (BH_DEVICE_FIELD), by index in the batch; nothing of them was written. */
  readonly rejected: ReadonlyArray<{ readonly index: number; readonly error: BackhaulError }>;
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
 * Where devices are kept. Every method validates like `planDevice` and throws BackhaulErrors: BH_DEVICE_NOT_FOUND,
 * BH_DEVICE_EXISTS, BH_DEVICE_READ_ONLY, and the validation codes (BH_DEVICE_ID, _TYPE, _LOCATION, _FIELD, _CONFIG).
 * Ids passed to lookups are canonical ids (normaliseId), as Readings carry them.
 */
export interface DeviceRecords {
  readonly types: DeviceTypes;
  get(id: string): Promise<Device | undefined>;
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
  /**
   * What the hub learned of devices (their silence threshold, the mode they report), many at once; a field absent
   * from an item is left as it is, `null` clears it. Not a change an operator made: the change token stays.
   */
  setObserved(items: readonly ObservedItem[]): Promise<number>;
  /** Record a message from the device. Never moves lastSeen back. False when the device is unknown. */
  touch(id: string, at: number, status?: JsonValue): Promise<boolean>;
  /**
   * `touch` for many devices in one go (the hub flushes last-seen times in batches). An item that cannot be stored
   * (a time that is not a finite number, a status that does not serialise) is rejected alone and the rest are
   * written; the batch as a whole fails only when the store itself does.
   */
  touchMany(items: readonly TouchItem[]): Promise<TouchManyResult>;
  /** False when there was no such device. */
  remove(id: string): Promise<boolean>;
  /** Make the config-declared devices exactly these (source `config`), keeping what the hub recorded about them. */
  replaceConfigDevices(inputs: readonly ConfigDeviceInput[]): Promise<ConfigSyncResult>;
}

// ---------------------------------------------------------------- SQLite

/** Columns that change with every message of a device, not with what it is: they do not move changeToken. */
export const RUNTIME_COLUMNS: ReadonlySet<string> = new Set(['last_seen', 'last_status', 'learned_silent_ms', 'mode', 'lorawan']);

/**
 * Counts, in a temp table of this connection, its own changes to devices (SQLite's data_version counts only other
 * connections'). The column list is read from the table itself, so a column added later is counted too.
 */
export function countDeviceChanges(db: Database.Database): void {
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

/** The columns an upsert writes (attributes; never runtime fields or credentials). */
export function attributeParams(d: Device): Record<string, string | number | null> {
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

/** `s` for a LIKE pattern with `ESCAPE '\\'`: its %, _ and \\ taken literally. */
export function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function whereOf(f: DeviceFilter): { sql: string; params: Params } {
  return whereClause([
    ['site = @site COLLATE NOCASE', 'site', f.site],
    ['building = @building COLLATE NOCASE', 'building', f.building],
    ['room = @room COLLATE NOCASE', 'room', f.room],
    ['type = @type', 'type', f.type],
    ['state = @state', 'state', f.state],
    ['source = @source', 'source', f.source],
    ['enabled = @enabled', 'enabled', f.enabled === undefined ? undefined : f.enabled ? 1 : 0],
    ['EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE json_each.value = @tag)', 'tag', f.tag],
    [
      `(id LIKE @search ESCAPE '\\' OR description LIKE @search ESCAPE '\\' OR site LIKE @search ESCAPE '\\'
        OR building LIKE @search ESCAPE '\\' OR room LIKE @search ESCAPE '\\' OR tags LIKE @search ESCAPE '\\')`,
      'search',
      f.search !== undefined && f.search !== '' ? `%${likeEscape(f.search)}%` : undefined,
    ],
  ]);
}

/**
 * What a touch writes, checked: BH_DEVICE_FIELD for an item that cannot be stored, before any SQL runs (every store
 * uses it, so all reject the same items).
 */
export function touchArgs(item: TouchItem): { id: string; at: number; status: string | null } {
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
      throw new BackhaulError('BH_DEVICE_FIELD', `the status cannot be stored (${errorText(e)})`, {
        path: 'lastStatus',
        cause: e,
      });
    }
  }
  return { id: item.id, at: Math.round(item.at), status };
}

/** The devices table's records, on the registry file's shared connection (index.ts opens it). */
export class SqliteDeviceRecords extends SqlitePart implements DeviceRecords {
  constructor(
    conn: RegistryConnection,
    readonly types: DeviceTypes,
  ) {
    super(conn);
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

  setObserved(items: readonly ObservedItem[]): Promise<number> {
    return this.tx(() => {
      let n = 0;
      for (const i of items) {
        const learned = i.learnedSilentMs === undefined ? undefined : i.learnedSilentMs === null ? null : Math.round(i.learnedSilentMs);
        const r = this.stmt(
          `UPDATE devices SET
             learned_silent_ms = CASE WHEN @setLearned THEN @learned ELSE learned_silent_ms END,
             mode = CASE WHEN @setMode THEN @mode ELSE mode END,
             lorawan = CASE WHEN @setLorawan THEN @lorawan ELSE lorawan END
           WHERE id = @id`,
        ).run({
          id: i.id,
          setLearned: learned === undefined ? 0 : 1,
          learned: learned ?? null,
          setMode: i.mode === undefined ? 0 : 1,
          mode: i.mode ?? null,
          setLorawan: i.lorawan === undefined ? 0 : 1,
          lorawan: i.lorawan === undefined ? null : JSON.stringify(i.lorawan),
        });
        n += r.changes;
      }
      return n;
    });
  }

  touch(id: string, at: number, status?: JsonValue): Promise<boolean> {
    return this.read(() => this.touchSync(touchArgs(status === undefined ? { id, at } : { id, at, status })));
  }

  touchMany(items: readonly TouchItem[]): Promise<TouchManyResult> {
    // Items are checked before the transaction, so a bad one is rejected alone; an SQL failure (disk full, a locked
    // file) still fails the whole batch, which the caller keeps and retries.
    const rejected: Array<{ index: number; error: BackhaulError }> = [];
    const good: Array<{ id: string; at: number; status: string | null }> = [];
    items.forEach((item, index) => {
      try {
        good.push(touchArgs(item));
      } catch (e) {
        rejected.push({ index, error: e instanceof BackhaulError ? e : new BackhaulError('BH_DEVICE_FIELD', String(e)) });
      }
    });
    return this.tx(() => ({ known: good.reduce((n, args) => n + (this.touchSync(args) ? 1 : 0), 0), rejected }));
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

  // Here rather than in credentials.ts: a config device's login is part of what the config declares, set in the same
  // transaction as its record.
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
}

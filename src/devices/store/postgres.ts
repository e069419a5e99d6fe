// The PostgreSQL device store: the same DeviceStore as SqliteDeviceStore (held to test/devices/store-conformance.ts),
// kept in one schema of a PostgreSQL database (default `backhaul`) so several hubs and CLIs on several machines can
// share one registry (the config's `store`: src/runtime/stores.ts). The API tokens share the schema
// (src/api/tokens-postgres.ts).
//
// - Tables are made by versioned migrations (MIGRATIONS): `schema_migrations` holds each version applied and when,
//   each migration runs in a transaction of its own, and the whole step runs under a session advisory lock
//   (MIGRATION_LOCK), so two instances starting together apply each migration once. A schema at a version newer
//   than this code knows is refused (BH_REGISTRY_OPEN).
// - Validation and merging are the shared rules (rules.ts: planDevice, identify, notFound, readOnly; devices.ts:
//   touchArgs), so both stores refuse the same input with the same codes and paths; rows are read back by the same
//   mappings (toDevice, toAuditEntry, toCommand, toAlarm) after the int8 columns are made numbers here (pg returns
//   int8 as a string; its type parsers are global to the process, so they are left alone).
// - changeToken is a one-row counter bumped by a trigger on every insert, delete, and update of a column that is not
//   runtime data (RUNTIME_COLUMNS): transactional, so a token read never runs ahead of what a list() sees.
// - The login key (LoginHasher) is one random key in the `login_key` table, made by the first open and read by every
//   other, unless the caller gives one (`logins`).
import pg from 'pg';
import { inTransaction, migratePostgres, type PgMigration } from '../../core/pg-migrations.js';
import { createHash, randomBytes } from 'node:crypto';
import { BackhaulError, errorText, shown } from '../../core/errors.js';
import { whereClause } from '../../core/sql.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { LoginHasher } from '../credentials.js';
import type { DeviceTypes } from '../device-types.js';
import type { Device, DeviceState, IdKind, JsonValue } from '../types.js';
import type { Alarm, AlarmCounts, AlarmKind, AlarmQuery, AlarmRecords, AlarmSubjectKind } from '../alarm-types.js';
import { toAlarm, type AlarmRow } from './alarms.js';
import { toAuditEntry, type AuditEntry, type AuditInput, type AuditQuery, type AuditRow } from './audit.js';
import type { NewCredentials, RehashItem } from './credentials.js';
import {
  attributeParams,
  likeEscape,
  RUNTIME_COLUMNS,
  touchArgs,
  type ConfigDeviceInput,
  type ConfigSyncResult,
  type DeviceFilter,
  type DeviceInput,
  type DevicePatch,
  type ObservedItem,
  type TouchItem,
  type TouchManyResult,
  type UpsertOutcome,
  type UpsertResult,
} from './devices.js';
import type { DeviceStore, Lease } from './index.js';
import { toCommand, type CommandInput, type CommandQuery, type CommandRecord, type CommandRow, type CommandStatus } from './orders.js';
import { identify, notFound, planDevice, readOnly } from './rules.js';
import { toDevice, type DeviceRow } from './sqlite.js';

export interface PostgresDeviceStoreOptions {
  /** `postgres://user[:password]@host[:port]/database`. */
  readonly url: string;
  /** The schema the tables are in, made when missing. Default `backhaul`. */
  readonly schema?: string;
  readonly types: DeviceTypes;
  readonly clock?: Clock;
  /** Default: the key in the schema's `login_key` table, made by the first open. */
  readonly logins?: LoginHasher;
  /** Connections in the pool. Default 5. */
  readonly poolSize?: number;
  /** The password, when not in the URL (from the secrets store). */
  readonly password?: string;
}

/** The session advisory lock the migrate step runs under ('BHRG'): one instance migrates at a time. */
export const MIGRATION_LOCK = 0x42485247;

/** Schema names this store accepts: plain lower-case identifiers, so they need no quoting anywhere. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// The devices table's columns that are not runtime data: a change of any moves changeToken (the trigger lists them;
// a migration that adds a column must re-create the trigger with it).
const DEVICE_COLUMNS = [
  'id', 'kind', 'type', 'site', 'building', 'room', 'description', 'tags', 'enabled', 'state', 'blocked_reason', 'max_silent_ms',
  'battery_floor', 'learned_silent_ms', 'mode', 'lorawan', 'last_seen', 'last_status', 'config', 'username', 'password_hash',
  'password_issued', 'credentials_at', 'claim_until', 'claim_code_hash', 'claimed_at', 'claimed_by', 'cert_fingerprint', 'cert_at',
  'created_at', 'updated_at', 'source',
] as const;

type Migration = PgMigration;

/** Every migration this code knows, oldest first; the last one's version is the schema version it writes. */
/** The text device search looks in: six fields, lower-cased, apart by a unit separator (as the index of migration 5). */
const SEARCH_TEXT =
  "lower(coalesce(id, '') || chr(31) || coalesce(description, '') || chr(31) || coalesce(site, '') || chr(31) || coalesce(building, '') || chr(31) || coalesce(room, '') || chr(31) || coalesce(tags, ''))";

/** The LISTEN/NOTIFY channel of registry changes (the payload: the schema). */
export const CHANGE_CHANNEL = 'backhaul_registry';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'devices, the audit log, orders, the change counter',
    sql: (schema) => `
CREATE TABLE devices (
  id                text COLLATE "C" PRIMARY KEY,
  kind              text    NOT NULL,
  type              text    NOT NULL,
  site              text,
  building          text,
  room              text,
  description       text    NOT NULL DEFAULT '',
  tags              text    NOT NULL DEFAULT '[]',
  enabled           integer NOT NULL DEFAULT 1,
  state             text    NOT NULL DEFAULT 'INIT',
  blocked_reason    text,
  max_silent_ms     bigint,
  battery_floor     double precision,
  learned_silent_ms bigint,
  mode              text,
  lorawan           text,
  last_seen         bigint,
  last_status       text,
  config            text    NOT NULL DEFAULT '{}',
  username          text,
  password_hash     text,
  password_issued   integer NOT NULL DEFAULT 0,
  credentials_at    bigint,
  claim_until       bigint,
  claim_code_hash   text,
  claimed_at        bigint,
  claimed_by        text,
  cert_fingerprint  text,
  cert_at           bigint,
  created_at        bigint  NOT NULL,
  updated_at        bigint  NOT NULL,
  source            text    NOT NULL DEFAULT 'registry'
);
CREATE UNIQUE INDEX devices_username ON devices (username) WHERE username IS NOT NULL;
CREATE UNIQUE INDEX devices_cert ON devices (cert_fingerprint) WHERE cert_fingerprint IS NOT NULL;
CREATE INDEX devices_location ON devices (lower(building), lower(room));
CREATE INDEX devices_type ON devices (type);
CREATE TABLE audit (
  seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at      bigint NOT NULL,
  actor   text   NOT NULL,
  action  text   NOT NULL,
  device  text,
  detail  text,
  result  text
);
CREATE INDEX audit_device_at ON audit (device, at);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE commands (
  id       text   PRIMARY KEY,
  seq      bigint GENERATED ALWAYS AS IDENTITY,
  device   text   NOT NULL,
  name     text   NOT NULL,
  params   text   NOT NULL DEFAULT '{}',
  actor    text   NOT NULL,
  topic    text   NOT NULL,
  dest     text   NOT NULL,
  sent_at  bigint NOT NULL,
  status   text   NOT NULL DEFAULT 'sent',
  done_at  bigint,
  result   text
);
CREATE INDEX commands_device_sent ON commands (device, sent_at);
CREATE INDEX commands_sent ON commands (sent_at);
CREATE TABLE device_changes (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  n   bigint  NOT NULL
);
INSERT INTO device_changes (one, n) VALUES (true, 0);
CREATE FUNCTION bump_device_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ${schema}.device_changes SET n = n + 1;
  RETURN NULL;
END
$$;
CREATE TRIGGER device_changes_insert_delete AFTER INSERT OR DELETE ON devices FOR EACH ROW EXECUTE FUNCTION bump_device_changes();
CREATE TRIGGER device_changes_update AFTER UPDATE OF ${DEVICE_COLUMNS.filter((c) => !RUNTIME_COLUMNS.has(c)).join(', ')}
  ON devices FOR EACH ROW EXECUTE FUNCTION bump_device_changes();
`,
  },
  {
    version: 2,
    what: 'alarms',
    sql: () => `
CREATE TABLE alarms (
  id              text    PRIMARY KEY,
  kind            text    NOT NULL,
  subject_kind    text    NOT NULL,
  subject         text    NOT NULL,
  aspect          text    NOT NULL DEFAULT '',
  severity        text    NOT NULL,
  state           text    NOT NULL,
  message         text    NOT NULL,
  raised_at       bigint  NOT NULL,
  last_seen_at    bigint  NOT NULL,
  acknowledged_at bigint,
  acknowledged_by text,
  note            text,
  cleared_at      bigint,
  cleared_by      text,
  reminders       integer NOT NULL DEFAULT 0,
  reminded_at     bigint  NOT NULL
);
CREATE UNIQUE INDEX alarms_open ON alarms (subject_kind, subject, kind, aspect) WHERE state <> 'cleared';
CREATE INDEX alarms_raised ON alarms (raised_at);
`,
  },
  {
    version: 3,
    what: 'the login key',
    sql: () => `
CREATE TABLE login_key (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  key        text    NOT NULL,
  created_at bigint  NOT NULL
);
`,
  },
  {
    version: 4,
    what: 'a notification on every change of what a device is',
    // Delivered at commit to every instance that LISTENs (onChange): the payload names the schema, so stores of other
    // schemas in the same database ignore it. Several changes of one transaction are folded into one by PostgreSQL.
    sql: (schema) => `
CREATE OR REPLACE FUNCTION bump_device_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ${schema}.device_changes SET n = n + 1;
  PERFORM pg_notify('${CHANGE_CHANNEL}', '${schema}');
  RETURN NULL;
END
$$;
`,
  },
  {
    version: 5,
    what: 'a trigram index for device search',
    // Search is a substring anywhere in six fields: without pg_trgm every listing reads every row. The extension is
    // made in public when the user may (it is a trusted extension from PostgreSQL 13: a database owner may); where it
    // cannot be had, search still works, by reading every row.
    sql: () => `
DO $$
DECLARE ext_schema text;
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
  EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm cannot be had here: device search reads every row';
  END;
  SELECT n.nspname INTO ext_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
  IF ext_schema IS NOT NULL THEN
    EXECUTE format('CREATE INDEX devices_search ON devices USING gin ((${SEARCH_TEXT}) %I.gin_trgm_ops)', ext_schema);
  END IF;
END
$$;
`,
  },
];

export const POSTGRES_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

// ---------------------------------------------------------------- SQL helpers

type Value = string | number | boolean | null;
type Params = Record<string, Value>;
type Db = pg.Pool | pg.PoolClient;

/** `@name` parameters (the form the SQLite queries and whereClause use) as pg's `$n`; a name used twice binds once. */
function positional(sql: string, params: Params): { text: string; values: Value[] } {
  const values: Value[] = [];
  const index = new Map<string, number>();
  const text = sql.replace(/@([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string) => {
    if (!(name in params)) throw new Error(`the query names @${name}, which is not given`);
    let i = index.get(name);
    if (i === undefined) {
      values.push(params[name] ?? null);
      i = values.length;
      index.set(name, i);
    }
    return `$${i}`;
  });
  return { text, values };
}

async function run<R extends pg.QueryResultRow = Record<string, unknown>>(db: Db, sql: string, params: Params = {}): Promise<pg.QueryResult<R>> {
  const { text, values } = positional(sql, params);
  return db.query<R>(text, values);
}

/** The row with these int8 columns (strings from pg) as numbers. */
function numbers<T>(row: Record<string, unknown>, keys: readonly string[]): T {
  const out: Record<string, unknown> = { ...row };
  for (const k of keys) {
    const v = out[k];
    if (v !== null && v !== undefined) out[k] = Number(v);
  }
  return out as T;
}

const DEVICE_INT8 = ['max_silent_ms', 'learned_silent_ms', 'last_seen', 'credentials_at', 'claim_until', 'claimed_at', 'cert_at', 'created_at', 'updated_at'];
const AUDIT_INT8 = ['seq', 'at'];
const COMMAND_INT8 = ['sent_at', 'done_at'];
const ALARM_INT8 = ['raised_at', 'last_seen_at', 'acknowledged_at', 'cleared_at', 'reminded_at'];

function deviceOf(r: Record<string, unknown>): Device {
  return toDevice(numbers<DeviceRow>(r, DEVICE_INT8));
}

/** A unique index refused the write (`constraint` names it). */
function uniqueViolation(e: unknown, constraint?: string): boolean {
  const x = e as { code?: string; constraint?: string };
  return x.code === '23505' && (constraint === undefined || x.constraint === constraint);
}

function usernameTaken(username: string, owner?: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_EXISTS', owner === undefined ? `the username ${shown(username)} belongs to another device` : `the username ${shown(username)} belongs to device ${shown(owner)}`, {
    path: 'username',
  });
}

function whereOf(f: DeviceFilter): { sql: string; params: Params } {
  return whereClause([
    ['lower(site) = lower(@site)', 'site', f.site],
    ['lower(building) = lower(@building)', 'building', f.building],
    ['lower(room) = lower(@room)', 'room', f.room],
    ['type = @type', 'type', f.type],
    ['state = @state', 'state', f.state],
    ['source = @source', 'source', f.source],
    ['enabled = @enabled', 'enabled', f.enabled === undefined ? undefined : f.enabled ? 1 : 0],
    ['EXISTS (SELECT 1 FROM json_array_elements_text(devices.tags::json) AS t(v) WHERE t.v = @tag)', 'tag', f.tag],
    [
      // One expression over the six fields, the one the trigram index holds (migration 5); the separator keeps a match
      // from running across two fields.
      `(${SEARCH_TEXT}) LIKE lower(@search) ESCAPE '\\'`,
      'search',
      f.search !== undefined && f.search !== '' ? `%${likeEscape(f.search)}%` : undefined,
    ],
  ]);
}

/** Where a URL points, for messages: `host:port/database`, never the user's password. BH_REGISTRY_OPEN when it is no PostgreSQL URL. */
export function describePostgresUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BackhaulError('BH_REGISTRY_OPEN', 'the PostgreSQL registry URL is not a URL (postgres://user@host:5432/database)', { path: 'url' });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new BackhaulError('BH_REGISTRY_OPEN', `the PostgreSQL registry URL must start with postgres:// (not ${shown(u.protocol)})`, { path: 'url' });
  }
  return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname.length > 1 ? u.pathname : ''}`;
}

/** `text` with the URL's password (as written and decoded) blotted out, in case a driver message ever quotes it. */
function withoutPassword(text: string, url: string): string {
  let pw = '';
  try {
    pw = new URL(url).password;
  } catch {
    return text;
  }
  if (pw === '') return text;
  let out = text;
  for (const p of new Set([pw, decodeURIComponent(pw)])) if (p !== '') out = out.split(p).join('***');
  return out;
}

// ---------------------------------------------------------------- opening

function migrate(pool: pg.Pool, schema: string, clock: Clock): Promise<void> {
  return migratePostgres(pool, { schema, table: 'schema_migrations', lockKey: MIGRATION_LOCK, migrations: MIGRATIONS, code: 'BH_REGISTRY_OPEN', what: 'the device registry', now: () => clock.now() });
}

/** The schema's login key, made by whichever instance opens it first. */
async function loadLoginKey(pool: pg.Pool, schema: string, clock: Clock): Promise<LoginHasher> {
  await pool.query('INSERT INTO login_key (one, key, created_at) VALUES (true, $1, $2) ON CONFLICT (one) DO NOTHING', [randomBytes(32).toString('base64url'), clock.now()]);
  const r = await pool.query<{ key: string }>('SELECT key FROM login_key');
  const text = r.rows[0]?.key ?? '';
  const key = Buffer.from(text, 'base64url');
  try {
    if (key.toString('base64url') !== text) throw new Error('not URL-safe base64');
    return LoginHasher.fromKey(key);
  } catch {
    throw new BackhaulError(
      'BH_REGISTRY_OPEN',
      `the registry's login key in ${schema}.login_key is damaged (not 32 bytes in URL-safe base64): restore it from a backup, or delete the row to make a new one (every device given its password since must then get a new one)`,
    );
  }
}

// ---------------------------------------------------------------- the store

export class PostgresDeviceStore implements DeviceStore {
  readonly types: DeviceTypes;
  readonly logins: LoginHasher;
  readonly alarms: AlarmRecords;
  private readonly clock: Clock;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
    private readonly opts: { readonly types: DeviceTypes; readonly clock: Clock; readonly logins: LoginHasher; readonly url: string; readonly password?: string },
  ) {
    this.types = opts.types;
    this.clock = opts.clock;
    this.logins = opts.logins;
    this.alarms = new PostgresAlarmRecords(pool);
  }

  /**
   * Connect, make the schema and apply the migrations it lacks (under MIGRATION_LOCK), load the login key.
   * BH_REGISTRY_OPEN when the URL is bad, the server cannot be reached or refuses, or the schema is newer than this code.
   */
  static async open(opts: PostgresDeviceStoreOptions): Promise<PostgresDeviceStore> {
    const schema = opts.schema ?? 'backhaul';
    if (!SCHEMA_NAME.test(schema)) {
      throw new BackhaulError('BH_REGISTRY_OPEN', `the registry's PostgreSQL schema name ${shown(schema)} must be a lower-case identifier (a-z, 0-9, _)`, { path: 'schema' });
    }
    const where = describePostgresUrl(opts.url);
    const clock = opts.clock ?? systemClock;
    const pool = new pg.Pool({
      connectionString: opts.url,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      options: `-c search_path=${schema}`,
      max: opts.poolSize ?? 5,
      connectionTimeoutMillis: 10_000,
    });
    // An idle connection the server drops is removed by the pool; without a listener the error would end the process.
    pool.on('error', () => undefined);
    try {
      await migrate(pool, schema, clock);
      const logins = opts.logins ?? (await loadLoginKey(pool, schema, clock));
      return new PostgresDeviceStore(pool, schema, { types: opts.types, clock, logins, url: opts.url, ...(opts.password !== undefined ? { password: opts.password } : {}) });
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof BackhaulError) throw e;
      throw new BackhaulError('BH_REGISTRY_OPEN', `the device registry in PostgreSQL at ${where} (schema ${schema}) cannot be opened: ${withoutPassword(errorText(e), opts.url)}`);
    }
  }

  /** Run `fn` in a transaction on one connection of the pool. */
  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  /** The device, locked for the rest of the transaction when `lock` (a read-modify-write waits for another's). */
  private async getOn(db: Db, id: string, lock = false): Promise<Device | undefined> {
    const r = await run(db, `SELECT * FROM devices WHERE id = @id${lock ? ' FOR UPDATE' : ''}`, { id });
    const row = r.rows[0];
    return row ? deviceOf(row) : undefined;
  }

  private async mustGet(db: Db, id: string, lock = false): Promise<Device> {
    const d = await this.getOn(db, id, lock);
    if (!d) throw notFound(id);
    return d;
  }

  private async mustBeWritable(db: Db, id: string): Promise<Device> {
    const d = await this.mustGet(db, id, true);
    if (d.source === 'config') throw readOnly(id);
    return d;
  }

  private async ownerOf(db: Db, username: string): Promise<string | undefined> {
    const r = await run<{ id: string }>(db, 'SELECT id FROM devices WHERE username = @username', { username });
    return r.rows[0]?.id;
  }

  // ------------------------------------------------ device records

  get(id: string): Promise<Device | undefined> {
    return this.getOn(this.pool, id);
  }

  async list(filter: DeviceFilter = {}): Promise<Device[]> {
    const { sql, params } = whereOf(filter);
    let page = '';
    if (filter.limit !== undefined) {
      page = ' LIMIT @limit OFFSET @offset';
      params['limit'] = Math.max(0, Math.floor(filter.limit));
      params['offset'] = Math.max(0, Math.floor(filter.offset ?? 0));
    } else if (filter.offset !== undefined) {
      page = ' OFFSET @offset';
      params['offset'] = Math.max(0, Math.floor(filter.offset));
    }
    const r = await run(this.pool, `SELECT * FROM devices${sql} ORDER BY id${page}`, params);
    return r.rows.map(deviceOf);
  }

  async changeToken(): Promise<string> {
    const r = await run<{ n: string }>(this.pool, 'SELECT n::text AS n FROM device_changes');
    return r.rows[0]?.n ?? '0';
  }

  async count(filter: DeviceFilter = {}): Promise<number> {
    const { sql, params } = whereOf(filter);
    const r = await run<{ n: number }>(this.pool, `SELECT count(*)::int AS n FROM devices${sql}`, params);
    return r.rows[0]?.n ?? 0;
  }

  private async writeAttributes(db: Db, d: Device, insert: boolean): Promise<void> {
    const p = attributeParams(d);
    if (insert) {
      await run(
        db,
        `INSERT INTO devices (id, kind, type, site, building, room, description, tags, enabled, max_silent_ms, battery_floor,
           config, created_at, updated_at, source, state)
         VALUES (@id, @kind, @type, @site, @building, @room, @description, @tags, @enabled, @max_silent_ms, @battery_floor,
           @config, @created_at, @updated_at, @source, 'INIT')`,
        p,
      );
    } else {
      await run(
        db,
        `UPDATE devices SET kind = @kind, type = @type, site = @site, building = @building, room = @room,
           description = @description, tags = @tags, enabled = @enabled, max_silent_ms = @max_silent_ms,
           battery_floor = @battery_floor, config = @config, updated_at = @updated_at, source = @source
         WHERE id = @id`,
        p,
      );
    }
  }

  private async upsertOn(c: pg.PoolClient, input: DeviceInput, dryRun: boolean): Promise<UpsertResult> {
    const { id, kind } = identify(input);
    const existing = await this.getOn(c, id, true);
    if (existing?.source === 'config') throw readOnly(id);
    const plan = planDevice(existing, id, kind, input, this.types, this.clock.now());
    if (!dryRun && plan.change !== 'unchanged') {
      try {
        await this.writeAttributes(c, plan.device, plan.change === 'created');
      } catch (e) {
        // Another instance created it between our read and our insert.
        if (uniqueViolation(e, 'devices_pkey')) throw new BackhaulError('BH_DEVICE_EXISTS', `device ${shown(id)} is already in the registry`, { path: 'id', cause: e });
        throw e;
      }
    }
    return plan;
  }

  create(input: DeviceInput): Promise<Device> {
    return this.tx(async (c) => {
      const { id } = identify(input);
      if (await this.getOn(c, id)) throw new BackhaulError('BH_DEVICE_EXISTS', `device ${shown(id)} is already in the registry`, { path: 'id' });
      return (await this.upsertOn(c, input, false)).device;
    });
  }

  upsert(input: DeviceInput, opts: { readonly dryRun?: boolean } = {}): Promise<UpsertResult> {
    return this.tx((c) => this.upsertOn(c, input, opts.dryRun ?? false));
  }

  upsertMany(inputs: readonly DeviceInput[], opts: { readonly dryRun?: boolean } = {}): Promise<UpsertOutcome[]> {
    const dryRun = opts.dryRun ?? false;
    // One transaction for the lot; each item in a savepoint, so a bad one fails alone.
    return this.tx(async (c) => {
      const out: UpsertOutcome[] = [];
      for (const input of inputs) {
        await c.query('SAVEPOINT item');
        try {
          out.push({ ok: await this.upsertOn(c, input, dryRun) });
          await c.query('RELEASE SAVEPOINT item');
        } catch (e) {
          await c.query('ROLLBACK TO SAVEPOINT item');
          if (!(e instanceof BackhaulError)) throw e;
          out.push({ error: e });
        }
      }
      return out;
    });
  }

  update(id: string, patch: DevicePatch): Promise<UpsertResult> {
    return this.tx(async (c) => {
      const existing = await this.mustBeWritable(c, id);
      return this.upsertOn(c, { ...patch, id: existing.id, kind: existing.kind }, false);
    });
  }

  async setEnabled(id: string, enabled: boolean): Promise<Device> {
    return (await this.update(id, { enabled })).device;
  }

  setState(id: string, state: DeviceState, reason?: string): Promise<Device> {
    return this.tx(async (c) => {
      await this.mustGet(c, id, true);
      const why = state === 'BLOCKED' ? (reason ?? 'blocked') : null;
      await run(c, 'UPDATE devices SET state = @state, blocked_reason = @why, updated_at = @now WHERE id = @id', { state, why, now: this.clock.now(), id });
      return this.mustGet(c, id);
    });
  }

  setObserved(items: readonly ObservedItem[]): Promise<number> {
    return this.tx(async (c) => {
      let n = 0;
      for (const i of items) {
        const learned = i.learnedSilentMs === undefined ? undefined : i.learnedSilentMs === null ? null : Math.round(i.learnedSilentMs);
        const r = await run(
          c,
          `UPDATE devices SET
             learned_silent_ms = CASE WHEN @setLearned::boolean THEN @learned::bigint ELSE learned_silent_ms END,
             mode = CASE WHEN @setMode::boolean THEN @mode::text ELSE mode END,
             lorawan = CASE WHEN @setLorawan::boolean THEN @lorawan::text ELSE lorawan END
           WHERE id = @id`,
          {
            id: i.id,
            setLearned: learned !== undefined,
            learned: learned ?? null,
            setMode: i.mode !== undefined,
            mode: i.mode ?? null,
            setLorawan: i.lorawan !== undefined,
            lorawan: i.lorawan === undefined ? null : JSON.stringify(i.lorawan),
          },
        );
        n += r.rowCount ?? 0;
      }
      return n;
    });
  }

  private async touchOn(db: Db, args: { id: string; at: number; status: string | null }): Promise<boolean> {
    // Every expression sees the row as it was, so the status is taken only from a message newer than the last one.
    const r = await run(
      db,
      `UPDATE devices SET
         last_status = CASE WHEN @status::text IS NOT NULL AND @at::bigint >= coalesce(last_seen, 0) THEN @status::text ELSE last_status END,
         last_seen = greatest(coalesce(last_seen, 0), @at::bigint)
       WHERE id = @id`,
      args,
    );
    return (r.rowCount ?? 0) > 0;
  }

  touch(id: string, at: number, status?: JsonValue): Promise<boolean> {
    let args: { id: string; at: number; status: string | null };
    try {
      args = touchArgs(status === undefined ? { id, at } : { id, at, status });
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return this.touchOn(this.pool, args);
  }

  async touchMany(items: readonly TouchItem[]): Promise<TouchManyResult> {
    // Items are checked before the transaction, so a bad one is rejected alone; a database failure fails the batch.
    const rejected: Array<{ index: number; error: BackhaulError }> = [];
    const good: Array<{ id: string; at: number; status: string | null }> = [];
    items.forEach((item, index) => {
      try {
        good.push(touchArgs(item));
      } catch (e) {
        rejected.push({ index, error: e instanceof BackhaulError ? e : new BackhaulError('BH_DEVICE_FIELD', String(e)) });
      }
    });
    if (good.length === 0) return { known: 0, rejected };
    const known = await this.tx(async (c) => {
      let n = 0;
      for (const args of good) if (await this.touchOn(c, args)) n++;
      return n;
    });
    return { known, rejected };
  }

  remove(id: string): Promise<boolean> {
    return this.tx(async (c) => {
      const d = await this.getOn(c, id, true);
      if (!d) return false;
      if (d.source === 'config') throw readOnly(id);
      await run(c, 'DELETE FROM devices WHERE id = @id', { id });
      return true;
    });
  }

  replaceConfigDevices(inputs: readonly ConfigDeviceInput[]): Promise<ConfigSyncResult> {
    return this.tx(async (c) => {
      const now = this.clock.now();
      const created: string[] = [];
      const updated: string[] = [];
      const unchanged: string[] = [];
      const adopted: string[] = [];
      const seen = new Set<string>();
      for (const [i, input] of inputs.entries()) {
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
          existing = await this.getOn(c, ident.id, true);
          plan = planDevice(existing, ident.id, ident.kind, input, this.types, now);
          const cr = input.credentials;
          const owner = cr && (await this.ownerOf(c, cr.username));
          if (cr && owner && owner !== ident.id) {
            throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(cr.username)} belongs to device ${shown(owner)}`, { path: 'credentials.username' });
          }
        } catch (e) {
          return at(e);
        }
        if (existing?.source === 'registry') adopted.push(ident.id);
        if (plan.change !== 'unchanged' || existing?.source !== 'config') await this.writeAttributes(c, { ...plan.device, source: 'config' }, plan.change === 'created');
        // A config device's login is the config's: set from it, or none.
        const cr = input.credentials;
        await run(c, 'UPDATE devices SET username = @username, password_hash = @hash, password_issued = @issued, credentials_at = @at WHERE id = @id', {
          username: cr?.username ?? null,
          hash: cr?.hash ?? null,
          issued: cr ? 1 : 0,
          at: cr ? (existing?.credentials?.hash === cr.hash ? existing.credentials.updatedAt : now) : null,
          id: ident.id,
        });
        (plan.change === 'created' ? created : plan.change === 'updated' ? updated : unchanged).push(ident.id);
      }
      const removed: string[] = [];
      const config = await run<{ id: string }>(c, "SELECT id FROM devices WHERE source = 'config' ORDER BY id");
      for (const { id } of config.rows) {
        if (!seen.has(id)) {
          await run(c, 'DELETE FROM devices WHERE id = @id', { id });
          removed.push(id);
        }
      }
      return { created, updated, unchanged, removed, adopted };
    });
  }

  // ------------------------------------------------ credentials

  async getByUsername(username: string): Promise<Device | undefined> {
    const r = await run(this.pool, 'SELECT * FROM devices WHERE username = @username', { username });
    const row = r.rows[0];
    return row ? deviceOf(row) : undefined;
  }

  setCredentials(id: string, creds: NewCredentials, opts: { readonly onlyIfPending?: boolean } = {}): Promise<boolean> {
    return this.tx(async (c) => {
      const d = await this.mustBeWritable(c, id);
      if (opts.onlyIfPending && d.credentials?.passwordIssued) return false;
      const owner = await this.ownerOf(c, creds.username);
      if (owner !== undefined && owner !== id) throw usernameTaken(creds.username, owner);
      try {
        await run(c, 'UPDATE devices SET username = @username, password_hash = @hash, password_issued = @issued, credentials_at = @now WHERE id = @id', {
          username: creds.username,
          hash: creds.hash ?? null,
          issued: creds.passwordIssued ? 1 : 0,
          now: this.clock.now(),
          id,
        });
      } catch (e) {
        if (uniqueViolation(e, 'devices_username')) throw usernameTaken(creds.username);
        throw e;
      }
      return true;
    });
  }

  resetCredentials(id: string): Promise<Device> {
    return this.tx(async (c) => {
      const d = await this.mustBeWritable(c, id);
      await run(
        c,
        'UPDATE devices SET username = @username, password_hash = NULL, password_issued = 0, credentials_at = @now, claimed_at = NULL, claimed_by = NULL WHERE id = @id',
        { username: d.credentials?.username ?? d.id, now: this.clock.now(), id },
      );
      return this.mustGet(c, id);
    });
  }

  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]> {
    return this.tx(async (c) => {
      let ids: string[];
      if (target === 'unclaimed') {
        ids = (await run<{ id: string }>(c, "SELECT id FROM devices WHERE source = 'registry' AND password_issued = 0 ORDER BY id FOR UPDATE")).rows.map((r) => r.id);
      } else {
        ids = [...new Set(target)];
        for (const id of ids) {
          const d = await this.mustBeWritable(c, id);
          if (d.credentials?.passwordIssued) {
            throw new BackhaulError('BH_DEVICE_CLAIMED', `device ${shown(id)} has had its password already; reset its credentials for bootstrap first`, { path: 'id' });
          }
        }
      }
      for (const id of ids) await run(c, 'UPDATE devices SET claim_until = @until WHERE id = @id', { until: Math.round(until), id });
      return ids;
    });
  }

  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]> {
    return this.tx(async (c) => {
      const open = (await run<{ id: string }>(c, 'SELECT id FROM devices WHERE claim_until IS NOT NULL ORDER BY id FOR UPDATE')).rows.map((r) => r.id);
      const ids = target === 'all' ? open : open.filter((id) => target.includes(id));
      for (const id of ids) await run(c, 'UPDATE devices SET claim_until = NULL WHERE id = @id', { id });
      return ids;
    });
  }

  setClaimCode(id: string, codeHash: string | undefined): Promise<Device> {
    return this.tx(async (c) => {
      await this.mustBeWritable(c, id);
      await run(c, 'UPDATE devices SET claim_code_hash = @hash WHERE id = @id', { hash: codeHash ?? null, id });
      return this.mustGet(c, id);
    });
  }

  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean> {
    return this.tx(async (c) => {
      const now = at ?? this.clock.now();
      const owner = await this.ownerOf(c, creds.username);
      if (owner !== undefined && owner !== id) throw usernameTaken(creds.username, owner);
      try {
        // One statement: of two concurrent claims, the second finds password_issued = 1 and changes nothing.
        const r = await run(
          c,
          `UPDATE devices SET username = @username, password_hash = @hash, password_issued = 1, credentials_at = @now,
             claimed_at = @now, claimed_by = @by, claim_until = NULL
           WHERE id = @id AND source = 'registry' AND password_issued = 0 AND claim_until IS NOT NULL AND claim_until > @now
           RETURNING id`,
          { id, username: creds.username, hash: creds.hash, now, by },
        );
        return r.rows.length > 0;
      } catch (e) {
        if (uniqueViolation(e, 'devices_username')) throw usernameTaken(creds.username);
        throw e;
      }
    });
  }

  rehashCredentials(items: readonly RehashItem[]): Promise<number> {
    if (items.length === 0) return Promise.resolve(0);
    return this.tx(async (c) => {
      let n = 0;
      for (const i of items) {
        const r = await run(c, "UPDATE devices SET password_hash = @to WHERE id = @id AND password_hash = @from AND source = 'registry'", { id: i.id, from: i.from, to: i.to });
        n += r.rowCount ?? 0;
      }
      return n;
    });
  }

  setCertificate(id: string, fingerprint: string | undefined): Promise<Device> {
    return this.tx(async (c) => {
      await this.mustBeWritable(c, id);
      const taken = (): BackhaulError => new BackhaulError('BH_DEVICE_EXISTS', 'that certificate belongs to another device', { path: 'fingerprint' });
      if (fingerprint !== undefined) {
        if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
          throw new BackhaulError('BH_DEVICE_CERTIFICATE', `${shown(fingerprint)} is not a SHA-256 fingerprint (64 lower-case hex digits)`, { path: 'fingerprint' });
        }
        const r = await run<{ id: string }>(c, 'SELECT id FROM devices WHERE cert_fingerprint = @fingerprint', { fingerprint });
        const owner = r.rows[0]?.id;
        if (owner !== undefined && owner !== id) throw new BackhaulError('BH_DEVICE_EXISTS', `that certificate belongs to device ${shown(owner)}`, { path: 'fingerprint' });
      }
      try {
        await run(c, 'UPDATE devices SET cert_fingerprint = @fingerprint, cert_at = @at WHERE id = @id', {
          fingerprint: fingerprint ?? null,
          at: fingerprint === undefined ? null : this.clock.now(),
          id,
        });
      } catch (e) {
        if (uniqueViolation(e, 'devices_cert')) throw taken();
        throw e;
      }
      return this.mustGet(c, id);
    });
  }

  async getByCertificate(fingerprint: string): Promise<Device | undefined> {
    const r = await run(this.pool, 'SELECT * FROM devices WHERE cert_fingerprint = @fingerprint', { fingerprint });
    const row = r.rows[0];
    return row ? deviceOf(row) : undefined;
  }

  // ------------------------------------------------ audit log

  private async appendAuditOn(db: Db, entry: AuditInput): Promise<AuditEntry> {
    const at = entry.at ?? this.clock.now();
    const r = await run<{ seq: string }>(
      db,
      'INSERT INTO audit (at, actor, action, device, detail, result) VALUES (@at, @actor, @action, @device, @detail, @result) RETURNING seq',
      {
        at,
        actor: entry.actor,
        action: entry.action,
        device: entry.device ?? null,
        detail: entry.detail === undefined ? null : JSON.stringify(entry.detail),
        result: entry.result ?? null,
      },
    );
    return {
      seq: Number(r.rows[0]!.seq),
      at,
      actor: entry.actor,
      action: entry.action,
      ...(entry.device !== undefined ? { device: entry.device } : {}),
      ...(entry.detail !== undefined ? { detail: entry.detail } : {}),
      ...(entry.result !== undefined ? { result: entry.result } : {}),
    };
  }

  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return this.appendAuditOn(this.pool, entry);
  }

  appendAuditMany(entries: readonly AuditInput[]): Promise<number> {
    if (entries.length === 0) return Promise.resolve(0);
    return this.tx(async (c) => {
      for (const e of entries) await this.appendAuditOn(c, e);
      return entries.length;
    });
  }

  async listAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const { sql: where, params } = whereClause([
      ['device = @device', 'device', q.device],
      ['action = @action', 'action', q.action],
      ['at >= @since', 'since', q.since],
    ]);
    let limit = '';
    if (q.limit !== undefined) {
      limit = ' LIMIT @limit';
      params['limit'] = Math.max(0, Math.floor(q.limit));
    }
    const r = await run(this.pool, `SELECT * FROM audit${where} ORDER BY seq DESC${limit}`, params);
    return r.rows.map((row) => toAuditEntry(numbers<AuditRow>(row, AUDIT_INT8)));
  }

  // ------------------------------------------------ orders

  async recordCommand(cmd: CommandInput): Promise<CommandRecord> {
    const at = cmd.at ?? this.clock.now();
    try {
      await run(this.pool, 'INSERT INTO commands (id, device, name, params, actor, topic, dest, sent_at) VALUES (@id, @device, @name, @params, @actor, @topic, @dest, @at)', {
        id: cmd.id,
        device: cmd.device,
        name: cmd.order,
        params: JSON.stringify(cmd.params),
        actor: cmd.actor,
        topic: cmd.topic,
        dest: cmd.dest,
        at,
      });
    } catch (e) {
      if (uniqueViolation(e, 'commands_pkey')) throw new BackhaulError('BH_DEVICE_EXISTS', `an order with id ${shown(cmd.id)} exists already`, { path: 'id', cause: e });
      throw e;
    }
    return (await this.getCommand(cmd.id))!;
  }

  async settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined> {
    await run(this.pool, "UPDATE commands SET status = @status, done_at = @at, result = @result WHERE id = @id AND status = 'sent'", {
      status,
      at: at ?? this.clock.now(),
      result: result === undefined ? null : JSON.stringify(result),
      id,
    });
    return this.getCommand(id);
  }

  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const r = await run(this.pool, 'SELECT * FROM commands WHERE id = @id', { id });
    const row = r.rows[0];
    return row ? toCommand(numbers<CommandRow>(row, COMMAND_INT8)) : undefined;
  }

  async listCommands(q: CommandQuery = {}): Promise<CommandRecord[]> {
    const { sql: where, params } = whereClause([
      ['device = @device', 'device', q.device],
      ['status = @status', 'status', q.status],
    ]);
    let limit = '';
    if (q.limit !== undefined) {
      limit = ' LIMIT @limit';
      params['limit'] = Math.max(0, Math.floor(q.limit));
    }
    const r = await run(this.pool, `SELECT * FROM commands${where} ORDER BY sent_at DESC, seq DESC${limit}`, params);
    return r.rows.map((row) => toCommand(numbers<CommandRow>(row, COMMAND_INT8)));
  }

  /**
   * Call `listener` soon after another instance (or this one) commits a change of what a device is: one connection
   * LISTENs on the change channel, and is made again (after a second) when it drops, then tells the listener once,
   * since changes may have passed meanwhile. Returns what stops it.
   */
  async onChange(listener: () => void): Promise<() => Promise<void>> {
    let client: pg.Client | undefined;
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    const connect = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: this.opts.url, ...(this.opts.password !== undefined ? { password: this.opts.password } : {}), application_name: 'backhaul-registry-listen' });
      c.on('notification', (n) => {
        if (n.channel === CHANGE_CHANNEL && n.payload === this.schema) listener();
      });
      c.on('error', () => {
        if (client === c) client = undefined;
        c.end().catch(() => undefined);
        again();
      });
      await c.connect();
      await c.query(`LISTEN ${CHANGE_CHANNEL}`);
      if (stopped) {
        await c.end();
        return;
      }
      client = c;
    };
    const again = (): void => {
      if (stopped || retry) return;
      retry = setTimeout(() => {
        retry = undefined;
        connect().then(listener, again);
      }, 1000);
      retry.unref();
    };
    await connect();
    const stop = async (): Promise<void> => {
      stopped = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    };
    this.listeners.add(stop);
    return async () => {
      this.listeners.delete(stop);
      await stop();
    };
  }

  private readonly listeners = new Set<() => Promise<void>>();

  /**
   * A session advisory lock on a connection of its own, keyed by schema and name: whoever holds the connection holds
   * the lease; PostgreSQL frees it when that connection ends (a stop, a crash, a lost network), and the others, which
   * try every `retryMs`, take it over.
   */
  async lease(name: string, retryMs = 2000): Promise<Lease> {
    const key = createHash('sha256').update(`backhaul-lease:${this.schema}:${name}`).digest().readBigInt64BE(0).toString();
    let client: pg.Client | undefined;
    let held = false;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const drop = (c: pg.Client): void => {
      if (client === c) {
        client = undefined;
        held = false;
      }
      c.end().catch(() => undefined);
    };
    const attempt = async (): Promise<void> => {
      if (stopped || held) return;
      if (!client) {
        const c = new pg.Client({ connectionString: this.opts.url, ...(this.opts.password !== undefined ? { password: this.opts.password } : {}), application_name: `backhaul-lease-${name}` });
        c.on('error', () => drop(c));
        await c.connect();
        if (stopped) {
          await c.end();
          return;
        }
        client = c;
      }
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key]);
      held = r.rows[0]?.ok === true;
    };
    const loop = (): void => {
      if (stopped) return;
      timer = setTimeout(() => {
        attempt().then(loop, () => {
          if (client) drop(client);
          loop();
        });
      }, retryMs);
      timer.unref();
    };
    await attempt().catch(() => {
      if (client) drop(client);
    });
    loop();
    const stop = async (): Promise<void> => {
      stopped = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = undefined;
      held = false;
      await c?.end().catch(() => undefined);
    };
    this.listeners.add(stop);
    return {
      get held() {
        return held;
      },
      stop: async () => {
        this.listeners.delete(stop);
        await stop();
      },
    };
  }

  async seenSince(since: number): Promise<Array<{ readonly id: string; readonly lastSeen: number }>> {
    const r = await this.pool.query<{ id: string; last_seen: string }>('SELECT id, last_seen FROM devices WHERE last_seen > $1', [Math.floor(since)]);
    return r.rows.map((x) => ({ id: x.id, lastSeen: Number(x.last_seen) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.listeners].map((s) => s()));
    await this.pool.end();
  }
}

// ---------------------------------------------------------------- alarms

/** The alarms table of the schema (alarm-types.ts has the model; ../alarms.ts the lifecycle). */
export class PostgresAlarmRecords implements AlarmRecords {
  constructor(private readonly pool: pg.Pool) {}

  private async rows(sql: string, params: Params = {}): Promise<Alarm[]> {
    const r = await run(this.pool, sql, params);
    return r.rows.map((row) => toAlarm(numbers<AlarmRow>(row, ALARM_INT8)));
  }

  async open(subjectKind: AlarmSubjectKind, subject: string, kind: AlarmKind, aspect: string): Promise<Alarm | undefined> {
    const a = await this.rows("SELECT * FROM alarms WHERE subject_kind = @subjectKind AND subject = @subject AND kind = @kind AND aspect = @aspect AND state <> 'cleared'", {
      subjectKind,
      subject,
      kind,
      aspect,
    });
    return a[0];
  }

  allOpen(): Promise<Alarm[]> {
    return this.rows("SELECT * FROM alarms WHERE state <> 'cleared' ORDER BY raised_at, id");
  }

  async get(id: string): Promise<Alarm | undefined> {
    return (await this.rows('SELECT * FROM alarms WHERE id = @id', { id }))[0];
  }

  list(q: AlarmQuery = {}): Promise<Alarm[]> {
    const { sql, params } = whereClause([
      ['state = @state', 'state', q.state === 'open' ? undefined : q.state],
      ["state <> 'cleared'", 'open', q.state === 'open' ? 1 : undefined],
      ['kind = @kind', 'kind', q.kind],
      ['subject_kind = @subjectKind', 'subjectKind', q.subjectKind],
      ['subject = @subject', 'subject', q.subject],
    ]);
    delete params['open'];
    params['limit'] = Math.max(0, Math.floor(q.limit ?? 100));
    return this.rows(`SELECT * FROM alarms${sql} ORDER BY raised_at DESC, id DESC LIMIT @limit`, params);
  }

  async counts(): Promise<AlarmCounts> {
    const r = await run<{ kind: string; state: string; n: number }>(this.pool, "SELECT kind, state, count(*)::int AS n FROM alarms WHERE state <> 'cleared' GROUP BY kind, state");
    let raised = 0;
    let acknowledged = 0;
    const byKind: Partial<Record<AlarmKind, { raised: number; acknowledged: number }>> = {};
    for (const row of r.rows) {
      const k = (byKind[row.kind as AlarmKind] ??= { raised: 0, acknowledged: 0 });
      if (row.state === 'acknowledged') {
        acknowledged += row.n;
        k.acknowledged += row.n;
      } else {
        raised += row.n;
        k.raised += row.n;
      }
    }
    return { raised, acknowledged, byKind };
  }

  async put(a: Alarm): Promise<void> {
    await run(
      this.pool,
      `INSERT INTO alarms (id, kind, subject_kind, subject, aspect, severity, state, message, raised_at, last_seen_at,
         acknowledged_at, acknowledged_by, note, cleared_at, cleared_by, reminders, reminded_at)
       VALUES (@id, @kind, @subjectKind, @subject, @aspect, @severity, @state, @message, @raisedAt, @lastSeenAt,
         @acknowledgedAt, @acknowledgedBy, @note, @clearedAt, @clearedBy, @reminders, @remindedAt)
       ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, subject_kind = EXCLUDED.subject_kind, subject = EXCLUDED.subject,
         aspect = EXCLUDED.aspect, severity = EXCLUDED.severity, state = EXCLUDED.state, message = EXCLUDED.message,
         raised_at = EXCLUDED.raised_at, last_seen_at = EXCLUDED.last_seen_at, acknowledged_at = EXCLUDED.acknowledged_at,
         acknowledged_by = EXCLUDED.acknowledged_by, note = EXCLUDED.note, cleared_at = EXCLUDED.cleared_at,
         cleared_by = EXCLUDED.cleared_by, reminders = EXCLUDED.reminders, reminded_at = EXCLUDED.reminded_at`,
      {
        id: a.id,
        kind: a.kind,
        subjectKind: a.subjectKind,
        subject: a.subject,
        aspect: a.aspect,
        severity: a.severity,
        state: a.state,
        message: a.message,
        raisedAt: a.raisedAt,
        lastSeenAt: a.lastSeenAt,
        acknowledgedAt: a.acknowledgedAt ?? null,
        acknowledgedBy: a.acknowledgedBy ?? null,
        note: a.note ?? null,
        clearedAt: a.clearedAt ?? null,
        clearedBy: a.clearedBy ?? null,
        reminders: a.reminders,
        remindedAt: a.remindedAt,
      },
    );
  }
}

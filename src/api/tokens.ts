// API tokens: `bh_<id>_<secret>`, a role each, kept where the config's `store` says: `<data>/tokens.sqlite` (the
// default; WAL, so the CLI can create and revoke tokens while Backhaul runs, and the API sees a revocation on its next
// request), or the `api_tokens` table of the shared PostgreSQL schema (tokens-postgres.ts). Only SHA-256 of the secret
// is stored: the secret is 192 random bits, so a slow hash would add nothing but latency on every request.
//
// TokenStore is what the auth hook, the routes, the hub and the CLI use: checking a token (verify, touch) is
// synchronous, so no request waits on a network round trip; what writes or lists may be asynchronous (await it).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSchemaFile, StatementCache } from '../core/sqlite.js';
import { systemClock, type Clock } from '../core/clock.js';
import { BackhaulError } from '../core/errors.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/** True when `have` may do what `need` may (viewer < operator < admin). */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  lastUsedAt?: number;
  revokedAt?: number;
}

export interface NewToken {
  info: TokenInfo;
  /** The whole token, `bh_<id>_<secret>`: shown once, never stored. */
  token: string;
}

/** A value, or a promise of it: SqliteTokenStore answers at once, PostgresTokenStore later. */
export type MaybePromise<T> = T | Promise<T>;

/** The API tokens, wherever they are kept (SqliteTokenStore, PostgresTokenStore). */
export interface TokenStore {
  /** A new token; BH_TOKEN_NAME (path `name`) when the name is bad or taken by a live token, BH_TOKEN_ROLE (`role`). */
  create(name: string | undefined, role: Role): MaybePromise<NewToken>;
  /** Creates a token only when none was ever created (revoked ones count), atomically. */
  createIfNone(name: string, role: Role): MaybePromise<NewToken | undefined>;
  /** The token's info when it is well formed, known, matches and is not revoked; marks it used (throttled). */
  verify(token: string): TokenInfo | undefined;
  /** The token with this id when it is not revoked, marked used (throttled). */
  touch(id: string): TokenInfo | undefined;
  get(id: string): MaybePromise<TokenInfo | undefined>;
  /** Every token, revoked ones too, oldest first. */
  list(): MaybePromise<TokenInfo[]>;
  /** Revoke (again is fine: the first revokedAt stays); BH_TOKEN_NOT_FOUND, path `id`, when unknown. */
  revoke(id: string): MaybePromise<TokenInfo>;
  /** Tokens not revoked. */
  activeCount(): MaybePromise<number>;
  close(): MaybePromise<void>;
}

export interface TokenStoreOptions {
  readonly clock?: Clock;
}

/** The token file in a data folder. */
export function tokensPath(dataDir: string): string {
  return join(dataDir, 'tokens.sqlite');
}

/** lastUsedAt is written at most this often per token: a busy dashboard would otherwise write on every request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

const SCHEMA_VERSION = 1;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;
`;

export const TOKEN_RE = /^bh_([0-9a-f]{8})_([A-Za-z0-9_-]{32})$/;
const NAME_RE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]{1,64}$/u;
// Compared against when the id is unknown, so unknown and wrong-secret tokens take the same work.
export const DUMMY_HASH = createHash('sha256').update('backhaul').digest();

export interface TokenRow {
  id: string;
  name: string;
  role: string;
  hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export function toInfo(r: TokenRow): TokenInfo {
  return {
    id: r.id,
    name: r.name,
    // A role written by a newer Backhaul that this one does not know gets the least power.
    role: isRole(r.role) ? r.role : 'viewer',
    createdAt: r.created_at,
    ...(r.last_used_at !== null ? { lastUsedAt: r.last_used_at } : {}),
    ...(r.revoked_at !== null ? { revokedAt: r.revoked_at } : {}),
  };
}

export function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name) || /^\s|\s$/u.test(name)) {
    throw new BackhaulError('BH_TOKEN_NAME', 'a token name is 1 to 64 printable characters, without spaces at either end', { path: 'name' });
  }
}

export function checkRole(role: unknown): asserts role is Role {
  if (!isRole(role)) throw new BackhaulError('BH_TOKEN_ROLE', `${JSON.stringify(role)} is not a role: use ${ROLES.join(', ')}`, { path: 'role' });
}

export class SqliteTokenStore implements TokenStore {
  private readonly clock: Clock;
  private readonly cache: StatementCache;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    opts: TokenStoreOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.cache = new StatementCache(db);
  }

  /** Open (and create) a token file; `:memory:` for a throw-away one. BH_TOKEN_OPEN when it cannot be used. */
  static open(path: string, opts: TokenStoreOptions = {}): SqliteTokenStore {
    const db = openSchemaFile(path, { schema: SCHEMA, version: SCHEMA_VERSION, code: 'BH_TOKEN_OPEN', what: 'token file' });
    return new SqliteTokenStore(db, path, opts);
  }

  private stmt(sql: string): Database.Statement {
    return this.cache.get(sql);
  }

  private row(id: string): TokenRow | undefined {
    return this.stmt('SELECT * FROM tokens WHERE id = ?').get(id) as TokenRow | undefined;
  }

  /**
   * A new token. `name` must be unique among tokens not revoked (BH_TOKEN_NAME, path `name`); undefined names it
   * `<role>-<id>`. A bad role: BH_TOKEN_ROLE, path `role`.
   */
  create(name: string | undefined, role: Role): NewToken {
    checkRole(role);
    if (name !== undefined) checkName(name);
    // IMMEDIATE: the name check and the insert hold the write lock together, also against another process.
    return this.db.transaction(() => this.insert(name, role)).immediate();
  }

  /** Creates a token only when the file holds none at all (revoked ones count), in one transaction. */
  createIfNone(name: string, role: Role): NewToken | undefined {
    checkRole(role);
    checkName(name);
    return this.db
      .transaction(() => {
        const n = (this.stmt('SELECT COUNT(*) AS n FROM tokens').get() as { n: number }).n;
        return n === 0 ? this.insert(name, role) : undefined;
      })
      .immediate();
  }

  private insert(name: string | undefined, role: Role): NewToken {
    let id: string;
    do id = randomBytes(4).toString('hex');
    while (this.row(id) !== undefined);
    const finalName = name ?? `${role}-${id}`;
    if (this.stmt('SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL').get(finalName) !== undefined) {
      throw new BackhaulError('BH_TOKEN_NAME', `a token named ${JSON.stringify(finalName)} exists; revoke it or pick another name`, { path: 'name' });
    }
    const secret = randomBytes(24).toString('base64url');
    const now = this.clock.now();
    this.stmt('INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)').run(id, finalName, role, sha256(secret).toString('hex'), now);
    return { info: { id, name: finalName, role, createdAt: now }, token: `bh_${id}_${secret}` };
  }

  /** The token's info when it is well formed, known, matches and is not revoked; marks it used (throttled). */
  verify(token: string): TokenInfo | undefined {
    const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
    if (!m) return undefined;
    const r = this.row(m[1]!);
    const stored = r ? Buffer.from(r.hash, 'hex') : DUMMY_HASH;
    const given = sha256(m[2]!);
    const match = stored.length === given.length && timingSafeEqual(stored, given);
    if (!r || !match || r.revoked_at !== null) return undefined;
    return this.markUsed(r);
  }

  /**
   * The token with this id when it is not revoked, marked used (throttled): for sessions, which hold the id only and
   * must end as soon as their token is revoked.
   */
  touch(id: string): TokenInfo | undefined {
    const r = this.row(id);
    if (!r || r.revoked_at !== null) return undefined;
    return this.markUsed(r);
  }

  private markUsed(r: TokenRow): TokenInfo {
    const now = this.clock.now();
    if (r.last_used_at === null || now - r.last_used_at >= LAST_USED_RESOLUTION_MS) {
      this.stmt('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, r.id);
      return toInfo({ ...r, last_used_at: now });
    }
    return toInfo(r);
  }

  get(id: string): TokenInfo | undefined {
    const r = this.row(id);
    return r ? toInfo(r) : undefined;
  }

  /** Every token, revoked ones too, oldest first. */
  list(): TokenInfo[] {
    return (this.stmt('SELECT * FROM tokens ORDER BY created_at, rowid').all() as TokenRow[]).map(toInfo);
  }

  /** Revoke a token (again is fine: the first revokedAt stays). BH_TOKEN_NOT_FOUND, path `id`, when unknown. */
  revoke(id: string): TokenInfo {
    this.stmt('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.clock.now(), id);
    const r = this.row(id);
    if (!r) throw new BackhaulError('BH_TOKEN_NOT_FOUND', `no token ${JSON.stringify(id)}`, { path: 'id' });
    return toInfo(r);
  }

  /** Tokens not revoked. */
  activeCount(): number {
    return (this.stmt('SELECT COUNT(*) AS n FROM tokens WHERE revoked_at IS NULL').get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * On a first start (no token was ever created, revoked ones count), an `admin` token named `first-admin`, for the
 * caller to print once; undefined otherwise.
 */
export function ensureFirstAdmin(store: SqliteTokenStore): NewToken | undefined;
export function ensureFirstAdmin(store: TokenStore): MaybePromise<NewToken | undefined>;
export function ensureFirstAdmin(store: TokenStore): MaybePromise<NewToken | undefined> {
  return store.createIfNone('first-admin', 'admin');
}

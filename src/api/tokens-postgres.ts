// API tokens in PostgreSQL: the same TokenStore as SqliteTokenStore (held to test/api/token-store-conformance.ts),
// in the `api_tokens` table of the schema the device registry uses (the config's `store.schema`), so every instance
// of a cluster and the CLI share one set of tokens.
//
// - The table is made by versioned migrations of its own (TOKEN_MIGRATIONS, applied versions in `token_migrations`),
//   under a session advisory lock (TOKEN_MIGRATION_LOCK, another key than the registry's), so two instances starting
//   together apply each one once; a schema newer than this code knows is refused (BH_TOKEN_OPEN).
// - Checking a token never waits on the network: every token (id, hash, role, name, times) is held in memory, loaded
//   at open and loaded again on each notice on TOKEN_CHANNEL. A trigger sends the notice (payload: the schema) at the
//   commit of any insert, delete, or change of a token's name, role, hash or revocation, whoever made it (another
//   instance, the CLI, plain SQL), so a revocation is refused everywhere within a moment. The LISTEN connection is made
//   again after a second when it drops (then the tokens are loaded again), and they are re-read every RELOAD_MS anyway.
// - lastUsedAt keeps LAST_USED_RESOLUTION_MS per instance; the write is sent without waiting (failures are logged
//   away), and flush() / get() / list() / close() wait for the ones in flight.
import pg from 'pg';
import { inTransaction, migratePostgres, type PgMigration } from '../core/pg-migrations.js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { BackhaulError, errorText, shown } from '../core/errors.js';
import { systemClock, type Clock } from '../core/clock.js';
import { describePostgresUrl } from '../devices/store/postgres.js';
import {
  checkName,
  checkRole,
  DUMMY_HASH,
  LAST_USED_RESOLUTION_MS,
  sha256,
  toInfo,
  TOKEN_RE,
  type NewToken,
  type Role,
  type TokenInfo,
  type TokenRow,
  type TokenStore,
} from './tokens.js';

export interface PostgresTokenStoreOptions {
  /** `postgres://user[:password]@host[:port]/database`. */
  readonly url: string;
  /** The schema (made when missing). Default `backhaul`. */
  readonly schema?: string;
  /** The password, when not in the URL (from the secrets store). */
  readonly password?: string;
  readonly clock?: Clock;
  /** Connections in the pool. Default 2. */
  readonly poolSize?: number;
}

/** The session advisory lock the token migrations run under ('BHTK'; the registry's is 'BHRG'). */
export const TOKEN_MIGRATION_LOCK = 0x4248544b;
/** The LISTEN/NOTIFY channel of token changes (payload: the schema). */
export const TOKEN_CHANNEL = 'backhaul_tokens';
/** The tokens are re-read this often even without a notice (a notice lost while the listener was reconnecting). */
export const RELOAD_MS = 30_000;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

type Migration = PgMigration;

export const TOKEN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'api_tokens, with a notice on every change of a token but its lastUsedAt',
    sql: (schema) => `
CREATE TABLE api_tokens (
  id           text   COLLATE "C" PRIMARY KEY,
  seq          bigint GENERATED ALWAYS AS IDENTITY,
  name         text   NOT NULL,
  role         text   NOT NULL,
  hash         text   NOT NULL,
  created_at   bigint NOT NULL,
  last_used_at bigint,
  revoked_at   bigint
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
CREATE FUNCTION notify_api_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${TOKEN_CHANNEL}', '${schema}');
  RETURN NULL;
END
$$;
CREATE TRIGGER api_tokens_insert_delete AFTER INSERT OR DELETE ON api_tokens FOR EACH ROW EXECUTE FUNCTION notify_api_tokens();
CREATE TRIGGER api_tokens_update AFTER UPDATE OF id, name, role, hash, revoked_at ON api_tokens FOR EACH ROW EXECUTE FUNCTION notify_api_tokens();
`,
  },
];

export const TOKEN_SCHEMA_VERSION = TOKEN_MIGRATIONS[TOKEN_MIGRATIONS.length - 1]!.version;

/** pg returns int8 as a string: the time columns as numbers. */
function rowOf(r: Record<string, unknown>): TokenRow {
  const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return {
    id: String(r['id']),
    name: String(r['name']),
    role: String(r['role']),
    hash: String(r['hash']),
    created_at: Number(r['created_at']),
    last_used_at: n(r['last_used_at']),
    revoked_at: n(r['revoked_at']),
  };
}

function uniqueViolation(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === '23505';
}

function migrate(pool: pg.Pool, schema: string, clock: Clock): Promise<void> {
  return migratePostgres(pool, { schema, table: 'token_migrations', lockKey: TOKEN_MIGRATION_LOCK, migrations: TOKEN_MIGRATIONS, code: 'BH_TOKEN_OPEN', what: 'the API tokens', now: () => clock.now() });
}

export class PostgresTokenStore implements TokenStore {
  private readonly clock: Clock;
  /** Every token by id, as last loaded or written here. */
  private tokens = new Map<string, TokenRow>();
  /** Moves on each write of this instance: a load that started before one is not applied (it may miss the write). */
  private writes = 0;
  private loading: Promise<void> | undefined;
  private loadAgain = false;
  private readonly pending = new Set<Promise<void>>();
  private listener: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
    private readonly opts: PostgresTokenStoreOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.timer = setInterval(() => this.reload(), RELOAD_MS);
    this.timer.unref();
  }

  /**
   * Connect, make the schema and apply the migrations it lacks (under TOKEN_MIGRATION_LOCK), start listening for
   * changes and load the tokens. BH_TOKEN_OPEN when the server cannot be reached or refuses, or the schema is newer.
   */
  static async open(opts: PostgresTokenStoreOptions): Promise<PostgresTokenStore> {
    const schema = opts.schema ?? 'backhaul';
    if (!SCHEMA_NAME.test(schema)) {
      throw new BackhaulError('BH_TOKEN_OPEN', `the tokens' PostgreSQL schema name ${shown(schema)} must be a lower-case identifier (a-z, 0-9, _)`, { path: 'schema' });
    }
    const clock = opts.clock ?? systemClock;
    const pool = new pg.Pool({
      connectionString: opts.url,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      options: `-c search_path=${schema}`,
      max: opts.poolSize ?? 2,
      connectionTimeoutMillis: 10_000,
      application_name: 'backhaul-tokens',
    });
    pool.on('error', () => undefined);
    let store: PostgresTokenStore | undefined;
    try {
      await migrate(pool, schema, clock);
      store = new PostgresTokenStore(pool, schema, opts);
      await store.listen();
      await store.load();
      return store;
    } catch (e) {
      if (store) await store.close().catch(() => undefined);
      else await pool.end().catch(() => undefined);
      if (e instanceof BackhaulError) throw e;
      const pw = opts.password ?? safePassword(opts.url);
      let text = errorText(e);
      if (pw) text = text.split(pw).join('***');
      throw new BackhaulError('BH_TOKEN_OPEN', `the API tokens in PostgreSQL at ${describePostgresUrl(opts.url)} (schema ${schema}) cannot be opened: ${text}`);
    }
  }

  // ------------------------------------------------------------ the tokens in memory

  /** Read every token; a load asked for while one runs runs once more after it. */
  private async load(): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    const run = async (): Promise<void> => {
      do {
        this.loadAgain = false;
        const before = this.writes;
        const r = await this.pool.query('SELECT * FROM api_tokens ORDER BY seq');
        if (this.writes !== before) {
          this.loadAgain = true; // a write of ours committed meanwhile: this read may not hold it
          continue;
        }
        const next = new Map<string, TokenRow>();
        for (const raw of r.rows as Record<string, unknown>[]) {
          const row = rowOf(raw);
          const mine = this.tokens.get(row.id)?.last_used_at ?? null;
          // Our own lastUsedAt may be ahead of the table (its write still in flight).
          if (mine !== null && (row.last_used_at === null || mine > row.last_used_at)) row.last_used_at = mine;
          next.set(row.id, row);
        }
        this.tokens = next;
      } while (this.loadAgain && !this.closed);
    };
    this.loading = run().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private reload(): void {
    if (this.closed) return;
    this.load().catch(() => undefined); // the tokens held stay until a load succeeds
  }

  private async listen(): Promise<void> {
    const c = new pg.Client({ connectionString: this.opts.url, ...(this.opts.password !== undefined ? { password: this.opts.password } : {}), application_name: 'backhaul-tokens-listen' });
    c.on('notification', (n) => {
      if (n.channel === TOKEN_CHANNEL && n.payload === this.schema) this.reload();
    });
    c.on('error', () => {
      if (this.listener === c) this.listener = undefined;
      c.end().catch(() => undefined);
      this.listenAgain();
    });
    await c.connect();
    await c.query(`LISTEN ${TOKEN_CHANNEL}`);
    if (this.closed) {
      await c.end();
      return;
    }
    this.listener = c;
  }

  private listenAgain(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.listen().then(
        () => this.reload(), // notices may have passed while it was down
        () => this.listenAgain(),
      );
    }, 1000);
    this.retry.unref();
  }

  /** A row this instance wrote: held at once (the notice reloads the others). */
  private wrote(row: TokenRow): void {
    this.writes++;
    this.tokens.set(row.id, row);
  }

  // ------------------------------------------------------------ writes

  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  async create(name: string | undefined, role: Role): Promise<NewToken> {
    checkRole(role);
    if (name !== undefined) checkName(name);
    return this.tx((c) => this.insert(c, name, role));
  }

  async createIfNone(name: string, role: Role): Promise<NewToken | undefined> {
    checkRole(role);
    checkName(name);
    return this.tx(async (c) => {
      // Writers of tokens wait for each other here (readers do not), so two first starts make one token.
      await c.query('LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE');
      const r = await c.query<{ n: string }>('SELECT count(*) AS n FROM api_tokens');
      return Number(r.rows[0]?.n ?? 0) === 0 ? this.insert(c, name, role) : undefined;
    });
  }

  private async insert(c: pg.PoolClient, name: string | undefined, role: Role): Promise<NewToken> {
    for (;;) {
      const id = randomBytes(4).toString('hex');
      const finalName = name ?? `${role}-${id}`;
      const secret = randomBytes(24).toString('base64url');
      const now = this.clock.now();
      await c.query('SAVEPOINT token_insert');
      try {
        const r = await c.query(
          'INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING *',
          [id, finalName, role, sha256(secret).toString('hex'), now],
        );
        await c.query('RELEASE SAVEPOINT token_insert');
        if (r.rows.length === 0) continue; // that id is taken: draw another
        const row = rowOf(r.rows[0] as Record<string, unknown>);
        this.wrote(row);
        return { info: toInfo(row), token: `bh_${id}_${secret}` };
      } catch (e) {
        await c.query('ROLLBACK TO SAVEPOINT token_insert');
        if (uniqueViolation(e)) {
          throw new BackhaulError('BH_TOKEN_NAME', `a token named ${JSON.stringify(finalName)} exists; revoke it or pick another name`, { path: 'name' });
        }
        throw e;
      }
    }
  }

  async revoke(id: string): Promise<TokenInfo> {
    await this.pool.query('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [this.clock.now(), id]);
    const r = await this.pool.query('SELECT * FROM api_tokens WHERE id = $1', [id]);
    if (r.rows.length === 0) throw new BackhaulError('BH_TOKEN_NOT_FOUND', `no token ${JSON.stringify(id)}`, { path: 'id' });
    const row = rowOf(r.rows[0] as Record<string, unknown>);
    const held = this.tokens.get(id)?.last_used_at ?? null;
    if (held !== null && (row.last_used_at === null || held > row.last_used_at)) row.last_used_at = held;
    this.wrote(row);
    return toInfo(row);
  }

  // ------------------------------------------------------------ checks (from memory)

  verify(token: string): TokenInfo | undefined {
    const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
    if (!m) return undefined;
    const r = this.tokens.get(m[1]!);
    const stored = r ? Buffer.from(r.hash, 'hex') : DUMMY_HASH;
    const given = sha256(m[2]!);
    const match = stored.length === given.length && timingSafeEqual(stored, given);
    if (!r || !match || r.revoked_at !== null) return undefined;
    return this.markUsed(r);
  }

  touch(id: string): TokenInfo | undefined {
    const r = this.tokens.get(id);
    if (!r || r.revoked_at !== null) return undefined;
    return this.markUsed(r);
  }

  private markUsed(r: TokenRow): TokenInfo {
    const now = this.clock.now();
    if (r.last_used_at === null || now - r.last_used_at >= LAST_USED_RESOLUTION_MS) {
      r.last_used_at = now;
      if (!this.closed) {
        const p: Promise<void> = this.pool
          .query('UPDATE api_tokens SET last_used_at = greatest(coalesce(last_used_at, 0), $1) WHERE id = $2', [now, r.id])
          .then(
            () => undefined,
            () => undefined, // lastUsedAt is a hint: a failed write is not worth a failed request
          )
          .finally(() => this.pending.delete(p));
        this.pending.add(p);
      }
    }
    return toInfo(r);
  }

  /** Wait for the lastUsedAt writes in flight. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  // ------------------------------------------------------------ reads (from the table: lastUsedAt of every instance)

  async get(id: string): Promise<TokenInfo | undefined> {
    await this.flush();
    const r = await this.pool.query('SELECT * FROM api_tokens WHERE id = $1', [id]);
    return r.rows.length > 0 ? toInfo(rowOf(r.rows[0] as Record<string, unknown>)) : undefined;
  }

  async list(): Promise<TokenInfo[]> {
    await this.flush();
    const r = await this.pool.query('SELECT * FROM api_tokens ORDER BY created_at, seq');
    return (r.rows as Record<string, unknown>[]).map((row) => toInfo(rowOf(row)));
  }

  async activeCount(): Promise<number> {
    const r = await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NULL');
    return Number(r.rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.flush();
    await this.loading?.catch(() => undefined);
    await this.pool.end();
  }
}

function safePassword(url: string): string {
  try {
    const pw = new URL(url).password;
    return pw === '' ? '' : decodeURIComponent(pw);
  } catch {
    return '';
  }
}

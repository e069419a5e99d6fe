// Versioned schema migrations on PostgreSQL, shared by every store that keeps its tables there (the device registry,
// the API tokens, the historian): each migration once, in its own transaction, recorded in a table of its own, the
// whole step under a session advisory lock so instances starting together apply each once. A schema at a version
// newer than the code knows is refused. It does no I/O of its own: the caller's pool (pg.Pool) runs the statements.
import { BackhaulError, errorText, type ErrorCode } from './errors.js';

/** What this module needs of a pooled connection (pg.PoolClient has it). */
export interface PgConnection {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  /** Given an error, the pool drops the connection instead of reusing it. */
  release(err?: Error): void;
}

/** What this module needs of a pool (pg.Pool has it). */
export interface PgPool {
  connect(): Promise<PgConnection>;
}

export interface PgMigration {
  readonly version: number;
  /** What it makes, for errors: `devices, the audit log`. */
  readonly what: string;
  /** Its SQL, given the schema as it may be written into SQL. */
  readonly sql: (schema: string) => string;
}

export interface PgMigrationPlan {
  /** The schema, a plain lower-case identifier (checked by the caller); made when missing. */
  readonly schema: string;
  /** The table recording the versions applied, in the schema: `schema_migrations`. */
  readonly table: string;
  /** The advisory lock's key: one per kind of store, so their migrations do not wait for each other. */
  readonly lockKey: number;
  readonly migrations: readonly PgMigration[];
  /** The code of the errors (`BH_REGISTRY_OPEN`) and what the tables are, for their messages (`the device registry`). */
  readonly code: ErrorCode;
  readonly what: string;
  readonly now: () => number;
}

/** Apply the migrations the schema lacks. Throws `plan.code` for a newer schema or a migration that fails. */
export async function migratePostgres(pool: PgPool, plan: PgMigrationPlan): Promise<void> {
  const { schema, table } = plan;
  const latest = plan.migrations.reduce((v, m) => Math.max(v, m.version), 0);
  const c = await pool.connect();
  let broken: Error | undefined;
  try {
    await c.query('SELECT pg_advisory_lock($1::bigint)', [plan.lockKey]);
    try {
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      await c.query(`CREATE TABLE IF NOT EXISTS "${schema}".${table} (version integer PRIMARY KEY, applied_at bigint NOT NULL)`);
      const r = await c.query<{ v: number | null }>(`SELECT max(version) AS v FROM "${schema}".${table}`);
      const current = r.rows[0]?.v ?? 0;
      if (current > latest) {
        throw new BackhaulError(plan.code, `${plan.what} in schema ${schema} is at schema version ${current}, written by a newer Backhaul (this one knows up to ${latest}); upgrade Backhaul`);
      }
      for (const m of [...plan.migrations].sort((a, b) => a.version - b.version)) {
        if (m.version <= current) continue;
        await c.query('BEGIN');
        try {
          await c.query(m.sql(schema));
          await c.query(`INSERT INTO "${schema}".${table} (version, applied_at) VALUES ($1, $2)`, [m.version, plan.now()]);
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw new BackhaulError(plan.code, `migration ${m.version} (${m.what}) of ${plan.what} in schema ${schema} failed: ${errorText(e)}`, { cause: e });
        }
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock($1::bigint)', [plan.lockKey]).catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e)); // a session that may still hold the lock is not reused
      });
    }
  } finally {
    c.release(broken);
  }
}

/**
 * Run `fn` in a transaction on one connection of the pool: COMMIT when it resolves, ROLLBACK when it throws. A
 * connection whose ROLLBACK failed is dropped by the pool, not handed to the next caller mid-transaction.
 */
export async function inTransaction<C extends PgConnection, T>(pool: { connect(): Promise<C> }, fn: (c: C) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    await c.query('ROLLBACK').catch((r: unknown) => {
      broken = r instanceof Error ? r : new Error(String(r));
    });
    throw e;
  } finally {
    c.release(broken);
  }
}

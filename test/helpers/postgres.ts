// The CI's PostgreSQL (127.0.0.1:5432, trust auth, database `test`; BACKHAUL_TEST_POSTGRES_URL overrides), for tests
// of the PostgreSQL stores. Each test takes a fresh schema of its own and drops it after.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { serviceSkip } from './services.js';

export const POSTGRES_URL = process.env['BACKHAUL_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** False when PostgreSQL answers, else why the test is skipped (in CI, BACKHAUL_REQUIRE_SERVICES=1: a failure). */
export function postgresSkip(): Promise<string | false> {
  const u = new URL(POSTGRES_URL);
  return serviceSkip({ host: u.hostname, port: Number(u.port || 5432), name: `PostgreSQL at ${u.host}` });
}

/** A schema name no other test uses; `drop()` removes it with everything in it. */
export function freshSchema(prefix = 'bh_test'): { name: string; drop: () => Promise<void> } {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  return {
    name,
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

// The token stores: the conformance suite against SqliteTokenStore (a file in a temp folder) and PostgresTokenStore
// (a fresh schema of a real PostgreSQL each test, dropped after), and what is PostgreSQL's own: two instances on one
// schema see each other's tokens and revocations within a second through the notices (the periodic re-read is 30 s),
// also a revocation made by plain SQL; migrations applied once by instances opening together, beside the registry's;
// a newer schema refused; an unreachable server refused with BH_TOKEN_OPEN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { SqliteTokenStore, tokensPath, type TokenStore } from '../../src/api/tokens.js';
import { PostgresTokenStore, RELOAD_MS, TOKEN_SCHEMA_VERSION } from '../../src/api/tokens-postgres.js';
import { PostgresDeviceStore } from '../../src/devices/store/postgres.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { openTokenStore } from '../../src/runtime/stores.js';
import { tempDir, teardown } from '../helpers/context.js';
import { freshSchema, POSTGRES_URL, postgresSkip } from '../helpers/postgres.js';
import { rejectsCode, tokenStoreConformance } from './token-store-conformance.js';

const pgSkip = await postgresSkip();

tokenStoreConformance('SqliteTokenStore', {
  make: ({ clock, cleanup }) => {
    const dir = tempDir('backhaul-tokens-');
    cleanup(() => dir.cleanup());
    const store = SqliteTokenStore.open(tokensPath(dir.path), { clock });
    return Promise.resolve({ store, other: () => Promise.resolve(SqliteTokenStore.open(tokensPath(dir.path), { clock })) });
  },
});

tokenStoreConformance('PostgresTokenStore', {
  skip: pgSkip,
  make: async ({ clock, cleanup }) => {
    const schema = freshSchema();
    cleanup(() => schema.drop());
    const store = await PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name, clock });
    return { store, other: () => PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name, clock }) };
  },
  settle: (s) => (s as PostgresTokenStore).flush(),
});

async function sql<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}

/** Poll until ok() or 1 s has passed; how long it took, or undefined. */
async function within1s(ok: () => boolean): Promise<number | undefined> {
  const start = Date.now();
  while (Date.now() - start <= 1000) {
    if (ok()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

test('PostgresTokenStore: two instances on one schema: made on A verifies on B after the notice, revoked on A (or by SQL) is refused by B within a second', { skip: pgSkip, timeout: 30_000 }, async (t) => {
  assert.ok(RELOAD_MS >= 10_000, 'the periodic re-read is not what makes this pass');
  const cleanup = teardown(t);
  const schema = freshSchema();
  cleanup(() => schema.drop());
  const a = await PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name });
  cleanup(() => a.close());
  const b = await PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name });
  cleanup(() => b.close());

  const one = await a.create('shared', 'operator');
  assert.equal(a.verify(one.token)?.id, one.info.id, 'A knows its own token at once');
  assert.notEqual(await within1s(() => b.verify(one.token)?.id === one.info.id), undefined, 'B verifies it after the notice');
  await a.revoke(one.info.id);
  assert.equal(a.verify(one.token), undefined, 'A refuses at once');
  assert.notEqual(await within1s(() => b.verify(one.token) === undefined), undefined, 'B refuses within a second');
  assert.equal(b.touch(one.info.id), undefined);

  // Revoked outside Backhaul, by plain SQL: the trigger sends the notice.
  const two = await b.create('by-sql', 'viewer');
  assert.notEqual(await within1s(() => a.verify(two.token) !== undefined), undefined);
  await sql(`UPDATE ${schema.name}.api_tokens SET revoked_at = 1 WHERE id = $1`, [two.info.id]);
  assert.notEqual(await within1s(() => a.verify(two.token) === undefined && b.verify(two.token) === undefined), undefined, 'both refuse within a second');

  // lastUsedAt writes send no notice (they are not changes of what a token may do).
  const used = await a.create('used', 'viewer');
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  cleanup(() => c.end());
  let notices = 0;
  c.on('notification', () => notices++);
  await c.query('LISTEN backhaul_tokens');
  assert.notEqual(await within1s(() => b.verify(used.token) !== undefined), undefined);
  await b.flush();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(notices, 0);
});

test('PostgresTokenStore: instances opening together apply the migration once, beside the registry\'s tables; a newer schema is refused', { skip: pgSkip, timeout: 30_000 }, async (t) => {
  const cleanup = teardown(t);
  const schema = freshSchema();
  cleanup(() => schema.drop());
  const registry = await PostgresDeviceStore.open({ url: POSTGRES_URL, schema: schema.name, types: new DeviceTypes() });
  cleanup(() => registry.close());
  const stores = await Promise.all([1, 2, 3].map(() => PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name })));
  for (const s of stores) cleanup(() => s.close());
  const applied = await sql<{ version: number }>(`SELECT version FROM ${schema.name}.token_migrations ORDER BY version`);
  assert.deepEqual(applied.map((r) => r.version), [TOKEN_SCHEMA_VERSION]);
  const tables = await sql<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema.name]);
  const names = tables.map((r) => r.table_name);
  assert.ok(names.includes('api_tokens') && names.includes('devices') && names.includes('schema_migrations'), names.join(', '));

  await sql(`INSERT INTO ${schema.name}.token_migrations (version, applied_at) VALUES ($1, 0)`, [TOKEN_SCHEMA_VERSION + 1]);
  await rejectsCode(() => PostgresTokenStore.open({ url: POSTGRES_URL, schema: schema.name }), 'BH_TOKEN_OPEN');
});

test('PostgresTokenStore: an unreachable server or a bad schema name is BH_TOKEN_OPEN, without the password', { timeout: 30_000 }, async () => {
  let caught: unknown;
  try {
    await PostgresTokenStore.open({ url: 'postgres://backhaul:s3cretpw@127.0.0.1:1/none', schema: 'x' });
  } catch (e) {
    caught = e;
  }
  assert.equal((caught as { code?: string }).code, 'BH_TOKEN_OPEN');
  assert.ok(!String((caught as Error).message).includes('s3cretpw'), String((caught as Error).message));
  await rejectsCode(() => PostgresTokenStore.open({ url: POSTGRES_URL, schema: 'Bad-Name' }), 'BH_TOKEN_OPEN', 'schema');
});

test('openTokenStore: SQLite in the data folder by default, PostgreSQL when the store says so', { timeout: 30_000 }, async (t) => {
  const cleanup = teardown(t);
  const dir = tempDir('backhaul-tokens-');
  cleanup(() => dir.cleanup());
  const lite: TokenStore = await openTokenStore({ type: 'sqlite', schema: 'backhaul' }, dir.path);
  cleanup(() => lite.close());
  assert.ok(lite instanceof SqliteTokenStore);
  assert.equal(lite.path, tokensPath(dir.path));
  if (pgSkip) return;
  const schema = freshSchema();
  cleanup(() => schema.drop());
  const pgs = await openTokenStore({ type: 'postgres', url: POSTGRES_URL, schema: schema.name }, dir.path);
  cleanup(() => pgs.close());
  assert.ok(pgs instanceof PostgresTokenStore);
  assert.equal(pgs.schema, schema.name);
});

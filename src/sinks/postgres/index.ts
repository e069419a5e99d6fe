// postgres: the historian in PostgreSQL (15 or newer), shared by every instance that writes or reads it. The same rows,
// duplicates rule and queries as the sqlite historian (historian.ts here mirrors src/sinks/sqlite/historian.ts), so
// `api.historian` may name either. Readings are partitioned by UTC day: `partitionsAhead` days are made ahead at open
// and hourly, and with `retentionDays` whole partitions older than that are dropped. A write resolves once its
// transaction committed; the server not reachable, or a connection lost, is a retryable outage.
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { errorText } from '../../core/errors.js';
import { safeUrl } from '../../core/url.js';
import { checkSchemaName, DAY_MS, HistorianOpenError, PgHistorian } from './historian.js';

export { PgHistorian } from './historian.js';

const Options = Type.Object(
  {
    url: Type.String({
      pattern: '^postgres(ql)?://',
      urlCredentials: true,
      description: 'The database, `postgres://user@host:5432/db` (libpq URL; `?sslmode=require` for TLS). Put the password in `password`, not here.',
    }),
    password: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'The user\'s password; use `{"secret": NAME}`.' })),
    schema: Type.String({ default: 'backhaul', description: 'Schema holding the historian\'s tables (made if missing): lower-case letters, digits and `_`.' }),
    retentionDays: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Drop readings and events older than this many days (whole daily partitions; checked at open and hourly). Default: keep all.' }),
    ),
    partitionsAhead: Type.Integer({ minimum: 1, maximum: 60, default: 3, description: 'Daily partitions made ahead of today (a reading in no partition goes to the DEFAULT one).' }),
    connectTimeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'How long to wait for a connection.' }),
    statementTimeoutMs: Type.Integer({
      minimum: 100,
      default: 30000,
      description: 'A statement that runs longer (waiting on a lock another session holds) is cancelled and the batch retried.',
    }),
  },
  { additionalProperties: false },
);

const UPKEEP_EVERY_MS = 60 * 60 * 1000;

/**
 * SQLSTATE classes an operator must act on (not retried): 28 (credentials refused), 3D (no such database), 42 (a
 * privilege or an object missing), 22 (data the schema refuses). Anything else (08 connection, 53 resources, 57
 * shutdown, 40 serialization, or no code: a socket error) may pass.
 */
function fatalCode(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^(28|3D|42|22)/.test(code);
}

function pgError(what: string, e: unknown): SinkError {
  if (e instanceof HistorianOpenError) return new SinkError(`${what}: ${e.message}`, e.retryable, { cause: e });
  return new SinkError(`${what}: ${errorText(e)}`, !fatalCode(e), { cause: e });
}

export const postgresSink = defineSink({
  kind: 'sink',
  type: 'postgres',
  description: 'Store every value in a PostgreSQL historian, partitioned by day, shared by every instance (queried by the REST API like sqlite).',
  options: Options,
  // Rows carry their own times: several transactions may commit in any order.
  window: 4,
  linger: 100,
  batchSize: 1000,
  check(o) {
    const bad = checkSchemaName(o.schema);
    return bad ? [{ path: 'schema', message: bad }] : [];
  },
  openHistory(o) {
    return new PgHistorian({ url: o.url, ...(o.password !== undefined ? { password: o.password } : {}), schema: o.schema, max: 2, connectTimeoutMs: o.connectTimeoutMs, statementTimeoutMs: o.statementTimeoutMs });
  },
  create(o, ctx) {
    const where = safeUrl(o.url);
    let h: PgHistorian | undefined;
    let lastUpkeep = 0;

    /** Partitions ahead, and retention, at open and then hourly (before a write, on the sink's clock). */
    async function upkeep(force: boolean): Promise<void> {
      const now = ctx.clock.now();
      if (!h || (!force && now - lastUpkeep < UPKEEP_EVERY_MS)) return;
      lastUpkeep = now;
      const dropBefore = o.retentionDays === undefined ? undefined : now - o.retentionDays * DAY_MS;
      const r = await h.maintain(now - DAY_MS, now + o.partitionsAhead * DAY_MS, dropBefore);
      if (r.created.length + r.dropped.length > 0) ctx.logger.info({ created: r.created, dropped: r.dropped }, 'historian partitions made and dropped');
    }

    return {
      async open() {
        await h?.end();
        const next = new PgHistorian({ url: o.url, ...(o.password !== undefined ? { password: o.password } : {}), schema: o.schema, max: 4, connectTimeoutMs: o.connectTimeoutMs, statementTimeoutMs: o.statementTimeoutMs });
        try {
          await next.migrate();
          h = next;
          await upkeep(true);
        } catch (e) {
          h = undefined;
          await next.end();
          throw pgError(`cannot open the historian at ${where}`, e);
        }
        ctx.logger.info({ url: where, schema: o.schema }, 'postgres historian open');
      },

      async write(batch) {
        const cur = h;
        if (!cur) throw new SinkError(`the historian at ${where} is not open`, true);
        try {
          await upkeep(false);
        } catch (e) {
          lastUpkeep = 0; // tried again at the next write; the rows still have the DEFAULT partition
          ctx.logger.warn({ err: errorText(e) }, 'historian partition upkeep failed');
        }
        try {
          await cur.write(batch);
        } catch (e) {
          throw pgError(`cannot write to the historian at ${where}`, e);
        }
      },

      async close() {
        const cur = h;
        h = undefined;
        await cur?.end();
      },
    };
  },
});

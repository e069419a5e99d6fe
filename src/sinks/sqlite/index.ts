// sqlite: the embedded historian. One row per value in a local SQLite file (WAL), one transaction per batch.
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { isInside } from '../../core/private-files.js';
import { errorText } from '../format.js';
import { Historian } from './historian.js';

export { Historian } from './historian.js';
export type { EventQuery, HistorianEvent, HistorianOpenOptions, HistorianReading, ReadingFilter, ReadingQuery } from './historian.js';

const Options = Type.Object(
  {
    path: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'SQLite file. Default `history.sqlite` in the data folder; a relative path is relative to the config file.',
      }),
    ),
    retentionDays: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Delete readings and events older than this many days (checked at open and hourly). Default: keep all.',
      }),
    ),
  },
  { additionalProperties: false },
);

const PRUNE_EVERY_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Errors that may pass: a locked database, a full disk, an I/O hiccup. Anything else needs an operator. */
const RETRYABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|PROTOCOL|INTERRUPT)/;

function sqliteError(what: string, e: unknown, defaultRetryable: boolean): SinkError {
  const code = (e as { code?: unknown } | undefined)?.code;
  const retryable = typeof code === 'string' && code.startsWith('SQLITE_') ? RETRYABLE.test(code) : defaultRetryable;
  return new SinkError(`${what}: ${errorText(e)}`, retryable, { cause: e });
}

export const sqliteSink = defineSink({
  kind: 'sink',
  type: 'sqlite',
  description: 'Store every value in a local SQLite historian (the embedded default; queried by the REST API).',
  options: Options,
  // Several batches in flight: rows carry their own times; order does not matter.
  window: 4,
  create(o, ctx) {
    const path = o.path === undefined ? join(ctx.dataDir, 'history.sqlite') : ctx.resolvePath(o.path);
    const retentionMs = o.retentionDays === undefined ? undefined : o.retentionDays * DAY_MS;
    let historian: Historian | undefined;
    let lastPrune = 0;

    function prune(h: Historian): void {
      if (retentionMs === undefined) return;
      const now = ctx.clock.now();
      lastPrune = now;
      try {
        const n = h.pruneBefore(now - retentionMs);
        if (n > 0) ctx.logger.info({ deleted: n, retentionDays: o.retentionDays }, 'historian deleted rows past retention');
      } catch (e) {
        ctx.logger.warn({ err: errorText(e) }, 'historian could not delete rows past retention');
      }
    }

    return {
      open() {
        try {
          historian = Historian.open(path, { private: isInside(ctx.dataDir, path) });
        } catch (e) {
          return Promise.reject(sqliteError(`cannot open ${path}`, e, false));
        }
        prune(historian);
        return Promise.resolve();
      },

      write(batch) {
        const h = historian;
        if (!h?.isOpen) return Promise.reject(new SinkError(`${path} is not open`, true));
        try {
          h.write(batch);
        } catch (e) {
          return Promise.reject(sqliteError(`cannot write to ${path}`, e, true));
        }
        if (retentionMs !== undefined && ctx.clock.now() - lastPrune >= PRUNE_EVERY_MS) prune(h);
        return Promise.resolve();
      },

      close() {
        historian?.close();
        historian = undefined;
        return Promise.resolve();
      },
    };
  },
});

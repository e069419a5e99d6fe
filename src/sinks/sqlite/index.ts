// sqlite: the embedded historian. One row per value in a local SQLite file (WAL), one transaction per batch. The
// file is opened, written, pruned and closed in a worker thread of the sink's own (writer.ts), so the event loop never
// waits for a commit's fsync; the REST API reads the same file on the main thread, read-only.
import { errorText } from '../../core/errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError, type SinkContext, type SinkDefinition } from '../../core/driver.js';
import { isInside } from '../../core/private-files.js';
import { WorkerCallError, WorkerClient } from '../../core/worker.js';

import { Historian } from './historian.js';
import type { OpenReply, OpenRequest, PruneOutcome, WriteReply, WriteRequest } from './writer.js';

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

/** SQLite itself refused (the thread is alive and answered); anything else may be a dead thread. */
function isSqliteReply(e: unknown): boolean {
  return e instanceof WorkerCallError && e.code?.startsWith('SQLITE_') === true;
}

/** The thread is alive: it answers (after the requests before this one). A dead one's client fails at once. */
function answers(client: WorkerClient): Promise<boolean> {
  return client.call('ping', null).then(
    () => true,
    () => false,
  );
}

/** The historian's file: `path` from the config, else `history.sqlite` in the data folder. */
function historyPath(o: { readonly path?: string | undefined }, where: Pick<SinkContext, 'dataDir' | 'resolvePath'>): string {
  return o.path === undefined ? join(where.dataDir, 'history.sqlite') : where.resolvePath(o.path);
}

/** The sink, its SQLite work served by the thread at `threadUrl` (a test passes one it can make crash). */
export function defineSqliteSink(threadUrl: URL): SinkDefinition<typeof Options> {
  return defineSink({
    kind: 'sink',
    type: 'sqlite',
    description: 'Store every value in a local SQLite historian (the embedded default; queried by the REST API).',
    options: Options,
    // Several batches in flight: rows carry their own times, so order does not matter; the thread commits them in turn.
    window: 4,
    // History can wait a moment: batches of up to 1,000 a tenth of a second apart, not a commit and fsync per
    // reading. Large batches matter with many devices: each device's rows go to its own place in the indexes, and a
    // commit writes every page it touched, so pages are better shared by many rows.
    linger: 100,
    batchSize: 1000,
    openHistory(o, where) {
      const path = historyPath(o, where);
      return existsSync(path) ? Historian.open(path, { readonly: true }) : undefined;
    },
    create(o, ctx) {
      const path = historyPath(o, ctx);
      const retentionMs = o.retentionDays === undefined ? undefined : o.retentionDays * DAY_MS;
      /** The running thread with the historian open in it; undefined while closed, or after it died. */
      let thread: WorkerClient | undefined;
      /** The thread died while open: the next write starts a new one (the runner does not reopen after a write). */
      let lost = false;
      let reopening: Promise<WorkerClient> | undefined;
      let closing: Promise<void> = Promise.resolve();
      /** Bumped by open and close, so a thread that finished starting after a close is stopped, not kept. */
      let generation = 0;
      let lastPrune = 0;

      /** Where retention cuts, when a prune is due (always at open, then hourly); decided here, on the sink's clock. */
      function pruneDue(force: boolean): number | undefined {
        if (retentionMs === undefined) return undefined;
        const now = ctx.clock.now();
        if (!force && now - lastPrune < PRUNE_EVERY_MS) return undefined;
        lastPrune = now;
        return now - retentionMs;
      }

      function reportPrune(p: PruneOutcome | undefined): void {
        if (p === undefined) return;
        if ('error' in p) ctx.logger.warn({ err: p.error }, 'historian could not delete rows past retention');
        else if (p.deleted > 0) ctx.logger.info({ deleted: p.deleted, retentionDays: o.retentionDays }, 'historian deleted rows past retention');
      }

      /** A new thread with the historian open in it. */
      async function start(): Promise<WorkerClient> {
        const client = new WorkerClient(threadUrl, undefined, `historian "${ctx.id}"`);
        try {
          await client.start();
        } catch (e) {
          await client.stop();
          throw sqliteError('cannot start the historian thread', e, true);
        }
        try {
          const req: OpenRequest = { path, private: isInside(ctx.dataDir, path), pruneBefore: pruneDue(true) };
          reportPrune((await client.call<OpenReply>('open', req)).prune);
        } catch (e) {
          const died = !isSqliteReply(e) && !(await answers(client)); // a thread that died in the open may do better next time
          await client.stop();
          throw sqliteError(`cannot open ${path}`, e, died);
        }
        return client;
      }

      /** Start a thread for this generation; stopped again if a close came in the meantime. */
      async function startFor(gen: number): Promise<WorkerClient> {
        const client = await start();
        if (gen !== generation) {
          await client.stop();
          throw new SinkError(`${path} was closed while opening`, true);
        }
        thread = client;
        lost = false;
        return client;
      }

      function current(): Promise<WorkerClient> {
        if (thread) return Promise.resolve(thread);
        if (!lost) return Promise.reject(new SinkError(`${path} is not open`, true));
        // Concurrent writes that find the thread gone share one restart.
        reopening ??= startFor(generation).finally(() => (reopening = undefined));
        return reopening;
      }

      /** After a failure without a SQLite code: if the thread is gone, drop it so the next write starts another. */
      async function checkAlive(client: WorkerClient): Promise<void> {
        if ((await answers(client)) || thread !== client) return;
        thread = undefined;
        lost = true;
        ctx.logger.warn({ path }, 'historian thread ended; the next write starts a new one');
        await client.stop();
      }

      async function close(): Promise<void> {
        generation++;
        lost = false;
        const client = thread;
        thread = undefined;
        if (!client) return closing.catch(() => undefined); // closed already, or being closed: wait for that
        closing = (async () => {
          try {
            await client.call('close', null);
          } catch (e) {
            throw sqliteError(`cannot close ${path}`, e, false);
          } finally {
            await client.stop();
          }
        })();
        return closing;
      }

      return {
        async open() {
          await close().catch(() => undefined); // reopening an open sink: the old thread goes first
          await startFor(++generation);
        },

        // Several writes may be in flight: the thread commits them one at a time, in the order they were sent.
        async write(batch) {
          const client = await current();
          const pruneBefore = pruneDue(false);
          try {
            const req: WriteRequest = { batch: JSON.stringify(batch), pruneBefore };
            reportPrune((await client.call<WriteReply>('write', req)).prune);
          } catch (e) {
            if (pruneBefore !== undefined) lastPrune = 0; // the prune did not run: the next write tries it
            if (!isSqliteReply(e)) await checkAlive(client);
            throw sqliteError(`cannot write to ${path}`, e, true);
          }
        },

        close,
      };
    },
  });
}

export const sqliteSink = defineSqliteSink(new URL('./thread.js', import.meta.url));

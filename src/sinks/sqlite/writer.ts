// The historian's writing side, as request handlers for its thread (thread.ts): open, write, prune and close run
// there, so no SQLite commit or fsync of the sqlite sink ever runs on the event loop. The sink (index.ts) sends the
// requests; they are served one at a time, in order, so a write can rely on the open before it.
import { errorText } from '../../core/errors.js';
import type { Handlers } from '../../core/worker.js';
import type { Message } from '../../core/types.js';

import { Historian, type WriteCounts } from './historian.js';

export interface OpenRequest {
  readonly path: string;
  readonly private: boolean;
  /** Delete rows older than this (ms) once open. The main thread decides, from its (injectable) clock. */
  readonly pruneBefore?: number;
}

export interface WriteRequest {
  /**
   * The batch as JSON text: a string crosses to the thread as one flat copy, where structured clone walks every
   * object (it was a tenth of the main thread's time at 5,000 msg/s). Values are numbers, strings and booleans;
   * a number that is not finite arrives as null and is not stored (SQLite has no NaN either).
   */
  readonly batch: string;
  /** Delete rows older than this (ms) after the batch committed. */
  readonly pruneBefore?: number;
}

/** A failed prune does not fail the request it came with; the main thread logs either outcome. */
export type PruneOutcome = { readonly deleted: number } | { readonly error: string };

export interface OpenReply {
  readonly prune?: PruneOutcome;
}

export interface WriteReply {
  readonly counts: WriteCounts;
  readonly prune?: PruneOutcome;
}

function prune(h: Historian, before: number | undefined): { prune?: PruneOutcome } {
  if (before === undefined) return {};
  try {
    return { prune: { deleted: h.pruneBefore(before) } };
  } catch (e) {
    return { prune: { error: errorText(e) } };
  }
}

/** One historian per thread. Errors thrown here reach the sink with their SQLite `code`, which classifies them. */
export function historianHandlers() {
  let historian: Historian | undefined;
  return {
    open(req: OpenRequest): OpenReply {
      historian?.close();
      historian = undefined;
      const h = Historian.open(req.path, { private: req.private });
      historian = h;
      return prune(h, req.pruneBefore);
    },
    write(req: WriteRequest): WriteReply {
      const h = historian;
      if (!h?.isOpen) throw new Error('the historian is not open');
      const counts = h.write(JSON.parse(req.batch) as Message[]);
      return { counts, ...prune(h, req.pruneBefore) };
    },
    close(): null {
      historian?.close();
      historian = undefined;
      return null;
    },
    /** Answers while the thread lives: the sink asks after a failure that carries no SQLite code. */
    ping(): true {
      return true;
    },
  } satisfies Handlers;
}

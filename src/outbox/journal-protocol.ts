// What the main thread and the journal's storage thread (journal-thread.ts) send each other.

export interface ThreadOptions {
  readonly path: string;
  readonly sync: 'full' | 'normal';
}

export interface OpenReply {
  readonly nextSeq: number;
  readonly lanes: ReadonlyArray<{ readonly num: number; readonly name: string; readonly cursor: number }>;
  /** Every row, oldest first: its seq, put time, body size and lane numbers (`laneCounts[i]` of them in `laneNums`). */
  readonly seqs: readonly number[];
  readonly ats: readonly number[];
  readonly bytes: readonly number[];
  readonly laneCounts: readonly number[];
  readonly laneNums: readonly number[];
}

/** One group commit: new rows, changed lane sets, deleted ranges, lane cursors, all in one transaction. */
export interface CommitRequest {
  /** Typed arrays: they cross to the thread as one copy each, where arrays of numbers are cloned number by number. */
  readonly seqs: Float64Array;
  readonly ats: Float64Array;
  readonly laneCounts: Uint16Array;
  readonly laneNums: Uint16Array;
  /** Bodies (CBOR) back to back; `offsets[i]` is where row i's ends. */
  readonly body: Uint8Array;
  readonly offsets: Float64Array;
  /** Rows some lane dropped out of order (overflow): the lanes that still have them. */
  readonly updates: ReadonlyArray<readonly [number, readonly number[]]>;
  /** Inclusive seq ranges, as pairs: rows no lane needs any more. */
  readonly deletes: readonly number[];
  /** Rows in those ranges, for the thread's vacuum bookkeeping. */
  readonly deleted: number;
  readonly cursors: ReadonlyArray<readonly [number, number]>;
  readonly newLanes: ReadonlyArray<readonly [number, string, number]>;
  readonly nextSeq: number;
}

export interface ReadReply {
  readonly body: Uint8Array;
  readonly offsets: readonly number[];
}

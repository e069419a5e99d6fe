// The durable outbox: one SQLite file per sink (WAL mode), so a sink's queue survives a crash, a power cut (with
// `sync: full`) and a restart, and one sink's disk traffic never locks another's.
//
// Puts are group-committed: every put made in the same turn of the event loop goes into one transaction, and each
// put's promise resolves only after that transaction commits. That is what lets inputs acknowledge (PUBACK, HTTP 202)
// only once a reading is on disk, at thousands of readings a second, without one fsync per reading.
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Encoder } from 'cbor-x';
import type { Clock } from '../core/clock.js';
import { createPrivateFile, makePrivateDir } from '../core/private-files.js';
import type { Message } from '../core/types.js';
import { OutboxClosedError, type Outbox, type OutboxEntry, type OutboxLimits, type OutboxStats, type PutResult } from './outbox.js';

/** An empty outbox gives its space back at most this often (besides every 10,000 removals). */
const RECLAIM_IDLE_MS = 10_000;

export interface SqliteOutboxOptions extends OutboxLimits {
  /** `full`: a committed put survives a power cut. `normal`: it survives a process crash (faster). */
  readonly sync: 'full' | 'normal';
}

interface PendingPut {
  readonly rows: ReadonlyArray<{ readonly body: Buffer }>;
  readonly resolve: (r: PutResult) => void;
  readonly reject: (e: unknown) => void;
  /** Items reserved by the block policy, released once committed. */
  readonly reserved: number;
  readonly reservedBytes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS items (
  id    INTEGER PRIMARY KEY AUTOINCREMENT,
  at    INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  body  BLOB    NOT NULL
);`;

// Plain CBOR maps (no shared record structures): every row decodes on its own, by any future version.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

export class SqliteOutbox implements Outbox {
  private items = 0;
  private bytes = 0;
  private oldestAt: number | undefined;
  private pending: PendingPut[] = [];
  private flushScheduled = false;
  private readers: Array<() => void> = [];
  /** Blocked puts, first come first served, each with the room it needs. */
  private roomWaiters: Array<{ items: number; bytes: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private reservedItems = 0;
  private reservedBytes = 0;
  private removedSinceVacuum = 0;
  private lastReclaimAt = -Infinity;
  /** Highest id handed out by the last peek: the batch being delivered, which overflow must not drop. */
  private leased = 0;
  private closed = false;
  private readonly stmt: {
    insert: Database.Statement<[number, number, Buffer]>;
    dropOldest: Database.Statement<[number, number], { bytes: number }>;
    peek: Database.Statement<[number], { id: number; body: Buffer }>;
    remove: Database.Statement<[number], { bytes: number }>;
    oldest: Database.Statement<[], { at: number }>;
  };

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly opts: SqliteOutboxOptions,
    private readonly clock: Clock,
  ) {
    this.stmt = {
      insert: db.prepare('INSERT INTO items (at, bytes, body) VALUES (?, ?, ?)'),
      // Never the batch being delivered (ids up to `leased`): those are on their way, not waiting.
      dropOldest: db.prepare('DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?) RETURNING bytes'),
      peek: db.prepare('SELECT id, body FROM items ORDER BY id LIMIT ?'),
      remove: db.prepare('DELETE FROM items WHERE id = ? RETURNING bytes'),
      oldest: db.prepare('SELECT at FROM items ORDER BY id LIMIT 1'),
    };
    const row = db.prepare('SELECT count(*) AS n, ifnull(sum(bytes), 0) AS b FROM items').get() as { n: number; b: number };
    this.items = row.n;
    this.bytes = row.b;
    this.oldestAt = this.stmt.oldest.get()?.at;
  }

  /** Open (or create) the outbox file. Undelivered items from a previous run are kept and come out first. */
  static open(path: string, opts: SqliteOutboxOptions, clock: Clock): SqliteOutbox {
    // Queued readings are private: 0700 folder, 0600 file (SQLite gives -wal/-shm the file's mode).
    makePrivateDir(dirname(path));
    createPrivateFile(path);
    const db = new Database(path);
    try {
      // auto_vacuum must be chosen before the first table exists; incremental lets us hand pages back as it drains.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.sync === 'full' ? 'FULL' : 'NORMAL'}`);
      // Keep the WAL file from staying large after a burst.
      db.pragma('journal_size_limit = 4194304');
      db.exec(SCHEMA);
      return new SqliteOutbox(db, path, opts, clock);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  async put(msgs: readonly Message[]): Promise<PutResult> {
    if (this.closed) throw new OutboxClosedError();
    if (msgs.length === 0) return { dropped: 0 };
    const rows = msgs.map((m) => ({ body: cbor.encode(m) }));
    let dropped = 0;
    let admitted = rows;
    let reserved = 0;
    let reservedBytes = 0;
    if (this.opts.overflow === 'block') {
      // Wait, first come first served, until the whole put fits. Rows that can never fit are dropped.
      admitted = rows.filter((r) => r.body.length <= this.opts.maxBytes);
      dropped = rows.length - admitted.length;
      const n = Math.min(admitted.length, this.opts.maxItems);
      if (n < admitted.length) {
        dropped += admitted.length - n; // a single put larger than the whole outbox
        admitted = admitted.slice(0, n);
      }
      reservedBytes = admitted.reduce((s, r) => s + r.body.length, 0);
      await this.reserve(admitted.length, reservedBytes);
      reserved = admitted.length;
    }
    const r = await new Promise<PutResult>((resolve, reject) => {
      this.pending.push({ rows: admitted, resolve, reject, reserved, reservedBytes });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
    return { dropped: dropped + r.dropped };
  }

  private hasRoom(items: number, bytes: number): boolean {
    const usedItems = this.items + this.reservedItems;
    const usedBytes = this.bytes + this.reservedBytes;
    // An empty outbox always admits one put, so a put larger than maxBytes cannot wait forever.
    return usedItems === 0 || (usedItems + items <= this.opts.maxItems && usedBytes + bytes <= this.opts.maxBytes);
  }

  private reserve(items: number, bytes: number): Promise<void> {
    if (this.roomWaiters.length === 0 && this.hasRoom(items, bytes)) {
      this.reservedItems += items;
      this.reservedBytes += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.roomWaiters.push({ items, bytes, resolve, reject }));
  }

  /** Admit blocked puts, in order, while there is room. */
  private pumpRoom(): void {
    for (;;) {
      const w = this.roomWaiters[0];
      if (!w || !this.hasRoom(w.items, w.bytes)) return;
      this.roomWaiters.shift();
      this.reservedItems += w.items;
      this.reservedBytes += w.bytes;
      w.resolve();
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    if (this.closed) {
      for (const p of batch) p.reject(new OutboxClosedError());
      return;
    }
    const now = this.clock.now();
    const before = { items: this.items, bytes: this.bytes };
    const results: number[] = [];
    try {
      this.db.transaction(() => {
        for (const p of batch) {
          let dropped = 0;
          for (const row of p.rows) {
            const size = row.body.length;
            if (p.reserved === 0) {
              if (size > this.opts.maxBytes) {
                dropped++;
                continue;
              }
              if (this.items + 1 > this.opts.maxItems || this.bytes + size > this.opts.maxBytes) {
                if (this.opts.overflow === 'drop-newest') {
                  dropped++;
                  continue;
                }
                // drop-oldest: make room from the head
                const need = Math.max(1, this.items + 1 - this.opts.maxItems);
                // When only the batch in delivery is left, the new item goes in over the cap (by at most one batch).
                for (const d of this.stmt.dropOldest.all(this.leased, need)) {
                  this.items--;
                  this.bytes -= d.bytes;
                  dropped++;
                }
                while (this.items > 0 && this.bytes + size > this.opts.maxBytes) {
                  const d = this.stmt.dropOldest.get(this.leased, 1);
                  if (!d) break;
                  this.items--;
                  this.bytes -= d.bytes;
                  dropped++;
                }
              }
            }
            this.stmt.insert.run(now, size, row.body);
            this.items++;
            this.bytes += size;
          }
          results.push(dropped);
        }
      })();
    } catch (e) {
      // Nothing of this group was committed: every put in it fails, and its callers do not acknowledge.
      this.items = before.items;
      this.bytes = before.bytes;
      for (const p of batch) {
        this.reservedItems -= p.reserved;
        this.reservedBytes -= p.reservedBytes;
        p.reject(e);
      }
      this.pumpRoom();
      return;
    }
    this.oldestAt = this.items > 0 ? this.stmt.oldest.get()?.at : undefined;
    batch.forEach((p, i) => {
      this.reservedItems -= p.reserved;
      this.reservedBytes -= p.reservedBytes;
      p.resolve({ dropped: results[i] ?? 0 });
    });
    if (this.items > 0) this.wakeReaders();
  }

  peek(max: number): Promise<readonly OutboxEntry[]> {
    if (this.closed) return Promise.resolve([]);
    const rows = this.stmt.peek.all(max);
    this.leased = rows.at(-1)?.id ?? 0;
    return Promise.resolve(rows.map((r) => ({ id: r.id, msg: cbor.decode(r.body) as Message })));
  }

  remove(ids: readonly number[]): Promise<void> {
    this.leased = 0;
    if (ids.length === 0 || this.closed) return Promise.resolve();
    this.db.transaction(() => {
      for (const id of ids) {
        const r = this.stmt.remove.get(id);
        if (r) {
          this.items--;
          this.bytes -= r.bytes;
        }
      }
    })();
    this.oldestAt = this.items > 0 ? this.stmt.oldest.get()?.at : undefined;
    this.removedSinceVacuum += ids.length;
    this.reclaim();
    this.pumpRoom();
    return Promise.resolve();
  }

  /**
   * Hand freed pages back to the file system as the outbox drains, so the file does not only grow: every 10,000
   * removals, and when it is empty if the last time was a while ago. Not every time it empties: in steady state it
   * empties after every batch, and vacuum plus checkpoint then took 8 % of the busy time (npm run bench --profile).
   */
  private reclaim(): void {
    const now = this.clock.now();
    const due = this.removedSinceVacuum >= 10_000 || (this.items === 0 && this.removedSinceVacuum > 0 && now - this.lastReclaimAt >= RECLAIM_IDLE_MS);
    if (!due) return;
    this.removedSinceVacuum = 0;
    this.lastReclaimAt = now;
    this.db.pragma('incremental_vacuum');
    if (this.items === 0) this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  release(): void {
    this.leased = 0;
  }

  stats(): OutboxStats {
    return { items: this.items, bytes: this.bytes, oldestAt: this.oldestAt };
  }

  /** Pages in the database file (with the page size, what it takes on disk apart from the WAL). */
  fileBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const size = this.db.pragma('page_size', { simple: true }) as number;
    return pages * size;
  }

  whenReadable(): Promise<void> {
    if (this.items > 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.readers.push(resolve));
  }

  private wakeReaders(): void {
    const r = this.readers;
    this.readers = [];
    for (const f of r) f();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // Commit what is already queued: those callers are waiting for their acknowledgement.
    this.flush();
    this.closed = true;
    this.wakeReaders();
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w.reject(new OutboxClosedError());
    this.db.close();
    return Promise.resolve();
  }
}

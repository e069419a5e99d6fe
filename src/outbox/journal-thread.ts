// The journal's storage thread: the only code that touches `<data>/journal.sqlite`. Every SQLite call (the commit
// and its fsync above all) runs here, so the event loop never waits for the disk. The main thread sends one commit
// at a time and gathers the next group meanwhile: a slower disk makes the groups larger, not the rate lower.
import { existsSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { serveRequests, threadData } from '../core/worker.js';
import { createPrivateFile } from '../core/private-files.js';
import type { CommitRequest, OpenReply, ReadReply, ThreadOptions } from './journal-protocol.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS journal (
  seq   INTEGER PRIMARY KEY,
  at    INTEGER NOT NULL,
  lanes BLOB    NOT NULL,
  body  BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS lanes (
  num    INTEGER PRIMARY KEY,
  name   TEXT    NOT NULL UNIQUE,
  cursor INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);`;

/** Freed pages go back to the file system after this many deleted rows. */
const VACUUM_EVERY = 20_000;

const opts = threadData<ThreadOptions>();
createPrivateFile(opts.path);
const db = new Database(opts.path);
// auto_vacuum must be chosen before the first table exists; incremental lets us hand pages back as it drains.
db.pragma('auto_vacuum = INCREMENTAL');
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${opts.sync === 'full' ? 'FULL' : 'NORMAL'}`);
db.pragma('journal_size_limit = 8388608');
db.exec(SCHEMA);

const stmt = {
  insert: db.prepare<[number, number, Buffer, Buffer]>('INSERT INTO journal (seq, at, lanes, body) VALUES (?, ?, ?, ?)'),
  update: db.prepare<[Buffer, number]>('UPDATE journal SET lanes = ? WHERE seq = ?'),
  deleteRange: db.prepare<[number, number]>('DELETE FROM journal WHERE seq BETWEEN ? AND ?'),
  cursor: db.prepare<[number, number]>('UPDATE lanes SET cursor = ? WHERE num = ?'),
  newLane: db.prepare<[number, string, number]>('INSERT OR IGNORE INTO lanes (num, name, cursor) VALUES (?, ?, ?)'),
  setSeq: db.prepare<[number]>("INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
  getSeq: db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'next_seq'"),
  body: db.prepare<[number], { body: Buffer }>('SELECT body FROM journal WHERE seq = ?'),
};
let deletedSinceVacuum = 0;

function laneBlob(nums: ArrayLike<number>): Buffer {
  const b = Buffer.allocUnsafe(nums.length * 2);
  for (let i = 0; i < nums.length; i++) b.writeUInt16LE(nums[i]!, i * 2);
  return b;
}

/** Bring in what a per-sink outbox file of an earlier version still holds, then delete that file. */
function migrate(name: string, path: string, nextSeq: number): number {
  if (!existsSync(path)) return nextSeq;
  const old = new Database(path, { fileMustExist: true });
  let rows: Array<{ at: number; body: Buffer }>;
  try {
    rows = old.prepare('SELECT at, body FROM items ORDER BY id').all() as Array<{ at: number; body: Buffer }>;
  } finally {
    old.close();
  }
  const lane = db.prepare<[string], { num: number }>('SELECT num FROM lanes WHERE name = ?').get(name);
  if (!lane) return nextSeq;
  const blob = laneBlob([lane.num]);
  let seq = nextSeq;
  db.transaction(() => {
    for (const r of rows) stmt.insert.run(seq++, r.at, blob, r.body);
    stmt.setSeq.run(seq);
  })();
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  return seq;
}

serveRequests({
  open(req: { lanes: readonly string[]; migrate: ReadonlyArray<readonly [string, string]> }): OpenReply {
    let nextSeq = stmt.getSeq.get()?.value ?? ((db.prepare('SELECT ifnull(max(seq), 0) AS m FROM journal').get() as { m: number }).m + 1);
    const maxNum = (db.prepare('SELECT ifnull(max(num), -1) AS m FROM lanes').get() as { m: number }).m;
    let num = maxNum + 1;
    db.transaction(() => {
      // A new lane has nothing before the next seq.
      for (const name of req.lanes) if (stmt.newLane.run(num, name, nextSeq - 1).changes > 0) num++;
      stmt.setSeq.run(nextSeq);
    })();
    for (const [name, path] of req.migrate) nextSeq = migrate(name, path, nextSeq);
    const lanes = db.prepare('SELECT num, name, cursor FROM lanes ORDER BY num').all() as Array<{ num: number; name: string; cursor: number }>;
    const rows = db.prepare('SELECT seq, at, length(body) AS bytes, lanes FROM journal ORDER BY seq').all() as Array<{ seq: number; at: number; bytes: number; lanes: Buffer }>;
    const laneCounts: number[] = [];
    const laneNums: number[] = [];
    for (const r of rows) {
      laneCounts.push(r.lanes.length / 2);
      for (let i = 0; i < r.lanes.length; i += 2) laneNums.push(r.lanes.readUInt16LE(i));
    }
    return { nextSeq, lanes, seqs: rows.map((r) => r.seq), ats: rows.map((r) => r.at), bytes: rows.map((r) => r.bytes), laneCounts, laneNums };
  },

  commit(c: CommitRequest): null {
    db.transaction(() => {
      for (const [n, name, cursor] of c.newLanes) stmt.newLane.run(n, name, cursor);
      let off = 0;
      let ln = 0;
      const body = Buffer.from(c.body.buffer, c.body.byteOffset, c.body.byteLength);
      for (let i = 0; i < c.seqs.length; i++) {
        const count = c.laneCounts[i]!;
        const end = c.offsets[i]!;
        stmt.insert.run(c.seqs[i]!, c.ats[i]!, laneBlob(c.laneNums.subarray(ln, ln + count)), body.subarray(off, end));
        off = end;
        ln += count;
      }
      for (const [seq, nums] of c.updates) stmt.update.run(laneBlob(nums), seq);
      for (let i = 0; i < c.deletes.length; i += 2) stmt.deleteRange.run(c.deletes[i]!, c.deletes[i + 1]!);
      for (const [n, cursor] of c.cursors) stmt.cursor.run(cursor, n);
      stmt.setSeq.run(c.nextSeq);
    })();
    deletedSinceVacuum += c.deleted;
    if (deletedSinceVacuum >= VACUUM_EVERY) {
      deletedSinceVacuum = 0;
      db.pragma('incremental_vacuum');
    }
    return null;
  },

  read(req: { seqs: readonly number[] }): ReadReply {
    const parts: Buffer[] = [];
    const offsets: number[] = [];
    let total = 0;
    for (const seq of req.seqs) {
      const row = stmt.body.get(seq);
      if (!row) throw new Error(`journal row ${seq} is missing`);
      parts.push(row.body);
      total += row.body.length;
      offsets.push(total);
    }
    return { body: Buffer.concat(parts, total), offsets };
  },

  close(): null {
    try {
      db.pragma('incremental_vacuum');
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    return null;
  },
});

// Where the durable journal lives, the per-sink outbox files of earlier versions (brought into the journal at the
// next start), and what happens to the queues of sinks that left the config.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export function outboxDir(dataDir: string): string {
  return join(dataDir, 'outbox');
}

/** A per-sink outbox file of an earlier version. */
export function outboxPath(dataDir: string, sinkId: string): string {
  return join(outboxDir(dataDir), `${sinkId}.sqlite`);
}

/** The journal every durable sink shares (src/outbox/journal.ts). */
export function journalPath(dataDir: string): string {
  return join(dataDir, 'journal.sqlite');
}

export interface OrphanOutbox {
  readonly sink: string;
  readonly path: string;
  readonly items: number;
}

/**
 * Queues of sinks that are not in the config any more, with how many messages each still holds: their lanes in the
 * journal, and outbox files of an earlier version. Read here directly, for `backhaul check` (not on the data path).
 */
export function findOrphanOutboxes(dataDir: string, sinkIds: ReadonlySet<string>): OrphanOutbox[] {
  return [...orphanLanes(dataDir, sinkIds), ...findOrphanOutboxFiles(dataDir, sinkIds)];
}

/** Per-sink outbox files of an earlier version whose sink is not in the config (the others are brought in). */
export function findOrphanOutboxFiles(dataDir: string, sinkIds: ReadonlySet<string>): OrphanOutbox[] {
  const out: OrphanOutbox[] = [];
  const dir = outboxDir(dataDir);
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.sqlite')) continue;
    const sink = name.slice(0, -'.sqlite'.length);
    if (sinkIds.has(sink)) continue;
    const path = join(dir, name);
    let items = 0;
    try {
      // Not readonly: a WAL file left by a crash must be replayed to count what it holds.
      const db = new Database(path, { fileMustExist: true });
      try {
        items = (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n;
      } finally {
        db.close();
      }
    } catch {
      items = -1; // unreadable: keep it, say so
    }
    out.push({ sink, path, items });
  }
  return out;
}

export function deleteOutboxFile(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
}

function orphanLanes(dataDir: string, sinkIds: ReadonlySet<string>): OrphanOutbox[] {
  const path = journalPath(dataDir);
  if (!existsSync(path)) return [];
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      const lanes = (db.prepare('SELECT num, name, cursor FROM lanes').all() as Array<{ num: number; name: string; cursor: number }>).filter(
        (l) => !sinkIds.has(l.name),
      );
      if (lanes.length === 0) return [];
      const counts = new Map(lanes.map((l) => [l.num, 0]));
      const cursors = new Map(lanes.map((l) => [l.num, l.cursor]));
      const from = Math.min(...lanes.map((l) => l.cursor));
      for (const row of db.prepare('SELECT seq, lanes FROM journal WHERE seq > ?').iterate(from) as Iterable<{ seq: number; lanes: Buffer }>) {
        for (let i = 0; i < row.lanes.length; i += 2) {
          const num = row.lanes.readUInt16LE(i);
          const c = counts.get(num);
          if (c !== undefined && row.seq > cursors.get(num)!) counts.set(num, c + 1);
        }
      }
      return lanes.map((l) => ({ sink: l.name, path, items: counts.get(l.num)! }));
    } finally {
      db.close();
    }
  } catch {
    return []; // an unreadable journal: `start` says so when it cannot open it
  }
}

// Where durable outboxes live, and what happens to those whose sink left the config.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export function outboxDir(dataDir: string): string {
  return join(dataDir, 'outbox');
}

export function outboxPath(dataDir: string, sinkId: string): string {
  return join(outboxDir(dataDir), `${sinkId}.sqlite`);
}

export interface OrphanOutbox {
  readonly sink: string;
  readonly path: string;
  readonly items: number;
}

/** Outbox files of sinks that are not in the config any more, with how many messages each still holds. */
export function findOrphanOutboxes(dataDir: string, sinkIds: ReadonlySet<string>): OrphanOutbox[] {
  const dir = outboxDir(dataDir);
  if (!existsSync(dir)) return [];
  const out: OrphanOutbox[] = [];
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

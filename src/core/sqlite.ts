// What Backhaul's own SQLite files share (the device registry, the API token file): open in WAL mode with a busy
// timeout, create the schema, refuse a file written by a newer Backhaul, and one cache of prepared statements.
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BackhaulError, type ErrorCode } from './errors.js';
import { createPrivateFile, makePrivateDir } from './private-files.js';

export interface SchemaFile {
  /** `CREATE … IF NOT EXISTS` statements, run at every open. */
  readonly schema: string;
  /** Kept in `user_version`; a file with a higher one is refused. */
  readonly version: number;
  /** The code for a file that cannot be opened or used, e.g. BH_REGISTRY_OPEN. */
  readonly code: ErrorCode;
  /** How messages name the file: `device registry`, `token file`. */
  readonly what: string;
  readonly synchronous?: 'FULL' | 'NORMAL';
  readonly foreignKeys?: boolean;
  /**
   * Brings a file of an older version (1 ≤ `from` < `version`) up to date before `schema` runs, e.g. the columns
   * `ALTER TABLE … ADD COLUMN` adds (CREATE TABLE IF NOT EXISTS leaves an existing table as it was). Runs in one
   * transaction with the version bump.
   */
  readonly migrate?: (db: Database.Database, from: number) => void;
}

/** Open (and create) a file of this schema; `:memory:` for a throw-away one. Throws `file.code` when it cannot be used. */
export function openSchemaFile(path: string, file: SchemaFile): Database.Database {
  let db: Database.Database;
  try {
    if (path !== ':memory:') {
      // 0700 folder, 0600 file (and so -wal/-shm): password and token hashes, the audit log.
      makePrivateDir(dirname(path));
      createPrivateFile(path);
    }
    db = new Database(path);
  } catch (e) {
    throw new BackhaulError(file.code, `cannot open the ${file.what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${file.synchronous ?? 'FULL'}`);
    if (file.foreignKeys) db.pragma('foreign_keys = ON');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > file.version) {
      throw new BackhaulError(file.code, `${path} has ${file.what} schema version ${version}; this Backhaul knows up to ${file.version}`);
    }
    const migrate = file.migrate;
    if (migrate && version >= 1 && version < file.version) {
      db.transaction(() => {
        migrate(db, version);
        db.pragma(`user_version = ${file.version}`);
      })();
    }
    db.exec(file.schema);
    db.pragma(`user_version = ${file.version}`);
    return db;
  } catch (e) {
    db.close();
    if (e instanceof BackhaulError) throw e;
    throw new BackhaulError(file.code, `cannot use the ${file.what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Prepared statements by SQL text, prepared on first use. */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  get(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
}
